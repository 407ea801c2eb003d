// Package handoff is how an application service waits for the change it
// stored to leave through the outbox: the store commits the change with
// its commands, and the service waits a bounded time for the publisher
// (delivery.Service) to put them on the broker, so that a door can say
// whether delivery is done or still pending. Each service that changes
// what boxes hold (broadcasts, schedules, box settings) waits the same
// way.
package handoff

import (
	"context"
	"log/slog"
	"time"
)

// Delivery sends to the boxes what a change put in the store's outbox
// (delivery.Service): Deliver waits until the entries of kind for ref are
// on the broker, or ctx ends; then it returns an error and goes on trying
// by itself.
type Delivery interface {
	Deliver(ctx context.Context, kind, ref string) error
}

// DefaultWait is how long a change waits for the broker by default.
const DefaultWait = 15 * time.Second

// Wait waits, at most wait and whatever the caller does meanwhile (ctx
// may be cancelled: the change is made), for the outbox entries of kind
// for ref to reach the broker. An error means they have not yet; it is
// logged, and the publisher goes on trying by itself.
func Wait(ctx context.Context, d Delivery, wait time.Duration, log *slog.Logger, kind, ref string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), wait)
	defer cancel()
	err := d.Deliver(ctx, kind, ref)
	if err != nil {
		log.Warn("change stored but not on the broker yet; the publisher keeps trying", "kind", kind, "ref", ref, "err", err)
	}
	return err
}
