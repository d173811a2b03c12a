// Package store keeps the hub's state: box identities, pairings, pending
// pairing codes, the last unmatched pairing-button press, registration
// nonces and rate-limit counters.
//
// Store is the interface the hub uses; Open returns one of two engines
// behind it, with the same schema and the same migrations:
//
//   - "sqlite:PATH" — an embedded SQLite file (modernc.org/sqlite, a pure-Go
//     translation of SQLite: the hub still cross-compiles with
//     CGO_ENABLED=0 to arm64/armv7 and needs no C toolchain or libsqlite3);
//   - "postgres://..." or "postgresql://..." — PostgreSQL through
//     github.com/jackc/pgx/v5, for several hub instances sharing one state.
//
// Every write touches only the records it changes (one box, one pair, one
// code), never the whole state, and every method is safe for concurrent use
// by several goroutines and, on PostgreSQL, by several hub processes.
package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Box is a registered box's identity record.
type Box struct {
	ID       string    // peer.BoxID of Key
	Key      []byte    // ed25519 public key
	Name     string    // human label the box sent
	Created  time.Time // first registration
	LastSeen time.Time // latest registration
}

// Code is a pending pairing code: the box that asked for it and when it stops
// being valid.
type Code struct {
	Code    string
	Box     string
	Expires time.Time
}

// Pairing is a pending pairing: a right code was entered on Joiner's box
// for Owner's code; it holds once both owners confirmed (Flags) before
// Expires (docs/security.md, "The hub").
type Pairing struct {
	Owner, Joiner string
	Expires       time.Time
	Flags         int // the hub's progress bits (nonce sent, revealed, confirmations)
}

// Errors callers test with errors.Is.
var (
	// ErrNotFound: no such box, or no valid code.
	ErrNotFound = errors.New("store: not found")
	// ErrCodeTaken: another box holds that (unexpired) pairing code.
	ErrCodeTaken = errors.New("store: pairing code in use")
	// ErrBadURL: the store URL names no engine this hub knows.
	ErrBadURL = errors.New("store: bad store URL")
)

// Store is the hub's state. Times are stored with millisecond precision.
type Store interface {
	// PutBox inserts a box or updates its key, name and LastSeen; Created
	// is kept from the first registration.
	PutBox(ctx context.Context, b Box) error
	// GetBox returns one box, or ErrNotFound.
	GetBox(ctx context.Context, id string) (Box, error)
	// DeleteBox removes a box with its pairs and its pending code.
	DeleteBox(ctx context.Context, id string) error
	// ExpireBoxes deletes (as DeleteBox) the boxes last seen before t and
	// returns how many.
	ExpireBoxes(ctx context.Context, before time.Time) (int, error)

	// AddPair records that a and b are paired (both directions); added is
	// false when they already were. Both boxes must exist.
	AddPair(ctx context.Context, a, b string, at time.Time) (added bool, err error)
	// RemovePair forgets a pair (both directions).
	RemovePair(ctx context.Context, a, b string) error
	// Paired reports whether a and b are paired.
	Paired(ctx context.Context, a, b string) (bool, error)
	// Peers returns the boxes paired with id, sorted by ID.
	Peers(ctx context.Context, id string) ([]Box, error)

	// PutCode records a pairing code, replacing any code the same box held.
	// ErrCodeTaken: another box holds the same code and it has not expired
	// at now (the caller draws another).
	PutCode(ctx context.Context, c Code, now time.Time) error
	// TakeCode removes and returns a code valid at now, or ErrNotFound.
	// Exactly one of several concurrent takers of a code gets it.
	TakeCode(ctx context.Context, code string, now time.Time) (Code, error)

	// CodeWithPrefix returns a code valid at now that starts with prefix
	// (the slot of a pairing code), or ErrNotFound.
	CodeWithPrefix(ctx context.Context, prefix string, now time.Time) (Code, error)
	// DeleteCode removes a code, whoever holds it.
	DeleteCode(ctx context.Context, code string) error

	// PutPairing records a pending pairing, replacing any pending pairing
	// either box had.
	PutPairing(ctx context.Context, p Pairing) error
	// GetPairing returns the pending pairing box takes part in, valid at
	// now, or ErrNotFound.
	GetPairing(ctx context.Context, box string, now time.Time) (Pairing, error)
	// MarkPairing sets flags on the pending pairing of owner and joiner,
	// valid at now, and returns all its flags after (atomically: of two
	// concurrent marks, the second sees the first's). ErrNotFound: none.
	MarkPairing(ctx context.Context, owner, joiner string, flags int, now time.Time) (int, error)
	// DeletePairing forgets the pending pairing box takes part in.
	DeletePairing(ctx context.Context, box string) error
	// ExpireUnpaired deletes (as DeleteBox) the boxes last seen before t
	// that have no pair, and returns how many.
	ExpireUnpaired(ctx context.Context, before time.Time) (int, error)

	// PressButton is the pairing button of box at now. If another box
	// pressed within window before, that press is consumed and its box
	// returned; otherwise this press is recorded (replacing any older one)
	// and other is "".
	PressButton(ctx context.Context, box string, now time.Time, window time.Duration) (other string, err error)
	// CancelButton forgets box's unmatched press, if it is the recorded one.
	CancelButton(ctx context.Context, box string) error

	// UseNonce records a registration nonce of box until expires. fresh is
	// false when the same nonce is still recorded: a replay.
	UseNonce(ctx context.Context, box string, nonce []byte, now, expires time.Time) (fresh bool, err error)

	// Hit counts one event for key in a fixed window: the first hit starts a
	// window of the given length, and the count restarts when it ends.
	// It returns the count including this hit.
	Hit(ctx context.Context, key string, now time.Time, window time.Duration) (int, error)
	// ResetLimit forgets key's counter.
	ResetLimit(ctx context.Context, key string) error

	// Sweep deletes expired codes, button presses, nonces and counters.
	Sweep(ctx context.Context, now time.Time) error
	// Counts reports how many boxes and pairs there are.
	Counts(ctx context.Context) (boxes, pairs int, err error)
	// Ping checks that the store answers (readiness).
	Ping(ctx context.Context) error
	// Close releases the store.
	Close() error
}

// Open opens (creating and migrating as needed) the store a URL names:
// "sqlite:PATH", "sqlite::memory:" (tests), "postgres://..." or
// "postgresql://...".
func Open(ctx context.Context, url string) (Store, error) {
	switch {
	case strings.HasPrefix(url, "sqlite:"):
		return OpenSQLite(ctx, strings.TrimPrefix(url, "sqlite:"))
	case strings.HasPrefix(url, "postgres://"), strings.HasPrefix(url, "postgresql://"):
		return OpenPostgres(ctx, url)
	}
	return nil, fmt.Errorf("%w %q: want sqlite:PATH or postgres://...", ErrBadURL, Redact(url))
}

// Redact hides a password in a store URL for logs.
func Redact(url string) string {
	scheme, rest, ok := strings.Cut(url, "://")
	if !ok {
		return url
	}
	at := strings.LastIndex(rest, "@")
	if slash := strings.Index(rest, "/"); slash >= 0 && slash < at {
		at = -1 // an "@" in the path or query, not in the authority
	}
	if at < 0 {
		return url
	}
	user, _, hasPass := strings.Cut(rest[:at], ":")
	if !hasPass {
		return url
	}
	return scheme + "://" + user + ":xxxxx" + rest[at:]
}
