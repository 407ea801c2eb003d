package delivery

import (
	"context"
	"fmt"
	"time"

	"github.com/cunxiang/cunxiang/controller/internal/store"
)

// Several controllers may share one database and one broker. Only the
// holder of the publisher lease (store.AcquireLease) publishes commands:
// it drains the outbox and refreshes the retained commands. The others
// serve HTTP, write outbox entries and ingest reports; the holder finds
// their entries in the database.
//
// The lease is a row with an expiry renewed by its holder, not a
// PostgreSQL session advisory lock: the same queries work on SQLite; who
// holds it, and since when, can be read by anyone (the log, a query);
// fencing is a plain check of holder and epoch inside the transaction of
// each publisher write, on any pooled connection (an advisory lock lives
// on one session, which the writes do not use); and takeover does not
// wait for the server to notice a dead session (TCP keepalive: minutes
// on a cut link, by default), only for the expiry.
//
// Bounds, with LeaseTTL 15 s, renewal every leaseRenewEvery (3 s) and
// leaseMargin (5 s):
//   - The holder publishes only until leaseMargin before its lease would
//     expire, counted on its own monotonic clock from the moment it sent
//     its last successful renewal: 10 s after it, if renewals stop (its
//     database link is lost). Another process takes the lease only once
//     the database shows it expired, 15 s after that renewal or later, so
//     the holder has stopped starting publications by then, with clocks
//     up to leaseMargin apart.
//   - A holder killed (or cut off) is replaced within LeaseTTL +
//     leaseRenewEvery (18 s); on the same machine, where its pid is seen
//     gone, within leaseRenewEvery (3 s); one that stops cleanly gives the
//     lease up at once.
//   - Fencing: the publisher's writes (signed, sent, failed, dropped,
//     re-signed) check holder and epoch in their own transaction
//     (store.WithLease), so a deposed holder records nothing: an entry it
//     was sending is sent again by the new holder, with the same signed
//     commands, which boxes take once (they know each command's id).
const (
	leaseRenewEvery = 3 * time.Second
	leaseMargin     = 5 * time.Second
	// deliverPoll is how often Deliver, in a process that does not
	// publish, looks whether the holder has sent the entry.
	deliverPoll = 100 * time.Millisecond
)

// errNotHolder: this process does not hold the publisher lease (or its
// time to publish under it has run out).
var errNotHolder = fmt.Errorf("not the publisher: %w", store.ErrLeaseLost)

// leaseState is what this process knows of the publisher lease.
type leaseState struct {
	lease store.Lease
	until time.Time // publish only before this (monotonic); zero: not held
}

// held returns the lease this process holds, if it may publish under it.
func (s *Service) held() (store.Lease, bool) {
	s.leaseMu.Lock()
	defer s.leaseMu.Unlock()
	return s.lease.lease, time.Now().Before(s.lease.until)
}

// Publisher returns who holds the publisher lease, as last seen, and
// whether this process may publish under it.
func (s *Service) Publisher() (store.Lease, bool) { return s.held() }

// keepLease renews this process's heartbeat and the publisher lease (or
// tries to take it) every leaseRenewEvery until ctx ends.
func (s *Service) keepLease(ctx context.Context) {
	t := time.NewTicker(leaseRenewEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.renewLease(ctx)
		}
	}
}

// renewLease makes one attempt; a process that gains the lease refills
// the broker (gained).
func (s *Service) renewLease(ctx context.Context) {
	sent := time.Now()
	if err := s.opts.Store.Heartbeat(ctx); err != nil && ctx.Err() == nil {
		s.log.Warn("heartbeat not recorded", "err", err)
	}
	l, err := s.opts.Store.AcquireLease(ctx, store.LeasePublisher)
	if err != nil {
		// What was held runs out by itself (until).
		if ctx.Err() == nil {
			s.log.Warn("publisher lease not renewed", "err", err)
		}
		return
	}
	s.leaseMu.Lock()
	was := time.Now().Before(s.lease.until)
	prev := s.lease.lease
	s.lease.lease = l
	if l.Held {
		s.lease.until = sent.Add(store.LeaseTTL - leaseMargin)
	} else {
		s.lease.until = time.Time{}
	}
	s.leaseMu.Unlock()
	switch {
	case l.Held && (!was || prev.Epoch != l.Epoch):
		s.log.Info("holding the publisher lease: publishing commands", "epoch", l.Epoch)
		select {
		case s.gained <- struct{}{}:
		default:
		}
		s.Kick()
	case !l.Held && (was || prev.Holder != l.Holder):
		s.log.Info("another controller holds the publisher lease: not publishing commands", "holder", l.HolderLabel, "epoch", l.Epoch)
	}
}

// releaseLease gives the lease up as Run ends, so another controller
// takes it at once.
func (s *Service) releaseLease() {
	if _, ok := s.held(); !ok {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := s.opts.Store.ReleaseLease(ctx, store.LeasePublisher); err != nil {
		s.log.Warn("publisher lease not released; another controller takes it when it expires", "err", err)
	}
}

// watchOutbox kicks the publisher whenever any controller on the
// database adds an outbox entry (store.WatchOutbox), so that a change
// made through another controller is sent at once rather than at the
// next retry tick.
func (s *Service) watchOutbox(ctx context.Context) {
	for {
		err := s.opts.Store.WatchOutbox(ctx, s.Kick)
		if ctx.Err() != nil {
			return
		}
		s.log.Warn("not told of new outbox entries; they are found every few seconds", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(5 * time.Second):
		}
	}
}
