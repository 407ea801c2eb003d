package httpapi

import (
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/cunxiang/cunxiang/api"
	"github.com/gin-gonic/gin"

	"github.com/cunxiang/cunxiang/controller/internal/capalert"
	"github.com/cunxiang/cunxiang/controller/internal/cx"
)

// What one request may cost. Every route has a body limit and read and
// write deadlines; the few routes that move a lot of data (an upload, a
// village list, a clip download, the live stream) get room in proportion
// to their size, at the pace of a weak rural link, rather than one global
// timeout that would either cut them off or leave every other route open
// to a slow client for as long.
const (
	// maxSmallBody bounds the body of every route not listed in
	// bodyLimit: JSON requests and the console's login form.
	maxSmallBody = 1 << 20
	// ReadTimeout and WriteTimeout are the deadlines of an ordinary
	// request, for the http.Server; the routes below extend them.
	ReadTimeout  = 60 * time.Second
	WriteTimeout = 2 * time.Minute
	// slowLinkRate is the slowest link (bytes per second, about 128
	// kbit/s) on which an upload or a download must still get through.
	slowLinkRate = 16 << 10
	// processTime is allowed, after an upload arrives, to decode, convert
	// and store it.
	processTime = 2 * time.Minute
	// DefaultMaxConcurrentUploads is how many uploads (and text-to-speech
	// requests) are processed at once when Options leave it 0.
	DefaultMaxConcurrentUploads = 4
	// uploadRetryAfter is what Retry-After says when all upload slots
	// are taken, in seconds.
	uploadRetryAfter = 15
	// DefaultSlowClientGrace is how far behind the slowest supported
	// link a transfer may fall before it is cut, when Options leave it 0.
	DefaultSlowClientGrace = time.Minute
)

// transferTime is how long n bytes take on the slowest supported link,
// plus the grace.
func (s *Server) transferTime(n int64) time.Duration {
	return s.o.SlowClientGrace + time.Duration(n/slowLinkRate)*time.Second
}

// bodyLimit is the largest body the route accepts.
func (s *Server) bodyLimit(c *gin.Context) int64 {
	switch c.Request.Method + " " + c.FullPath() {
	case "POST /api/v1/audio":
		return s.lib.MaxBytes() + 64<<10 // the multipart framing and the title
	case "POST /api/v1/villages/import":
		return maxCSVBytes + 64<<10
	case "POST /api/v1/alerts/cap":
		return capalert.MaxBytes + 1 // capalert tells "too large" by the byte over
	}
	return maxSmallBody
}

// limits bounds the request's body and sets its read and write deadlines.
// A body declared larger than the limit is refused before it is read.
func (s *Server) limits(c *gin.Context) {
	limit := s.bodyLimit(c)
	if c.Request.ContentLength > limit {
		c.Header("Connection", "close") // the rest of the body is not read
		s.fail(c, &http.MaxBytesError{Limit: limit})
		return
	}
	c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, limit)
	now := time.Now()
	read, write := now.Add(ReadTimeout), now.Add(WriteTimeout)
	if limit > maxSmallBody {
		n := c.Request.ContentLength
		if n < 0 || n > limit {
			n = limit // chunked: assume the largest
		}
		read = now.Add(s.transferTime(n))
		write = read.Add(processTime)
	}
	// The live stream and clip downloads extend the write deadline as
	// they go (extendWrite).
	rc := http.NewResponseController(c.Writer)
	_ = rc.SetReadDeadline(read) // not every writer (httptest) supports deadlines
	_ = rc.SetWriteDeadline(write)
	c.Next()
}

// extendWrite gives the answer time to send n more bytes on the slowest
// supported link.
func (s *Server) extendWrite(c *gin.Context, n int64) {
	_ = http.NewResponseController(c.Writer).SetWriteDeadline(time.Now().Add(s.transferTime(n)))
}

// errUploadsBusy answers an upload when every slot is taken.
var errUploadsBusy = &cx.Error{Code: cx.EUNAVAILABLE, Reason: api.ReasonUploadsBusy, Message: "the controller is already processing as many uploads as it allows at once; try again in a few seconds"}

// uploadSlot takes one of the upload slots, or answers 503 with
// Retry-After and returns false. The caller releases the slot it took.
func (s *Server) uploadSlot(c *gin.Context) (release func(), ok bool) {
	select {
	case s.uploads <- struct{}{}:
		return func() { <-s.uploads }, true
	default:
		c.Header("Retry-After", strconv.Itoa(uploadRetryAfter))
		s.fail(c, errUploadsBusy)
		return nil, false
	}
}

// clientReader remembers the first error reading the client's body, so a
// failed upload can be told apart: the client went away (aborted) or sent
// too much, or the server failed.
type clientReader struct {
	r   io.Reader
	err error
	// With rc set, the body must keep the pace of the slowest
	// supported link from start on (paced).
	rc    *http.ResponseController
	due   func(n int64) time.Duration // how long n bytes may take (Server.transferTime)
	start time.Time
	n     int64 // bytes read
}

// paced is a clientReader of the request's body that cuts a client which
// falls behind the slowest supported link (slowLinkRate after the grace,
// a minute by default), so a trickling upload frees its upload slot in
// about a minute.
func (s *Server) paced(c *gin.Context) *clientReader {
	return &clientReader{r: c.Request.Body, rc: http.NewResponseController(c.Writer), due: s.transferTime, start: time.Now()}
}

func (r *clientReader) Read(p []byte) (int, error) {
	if r.rc != nil {
		// Due by now: the grace, then the slowest supported link's pace
		// for what has arrived. The limit of the whole body (limits)
		// would let a trickle hold an upload slot for most of an hour.
		_ = r.rc.SetReadDeadline(r.start.Add(r.due(r.n)))
	}
	n, err := r.r.Read(p)
	r.n += int64(n)
	if err != nil && err != io.EOF && r.err == nil {
		r.err = err
	}
	return n, err
}

// errAborted answers an upload the client broke off. The client is most
// likely gone; the answer is for the log, which records it at INFO.
var errAborted = &httpError{status: http.StatusBadRequest, code: cx.EINVALID, reason: api.ReasonUploadAborted, msg: "the upload was broken off before it was complete; nothing was stored"}

// aborted reports whether an upload failed because the client broke it
// off (closed the connection, or its request was cancelled) rather than
// for a fault of the server or of the file.
func aborted(c *gin.Context, cr *clientReader) bool {
	var mbe *http.MaxBytesError
	if cr.err != nil && errors.As(cr.err, &mbe) {
		return false
	}
	return cr.err != nil || c.Request.Context().Err() != nil
}
