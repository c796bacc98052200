// Package sqlitedb opens the shop's SQLite databases through the pure-Go
// modernc.org/sqlite driver, in WAL mode with a busy timeout so that two
// processes (payments v1 and v2, say) can share one file.
package sqlitedb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// Open opens (creating if needed) the database at path and applies schema,
// a list of idempotent statements such as CREATE TABLE IF NOT EXISTS.
func Open(ctx context.Context, path string, schema ...string) (*sql.DB, error) {
	if path == "" {
		return nil, fmt.Errorf("sqlite: empty database path")
	}
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(5000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(NORMAL)")
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("sqlite %s: %w", path, err)
	}
	// One connection serialises writers inside the process; WAL and the
	// busy timeout handle the other processes.
	db.SetMaxOpenConns(1)
	if err := applySchema(ctx, db, schema); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("sqlite %s: schema: %w", path, err)
	}
	return db, nil
}

// schemaTimeout bounds the retries of a schema that another process keeps
// busy.
const schemaTimeout = 15 * time.Second

// applySchema runs the statements in one write transaction, taken at once
// (BEGIN IMMEDIATE waits out other writers through the busy timeout). Some
// races SQLite answers with SQLITE_BUSY at once instead — the switch to
// WAL while another process opens the file, a read that must become a
// write — so a busy answer is retried until schemaTimeout.
func applySchema(ctx context.Context, db *sql.DB, schema []string) error {
	if len(schema) == 0 {
		return nil
	}
	deadline := time.Now().Add(schemaTimeout)
	for wait := 10 * time.Millisecond; ; wait = min(2*wait, 200*time.Millisecond) {
		err := tryApply(ctx, db, schema)
		if err == nil || !busy(err) || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
	}
}

func tryApply(ctx context.Context, db *sql.DB, schema []string) (err error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_, _ = conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK")
		}
	}()
	for _, stmt := range schema {
		if _, err := conn.ExecContext(ctx, stmt); err != nil {
			return err
		}
	}
	_, err = conn.ExecContext(ctx, "COMMIT")
	return err
}

// busy reports an SQLITE_BUSY answer (any of its extended codes).
func busy(err error) bool {
	var coded interface{ Code() int }
	if errors.As(err, &coded) {
		return coded.Code()&0xff == sqliteBusy
	}
	return false
}

const sqliteBusy = 5
