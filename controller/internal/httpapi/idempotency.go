package httpapi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
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
			if claimed = s.replay(c, person, key, hash, first); !claimed {
				return
			}
		}
		// The change this request makes names itself on the key, in its
		// own transaction, so that no repeat makes it again, whatever
		// happens after its commit.
		c.Request = c.Request.WithContext(store.WithIdempotencyKey(ctx, person, key))
		w := &keptWriter{ResponseWriter: c.Writer}
		c.Writer = w
		kept := false
		defer func() {
			// Also on a panic: a key left claimed would make every retry wait.
			if kept {
				return
			}
			released, err := s.store.ReleaseIdempotencyKey(context.WithoutCancel(ctx), person, key)
			if err != nil {
				s.log.Error("release idempotency key", "err", err)
			}
			if !released && w.Status() >= 500 {
				// Its change committed (a broadcast stored but not yet on the
				// broker): a repeat answers from what it made.
				s.finishKey(ctx, person, key, w)
			}
		}()
		h(c)
		if status := w.Status(); status < 500 {
			kept = s.finishKey(ctx, person, key, w)
		}
	}
}

func (s *Server) finishKey(ctx context.Context, person, key string, w *keptWriter) bool {
	if err := s.store.FinishIdempotencyKey(context.WithoutCancel(ctx), person, key, w.Status(), w.body.Bytes()); err != nil {
		s.log.Error("keep idempotent answer", "err", err)
		return false
	}
	return true
}

// replay answers a repeat with the first answer, once there is one. When
// the first request's change committed, the answer is worded afresh from
// what it made (after a fault of ours, or a crash, there was no answer
// worth repeating). It returns true, answering nothing, when the repeat
// is to be carried out: the first was abandoned by a process that died
// before its change committed, and this repeat took the key over.
func (s *Server) replay(c *gin.Context, person, key, hash string, first answer) (carryOut bool) {
	if first.RequestHash != hash {
		s.fail(c, cx.Errorf(cx.ECONFLICT, "this Idempotency-Key was already used with a different request; use a new key for a new request").With(api.ReasonIdempotencyKeyReused))
		return false
	}
	deadline := time.Now().Add(idempotencyWait)
	for !first.Done && !first.Abandoned {
		if time.Now().After(deadline) {
			s.fail(c, cx.Errorf(cx.ECONFLICT, "the first request with this Idempotency-Key is still being carried out; try again shortly with the same key").With(api.ReasonIdempotencyInProgress))
			return false
		}
		select {
		case <-c.Request.Context().Done():
			return false
		case <-time.After(25 * time.Millisecond):
		}
		var err error
		if first, err = s.store.IdempotentAnswer(c.Request.Context(), person, key); err != nil {
			// Released: the first failed with a fault of ours; this
			// repeat may try again.
			s.fail(c, cx.Errorf(cx.ECONFLICT, "the first request with this Idempotency-Key failed; send it again").With(api.ReasonIdempotencyFailed))
			return false
		}
	}
	c.Header("Idempotent-Replayed", "true")
	switch {
	case first.Object != "" && (first.Abandoned || first.Status >= 500):
		s.answerObject(c, first.Object)
	case first.Abandoned:
		took, err := s.store.TakeOverIdempotencyKey(c.Request.Context(), person, key)
		if err != nil {
			s.fail(c, err)
			return false
		}
		if !took {
			s.fail(c, cx.Errorf(cx.ECONFLICT, "the first request with this Idempotency-Key is still being carried out; try again shortly with the same key").With(api.ReasonIdempotencyInProgress))
			return false
		}
		c.Writer.Header().Del("Idempotent-Replayed")
		return true
	default:
		c.Data(first.Status, "application/json; charset=utf-8", first.Body)
	}
	return false
}

// answerObject answers with what a keyed request made, as it is now, and
// the status its creation answers with.
func (s *Server) answerObject(c *gin.Context, object string) {
	kind, ref, _ := strings.Cut(object, "/")
	id, err := strconv.ParseInt(ref, 10, 64)
	if err != nil {
		s.fail(c, fmt.Errorf("idempotency key names %q", object))
		return
	}
	ctx := c.Request.Context()
	switch kind {
	case "broadcast":
		b, err := s.store.GetBroadcast(ctx, id)
		if err != nil {
			s.fail(c, err)
			return
		}
		view, err := s.broadcastView(ctx, b)
		if err != nil {
			s.fail(c, err)
			return
		}
		c.JSON(http.StatusAccepted, s.named(view))
	case "schedule":
		sc, err := s.store.GetSchedule(ctx, id)
		if err != nil {
			s.fail(c, err)
			return
		}
		c.JSON(http.StatusCreated, s.scheduleOut(sc))
	case "playlist":
		pl, err := s.store.GetPlaylist(ctx, id)
		if err != nil {
			s.fail(c, err)
			return
		}
		c.JSON(http.StatusCreated, playlistOut(pl))
	default:
		s.fail(c, fmt.Errorf("idempotency key names %q", object))
	}
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
