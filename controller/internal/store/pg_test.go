package store_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/cunxiang/cunxiang/controller/internal/store/storetest"
)

// The store's tests are its contract. They run against SQLite; with
// CUNXIANG_TEST_STORE=postgres they run against PostgreSQL instead, each
// test in a database of its own on the server CUNXIANG_TEST_POSTGRES names
// (test.sh runs them both ways when .ci/run sets it).

// testDSN is where a test's database lives: a SQLite file in its temp dir,
// or a fresh PostgreSQL database dropped when the test ends.
func testDSN(tb testing.TB) string {
	tb.Helper()
	if os.Getenv("CUNXIANG_TEST_STORE") != "postgres" {
		return filepath.Join(tb.TempDir(), "cx.db")
	}
	if os.Getenv("CUNXIANG_TEST_POSTGRES") == "" {
		tb.Fatal("CUNXIANG_TEST_STORE=postgres needs CUNXIANG_TEST_POSTGRES")
	}
	return storetest.PostgresURL(tb)
}
