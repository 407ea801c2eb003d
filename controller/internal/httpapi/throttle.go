package httpapi

import (
	"fmt"
	"math"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"golang.org/x/time/rate"
)

// Password guessing is slowed per username and per remote address: every
// failed login spends a token from both buckets, and an empty bucket
// refuses further attempts (429 with Retry-After) until it refills. A
// person who mistypes a few times never notices; a guesser gets five tries
// a minute per account. The address bucket is larger, since a township
// office may sit behind one NAT address.
const (
	userBurst = 5
	userEvery = time.Minute
	addrBurst = 30
	addrEvery = 5 * time.Second
	// Buckets that have refilled are forgotten once there are this many.
	throttleKeep = 10000
)

type loginThrottle struct {
	mu    sync.Mutex
	users map[string]*rate.Limiter
	addrs map[string]*rate.Limiter
}

func bucket(m map[string]*rate.Limiter, key string, every time.Duration, burst int) *rate.Limiter {
	l := m[key]
	if l == nil {
		l = rate.NewLimiter(rate.Every(every), burst)
		m[key] = l
	}
	return l
}

// wait is how long logins as user from addr are refused; 0 lets it try.
func (t *loginThrottle) wait(now time.Time, user, addr string) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	var d time.Duration
	for _, l := range []*rate.Limiter{t.users[normUser(user)], t.addrs[addr]} {
		if l == nil {
			continue
		}
		if tok := l.TokensAt(now); tok < 1 {
			need := time.Duration(math.Ceil((1 - tok) / float64(l.Limit()) * float64(time.Second)))
			d = max(d, need)
		}
	}
	return d
}

// failed spends a token of each bucket.
func (t *loginThrottle) failed(now time.Time, user, addr string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.users == nil {
		t.users, t.addrs = map[string]*rate.Limiter{}, map[string]*rate.Limiter{}
	}
	for _, m := range []map[string]*rate.Limiter{t.users, t.addrs} {
		if len(m) >= throttleKeep {
			for k, l := range m {
				if l.TokensAt(now) >= float64(l.Burst()) {
					delete(m, k)
				}
			}
		}
	}
	bucket(t.users, normUser(user), userEvery, userBurst).AllowN(now, 1)
	bucket(t.addrs, addr, addrEvery, addrBurst).AllowN(now, 1)
}

func normUser(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

// throttled answers 429 and returns true when logins as user from this
// client are refused for now.
func (s *Server) throttled(c *gin.Context, user string) bool {
	d := s.throttle.wait(s.now(), user, c.ClientIP())
	if d <= 0 {
		return false
	}
	secs := int(math.Ceil(d.Seconds()))
	c.Header("Retry-After", fmt.Sprint(secs))
	s.log.Warn("login refused: too many failed attempts", "user", auditName(user), "remote", c.ClientIP(), "retry_after_s", secs)
	s.fail(c, &httpError{status: http.StatusTooManyRequests, code: "too_many_requests",
		msg: fmt.Sprintf("too many wrong passwords; wait %d seconds and try again, or ask an administrator to reset the password", secs)})
	return true
}
