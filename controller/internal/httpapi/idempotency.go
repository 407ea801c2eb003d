package httpapi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/controller/internal/cx"
	"github.com/cunxiang/cunxiang/controller/internal/store"
)

// idempotencyHeader names the key a client chooses for one creating
// request (draft-ietf-httpapi-idempotency-key-header).
const idempotencyHeader = "Idempotency-Key"

// maxIdempotencyKey bounds a key's length; a UUID is 36.
const maxIdempotencyKey = 255

// idempotencyWait is how long a repeat waits for the first request with
// its key to finish before it is told to retry.
const idempotencyWait = 15 * time.Second

// idempotent wraps a handler that creates something (a broadcast, a
// schedule, a playlist) so that a request carrying an Idempotency-Key is
// carried out once per person and key: a repeat gets the first answer
// (status and body) and creates nothing; a repeat made while the first is
// still running waits for it; the same key with another request is
// refused. A request without the header is carried out as before. Answers
// of 5xx are not kept, so a retry after a fault of ours is carried out.
func (s *Server) idempotent(h gin.HandlerFunc) gin.HandlerFunc {
	return func(c *gin.Context) {
		key := c.GetHeader(idempotencyHeader)
		if key == "" {
			h(c)
			return
		}
		if len(key) > maxIdempotencyKey || !printable(key) {
			s.fail(c, cx.Invalid(idempotencyHeader, "must be 1 to 255 printable ASCII characters, such as a UUID").With(api.ReasonIdempotencyKeyInvalid))
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, maxJSONBytes))
		if err != nil {
			s.fail(c, err)
			return
		}
		c.Request.Body = io.NopCloser(bytes.NewReader(body))
		sum := sha256.New()
		io.WriteString(sum, c.Request.Method+" "+c.Request.URL.Path+"\n")
		sum.Write(body)
		hash := hex.EncodeToString(sum.Sum(nil))
		person := token(c).Principal()
		ctx := c.Request.Context()

		first, claimed, err := s.store.ClaimIdempotencyKey(ctx, person, key, hash)
		if err != nil {
			s.fail(c, err)
			return
		}
		if !claimed {
			s.replay(c, person, key, hash, first)
			return
		}
		w := &keptWriter{ResponseWriter: c.Writer}
		c.Writer = w
		kept := false
		defer func() {
			// Also on a panic: a key left claimed would make every retry wait.
			if !kept {
				if err := s.store.ReleaseIdempotencyKey(context.WithoutCancel(ctx), person, key); err != nil {
					s.log.Error("release idempotency key", "err", err)
				}
			}
		}()
		h(c)
		if status := w.Status(); status < 500 {
			if err := s.store.FinishIdempotencyKey(context.WithoutCancel(ctx), person, key, status, w.body.Bytes()); err != nil {
				s.log.Error("keep idempotent answer", "err", err)
				return
			}
			kept = true
		}
	}
}

// replay answers a repeat with the first answer, once there is one.
func (s *Server) replay(c *gin.Context, person, key, hash string, first answer) {
	if first.RequestHash != hash {
		s.fail(c, cx.Errorf(cx.ECONFLICT, "this Idempotency-Key was already used with a different request; use a new key for a new request").With(api.ReasonIdempotencyKeyReused))
		return
	}
	deadline := time.Now().Add(idempotencyWait)
	for !first.Done {
		if time.Now().After(deadline) {
			s.fail(c, cx.Errorf(cx.ECONFLICT, "the first request with this Idempotency-Key is still being carried out; try again shortly with the same key").With(api.ReasonIdempotencyInProgress))
			return
		}
		select {
		case <-c.Request.Context().Done():
			return
		case <-time.After(25 * time.Millisecond):
		}
		var err error
		if first, err = s.store.IdempotentAnswer(c.Request.Context(), person, key); err != nil {
			// Released: the first failed with a fault of ours; this
			// repeat may try again.
			s.fail(c, cx.Errorf(cx.ECONFLICT, "the first request with this Idempotency-Key failed; send it again").With(api.ReasonIdempotencyFailed))
			return
		}
	}
	c.Header("Idempotent-Replayed", "true")
	c.Data(first.Status, "application/json; charset=utf-8", first.Body)
}

type answer = store.IdempotentAnswer

func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// keptWriter keeps a copy of the body written through it.
type keptWriter struct {
	gin.ResponseWriter
	body bytes.Buffer
}

func (w *keptWriter) Write(b []byte) (int, error) {
	w.body.Write(b)
	return w.ResponseWriter.Write(b)
}

func (w *keptWriter) WriteString(s string) (int, error) {
	w.body.WriteString(s)
	return w.ResponseWriter.WriteString(s)
}
