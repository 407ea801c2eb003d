// Package deliverytest stands in for delivery.Service in the services'
// tests: a Broker takes the store's outbox as the publisher would, without
// a real broker, and counts what it took.
package deliverytest

import (
	"context"
	"errors"
	"sync"

	"github.com/cunxiang/cunxiang/controller/internal/store"
)

// Broker marks every unsent outbox entry sent when asked to deliver,
// counting them by kind, unless it is Down.
type Broker struct {
	DB *store.DB

	mu   sync.Mutex
	down bool
	sent map[string]int
}

// ErrDown is what Deliver answers while the broker is down.
var ErrDown = errors.New("broker down")

// SetDown takes the broker down (nothing is taken) or brings it back.
func (b *Broker) SetDown(down bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.down = down
}

// Deliver takes everything unsent, as delivery.Service.Deliver waits for.
func (b *Broker) Deliver(ctx context.Context, _, _ string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.down {
		return ErrDown
	}
	es, err := b.DB.UnsentOutbox(ctx, 1000)
	if err != nil {
		return err
	}
	for _, e := range es {
		if err := b.DB.OutboxSent(ctx, e); err != nil {
			return err
		}
		if b.sent == nil {
			b.sent = map[string]int{}
		}
		b.sent[e.Kind]++
	}
	return nil
}

// Sent is how many entries of kind were taken ("" for all).
func (b *Broker) Sent(kind string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	if kind != "" {
		return b.sent[kind]
	}
	n := 0
	for _, k := range b.sent {
		n += k
	}
	return n
}
