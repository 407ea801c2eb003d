package httpapi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/controller/internal/alerts"
	"github.com/cunxiang/cunxiang/controller/internal/audit"
	"github.com/cunxiang/cunxiang/controller/internal/capalert"
	"github.com/cunxiang/cunxiang/controller/internal/store"
)

// capMediaTypes are the Content-Types a CAP message is accepted with.
var capMediaTypes = []string{"application/cap+xml", "application/xml", "text/xml"}

// postCAPAlert takes a CAP 1.2 message and hands it to the alerts
// service: an Alert or Update becomes a broadcast to the villages its
// geocodes cover, exactly as if an operator had posted it (the same
// broadcasts service: text-to-speech, two-person rule); an Update, and a
// Cancel, also cancel the broadcasts of the messages they reference.
// Every message is claimed by sender and identifier before it is acted
// on; one received again, or while the first is still being acted on, is
// answered from the record and never broadcast twice.
func (s *Server) postCAPAlert(c *gin.Context) (any, error) {
	mt, _, err := mime.ParseMediaType(c.GetHeader("Content-Type"))
	if err != nil || !slices.Contains(capMediaTypes, strings.ToLower(mt)) {
		return nil, &httpError{status: http.StatusUnsupportedMediaType, code: "unsupported_media_type", reason: api.ReasonCAPMediaType,
			msg: "send the CAP 1.2 message as XML, with Content-Type application/cap+xml (or application/xml or text/xml)"}
	}
	// capalert refuses anything over MaxBytes; reading one byte more lets it tell.
	raw, err := io.ReadAll(io.LimitReader(c.Request.Body, capalert.MaxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read CAP message: %w", err)
	}
	req, err := capalert.ParseRequest(bytes.NewReader(raw))
	if err != nil {
		noteAudit(c, audit.CAPAlert, "cap", audit.Refusal(nil, err))
		return nil, err
	}
	servicesAudit(c)
	ctx := c.Request.Context()
	out, err := s.alerts.Receive(ctx, s.person(c), req, raw)
	var refused *alerts.RefusedError
	switch {
	case errors.As(err, &refused):
		// The message itself is fine; it cannot be broadcast here.
		return nil, invalidAs(http.StatusUnprocessableEntity, refused.Err)
	case err != nil:
		return nil, err
	}
	res := out.Result
	switch {
	case res.Duplicate:
		if out.Broadcast.ID != 0 {
			view, err := s.broadcastView(ctx, out.Broadcast)
			if err != nil {
				return nil, err
			}
			res.State = view.State
		}
		return res, nil
	case req.MsgType == "Cancel":
		return res, nil
	}
	return reply{http.StatusAccepted, res}, nil
}

// capRecordings fetches alerts' recordings for the alerts service.
type capRecordings struct{ s *Server }

func (r capRecordings) Fetch(ctx context.Context, uri, digest, title string) (store.Audio, error) {
	return r.s.fetchCAPAudio(ctx, uri, digest, title)
}
