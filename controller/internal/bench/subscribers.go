package bench

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// SubscribersCommand is the hidden subcommand of the controller binary
// that the bench runs as a child process: N plain MQTT subscribers, the
// baseline of the fan-out phase.
const SubscribersCommand = "bench-subscribers"

// subscribersPasswordEnv carries the broker password to the child, out of
// its command line.
const subscribersPasswordEnv = "CUNXIANG_BENCH_PASSWORD"

// Subscribers connects -n paho clients to -broker, subscribes each to
// -topic with QoS 1, prints "READY n", then for each of -count messages
// (payload "index unix-nanoseconds", published by the bench on this
// machine) prints "RESULT index received p50 p99 max" with the latencies
// in nanoseconds once every client has it, or after -timeout.
func Subscribers(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet(SubscribersCommand, flag.ContinueOnError)
	brokerURL := fs.String("broker", "", "broker URL")
	user := fs.String("user", "", "username")
	n := fs.Int("n", 1, "subscribers")
	topic := fs.String("topic", "bench/baseline", "topic")
	count := fs.Int("count", 1, "messages to wait for")
	timeout := fs.Duration("timeout", time.Minute, "how long to wait for each message")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *brokerURL == "" || *n < 1 || *count < 1 {
		return errors.New("-broker, -n ≥ 1 and -count ≥ 1 are required")
	}
	raiseFileLimit()
	pass := os.Getenv(subscribersPasswordEnv)

	lat := make([][]atomic.Int64, *count) // nanoseconds, 0 until received
	got := make([]atomic.Int64, *count)
	full := make([]chan struct{}, *count)
	for i := range lat {
		lat[i] = make([]atomic.Int64, *n)
		full[i] = make(chan struct{})
	}
	handler := func(sub int) paho.MessageHandler {
		return func(_ paho.Client, m paho.Message) {
			now := time.Now()
			idx, ns, ok := strings.Cut(string(m.Payload()), " ")
			i, err1 := strconv.Atoi(idx)
			t, err2 := strconv.ParseInt(ns, 10, 64)
			if !ok || err1 != nil || err2 != nil || i < 0 || i >= len(lat) {
				return
			}
			lat[i][sub].Store(max(int64(now.Sub(time.Unix(0, t))), 1))
			if got[i].Add(1) == int64(*n) {
				close(full[i])
			}
		}
	}

	clients := make([]paho.Client, *n)
	var firstErr error
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	for i := range clients {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c := paho.NewClient(paho.NewClientOptions().AddBroker(*brokerURL).
				SetClientID(fmt.Sprintf("bench-sub-%d-%d", os.Getpid(), i)).
				SetUsername(*user).SetPassword(pass).SetCleanSession(true).SetAutoReconnect(false).
				SetConnectTimeout(30 * time.Second).SetKeepAlive(5 * time.Minute))
			err := wait(c.Connect(), 60*time.Second, "connect")
			if err == nil {
				err = wait(c.Subscribe(*topic, 1, handler(i)), 60*time.Second, "subscribe")
			}
			mu.Lock()
			defer mu.Unlock()
			clients[i] = c
			if err != nil && firstErr == nil {
				firstErr = fmt.Errorf("subscriber %d: %w", i, err)
			}
		}()
	}
	wg.Wait()
	defer func() {
		for _, c := range clients {
			if c != nil {
				c.Disconnect(0)
			}
		}
	}()
	if firstErr != nil {
		return firstErr
	}
	fmt.Fprintf(out, "READY %d\n", *n)
	for i := range lat {
		t := time.NewTimer(*timeout)
		select {
		case <-full[i]:
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
		t.Stop()
		var ds []time.Duration
		for j := range lat[i] {
			if d := lat[i][j].Load(); d != 0 {
				ds = append(ds, time.Duration(d))
			}
		}
		s := quantiles(ds)
		fmt.Fprintf(out, "RESULT %d %d %d %d %d\n", i, len(ds), s.P50, s.P99, s.Max)
	}
	return nil
}

func wait(t paho.Token, within time.Duration, what string) error {
	if !t.WaitTimeout(within) {
		return fmt.Errorf("%s: timed out after %s", what, within)
	}
	if err := t.Error(); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}
