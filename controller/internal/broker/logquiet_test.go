package broker

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"
)

// TestClosedConnectionIsNoWarning: a client's read failing because the
// broker closed its connection is not a warning (the demo's terminal
// shows warnings, and it printed one at every Ctrl-C); other warnings
// still are.
func TestClosedConnectionIsNoWarning(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(closedConnQuiet{slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo})}).WithGroup("mochi")
	log.Warn("", "error", fmt.Errorf("read tcp 127.0.0.1:1883->127.0.0.1:40432: %w", net.ErrClosed))
	log.Warn("", "error", errors.New("read tcp: use of closed network connection"))
	if buf.Len() != 0 {
		t.Fatalf("a closed connection was logged as a warning: %s", buf.String())
	}
	log.Warn("", "error", errors.New("packet too large"))
	if !strings.Contains(buf.String(), "level=WARN") || !strings.Contains(buf.String(), "mochi.error=\"packet too large\"") {
		t.Fatalf("another warning was lost: %q", buf.String())
	}
}
