package broker

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync/atomic"
	"time"

	"github.com/cunxiang/cunxiang/controller/internal/connlimit"
)

// Limits on what a stranger can make the broker hold. Every connection,
// logged in or not, costs memory (mochi allocates each client's buffers
// and write queue as it accepts it), so the listener caps connections in
// total and per remote address, gives a connection ConnectTimeout to
// complete its CONNECT, and refuses a CONNECT larger than maxConnectSize
// before mochi allocates it.
const (
	// DefaultMaxPacketSize bounds every MQTT packet (mochi's
	// Capabilities.MaximumPacketSize; without it mochi allocates whatever
	// a header claims, 256 MB before login). The largest messages are a
	// box's report batch (api.MaxEventsPerBatch events with reasons of
	// api.MaxReasonBytes that JSON escapes to six bytes a character:
	// 323 KB; 22 KB without reasons) and a schedule command (1,000 listed
	// villages, 200 clips, 365 holidays, signed: 68 KB; a typical one
	// 2.6 KB). 1 MiB is three times the worst of them.
	DefaultMaxPacketSize = 1 << 20
	// DefaultConnectTimeout is how long a new connection has to send its
	// whole CONNECT. A box's CONNECT is a few hundred bytes.
	DefaultConnectTimeout = 10 * time.Second
	// DefaultWriteTimeout bounds one write to a client. mochi writes
	// without a deadline, holding the client's lock, and it writes a
	// DISCONNECT to a session before it lets a new login with the same
	// client id in, or when a revocation cuts it: a client that stops
	// reading would hold its box's client id (and the revocation) for
	// ever. A box on a weak link that is still reading drains its socket
	// well within it.
	DefaultWriteTimeout = 30 * time.Second
	// DefaultMaxConns caps open connections, logged in or not: 10,000
	// boxes with room for the old sessions of boxes that reconnect before
	// the broker has noticed them gone.
	DefaultMaxConns = 15000
	// DefaultMaxConnsPerAddr caps open connections from one remote IP
	// address: 10,000 boxes behind as few as four NAT addresses. Raise it
	// (Options.MaxConnsPerAddr) for a fleet behind fewer.
	DefaultMaxConnsPerAddr = 2500
	// maxConnectSize bounds the first packet (the CONNECT) of a
	// connection, which a stranger sends before any login. A box's is
	// under 500 bytes: client id, username, password and a presence Will.
	maxConnectSize = 8 << 10
	// MaxBoxInflight bounds the QoS 1 and 2 messages the broker holds
	// for one box until it acknowledges them (mochi copies each one's
	// payload and, unbounded, keeps up to 65,535). A box acknowledges each
	// command as it handles it, so it holds at most the retained commands
	// it is sent at login: a few dozen.
	MaxBoxInflight = 1024
	// MaxBoxSubscriptions bounds the filters one box holds. The agent
	// subscribes to three, one per group it belongs to.
	MaxBoxSubscriptions = 16
)

// errConnectTooLarge ends a connection whose CONNECT claims more than
// maxConnectSize.
var errConnectTooLarge = errors.New("CONNECT larger than the broker accepts before login")

// limits are the listener's caps (see Options).
type limits struct {
	maxConns, maxPerAddr         int
	connectTimeout, writeTimeout time.Duration
}

// guardedListener applies limits to the connections it accepts.
type guardedListener struct {
	net.Listener
	closed atomic.Bool
	lim    limits
	log    *slog.Logger
	conns  connlimit.Counter // by remote host
}

func newGuardedListener(ln net.Listener, lim limits, log *slog.Logger) *guardedListener {
	l := &guardedListener{Listener: ln, lim: lim, log: log}
	l.conns = connlimit.Counter{MaxTotal: lim.maxConns, MaxPerSource: lim.maxPerAddr, Warn: func(src string, refused, from, open int) {
		log.Warn("refused MQTT connections over the cap", "remote", src, "refused", refused,
			"from_address", from, "max_per_address", lim.maxPerAddr, "open", open, "max", lim.maxConns)
	}}
	return l
}

