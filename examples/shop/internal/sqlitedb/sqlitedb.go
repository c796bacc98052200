// Package sqlitedb opens the shop's SQLite databases through the pure-Go
// modernc.org/sqlite driver, in WAL mode with a busy timeout so that two
// processes (payments v1 and v2, say) can share one file.
package sqlitedb

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"

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
	for _, stmt := range schema {
		if _, err := db.ExecContext(ctx, stmt); err != nil {
			_ = db.Close()
			return nil, fmt.Errorf("sqlite %s: schema: %w", path, err)
		}
	}
	return db, nil
}
