package httpapi

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/controller/internal/cx"
)

// getBoxBroadcast tells a box whether a broadcast it received late may
// still sound in its village (api.BroadcastCheck). A broadcast that does
// not reach the box's village is unknown to it, whatever it is.
func (s *Server) getBoxBroadcast(c *gin.Context) {
	village, ok := c.Get(keyAgent)
	if !ok {
		s.fail(c, &cx.Error{Code: cx.EFORBIDDEN, Reason: api.ReasonBoxOnly, Message: "only a box may ask this, with its MQTT credentials"})
		return
	}
	id, err := idParam(c, "id")
	if err != nil {
		s.fail(c, err)
		return
	}
	ctx := c.Request.Context()
	c.Header("Cache-Control", "no-store")
	out := api.BroadcastCheck{ID: id, Status: api.CheckUnknown}
	b, err := s.store.GetBroadcast(ctx, id)
	switch {
	case cx.Code(err) == cx.ENOTFOUND:
		c.JSON(http.StatusOK, out)
		return
	case err != nil:
		s.fail(c, err)
		return
	}
	v, err := s.store.VillageState(ctx, village.(string))
	if err != nil {
		s.fail(c, err)
		return
	}
	switch {
	case !reaches(b.Targets, v):
	case b.State == api.BroadcastCancelled:
		out.Status = api.CheckCancelled
	case b.State != api.BroadcastReleased:
		out.Status = api.CheckRejected
	case !s.now().Before(b.ExpiresAt):
		out.Status = api.CheckExpired
	default:
		out.Status = api.CheckActive
	}
	c.JSON(http.StatusOK, out)
}
