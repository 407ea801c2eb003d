package httpapi

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/controller/internal/cx"
)

// The web console's cookie session. The session cookie holds an ordinary
// session token of the store (the one POST /api/v1/login hands out), so
// the access table applies unchanged; it is HttpOnly and SameSite=Strict.
// The CSRF cookie is readable by the console's script, which echoes it in
// the X-CSRF-Token header of every request that changes something
// (double submit): a request that rides on the session cookie without it
// is refused.
const (
	sessionCookie = "cx_session"
	csrfCookie    = "cx_csrf"
	csrfHeader    = "X-CSRF-Token"
)

// sessionToken is the console session's token and whether the request may
// use it: a GET needs only the cookie, anything else also the CSRF header.
func sessionToken(r *http.Request) (tok string, err error) {
	ck, e := r.Cookie(sessionCookie)
	if e != nil || ck.Value == "" {
		return "", nil
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		return ck.Value, nil
	}
	if !csrfOK(r) {
		return "", &cx.Error{Code: cx.EFORBIDDEN, Reason: api.ReasonCSRF, Message: "a console request that changes something needs the X-CSRF-Token header (reload the page)"}
	}
	return ck.Value, nil
}

func csrfOK(r *http.Request) bool {
	ck, err := r.Cookie(csrfCookie)
	h := r.Header.Get(csrfHeader)
	return err == nil && ck.Value != "" && h != "" && subtle.ConstantTimeCompare([]byte(ck.Value), []byte(h)) == 1
}

// sameOrigin refuses a form posted from another site (login CSRF): a
// browser sends Origin with every POST.
func sameOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	u, err := url.Parse(o)
	return err == nil && u.Host == r.Host
}

func randomToken() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func (s *Server) setSessionCookies(c *gin.Context, secret string, expires time.Time) {
	secure := c.Request.TLS != nil
	maxAge := int(time.Until(expires).Seconds())
	http.SetCookie(c.Writer, &http.Cookie{Name: sessionCookie, Value: secret, Path: "/", MaxAge: maxAge,
		HttpOnly: true, Secure: secure, SameSite: http.SameSiteStrictMode})
	http.SetCookie(c.Writer, &http.Cookie{Name: csrfCookie, Value: randomToken(), Path: "/", MaxAge: maxAge,
		Secure: secure, SameSite: http.SameSiteStrictMode})
}

func clearSessionCookies(c *gin.Context) {
	for _, n := range []string{sessionCookie, csrfCookie} {
		http.SetCookie(c.Writer, &http.Cookie{Name: n, Value: "", Path: "/", MaxAge: -1, HttpOnly: n == sessionCookie, SameSite: http.SameSiteStrictMode})
	}
}

// postConsoleLogin logs in from the console's form and answers with a
// redirect: to the console, or back to the login page with an error code
// the page translates.
func (s *Server) postConsoleLogin(c *gin.Context) {
	if !sameOrigin(c.Request) {
		c.Redirect(http.StatusSeeOther, "/?error=origin")
		return
	}
	name, pass := c.PostForm("username"), c.PostForm("password")
	if d := s.throttle.wait(s.now(), name, c.ClientIP()); d > 0 {
		c.Redirect(http.StatusSeeOther, "/?error=throttled")
		return
	}
	t, secret, _, err := s.users.Login(c.Request.Context(), c.ClientIP(), name, pass, true)
	if err != nil {
		if cx.Code(err) == cx.EUNAUTHORIZED {
			s.throttle.failed(s.now(), name, c.ClientIP())
			c.Redirect(http.StatusSeeOther, "/?error=credentials")
			return
		}
		c.Error(err) //nolint:errcheck // logged by logRequests
		c.Redirect(http.StatusSeeOther, "/?error=internal")
		return
	}
	c.Set(keyToken, t)
	s.setSessionCookies(c, secret, t.ExpiresAt)
	c.Redirect(http.StatusSeeOther, "/")
}

// postConsoleLogout revokes the console session and clears its cookies.
// Like every console request that changes something it needs the
// X-CSRF-Token header matching the CSRF cookie: a form field would let
// another site log a clerk out.
func (s *Server) postConsoleLogout(c *gin.Context) {
	ck, err := c.Request.Cookie(sessionCookie)
	if err == nil && ck.Value != "" {
		if !csrfOK(c.Request) {
			s.fail(c, &cx.Error{Code: cx.EFORBIDDEN, Reason: api.ReasonCSRF, Message: "logging out needs the X-CSRF-Token header"})
			return
		}
		if t, err := s.store.Authenticate(c.Request.Context(), ck.Value); err == nil {
			c.Set(keyToken, t)
			if err := s.users.Logout(c.Request.Context(), s.person(c), t.ID, true); err != nil {
				s.fail(c, err)
				return
			}
		}
	}
	clearSessionCookies(c)
	c.Status(http.StatusNoContent)
}

