package store

import (
	"context"
	"path/filepath"
	"reflect"
	"sort"
	"testing"

	"github.com/cunxiang/cunxiang/controller/internal/store/storetest"
)

// columns lists every table's columns, sorted, without goose's own table.
func columns(ctx context.Context, db *DB) (map[string][]string, error) {
	q := `SELECT m.name, p.name FROM sqlite_master m JOIN pragma_table_info(m.name) p
		WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' AND m.name <> 'goose_db_version'`
	if db.postgres {
		q = `SELECT table_name, column_name FROM information_schema.columns
			WHERE table_schema = 'public' AND table_name <> 'goose_db_version'`
	}
	rows, err := db.db.QueryContext(ctx, q)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string][]string{}
	for rows.Next() {
		var t, c string
		if err := rows.Scan(&t, &c); err != nil {
			return nil, err
		}
		out[t] = append(out[t], c)
	}
	for _, cs := range out {
		sort.Strings(cs)
	}
	return out, rows.Err()
}

// TestPostgresSchemaMatchesSQLite: the two dialects' migrations must make
// the same tables with the same columns, or a query that works on one
// fails on the other.
func TestPostgresSchemaMatchesSQLite(t *testing.T) {
	ctx := context.Background()
	pg, err := Open(ctx, storetest.PostgresURL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()
	lite, err := Open(ctx, filepath.Join(t.TempDir(), "cx.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer lite.Close()
	want, err := columns(ctx, lite)
	if err != nil {
		t.Fatal(err)
	}
	got, err := columns(ctx, pg)
	if err != nil {
		t.Fatal(err)
	}
	if len(want) < 10 {
		t.Fatalf("SQLite schema has only %d tables: %v", len(want), want)
	}
	if !reflect.DeepEqual(got, want) {
		for tbl, cs := range want {
			if !reflect.DeepEqual(got[tbl], cs) {
				t.Errorf("table %s: PostgreSQL has %v, SQLite %v", tbl, got[tbl], cs)
			}
		}
		for tbl := range got {
			if _, ok := want[tbl]; !ok {
				t.Errorf("table %s only in PostgreSQL", tbl)
			}
		}
	}
}
