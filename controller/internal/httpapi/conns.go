package httpapi

import (
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
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

	mu      sync.Mutex
	total   int
	perAddr map[string]int
	conns   map[net.Conn]string // the counted connections → their source
	refused int                 // since the last warning
	warned  time.Time
}

func capOf(v, def int) int {
	switch {
	case v == 0:
		return def
	case v < 0:
		return int(^uint(0) >> 1)
	}
	return v
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
	src := c.RemoteAddr().String()
	if host, _, err := net.SplitHostPort(src); err == nil {
		src = sourceOf(host)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conns == nil {
		l.conns, l.perAddr = map[net.Conn]string{}, map[string]int{}
	}
	if l.total < capOf(l.MaxConns, DefaultMaxConns) && l.perAddr[src] < capOf(l.MaxPerAddr, DefaultMaxConnsPerAddr) {
		l.total++
		l.perAddr[src]++
		l.conns[c] = src
		return true
	}
	l.refused++
	if now := time.Now(); now.Sub(l.warned) >= 10*time.Second && l.Logger != nil {
		l.Logger.Warn("closed HTTP connections over the cap", "remote", src, "refused", l.refused,
			"from_address", l.perAddr[src], "open", l.total)
		l.warned, l.refused = now, 0
	}
	return false
}

func (l *ConnLimit) release(c net.Conn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	src, ok := l.conns[c]
	if !ok {
		return // refused, or already released
	}
	delete(l.conns, c)
	l.total--
	if l.perAddr[src]--; l.perAddr[src] <= 0 {
		delete(l.perAddr, src)
	}
}
