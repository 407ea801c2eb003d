// Package storetest makes databases for tests: a fresh PostgreSQL
// database per test on the server CUNXIANG_TEST_POSTGRES names.
package storetest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver
)

// PostgresURL creates an empty database on the CUNXIANG_TEST_POSTGRES
// server, drops it when the test ends, and returns its URL. It skips the
// test, saying so, when the variable is unset (.ci/run sets it).
func PostgresURL(tb testing.TB) string {
	tb.Helper()
	server := os.Getenv("CUNXIANG_TEST_POSTGRES")
	if server == "" {
		tb.Skip("CUNXIANG_TEST_POSTGRES not set (e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable); .ci/run sets it")
	}
	admin, err := sql.Open("pgx", server)
	if err != nil {
		tb.Fatal(err)
	}
	var b [6]byte
	rand.Read(b[:])
	name := "cxtest_" + hex.EncodeToString(b[:])
	if _, err := admin.ExecContext(context.Background(), `CREATE DATABASE `+name); err != nil {
		admin.Close()
		tb.Fatalf("create a test database on %s: %v", server, err)
	}
	tb.Cleanup(func() {
		admin.ExecContext(context.Background(), `DROP DATABASE IF EXISTS `+name+` WITH (FORCE)`)
		admin.Close()
	})
	u, err := url.Parse(server)
	if err != nil {
		tb.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
}
