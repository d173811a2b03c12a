package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// dialect is what differs between the two engines; the SQL itself is
// shared (both speak upserts and RETURNING), written with $n placeholders.
type dialect struct {
	name string
	// blob and bigint are the column types for bytes and 64-bit integers.
	blob, bigint string
	// rebind turns $n placeholders into the engine's own.
	rebind func(string) string
	// lock serializes a transaction against every other holder of the same
	// lock ID (migrations, the button press) across processes; SQLite
	// needs nothing, its write transactions are exclusive already.
	lock func(ctx context.Context, tx *sql.Tx, id int64) error
}

// Lock IDs for lock.
const (
	lockMigrate = 0x63616c6c626f7801 // "callbox" + 1
	lockButton  = 0x63616c6c626f7802
)

var placeholder = regexp.MustCompile(`\$(\d+)`)

// sqliteRebind: SQLite's numbered parameters are ?NNN.
func sqliteRebind(q string) string { return placeholder.ReplaceAllString(q, "?$1") }

// migrations are applied in order, each once, in one transaction each;
// {blob} and {bigint} stand for the dialect's types. Never edit an applied
// migration: add the next one.
var migrations = []string{
	// 1: the initial schema. Times are Unix milliseconds, the same on both
	// engines. A pair is two rows (a,b) and (b,a) so "the peers of X" is
	// one index range.
	`CREATE TABLE boxes (
		id TEXT PRIMARY KEY,
		key {blob} NOT NULL,
		name TEXT NOT NULL DEFAULT '',
		created_ms {bigint} NOT NULL,
		last_seen_ms {bigint} NOT NULL
	);
	CREATE INDEX boxes_last_seen ON boxes (last_seen_ms);
	CREATE TABLE pairs (
		a TEXT NOT NULL REFERENCES boxes (id) ON DELETE CASCADE,
		b TEXT NOT NULL REFERENCES boxes (id) ON DELETE CASCADE,
		created_ms {bigint} NOT NULL,
		PRIMARY KEY (a, b)
	);
	CREATE TABLE codes (
		code TEXT PRIMARY KEY,
		box TEXT NOT NULL,
		expires_ms {bigint} NOT NULL
	);
	CREATE INDEX codes_box ON codes (box);
	CREATE INDEX codes_expires ON codes (expires_ms);
	CREATE TABLE button (
		slot INTEGER PRIMARY KEY CHECK (slot = 1),
		box TEXT NOT NULL,
		at_ms {bigint} NOT NULL,
		expires_ms {bigint} NOT NULL
	);
	CREATE TABLE nonces (
		box TEXT NOT NULL,
		nonce {blob} NOT NULL,
		expires_ms {bigint} NOT NULL,
		PRIMARY KEY (box, nonce)
	);
	CREATE INDEX nonces_expires ON nonces (expires_ms);
	CREATE TABLE limits (
		key TEXT PRIMARY KEY,
		count {bigint} NOT NULL,
		window_end_ms {bigint} NOT NULL
	);
	CREATE INDEX limits_window_end ON limits (window_end_ms);`,
	// 2: pending pairings (a right code, waiting for both owners to
	// confirm the short authentication string both boxes show).
	`CREATE TABLE pairings (
		owner TEXT PRIMARY KEY,
		joiner TEXT NOT NULL UNIQUE,
		expires_ms {bigint} NOT NULL,
		flags {bigint} NOT NULL DEFAULT 0
	);
	CREATE INDEX pairings_expires ON pairings (expires_ms);`,
}

// sqlStore implements Store on database/sql for both engines.
type sqlStore struct {
	db    *sql.DB
	d     dialect
	q     map[string]string    // rebound queries by their $n text
	stmts map[string]*sql.Stmt // prepared once: SQLite spends a third of a registration preparing otherwise
}

func ms(t time.Time) int64 { return t.UnixMilli() }

func fromMS(v int64) time.Time { return time.UnixMilli(v).UTC() }

// query returns q rebound for the engine (cached: rebinding is a regexp).
func (s *sqlStore) query(q string) string {
	if r, ok := s.q[q]; ok {
		return r
	}
	return s.d.rebind(q)
}

