package main

import (
	"testing"
	"time"

	"github.com/cunxiang/cunxiang/controller/internal/store/storetest"
)

// TestPostgresCountyAnnouncement is TestCountyAnnouncement with the
// controller on PostgreSQL (CUNXIANG_TEST_POSTGRES) instead of SQLite:
// 81 villages imported, 79 boxes enrolled, the announcement played by all
// 79 and their reports stored.
func TestPostgresCountyAnnouncement(t *testing.T) {
	t.Parallel()
	h := startController(t, harnessOptions{DB: storetest.PostgresURL(t)})
	h.county(t, h.BrokerURL)
	at := time.Now().Add(15 * time.Second).Truncate(time.Second)
	sid := h.announce(t, at)
	waitCoverage(t, h, sid, at, 60*time.Second, countyPlayed)
}