// Notifier tells the live streams (GET /api/v1/stream) that reports were
// stored, or that a broadcast changed state (created, approved, rejected,
// cancelled). Notify never blocks: a subscriber that has not yet taken the
// last notice simply gets one notice for both.
type Notifier struct {
	mu     sync.Mutex
	subs   map[chan struct{}]*uint8 // pending kinds of each subscriber
	closed bool
}

// Kinds of notice, one SSE event each.
const (
	noticeReports    uint8 = 1 << iota // event: reports
	noticeBroadcasts                   // event: broadcasts
)

// NewNotifier returns a Notifier with no subscribers.
func NewNotifier() *Notifier { return &Notifier{subs: map[chan struct{}]*uint8{}} }

// Notify tells every subscriber that reports were stored.
func (n *Notifier) Notify() { n.notify(noticeReports) }

// NotifyBroadcasts tells every subscriber that a broadcast changed state.
func (n *Notifier) NotifyBroadcasts() { n.notify(noticeBroadcasts) }

func (n *Notifier) notify(kind uint8) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for ch, kinds := range n.subs {
		*kinds |= kind
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// take returns and clears the kinds pending for ch.
func (n *Notifier) take(ch chan struct{}) uint8 {
	n.mu.Lock()
	defer n.mu.Unlock()
	kinds := n.subs[ch]
	if kinds == nil {
		return 0
	}
	k := *kinds
	*kinds = 0
	return k
}

// Close ends every stream (the server is shutting down).
func (n *Notifier) Close() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return
	}
	n.closed = true
	for ch := range n.subs {
		close(ch)
	}
	n.subs = nil
}

func (n *Notifier) subscribe() (chan struct{}, func()) {
	n.mu.Lock()
	defer n.mu.Unlock()
	ch := make(chan struct{}, 1)
	if n.closed {
		close(ch)
		return ch, func() {}
	}
	n.subs[ch] = new(uint8)
	return ch, func() {
		n.mu.Lock()
		defer n.mu.Unlock()
		if _, ok := n.subs[ch]; ok {
			delete(n.subs, ch)
			close(ch)
		}
	}
}

// notifyingBroadcasts wraps a handler that changes a broadcast's state:
// when it succeeds, the live streams get a "broadcasts" event, so an
// approver's badge and a sender's "等待审批" update at once.
func (s *Server) notifyingBroadcasts(h gin.HandlerFunc) gin.HandlerFunc {
	return func(c *gin.Context) {
		h(c)
		if st := c.Writer.Status(); st >= 200 && st < 300 && s.o.Notifier != nil {
			s.o.Notifier.NotifyBroadcasts()
		}
	}
}

// streamKeepAlive is how often an idle stream sends a comment, so proxies
// keep it open and a dead client is noticed.
const streamKeepAlive = 20 * time.Second

// getStream is a Server-Sent Events stream: a "reports" event whenever
// reports from the boxes were stored, a "broadcasts" event whenever a
// broadcast was created, approved, rejected, cancelled or resent. The console refetches what it shows.
func (s *Server) getStream(c *gin.Context) {
	if s.o.Notifier == nil {
		s.fail(c, &cx.Error{Code: cx.EUNAVAILABLE, Reason: api.ReasonNoLiveStream, Message: "this controller has no live stream"})
		return
	}
	ch, stop := s.o.Notifier.subscribe()
	defer stop()
	w := c.Writer
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	// The stream outlives any write deadline: each write gets its own,
	// so a client that stops reading is still let go.
	s.extendWrite(c, 0)
	w.WriteHeader(http.StatusOK)
	_, _ = w.WriteString("retry: 3000\n\nevent: hello\ndata: {}\n\n")
	w.Flush()
	tick := time.NewTicker(streamKeepAlive)
	defer tick.Stop()
	for {
		select {
		case <-c.Request.Context().Done():
			return
		case _, ok := <-ch:
			if !ok {
				return
			}
			s.extendWrite(c, 0)
			kinds := s.o.Notifier.take(ch)
			if kinds&noticeReports != 0 {
				if _, err := w.WriteString("event: reports\ndata: {}\n\n"); err != nil {
					return
				}
			}
			if kinds&noticeBroadcasts != 0 {
				if _, err := w.WriteString("event: broadcasts\ndata: {}\n\n"); err != nil {
					return
				}
			}
		case <-tick.C:
			s.extendWrite(c, 0)
			if _, err := w.WriteString(": keep-alive\n\n"); err != nil {
				return
			}
		}
		w.Flush()
	}
}
