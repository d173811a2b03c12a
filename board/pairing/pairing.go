// Package pairing decides which phones may receive the box's media.
//
// A phone that has never been paired asks with Request and waits; a person
// at the box approves with the buttons (board.Machine decides when), which
// mints one token per waiting phone. The phone keeps its token and presents
// it on every connection; Authorize checks it. Only the tokens' SHA-256
// hashes are stored (board/store), and RevokeAll (the factory reset)
// forgets every one of them.
package pairing

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/callbox/callbox/board/store"
)

// Errors Request and Authorize return.
var (
	ErrUnpaired    = errors.New("unpaired")
	ErrTooMany     = errors.New("too many phones waiting to pair")
	ErrRevoked     = errors.New("pairing requests were cancelled by a factory reset")
	ErrTokenFormat = errors.New("malformed token")
	ErrNoSuchPhone = errors.New("no such paired phone")
)

// MaxWaiting bounds the phones waiting at once, so a flood of requests from
// the network cannot pile up goroutines and connections.
const MaxWaiting = 16

// MaxWaitingPerAddr bounds the requests waiting at once from one address:
// a phone needs one, a page reloaded meanwhile two; one host on the LAN
// cannot take all MaxWaiting places and lock the owner's phone out.
const MaxWaitingPerAddr = 2

// MaxNameLen bounds a phone's self-chosen name (kept for the owner's logs).
const MaxNameLen = 64

// tokenBytes of randomness: 256 bits, unguessable.
const tokenBytes = 32

// Registry holds the paired tokens and the phones waiting for approval.
type Registry struct {
	// Save persists the token list after each change (nil: memory only).
	save func([]store.Token) error
	// onWaiting hears the number of waiting phones after each change. It is
	// called without the Registry's lock held, so it may call back in.
	onWaiting func(n int)
	now       func() time.Time

	mu      sync.Mutex
	tokens  map[string]store.Token // by hash
	waiters map[*waiter]struct{}
	open    bool
}

type waiter struct {
	name string
	addr string
	done chan struct{} // closed once token or err is set
	tok  string
	err  error
}

// Options configure a Registry.
type Options struct {
	Tokens    []store.Token // the tokens loaded from the store
	Save      func([]store.Token) error
	OnWaiting func(n int)
	Open      bool // every client is authorized (trusted networks only)
	Now       func() time.Time
}

// New returns a Registry holding opts.Tokens.
func New(opts Options) *Registry {
	r := &Registry{
		save:      opts.Save,
		onWaiting: opts.OnWaiting,
		now:       opts.Now,
		tokens:    map[string]store.Token{},
		waiters:   map[*waiter]struct{}{},
		open:      opts.Open,
	}
	if r.now == nil {
		r.now = time.Now
	}
	for _, t := range opts.Tokens {
		r.tokens[t.Hash] = t
	}
	return r
}

// Hash is the stored form of a token.
func Hash(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}

// Open reports whether every client is authorized.
func (r *Registry) Open() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.open
}

// Paired reports how many tokens are valid.
func (r *Registry) Paired() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.tokens)
}

// Waiting reports how many phones wait for approval.
func (r *Registry) Waiting() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.waiters)
}

// Authorize accepts a paired token (any token, even none, in open mode).
// It is the relay's gate: media goes only to clients it accepts.
func (r *Registry) Authorize(token string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.open {
		return nil
	}
	if token == "" {
		return ErrUnpaired
	}
	if len(token) > 256 {
		return fmt.Errorf("%w: %w", ErrUnpaired, ErrTokenFormat)
	}
	h := Hash(token)
	for k := range r.tokens {
		// Compare every stored hash in constant time: the loop's length
		// depends only on the number of tokens, never on the guess.
		if subtle.ConstantTimeCompare([]byte(k), []byte(h)) == 1 {
			return nil
		}
	}
	return ErrUnpaired
}

// AuthorizeHash accepts the stored hash (Hash) of a paired token: a phone
// away from home presents a credential naming its token's hash, never the
// token (docs/peer.md, "Phones away from home"). A factory reset revokes
// it like the token. Open mode does not admit unknown hashes: remote
// phones are always paired ones.
func (r *Registry) AuthorizeHash(hash string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for k := range r.tokens {
		if subtle.ConstantTimeCompare([]byte(k), []byte(hash)) == 1 {
			return nil
		}
	}
	return ErrUnpaired
}

// Request is RequestFrom without an address (no per-address bound).
func (r *Registry) Request(ctx context.Context, name string) (string, error) {
	return r.RequestFrom(ctx, name, "")
}

