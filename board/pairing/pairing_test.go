package pairing

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/callbox/callbox/board/store"
)

func newStore(t *testing.T) *store.Store {
	t.Helper()
	s, err := store.Open(filepath.Join(t.TempDir(), "data"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func saver(s *store.Store) func([]store.Token) error {
	return func(toks []store.Token) error { return s.Save(store.State{Tokens: toks}) }
}

// waitWaiting polls until n phones wait (Request runs in a goroutine).
func waitWaiting(t *testing.T, r *Registry, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for r.Waiting() != n {
		if time.Now().After(deadline) {
			t.Fatalf("waiting = %d, want %d", r.Waiting(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestApprovePersistsAndAuthorizes(t *testing.T) {
	st := newStore(t)
	var mu sync.Mutex
	var seen []int
	r := New(Options{Save: saver(st), OnWaiting: func(n int) { mu.Lock(); seen = append(seen, n); mu.Unlock() }})
	if err := r.Authorize(""); !errors.Is(err, ErrUnpaired) {
		t.Fatalf("empty token: %v", err)
	}
	type result struct {
		tok string
		err error
	}
	res := make(chan result, 2)
	for i := 0; i < 2; i++ {
		go func() {
			tok, err := r.Request(context.Background(), "phone")
			res <- result{tok, err}
		}()
	}
	waitWaiting(t, r, 2)
	n, err := r.ApproveAll()
	if err != nil || n != 2 {
		t.Fatalf("ApproveAll = %d, %v", n, err)
	}
	toks := map[string]bool{}
	for i := 0; i < 2; i++ {
		x := <-res
		if x.err != nil {
			t.Fatal(x.err)
		}
		if err := r.Authorize(x.tok); err != nil {
			t.Fatalf("approved token refused: %v", err)
		}
		toks[x.tok] = true
	}
	if len(toks) != 2 {
		t.Fatal("two phones got the same token")
	}
	if err := r.Authorize("not-a-token"); !errors.Is(err, ErrUnpaired) {
		t.Fatalf("unknown token: %v", err)
	}
	mu.Lock()
	if len(seen) < 2 || seen[len(seen)-1] != 0 {
		t.Errorf("OnWaiting saw %v, want counts ending in 0", seen)
	}
	mu.Unlock()

	// A restart: the tokens come back from the store, as hashes only.
	loaded, err := st.Load()
	if err != nil {
		t.Fatal(err)
	}
	r2 := New(Options{Tokens: loaded.Tokens, Save: saver(st)})
	for tok := range toks {
		if err := r2.Authorize(tok); err != nil {
			t.Fatalf("token lost across restart: %v", err)
		}
		for _, s := range loaded.Tokens {
			if s.Hash == tok {
				t.Fatal("the token itself was stored")
			}
		}
	}

	// Factory reset.
	if err := r2.RevokeAll(); err != nil {
		t.Fatal(err)
	}
	for tok := range toks {
		if err := r2.Authorize(tok); !errors.Is(err, ErrUnpaired) {
			t.Fatalf("revoked token accepted: %v", err)
		}
	}
	loaded, _ = st.Load()
	if len(loaded.Tokens) != 0 {
		t.Fatalf("reset left %d tokens on disk", len(loaded.Tokens))
	}
}

func TestRequestTimesOutAndLeaves(t *testing.T) {
	r := New(Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err := r.Request(ctx, "")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
	if r.Waiting() != 0 {
		t.Fatal("timed-out phone still waiting")
	}
	if n, _ := r.ApproveAll(); n != 0 {
		t.Fatalf("approved %d after the phone left", n)
	}
}

func TestRevokeTurnsAwayWaiters(t *testing.T) {
	r := New(Options{})
	errc := make(chan error, 1)
	go func() { _, err := r.Request(context.Background(), ""); errc <- err }()
	waitWaiting(t, r, 1)
	if err := r.RevokeAll(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; !errors.Is(err, ErrRevoked) {
		t.Fatalf("err = %v", err)
	}
}

func TestTooManyWaiting(t *testing.T) {
	r := New(Options{})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i := 0; i < MaxWaiting; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); r.Request(ctx, "") }()
	}
	waitWaiting(t, r, MaxWaiting)
	if _, err := r.Request(ctx, ""); !errors.Is(err, ErrTooMany) {
		t.Fatalf("err = %v", err)
	}
	cancel()
	wg.Wait()
}

func TestSaveFailureGivesNoToken(t *testing.T) {
	fail := errors.New("disk full")
	r := New(Options{Save: func([]store.Token) error { return fail }})
	errc := make(chan error, 1)
	go func() { _, err := r.Request(context.Background(), ""); errc <- err }()
	waitWaiting(t, r, 1)
	if _, err := r.ApproveAll(); !errors.Is(err, fail) {
		t.Fatalf("ApproveAll err = %v", err)
	}
	if err := <-errc; !errors.Is(err, fail) {
		t.Fatalf("phone got %v, want the save error", err)
	}
	if r.Paired() != 0 {
		t.Fatal("an unsaved token stayed valid")
	}
}

func TestOpenMode(t *testing.T) {
	r := New(Options{Open: true})
	if err := r.Authorize(""); err != nil {
		t.Fatalf("open mode refused: %v", err)
	}
	tok, err := r.Request(context.Background(), "")
	if err != nil || tok == "" {
		t.Fatalf("open request: %q %v", tok, err)
	}
	if r.Paired() != 0 {
		t.Fatal("open mode stored a token")
	}
}

// TestWaitingPerAddr (issue 12): one address holds at most
// MaxWaitingPerAddr waiting places; another address still gets one.
func TestWaitingPerAddr(t *testing.T) {
	r := New(Options{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	for range MaxWaitingPerAddr {
		wg.Add(1)
		go func() { defer wg.Done(); r.RequestFrom(ctx, "", "192.0.2.66") }()
	}
	deadline := time.Now().Add(5 * time.Second)
	for r.Waiting() != MaxWaitingPerAddr {
		if time.Now().After(deadline) {
			t.Fatal("requests never waited")
		}
		time.Sleep(time.Millisecond)
	}
	if _, err := r.RequestFrom(ctx, "", "192.0.2.66"); !errors.Is(err, ErrTooMany) {
		t.Fatalf("one more from the same address: %v, want ErrTooMany", err)
	}
	owner := make(chan error, 1)
	go func() { _, err := r.RequestFrom(ctx, "owner", "192.0.2.7"); owner <- err }()
	for r.Waiting() != MaxWaitingPerAddr+1 {
		select {
		case err := <-owner:
			t.Fatalf("the owner's phone was turned away: %v", err)
		default:
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	wg.Wait()
}

// TestAuthorizeHashRevoked: a remote phone's credential names its token's
// hash; the hash is admitted while the token is paired, never in open mode
// for an unknown token, and not after a factory reset.
func TestAuthorizeHashRevoked(t *testing.T) {
	r := New(Options{Save: saver(newStore(t))})
	res := make(chan string, 1)
	go func() { tok, _ := r.Request(context.Background(), "phone"); res <- tok }()
	waitWaiting(t, r, 1)
	if _, err := r.ApproveAll(); err != nil {
		t.Fatal(err)
	}
	tok := <-res
	if err := r.AuthorizeHash(Hash(tok)); err != nil {
		t.Fatalf("paired token's hash refused: %v", err)
	}
	if err := r.AuthorizeHash(Hash("another")); !errors.Is(err, ErrUnpaired) {
		t.Fatalf("unknown hash: %v", err)
	}
	if err := r.AuthorizeHash(tok); !errors.Is(err, ErrUnpaired) {
		t.Fatalf("the token itself in place of its hash: %v", err)
	}
	if err := r.RevokeAll(); err != nil {
		t.Fatal(err)
	}
	if err := r.AuthorizeHash(Hash(tok)); !errors.Is(err, ErrUnpaired) {
		t.Fatalf("after a factory reset: %v", err)
	}
	if err := New(Options{Open: true}).AuthorizeHash(Hash(tok)); !errors.Is(err, ErrUnpaired) {
		t.Fatalf("open mode admitted an unknown hash: %v", err)
	}
}

// TestRevokeOne: revoking one phone stops its token and its hash (a remote
// credential) at once and survives a restart; the other phone stays
// paired; a failed save leaves the phone paired.
func TestRevokeOne(t *testing.T) {
	st := newStore(t)
	r := New(Options{Save: saver(st)})
	toks := make(chan string, 2)
	for _, n := range []string{"alice", "bob"} {
		go func() { tok, _ := r.Request(context.Background(), n); toks <- tok }()
	}
	waitWaiting(t, r, 2)
	if _, err := r.ApproveAll(); err != nil {
		t.Fatal(err)
	}
	a, b := <-toks, <-toks
	got, err := r.Revoke(Hash(a))
	if err != nil || got.Hash != Hash(a) {
		t.Fatalf("revoke: %+v, %v", got, err)
	}
	if err := r.Authorize(a); !errors.Is(err, ErrUnpaired) {
		t.Errorf("revoked token: %v", err)
	}
	if err := r.AuthorizeHash(Hash(a)); !errors.Is(err, ErrUnpaired) {
		t.Errorf("revoked token's hash: %v", err)
	}
	if r.Authorize(b) != nil || r.AuthorizeHash(Hash(b)) != nil {
		t.Error("the other phone lost its pairing")
	}
	if _, err := r.Revoke(Hash(a)); !errors.Is(err, ErrNoSuchPhone) {
		t.Errorf("second revoke: %v", err)
	}
	s, err := st.Load()
	if err != nil || len(s.Tokens) != 1 || s.Tokens[0].Hash != Hash(b) {
		t.Fatalf("stored after revoke: %+v, %v", s.Tokens, err)
	}
	failing := New(Options{Tokens: s.Tokens, Save: func([]store.Token) error { return errors.New("disk full") }})
	if _, err := failing.Revoke(Hash(b)); err == nil || failing.Authorize(b) != nil {
		t.Errorf("a revoke whose save failed: %v; the phone must stay paired", err)
	}
}
