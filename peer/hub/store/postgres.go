package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers "pgx": pgx behind database/sql, so both engines share one implementation
)

// OpenPostgres connects to PostgreSQL and migrates the schema. Several hub
// instances may start at once: migrations take an advisory lock.
func OpenPostgres(ctx context.Context, url string) (Store, error) {
	db, err := sql.Open("pgx", url)
	if err != nil {
		return nil, fmt.Errorf("store: postgres %s: %w", Redact(url), err)
	}
	db.SetMaxOpenConns(16)
	db.SetMaxIdleConns(16)
	db.SetConnMaxIdleTime(5 * time.Minute)
	s := &sqlStore{db: db, d: dialect{
		name:   "postgres",
		blob:   "BYTEA",
		bigint: "BIGINT",
		rebind: func(q string) string { return q },
		lock: func(ctx context.Context, tx *sql.Tx, id int64) error {
			_, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, id)
			return err
		},
	}}
	s.prepareQueries(allQueries...)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: postgres %s: %w", Redact(url), err)
	}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	if err := s.prepare(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}