// RequestFrom waits until the phone is approved and returns its new token,
// or until ctx ends (ctx.Err()). addr is where the request comes from: at
// most MaxWaitingPerAddr requests from one address wait at once (ErrTooMany
// beyond). In open mode it returns a token at once; that token is not
// stored, so it stops working when open mode is turned off.
func (r *Registry) RequestFrom(ctx context.Context, name, addr string) (string, error) {
	if len(name) > MaxNameLen {
		name = name[:MaxNameLen]
	}
	r.mu.Lock()
	if r.open {
		r.mu.Unlock()
		return newToken()
	}
	if len(r.waiters) >= MaxWaiting || addr != "" && r.fromLocked(addr) >= MaxWaitingPerAddr {
		r.mu.Unlock()
		return "", ErrTooMany
	}
	w := &waiter{name: name, addr: addr, done: make(chan struct{})}
	r.waiters[w] = struct{}{}
	n := len(r.waiters)
	r.mu.Unlock()
	r.notify(n)

	select {
	case <-w.done:
		return w.tok, w.err
	case <-ctx.Done():
	}
	r.mu.Lock()
	_, still := r.waiters[w]
	delete(r.waiters, w)
	n = len(r.waiters)
	r.mu.Unlock()
	if !still {
		// Approved (or revoked) while ctx ended: the result is there.
		<-w.done
		if w.err == nil {
			return w.tok, nil
		}
		return "", w.err
	}
	r.notify(n)
	return "", ctx.Err()
}

func (r *Registry) fromLocked(addr string) int {
	n := 0
	for w := range r.waiters {
		if w.addr == addr {
			n++
		}
	}
	return n
}

func (r *Registry) notify(n int) {
	if r.onWaiting != nil {
		r.onWaiting(n)
	}
}

// ApproveAll admits every waiting phone and returns how many it admitted.
// The tokens are saved before any phone learns its token, so a phone never
// holds a token the box would forget at the next boot.
func (r *Registry) ApproveAll() (int, error) {
	r.mu.Lock()
	if len(r.waiters) == 0 {
		r.mu.Unlock()
		return 0, nil
	}
	ws := make([]*waiter, 0, len(r.waiters))
	added := make([]string, 0, len(r.waiters))
	for w := range r.waiters {
		tok, err := newToken()
		if err != nil {
			w.err = err
		} else {
			w.tok = tok
			h := Hash(tok)
			r.tokens[h] = store.Token{Hash: h, Name: w.name, Paired: r.now().UTC()}
			added = append(added, h)
		}
		ws = append(ws, w)
	}
	clear(r.waiters)
	err := r.persistLocked()
	if err != nil {
		for _, h := range added {
			delete(r.tokens, h)
		}
		for _, w := range ws {
			w.tok, w.err = "", fmt.Errorf("pairing: saving the token: %w", err)
		}
	}
	r.mu.Unlock()
	for _, w := range ws {
		close(w.done)
	}
	r.notify(0)
	if err != nil {
		return 0, fmt.Errorf("pairing: %w", err)
	}
	return len(added), nil
}

// RevokeAll forgets every token and turns away every waiting phone.
func (r *Registry) RevokeAll() error {
	r.mu.Lock()
	clear(r.tokens)
	ws := make([]*waiter, 0, len(r.waiters))
	for w := range r.waiters {
		w.err = ErrRevoked
		ws = append(ws, w)
	}
	clear(r.waiters)
	err := r.persistLocked()
	r.mu.Unlock()
	for _, w := range ws {
		close(w.done)
	}
	if len(ws) > 0 {
		r.notify(0)
	}
	if err != nil {
		return fmt.Errorf("pairing: %w", err)
	}
	return nil
}

// Revoke forgets the one paired phone whose token hashes to hash: its LAN
// token and every remote credential naming the hash stop working at once
// (Authorize and AuthorizeHash look the registry up on every use). The
// list is saved first; if that fails, the phone stays paired.
func (r *Registry) Revoke(hash string) (store.Token, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	t, ok := r.tokens[hash]
	if !ok {
		return store.Token{}, ErrNoSuchPhone
	}
	delete(r.tokens, hash)
	if err := r.persistLocked(); err != nil {
		r.tokens[hash] = t
		return store.Token{}, fmt.Errorf("pairing: %w", err)
	}
	return t, nil
}

// Tokens returns the stored tokens (hashes only).
func (r *Registry) Tokens() []store.Token {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.listLocked()
}

func (r *Registry) listLocked() []store.Token {
	out := make([]store.Token, 0, len(r.tokens))
	for _, t := range r.tokens {
		out = append(out, t)
	}
	// A stable order keeps the file diffable and the writes deterministic.
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Paired.Equal(out[j].Paired) {
			return out[i].Paired.Before(out[j].Paired)
		}
		return out[i].Hash < out[j].Hash
	})
	return out
}

func (r *Registry) persistLocked() error {
	if r.save == nil {
		return nil
	}
	return r.save(r.listLocked())
}

func newToken() (string, error) {
	b := make([]byte, tokenBytes)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("pairing: random token: %w", err)
	}
	// URL-safe, so it travels in a query string (/ws/video?token=...) as is.
	return base64.RawURLEncoding.EncodeToString(b), nil
}
