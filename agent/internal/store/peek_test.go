package store

import (
	"errors"
	"testing"
	"time"

	"github.com/cunxiang/cunxiang/api"
)

// PeekBroadcast answers as PutBroadcast would, and writes nothing.
func TestPeekBroadcast(t *testing.T) {
	db, _ := openTemp(t)
	now := expiry.Add(-time.Hour)
	peek := func(c api.Command) (string, bool, error) {
		t.Helper()
		r, known, err := db.PeekBroadcast(c)
		return r.Status, known, err
	}
	if st, known, err := peek(putB("a", 1, 1)); err != nil || known || st != "" {
		t.Fatalf("new broadcast: %q %v %v, want unknown", st, known, err)
	}
	if n, _ := db.OutboxLen(); n != 0 {
		t.Fatalf("peek wrote %d reports", n)
	}
	if _, _, err := db.PutBroadcast(putB("a", 1, 1), now, api.Event{Type: api.EventReceived, BroadcastID: 1}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := peek(putB("a", 1, 1)); !errors.Is(err, ErrDuplicate) {
		t.Fatalf("same command again: %v, want ErrDuplicate", err)
	}
	if st, known, err := peek(putB("b", 2, 1)); err != nil || !known || st != api.EventReceived {
		t.Fatalf("re-signed: %q %v %v, want known and received", st, known, err)
	}
	if _, _, err := db.CancelBroadcast(cancelB("c", 3, 1), api.Event{Type: api.EventCancelled, BroadcastID: 1}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := peek(putB("b", 2, 1)); !errors.Is(err, ErrReplay) {
		t.Fatalf("put older than the cancel: %v, want ErrReplay", err)
	}
	if _, _, err := db.PeekBroadcast(cancelB("d", 4, 1)); err == nil {
		t.Fatal("peek of a cancel: no error")
	}
}
