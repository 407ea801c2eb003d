package main

import (
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// TestNotifySystemd speaks to a socket as systemd's would be: READY=1 at
// start, then WATCHDOG=1 pings while the scheduler is alive, and none
// while it is stuck.
func TestNotifySystemd(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	t.Setenv("NOTIFY_SOCKET", sock)
	t.Setenv("WATCHDOG_USEC", "300000") // pings every 100 ms
	t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()))
	var alive atomic.Bool
	alive.Store(true)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go notifySystemd(ctx, alive.Load, slog.New(slog.DiscardHandler))

	read := func(within time.Duration) (string, bool) {
		conn.SetReadDeadline(time.Now().Add(within))
		buf := make([]byte, 256)
		n, err := conn.Read(buf)
		if err != nil {
			return "", false
		}
		return string(buf[:n]), true
	}
	if msg, ok := read(2 * time.Second); !ok || msg != "READY=1" {
		t.Fatalf("first message %q (%v), want READY=1", msg, ok)
	}
	for i := range 3 {
		if msg, ok := read(time.Second); !ok || msg != "WATCHDOG=1" {
			t.Fatalf("ping %d: %q (%v), want WATCHDOG=1", i, msg, ok)
		}
	}
	alive.Store(false)
	read(150 * time.Millisecond) // a ping already on its way
	if msg, ok := read(500 * time.Millisecond); ok {
		t.Fatalf("pinged %q while the scheduler was stuck", msg)
	}
	alive.Store(true)
	if msg, ok := read(time.Second); !ok || msg != "WATCHDOG=1" {
		t.Fatalf("after recovery: %q (%v), want WATCHDOG=1", msg, ok)
	}
}
