package store

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"path/filepath"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// OpenSQLite opens (creating) the SQLite file at path, or an in-memory
// database for ":memory:".
//
// One connection serves everything: SQLite allows one writer at a time
// anyway, and with a single connection no transaction ever waits on
// SQLITE_BUSY. WAL with synchronous=NORMAL makes each small write cheap (no
// fsync per commit; a power cut can lose the last commits but never
// corrupts the file).
func OpenSQLite(ctx context.Context, path string) (Store, error) {
	if path == "" {
		return nil, fmt.Errorf("%w: sqlite: needs a file path (sqlite:/var/lib/callbox/hub.db)", ErrBadURL)
	}
	dsn := "file::memory:"
	if path != ":memory:" {
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("store: sqlite: %w", err)
		}
		dsn = "file:" + (&url.URL{Path: path}).EscapedPath()
	}
	dsn += "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=foreign_keys(1)&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("store: sqlite %s: %w", path, err)
	}
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	db.SetConnMaxLifetime(0)
	db.SetConnMaxIdleTime(0) // an in-memory database lives as long as its connection
	s := &sqlStore{db: db, d: dialect{
		name:   "sqlite",
		blob:   "BLOB",
		bigint: "INTEGER",
		rebind: sqliteRebind,
		lock:   func(context.Context, *sql.Tx, int64) error { return nil },
	}}
	s.prepareQueries(allQueries...)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: sqlite %s: %w", path, err)
	}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	if err := s.prepare(ctx); err != nil {
		db.Close()
		return nil, err
	}
	if path != ":memory:" {
		_ = os.Chmod(path, 0o600) // holds the boxes' public keys and who is paired with whom
	}
	return s, nil
}