// prepareQueries rebinds every query once, before any concurrent use.
func (s *sqlStore) prepareQueries(qs ...string) {
	s.q = make(map[string]string, len(qs))
	for _, q := range qs {
		s.q[q] = s.d.rebind(q)
	}
}

// prepare prepares every query (after migrate: the tables must exist).
func (s *sqlStore) prepare(ctx context.Context) error {
	s.stmts = make(map[string]*sql.Stmt, len(allQueries))
	for _, q := range allQueries {
		st, err := s.db.PrepareContext(ctx, s.query(q))
		if err != nil {
			return fmt.Errorf("store: %s: prepare %q: %w", s.d.name, q, err)
		}
		s.stmts[q] = st
	}
	return nil
}

// stmt is q's prepared statement.
func (s *sqlStore) stmt(q string) *sql.Stmt { return s.stmts[q] }

// migrate brings the schema to the newest version.
func (s *sqlStore) migrate(ctx context.Context) error {
	if _, err := s.db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version INTEGER PRIMARY KEY,
		applied_ms `+s.d.bigint+` NOT NULL)`); err != nil {
		return fmt.Errorf("store: %s: schema_migrations: %w", s.d.name, err)
	}
	for i, m := range migrations {
		version := i + 1
		err := s.tx(ctx, func(tx *sql.Tx) error {
			if err := s.d.lock(ctx, tx, lockMigrate); err != nil {
				return err
			}
			var n int
			if err := tx.QueryRowContext(ctx, s.query(`SELECT COUNT(*) FROM schema_migrations WHERE version = $1`), version).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				return nil // applied, maybe by another hub instance just now
			}
			ddl := strings.NewReplacer("{blob}", s.d.blob, "{bigint}", s.d.bigint).Replace(m)
			for _, stmt := range strings.Split(ddl, ";") {
				if strings.TrimSpace(stmt) == "" {
					continue
				}
				if _, err := tx.ExecContext(ctx, stmt); err != nil {
					return err
				}
			}
			_, err := tx.ExecContext(ctx, s.query(`INSERT INTO schema_migrations (version, applied_ms) VALUES ($1, $2)`), version, ms(time.Now()))
			return err
		})
		if err != nil {
			return fmt.Errorf("store: %s: migration %d: %w", s.d.name, version, err)
		}
	}
	return nil
}

// SchemaVersion is the number of migrations this build knows.
func SchemaVersion() int { return len(migrations) }

func (s *sqlStore) tx(ctx context.Context, f func(*sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := f(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

func (s *sqlStore) wrap(op string, err error) error {
	if err == nil || errors.Is(err, ErrNotFound) || errors.Is(err, ErrCodeTaken) {
		return err
	}
	return fmt.Errorf("store: %s: %s: %w", s.d.name, op, err)
}

const (
	qPutBox = `INSERT INTO boxes (id, key, name, created_ms, last_seen_ms) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (id) DO UPDATE SET key = excluded.key, name = excluded.name, last_seen_ms = excluded.last_seen_ms`
	qGetBox       = `SELECT id, key, name, created_ms, last_seen_ms FROM boxes WHERE id = $1`
	qDeleteBox    = `DELETE FROM boxes WHERE id = $1`
	qDeleteCodeOf = `DELETE FROM codes WHERE box = $1`
	qStaleBoxes   = `SELECT id FROM boxes WHERE last_seen_ms < $1`
	qAddPair      = `INSERT INTO pairs (a, b, created_ms) VALUES ($1, $2, $3) ON CONFLICT (a, b) DO NOTHING`
	qRemovePair   = `DELETE FROM pairs WHERE (a = $1 AND b = $2) OR (a = $2 AND b = $1)`
	qPaired       = `SELECT COUNT(*) FROM pairs WHERE a = $1 AND b = $2`
	qPeers        = `SELECT x.id, x.key, x.name, x.created_ms, x.last_seen_ms FROM pairs p JOIN boxes x ON x.id = p.b
		WHERE p.a = $1 ORDER BY x.id`
	qPutCode = `INSERT INTO codes (code, box, expires_ms) VALUES ($1, $2, $3)
		ON CONFLICT (code) DO UPDATE SET box = excluded.box, expires_ms = excluded.expires_ms
		WHERE codes.expires_ms <= $4 OR codes.box = excluded.box`
	qTakeCode  = `DELETE FROM codes WHERE code = $1 AND expires_ms > $2 RETURNING box, expires_ms`
	qButtonGet = `SELECT box, at_ms FROM button WHERE slot = 1`
	qButtonDel = `DELETE FROM button WHERE slot = 1`
	qButtonPut = `INSERT INTO button (slot, box, at_ms, expires_ms) VALUES (1, $1, $2, $3)
		ON CONFLICT (slot) DO UPDATE SET box = excluded.box, at_ms = excluded.at_ms, expires_ms = excluded.expires_ms`
	qButtonCancel = `DELETE FROM button WHERE slot = 1 AND box = $1`
	qUseNonce     = `INSERT INTO nonces (box, nonce, expires_ms) VALUES ($1, $2, $3)
		ON CONFLICT (box, nonce) DO UPDATE SET expires_ms = excluded.expires_ms WHERE nonces.expires_ms <= $4`
	qHit = `INSERT INTO limits (key, count, window_end_ms) VALUES ($1, 1, $3)
		ON CONFLICT (key) DO UPDATE SET
			count = CASE WHEN limits.window_end_ms <= $2 THEN 1 ELSE limits.count + 1 END,
			window_end_ms = CASE WHEN limits.window_end_ms <= $2 THEN $3 ELSE limits.window_end_ms END
		RETURNING count`
	qResetLimit  = `DELETE FROM limits WHERE key = $1`
	qSweepCodes  = `DELETE FROM codes WHERE expires_ms <= $1`
	qSweepButton = `DELETE FROM button WHERE expires_ms <= $1`
	qSweepNonces = `DELETE FROM nonces WHERE expires_ms <= $1`
	qSweepLimits = `DELETE FROM limits WHERE window_end_ms <= $1`
	qCountBoxes  = `SELECT COUNT(*) FROM boxes`
	// The prefix is digits only (the hub checks): no LIKE wildcards in it.
	qCodePrefix    = `SELECT code, box, expires_ms FROM codes WHERE code LIKE $1 AND expires_ms > $2 ORDER BY code LIMIT 1`
	qDeleteCode    = `DELETE FROM codes WHERE code = $1`
	qDropPairings  = `DELETE FROM pairings WHERE owner IN ($1, $2) OR joiner IN ($1, $2)`
	qPutPairing    = `INSERT INTO pairings (owner, joiner, expires_ms, flags) VALUES ($1, $2, $3, $4)`
	qGetPairing    = `SELECT owner, joiner, expires_ms, flags FROM pairings WHERE (owner = $1 OR joiner = $1) AND expires_ms > $2`
	qMarkPairing   = `UPDATE pairings SET flags = flags | $3 WHERE owner = $1 AND joiner = $2 AND expires_ms > $4 RETURNING flags`
	qDeletePairing = `DELETE FROM pairings WHERE owner = $1 OR joiner = $1`
	qSweepPairings = `DELETE FROM pairings WHERE expires_ms <= $1`
	qStaleUnpaired = `SELECT id FROM boxes WHERE last_seen_ms < $1 AND NOT EXISTS (SELECT 1 FROM pairs WHERE pairs.a = boxes.id)`
	qCountPairs    = `SELECT COUNT(*) FROM pairs`
)

var allQueries = []string{qPutBox, qGetBox, qDeleteBox, qDeleteCodeOf, qStaleBoxes, qAddPair, qRemovePair,
	qPaired, qPeers, qPutCode, qTakeCode, qButtonGet, qButtonDel, qButtonPut, qButtonCancel, qUseNonce, qHit,
	qResetLimit, qSweepCodes, qSweepButton, qSweepNonces, qSweepLimits, qCountBoxes, qCountPairs,
	qCodePrefix, qDeleteCode, qDropPairings, qPutPairing, qGetPairing, qMarkPairing, qDeletePairing, qSweepPairings,
	qStaleUnpaired}

func (s *sqlStore) PutBox(ctx context.Context, b Box) error {
	if b.ID == "" || len(b.Key) == 0 {
		return fmt.Errorf("store: box needs an ID and a key")
	}
	created := b.Created
	if created.IsZero() {
		created = b.LastSeen
	}
	_, err := s.stmt(qPutBox).ExecContext(ctx, b.ID, b.Key, b.Name, ms(created), ms(b.LastSeen))
	return s.wrap("put box", err)
}

func (s *sqlStore) GetBox(ctx context.Context, id string) (Box, error) {
	var b Box
	var created, seen int64
	err := s.stmt(qGetBox).QueryRowContext(ctx, id).Scan(&b.ID, &b.Key, &b.Name, &created, &seen)
	if errors.Is(err, sql.ErrNoRows) {
		return Box{}, fmt.Errorf("%w: box %s", ErrNotFound, id)
	}
	if err != nil {
		return Box{}, s.wrap("get box", err)
	}
	b.Created, b.LastSeen = fromMS(created), fromMS(seen)
	return b, nil
}

func (s *sqlStore) DeleteBox(ctx context.Context, id string) error {
	return s.wrap("delete box", s.tx(ctx, func(tx *sql.Tx) error {
		return deleteBoxTx(ctx, s, tx, id)
	}))
}

func deleteBoxTx(ctx context.Context, s *sqlStore, tx *sql.Tx, id string) error {
	// The pairs go by ON DELETE CASCADE; a code is not a reference (it may
	// outlive nothing), so it goes explicitly.
	if _, err := tx.StmtContext(ctx, s.stmt(qDeleteCodeOf)).ExecContext(ctx, id); err != nil {
		return err
	}
	if _, err := tx.StmtContext(ctx, s.stmt(qButtonCancel)).ExecContext(ctx, id); err != nil {
		return err
	}
	_, err := tx.StmtContext(ctx, s.stmt(qDeleteBox)).ExecContext(ctx, id)
	return err
}

func (s *sqlStore) ExpireBoxes(ctx context.Context, before time.Time) (int, error) {
	return s.expire(ctx, qStaleBoxes, before)
}

func (s *sqlStore) ExpireUnpaired(ctx context.Context, before time.Time) (int, error) {
	return s.expire(ctx, qStaleUnpaired, before)
}

// expire deletes the boxes query q lists.
func (s *sqlStore) expire(ctx context.Context, q string, before time.Time) (int, error) {
	rows, err := s.stmt(q).QueryContext(ctx, ms(before))
	if err != nil {
		return 0, s.wrap("expire boxes", err)
	}
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return 0, s.wrap("expire boxes", err)
		}
		ids = append(ids, id)
	}
	if err := rows.Close(); err != nil {
		return 0, s.wrap("expire boxes", err)
	}
	// One box per transaction: a write never holds the store for long.
	n := 0
	for _, id := range ids {
		if err := s.DeleteBox(ctx, id); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

func (s *sqlStore) AddPair(ctx context.Context, a, b string, at time.Time) (bool, error) {
	if a == b {
		return false, fmt.Errorf("store: a box cannot pair with itself (%s)", a)
	}
	added := false
	err := s.tx(ctx, func(tx *sql.Tx) error {
		for _, p := range [][2]string{{a, b}, {b, a}} {
			r, err := tx.StmtContext(ctx, s.stmt(qAddPair)).ExecContext(ctx, p[0], p[1], ms(at))
			if err != nil {
				return err
			}
			if n, _ := r.RowsAffected(); n > 0 {
				added = true
			}
		}
		return nil
	})
	return added, s.wrap("add pair", err)
}

func (s *sqlStore) RemovePair(ctx context.Context, a, b string) error {
	_, err := s.stmt(qRemovePair).ExecContext(ctx, a, b)
	return s.wrap("remove pair", err)
}

func (s *sqlStore) Paired(ctx context.Context, a, b string) (bool, error) {
	var n int
	err := s.stmt(qPaired).QueryRowContext(ctx, a, b).Scan(&n)
	return n > 0, s.wrap("paired", err)
}

func (s *sqlStore) Peers(ctx context.Context, id string) ([]Box, error) {
	rows, err := s.stmt(qPeers).QueryContext(ctx, id)
	if err != nil {
		return nil, s.wrap("peers", err)
	}
	defer rows.Close()
	var out []Box
	for rows.Next() {
		var b Box
		var created, seen int64
		if err := rows.Scan(&b.ID, &b.Key, &b.Name, &created, &seen); err != nil {
			return nil, s.wrap("peers", err)
		}
		b.Created, b.LastSeen = fromMS(created), fromMS(seen)
		out = append(out, b)
	}
	return out, s.wrap("peers", rows.Err())
}

func (s *sqlStore) PutCode(ctx context.Context, c Code, now time.Time) error {
	return s.wrap("put code", s.tx(ctx, func(tx *sql.Tx) error {
		// Delete the box's older code first: one box, one code.
		if _, err := tx.StmtContext(ctx, s.stmt(qDeleteCodeOf)).ExecContext(ctx, c.Box); err != nil {
			return err
		}
		r, err := tx.StmtContext(ctx, s.stmt(qPutCode)).ExecContext(ctx, c.Code, c.Box, ms(c.Expires), ms(now))
		if err != nil {
			return err
		}
		if n, _ := r.RowsAffected(); n == 0 {
			return fmt.Errorf("%w: %s", ErrCodeTaken, c.Code)
		}
		return nil
	}))
}

func (s *sqlStore) TakeCode(ctx context.Context, code string, now time.Time) (Code, error) {
	c := Code{Code: code}
	var exp int64
	err := s.stmt(qTakeCode).QueryRowContext(ctx, code, ms(now)).Scan(&c.Box, &exp)
	if errors.Is(err, sql.ErrNoRows) {
		return Code{}, fmt.Errorf("%w: no valid code %q", ErrNotFound, code)
	}
	if err != nil {
		return Code{}, s.wrap("take code", err)
	}
	c.Expires = fromMS(exp)
	return c, nil
}

func (s *sqlStore) PressButton(ctx context.Context, box string, now time.Time, window time.Duration) (string, error) {
	var other string
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if err := s.d.lock(ctx, tx, lockButton); err != nil {
			return err
		}
		var prev string
		var at int64
		err := tx.StmtContext(ctx, s.stmt(qButtonGet)).QueryRowContext(ctx).Scan(&prev, &at)
		switch {
		case errors.Is(err, sql.ErrNoRows):
		case err != nil:
			return err
		default:
			if d := ms(now) - at; prev != box && d >= 0 && d <= window.Milliseconds() {
				other = prev
				_, err := tx.StmtContext(ctx, s.stmt(qButtonDel)).ExecContext(ctx)
				return err
			}
		}
		_, err = tx.StmtContext(ctx, s.stmt(qButtonPut)).ExecContext(ctx, box, ms(now), ms(now.Add(window)))
		return err
	})
	return other, s.wrap("press button", err)
}

func (s *sqlStore) CancelButton(ctx context.Context, box string) error {
	_, err := s.stmt(qButtonCancel).ExecContext(ctx, box)
	return s.wrap("cancel button", err)
}

func (s *sqlStore) UseNonce(ctx context.Context, box string, nonce []byte, now, expires time.Time) (bool, error) {
	r, err := s.stmt(qUseNonce).ExecContext(ctx, box, nonce, ms(expires), ms(now))
	if err != nil {
		return false, s.wrap("use nonce", err)
	}
	n, err := r.RowsAffected()
	return n > 0, s.wrap("use nonce", err)
}

func (s *sqlStore) Hit(ctx context.Context, key string, now time.Time, window time.Duration) (int, error) {
	var n int
	err := s.stmt(qHit).QueryRowContext(ctx, key, ms(now), ms(now.Add(window))).Scan(&n)
	return n, s.wrap("hit", err)
}

func (s *sqlStore) ResetLimit(ctx context.Context, key string) error {
	_, err := s.stmt(qResetLimit).ExecContext(ctx, key)
	return s.wrap("reset limit", err)
}

func (s *sqlStore) Sweep(ctx context.Context, now time.Time) error {
	for _, q := range []string{qSweepCodes, qSweepButton, qSweepNonces, qSweepLimits, qSweepPairings} {
		if _, err := s.stmt(q).ExecContext(ctx, ms(now)); err != nil {
			return s.wrap("sweep", err)
		}
	}
	return nil
}

func (s *sqlStore) Counts(ctx context.Context) (int, int, error) {
	var boxes, rows int
	if err := s.stmt(qCountBoxes).QueryRowContext(ctx).Scan(&boxes); err != nil {
		return 0, 0, s.wrap("count", err)
	}
	if err := s.stmt(qCountPairs).QueryRowContext(ctx).Scan(&rows); err != nil {
		return 0, 0, s.wrap("count", err)
	}
	return boxes, rows / 2, nil
}

func (s *sqlStore) Ping(ctx context.Context) error { return s.wrap("ping", s.db.PingContext(ctx)) }

func (s *sqlStore) Close() error {
	for _, st := range s.stmts {
		_ = st.Close()
	}
	return s.db.Close()
}

func (s *sqlStore) CodeWithPrefix(ctx context.Context, prefix string, now time.Time) (Code, error) {
	var c Code
	var exp int64
	err := s.stmt(qCodePrefix).QueryRowContext(ctx, prefix+"%", ms(now)).Scan(&c.Code, &c.Box, &exp)
	if errors.Is(err, sql.ErrNoRows) {
		return Code{}, fmt.Errorf("%w: no valid code starting %q", ErrNotFound, prefix)
	}
	if err != nil {
		return Code{}, s.wrap("code with prefix", err)
	}
	c.Expires = fromMS(exp)
	return c, nil
}

func (s *sqlStore) DeleteCode(ctx context.Context, code string) error {
	_, err := s.stmt(qDeleteCode).ExecContext(ctx, code)
	return s.wrap("delete code", err)
}

func (s *sqlStore) PutPairing(ctx context.Context, p Pairing) error {
	if p.Owner == p.Joiner {
		return fmt.Errorf("store: a box cannot pair with itself (%s)", p.Owner)
	}
	return s.wrap("put pairing", s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.StmtContext(ctx, s.stmt(qDropPairings)).ExecContext(ctx, p.Owner, p.Joiner); err != nil {
			return err
		}
		_, err := tx.StmtContext(ctx, s.stmt(qPutPairing)).ExecContext(ctx, p.Owner, p.Joiner, ms(p.Expires), p.Flags)
		return err
	}))
}

func (s *sqlStore) GetPairing(ctx context.Context, box string, now time.Time) (Pairing, error) {
	var p Pairing
	var exp int64
	err := s.stmt(qGetPairing).QueryRowContext(ctx, box, ms(now)).Scan(&p.Owner, &p.Joiner, &exp, &p.Flags)
	if errors.Is(err, sql.ErrNoRows) {
		return Pairing{}, fmt.Errorf("%w: no pending pairing of %s", ErrNotFound, box)
	}
	if err != nil {
		return Pairing{}, s.wrap("get pairing", err)
	}
	p.Expires = fromMS(exp)
	return p, nil
}

func (s *sqlStore) MarkPairing(ctx context.Context, owner, joiner string, flags int, now time.Time) (int, error) {
	var after int
	err := s.stmt(qMarkPairing).QueryRowContext(ctx, owner, joiner, flags, ms(now)).Scan(&after)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("%w: no pending pairing of %s and %s", ErrNotFound, owner, joiner)
	}
	return after, s.wrap("mark pairing", err)
}

func (s *sqlStore) DeletePairing(ctx context.Context, box string) error {
	_, err := s.stmt(qDeletePairing).ExecContext(ctx, box)
	return s.wrap("delete pairing", err)
}
