package broker_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/cunxiang/cunxiang/controller/internal/broker"
)

// lateListener hands out one last connection when it is closed: a
// connection the system accepted at the very moment the broker stopped
// listening. waiting is closed once Accept waits.
type lateListener struct {
	net.Listener
	last    net.Conn
	waiting chan struct{}
	closed  chan struct{}
	once    sync.Once
	handed  bool // read and written by Accept only
}

func (l *lateListener) Accept() (net.Conn, error) {
	if !l.handed {
		close(l.waiting)
	}
	<-l.closed
	if l.handed {
		return nil, net.ErrClosed
	}
	l.handed = true
	return l.last, nil
}

func (l *lateListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return l.Listener.Close()
}

// TestCloseLeavesNoConnectionUnserved closes the broker as the system
// accepts a connection. mochi's accept loop, once its server is stopping,
// drops such a connection without closing it, so a client restarting with
// the controller waited for a CONNACK until its own timeout (paho's 30 s)
// instead of trying again at once. The broker stops listening before it
// stops mochi and closes what it accepts after that.
func TestCloseLeavesNoConnectionUnserved(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	client, err := net.Dial("tcp", inner.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, err := inner.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	ln := &lateListener{Listener: inner, last: server, waiting: make(chan struct{}), closed: make(chan struct{})}
	b, err := broker.New(broker.Options{
		Listener: ln, Auth: passwords{}, ServiceUser: svcUser, ServicePassword: svcPass,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	select {
	case <-ln.waiting:
	case <-time.After(5 * time.Second):
		t.Fatal("the broker did not start accepting")
	}
	cancel()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		t.Fatal("the broker did not close")
	}

	// The connection must have been closed (or served): a client waiting
	// on it would wait for nothing.
	client.SetReadDeadline(time.Now().Add(3 * time.Second))
	_, err = client.Read(make([]byte, 1))
	if ne := net.Error(nil); errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("the connection accepted as the broker closed is still open and unserved 3 s after Close")
	}
	if err == nil {
		t.Fatal("the closed broker sent something on a connection that sent nothing")
	}
}
