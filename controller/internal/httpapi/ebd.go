package httpapi

import (
	"bytes"
	"context"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/controller/internal/cx"
	"github.com/cunxiang/cunxiang/controller/internal/store"
)

// ebdMaxBody bounds one archive from the upper platform (the ebd
// package's own bounds are within it).
const ebdMaxBody = 130 << 20

// postEBD takes a tar archive from the upper platform of the national
// emergency-broadcast chain. It needs no token: the packet's SM2
// signature by a trusted certificate is its credential, checked before
// anything else of it is read. The answer is the signed EBDResponse
// archive, also for a refused packet.
func (s *Server) postEBD(c *gin.Context) {
	if s.chain == nil {
		s.fail(c, &cx.Error{Code: cx.EUNAVAILABLE, Reason: api.ReasonEBDOff,
			Message: "this controller is not set up for the upper platform: start it with --ebr-id and --ebd-trust"})
		return
	}
	release, ok := s.uploadSlot(c)
	if !ok {
		return
	}
	defer release()
	body := http.MaxBytesReader(c.Writer, c.Request.Body, ebdMaxBody)
	answer, out, err := s.chain.Receive(c.Request.Context(), body, c.ClientIP())
	if err != nil {
		s.fail(c, err)
		return
	}
	s.log.Info("EBD packet", "ebdid", out.EBDID, "type", out.Type, "src", out.Src, "code", out.Code, "replayed", out.Replayed, "broadcast", out.BroadcastID)
	if out.BroadcastID != 0 && s.o.Notifier != nil {
		s.o.Notifier.Notify()
	}
	c.Data(http.StatusOK, "application/x-tar", answer)
}

// clips puts the audio files of the upper platform's messages into the
// library for the chain service, as an upload is stored.
type clips struct{ s *Server }

func (cl clips) Import(ctx context.Context, name string, data []byte, title, by string) (store.Audio, error) {
	p, err := cl.s.lib.Prepare(ctx, bytes.NewReader(data))
	if err != nil {
		return store.Audio{}, err
	}
	defer p.Discard()
	a, _, err := cl.s.storeClipBy(ctx, p, title, by)
	return a, err
}
