package sqlitedb

import (
	"context"
	"errors"
	"fmt"
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

// TestConcurrentOpen: two processes sharing a file (payments v1 and v2
// start together) open it and apply the schema at the same moment; both
// must succeed. SQLite answers some of these races with SQLITE_BUSY at
// once, without its busy timeout (a read that must become a write after
// another connection wrote, the switch to WAL).
func TestConcurrentOpen(t *testing.T) {
	schema := []string{
		`CREATE TABLE IF NOT EXISTS a (k TEXT PRIMARY KEY)`,
		`CREATE TABLE IF NOT EXISTS b (k TEXT PRIMARY KEY, v INTEGER)`,
		`CREATE INDEX IF NOT EXISTS b_v ON b (v)`,
	}
	for round := range 20 {
		path := filepath.Join(t.TempDir(), "x.db")
		errs := make(chan error, 4)
		for range 4 {
			go func() {
				db, err := Open(context.Background(), path, schema...)
				if err == nil {
					db.Close()
				}
				errs <- err
			}()
		}
		for range 4 {
			if err := <-errs; err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
		}
	}
}

type codedErr int

func (e codedErr) Error() string { return "coded" }
func (e codedErr) Code() int     { return int(e) }

func TestBusy(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want bool
	}{
		{codedErr(5), true},                              // SQLITE_BUSY
		{codedErr(517), true},                            // SQLITE_BUSY_SNAPSHOT
		{codedErr(6), false},                             // SQLITE_LOCKED
		{fmt.Errorf("wrapped: %w", codedErr(261)), true}, // SQLITE_BUSY_RECOVERY
		{errors.New("other"), false},
	} {
		if got := busy(tt.err); got != tt.want {
			t.Errorf("busy(%v code) = %v, want %v", tt.err, got, tt.want)
		}
	}
}
