package httpapi

import (
	"log/slog"
	"net"
	"net/http"
	"sync"

	"github.com/cunxiang/cunxiang/controller/internal/connlimit"
)

// Connection caps of the HTTP listener. Every open connection, even one
// that never finishes its request line or idles between requests, holds
// a file descriptor and a goroutine with its buffers; the process shares
// its descriptors with the broker and the database, so a stranger who
// opens connections without end would stop the boxes from connecting and
// the store from writing. The caps are generous: boxes fetch a clip all
// at once after a broadcast, up to 2,500 of them behind one NAT address
// (as the broker assumes).
const (
	DefaultMaxConns        = 10000
	DefaultMaxConnsPerAddr = 2500
)

// ConnLimit closes, as soon as they are accepted, the connections over its
// caps: in total, and from one source (an IPv4 address, or an IPv6 /64,
// sourceOf). Set its ConnState as the http.Server's.
type ConnLimit struct {
	MaxConns, MaxPerAddr int // 0: the defaults; negative: no cap
	Logger               *slog.Logger

	once    sync.Once
	counter connlimit.Counter
	mu      sync.Mutex
	conns   map[net.Conn]string // the counted connections → their source
}

// ConnState counts connections in and out, and closes those over a cap.
func (l *ConnLimit) ConnState(c net.Conn, st http.ConnState) {
	switch st {
	case http.StateNew:
		if !l.admit(c) {
			c.Close()
		}
	case http.StateClosed, http.StateHijacked:
		l.release(c)
	}
}

func (l *ConnLimit) admit(c net.Conn) bool {
	l.once.Do(func() {
		l.conns = map[net.Conn]string{}
		l.counter = connlimit.Counter{MaxTotal: connlimit.Cap(l.MaxConns, DefaultMaxConns), MaxPerSource: connlimit.Cap(l.MaxPerAddr, DefaultMaxConnsPerAddr)}
		if log := l.Logger; log != nil {
			l.counter.Warn = func(src string, refused, from, open int) {
				log.Warn("closed HTTP connections over the cap", "remote", src, "refused", refused, "from_address", from, "open", open)
			}
		}
	})
	src := c.RemoteAddr().String()
	if host, _, err := net.SplitHostPort(src); err == nil {
		src = sourceOf(host)
	}
	if !l.counter.Admit(src) {
		return false
	}
	l.mu.Lock()
	l.conns[c] = src
	l.mu.Unlock()
	return true
}

func (l *ConnLimit) release(c net.Conn) {
	l.mu.Lock()
	src, ok := l.conns[c]
	delete(l.conns, c)
	l.mu.Unlock()
	if ok { // not refused, nor already released
		l.counter.Release(src)
	}
}
