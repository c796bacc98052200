package sqlitedb

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
)

func TestOpen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "x.db")
	db, err := Open(ctx, path, `CREATE TABLE IF NOT EXISTS t (k TEXT PRIMARY KEY)`)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO t VALUES ('a')`); err != nil {
		t.Fatal(err)
	}
	var mode string
	if err := db.QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal_mode = %q, %v; want wal", mode, err)
	}
	_ = db.Close()
	// A second open sees the data and tolerates the schema again.
	db, err = Open(ctx, path, `CREATE TABLE IF NOT EXISTS t (k TEXT PRIMARY KEY)`)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow(`SELECT COUNT(*) FROM t`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("rows = %d, %v; want 1", n, err)
	}
}

func TestOpenErrors(t *testing.T) {
	for _, tt := range []struct {
		name, path, schema, want string
	}{
		{"empty path", "", "", "empty database path"},
		{"bad schema", filepath.Join(t.TempDir(), "x.db"), "CREATE TABLE (", "schema"},
		{"missing directory", filepath.Join(t.TempDir(), "no", "such", "x.db"), "CREATE TABLE t (k)", "sqlite"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			db, err := Open(context.Background(), tt.path, tt.schema)
			if err == nil {
				_ = db.Close()
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Open = %v, want an error with %q", err, tt.want)
			}
		})
	}
}