// Accept returns the next connection within the caps; it closes at once
// the ones over a cap. It waits and tries again on a temporary failure
// (out of file descriptors), where mochi's accept loop would stop serving.
func (l *guardedListener) Accept() (net.Conn, error) {
	var backoff time.Duration
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil, err
			}
			var ne net.Error
			if !errors.As(err, &ne) {
				return nil, err
			}
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			l.log.Warn("MQTT accept failed; retrying", "err", err, "in", backoff)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		if l.closed.Load() {
			// Accepted as the listener closed: mochi's accept loop, already
			// stopping, would drop it unclosed and unserved.
			c.Close()
			return nil, net.ErrClosed
		}
		host := remoteHost(c.RemoteAddr())
		if !l.conns.Admit(host) {
			c.Close()
			continue
		}
		// Cleared or replaced by mochi once it has read the CONNECT (it
		// sets the keepalive deadline then).
		c.SetReadDeadline(time.Now().Add(l.lim.connectTimeout))
		return &guardedConn{Conn: c, l: l, host: host}, nil
	}
}

// Close stops accepting; a connection accepted at the same moment is
// closed, not handed on (Accept).
func (l *guardedListener) Close() error {
	l.closed.Store(true)
	return l.Listener.Close()
}

// open is the number of connections held now.
func (l *guardedListener) open() int { return l.conns.Open() }

func remoteHost(a net.Addr) string {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.IP.String()
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return host
}

// guardedConn counts itself out of the listener when closed and refuses
// a first packet (the CONNECT) claiming more than maxConnectSize.
type guardedConn struct {
	net.Conn
	l         *guardedListener
	host      string
	closed    atomic.Bool
	header    connectHeader
	checkDone bool
}

func (c *guardedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if !c.checkDone && n > 0 {
		done, herr := c.header.feed(p[:n])
		if herr != nil {
			return 0, herr
		}
		c.checkDone = done
	}
	return n, err
}

// Write gives every write the listener's write timeout. A write that
// times out may have sent part of a packet, after which the stream cannot
// go on: the connection is closed, so mochi's reader ends the session
// (and a writer waiting for the client's lock gets its turn and fails at
// once).
func (c *guardedConn) Write(p []byte) (int, error) {
	c.Conn.SetWriteDeadline(time.Now().Add(c.l.lim.writeTimeout))
	n, err := c.Conn.Write(p)
	if err != nil {
		c.Conn.Close()
	}
	return n, err
}

// SetDeadline is how mochi applies the keepalive, at every packet it
// reads; it would clear the deadline of a write in progress on another
// goroutine (the keepalive 0 means none), so it sets only the read
// deadline: every write sets its own.
func (c *guardedConn) SetDeadline(t time.Time) error { return c.Conn.SetReadDeadline(t) }

func (c *guardedConn) Close() error {
	if c.closed.CompareAndSwap(false, true) {
		c.l.conns.Release(c.host)
	}
	return c.Conn.Close()
}

// connectHeader follows the fixed header of a connection's first packet
// as its bytes arrive: one type byte, then a remaining length of one to
// four bytes (MQTT's variable byte integer).
type connectHeader struct {
	seen      int // header bytes seen
	remaining int
}

// feed reads header bytes from b. It returns done once the header is
// complete (or is not a CONNECT, which mochi refuses by itself), and an
// error if the CONNECT is larger than maxConnectSize.
func (h *connectHeader) feed(b []byte) (done bool, err error) {
	for _, x := range b {
		if h.seen == 0 {
			h.seen++
			if x>>4 != 1 { // not CONNECT
				return true, nil
			}
			continue
		}
		h.remaining |= int(x&0x7f) << (7 * (h.seen - 1))
		h.seen++
		if h.remaining > maxConnectSize {
			return true, fmt.Errorf("%w (%d+ bytes, at most %d)", errConnectTooLarge, h.remaining, maxConnectSize)
		}
		if x&0x80 == 0 || h.seen > 4 {
			return true, nil // complete, or malformed: mochi refuses it
		}
	}
	return false, nil
}
