package hub

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callbox/callbox/peer/hub/store"
	"github.com/callbox/callbox/peer/proto"
)

// fakeSession records what the hub sends to one box.
type fakeSession struct {
	mu  sync.Mutex
	got []proto.Message
}

func (f *fakeSession) session() *Session {
	return &Session{Send: func(m proto.Message) error {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.got = append(f.got, m)
		return nil
	}, Close: func() {}}
}

func (f *fakeSession) last(t *testing.T, typ string) proto.Message {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := len(f.got) - 1; i >= 0; i-- {
		if f.got[i].Type == typ {
			return f.got[i]
		}
	}
	t.Fatalf("no %s message among %d", typ, len(f.got))
	return proto.Message{}
}

func nonce(t *testing.T) []byte {
	t.Helper()
	b := make([]byte, proto.NonceSize)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func newTestHub(t *testing.T, now func() time.Time) *Hub {
	t.Helper()
	return newTestHubOn(t, now, filepath.Join(t.TempDir(), "hub.db"))
}

// newTestHubOn is a hub on the SQLite store at path.
func newTestHubOn(t *testing.T, now func() time.Time, path string) *Hub {
	t.Helper()
	st, err := store.Open(context.Background(), "sqlite:"+path)
	if err != nil {
		t.Fatal(err)
	}
	h, err := New(Config{
		Store:      st,
		STUNURLs:   []string{"stun:198.51.100.10:3478"},
		TURNURLs:   []string{"turn:198.51.100.10:3478?transport=udp"},
		TURNSecret: "s3cret",
		Now:        now,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close(); st.Close() })
	return h
}

func mustIdentity(t *testing.T) *proto.Identity {
	t.Helper()
	id, err := proto.NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func register(t *testing.T, h *Hub, id *proto.Identity, f *fakeSession) *Session {
	t.Helper()
	s := f.session()
	hello := proto.NewHello(id, "box", h.cfg.Now().UnixMilli(), nonce(t))
	w, err := h.Register(s, &hello)
	if err != nil {
		t.Fatalf("register %s: %v", id, err)
	}
	if w.Type != proto.TypeWelcome || w.Box != id.ID {
		t.Fatalf("welcome = %+v", w)
	}
	return s
}

func TestHubRejectsReplayedRegistration(t *testing.T) {
	h := newTestHub(t, time.Now)
	id := mustIdentity(t)
	hello := proto.NewHello(id, "kitchen", time.Now().UnixMilli(), nonce(t))
	if _, err := h.Register((&fakeSession{}).session(), &hello); err != nil {
		t.Fatalf("first registration: %v", err)
	}
	replay := hello // an attacker who captured the message sends it again
	if _, err := h.Register((&fakeSession{}).session(), &replay); !errors.Is(err, proto.ErrReplay) {
		t.Fatalf("replayed registration: err = %v, want ErrReplay", err)
	}
	// A correctly signed hello that is too old is refused even with a fresh nonce.
	old := proto.NewHello(id, "kitchen", time.Now().Add(-10*time.Minute).UnixMilli(), nonce(t))
	if _, err := h.Register((&fakeSession{}).session(), &old); !errors.Is(err, proto.ErrReplay) {
		t.Fatalf("stale registration: err = %v, want ErrReplay", err)
	}
	future := proto.NewHello(id, "kitchen", time.Now().Add(10*time.Minute).UnixMilli(), nonce(t))
	if _, err := h.Register((&fakeSession{}).session(), &future); !errors.Is(err, proto.ErrReplay) {
		t.Fatalf("future registration: err = %v, want ErrReplay", err)
	}
}

func TestHubRejectsForgedIdentity(t *testing.T) {
	h := newTestHub(t, time.Now)
	victim, attacker := mustIdentity(t), mustIdentity(t)

	// 1. The attacker claims the victim's ID with its own key: ID and key disagree.
	m := proto.NewHello(attacker, "x", time.Now().UnixMilli(), nonce(t))
	m.Box = victim.ID
	if _, err := h.Register((&fakeSession{}).session(), &m); !errors.Is(err, proto.ErrBadSignature) {
		t.Fatalf("ID of another key: err = %v, want ErrBadSignature", err)
	}
	// 2. The attacker presents the victim's key and ID but can only sign with its own key.
	m = proto.NewHello(attacker, "x", time.Now().UnixMilli(), nonce(t))
	m.Box, m.Key = victim.ID, victim.Pub
	if _, err := h.Register((&fakeSession{}).session(), &m); !errors.Is(err, proto.ErrBadSignature) {
		t.Fatalf("victim's key, attacker's signature: err = %v, want ErrBadSignature", err)
	}
	// 3. A genuine hello with a tampered field (the name) fails too.
	m = proto.NewHello(victim, "kitchen", time.Now().UnixMilli(), nonce(t))
	m.Name = "evil"
	if _, err := h.Register((&fakeSession{}).session(), &m); !errors.Is(err, proto.ErrBadSignature) {
		t.Fatalf("tampered hello: err = %v, want ErrBadSignature", err)
	}
	// The forgeries did not burn the nonce: the genuine message still registers.
	m.Name = "kitchen"
	if _, err := h.Register((&fakeSession{}).session(), &m); err != nil {
		t.Fatalf("genuine hello after forgeries: %v", err)
	}
}

// pairByCode runs the whole pairing between the box of sa (which shows
// the code) and the box of sb (which enters it), as their clients would,
// and returns the code.
func pairByCode(t *testing.T, h *Hub, sa *Session, fa *fakeSession, sb *Session, fb *fakeSession) string {
	t.Helper()
	if err := h.Handle(sa, &proto.Message{Type: proto.TypePairCode}); err != nil {
		t.Fatal(err)
	}
	code := fa.last(t, proto.TypePairCode).Code
	if !proto.ValidPairCode(code) {
		t.Fatalf("code %q", code)
	}
	nb := nonce(t)
	rb, err := h.store.GetBox(context.Background(), sb.Box)
	if err != nil {
		t.Fatal(err)
	}
	kb := rb.Key
	if err := h.Handle(sb, &proto.Message{Type: proto.TypePairJoin, Code: code, Commit: proto.PairCommit(kb, nb)}); err != nil {
		t.Fatalf("join: %v", err)
	}
	req := fa.last(t, proto.TypePairRequest)
	if req.From != sb.Box || req.Peers[0].ID != sb.Box {
		t.Fatalf("pair request %+v", req)
	}
	if h.Paired(sa.Box, sb.Box) {
		t.Fatal("a right code paired the boxes before their owners confirmed")
	}
	na := nonce(t)
	if err := h.Handle(sa, &proto.Message{Type: proto.TypePairNonce, To: sb.Box, Nonce: na}); err != nil {
		t.Fatal(err)
	}
	if m := fb.last(t, proto.TypePairNonce); m.From != sa.Box || m.Peers[0].ID != sa.Box {
		t.Fatalf("nonce forwarded as %+v", m)
	}
	if err := h.Handle(sb, &proto.Message{Type: proto.TypePairReveal, To: sa.Box, Nonce: nb}); err != nil {
		t.Fatal(err)
	}
	if m := fa.last(t, proto.TypePairReveal); !proto.CheckCommit(req.Commit, req.Peers[0].Key, m.Nonce) {
		t.Fatal("the revealed nonce does not match the commitment")
	}
	if err := h.Handle(sa, &proto.Message{Type: proto.TypePairConfirm, To: sb.Box}); err != nil {
		t.Fatal(err)
	}
	if h.Paired(sa.Box, sb.Box) {
		t.Fatal("paired with one confirmation")
	}
	if err := h.Handle(sb, &proto.Message{Type: proto.TypePairConfirm, To: sa.Box}); err != nil {
		t.Fatal(err)
	}
	if !h.Paired(sa.Box, sb.Box) {
		t.Fatal("not paired after both confirmations")
	}
	return code
}

func TestHubOnlyConnectsPairedBoxes(t *testing.T) {
	h := newTestHub(t, time.Now)
	a, b, c := mustIdentity(t), mustIdentity(t), mustIdentity(t)
	var fa, fb, fc fakeSession
	sa, sb, sc := register(t, h, a, &fa), register(t, h, b, &fb), register(t, h, c, &fc)

	offer := proto.Message{Type: proto.TypeSignal, To: b.ID, Call: "c1", Kind: proto.KindOffer, SDP: "v=0\r\n"}
	proto.SignSignal(a, &offer)
	if err := h.Handle(sa, &offer); !errors.Is(err, proto.ErrNotPaired) {
		t.Fatalf("unpaired signal: err = %v, want ErrNotPaired", err)
	}
	// A wrong code is refused.
	if err := h.Handle(sb, &proto.Message{Type: proto.TypePairJoin, Code: "0000000000", Commit: make([]byte, proto.CommitSize)}); !errors.Is(err, proto.ErrBadCode) {
		t.Fatalf("wrong code: err = %v", err)
	}
	code := pairByCode(t, h, sa, &fa, sb, &fb)
	if p := fa.last(t, proto.TypePaired).Peers[0]; p.ID != b.ID {
		t.Fatalf("a paired with %s, want %s", p.ID, b.ID)
	}
	if p := fb.last(t, proto.TypePaired).Peers[0]; p.ID != a.ID {
		t.Fatalf("b paired with %s, want %s", p.ID, a.ID)
	}
	// A used code cannot pair a third box.
	if err := h.Handle(sc, &proto.Message{Type: proto.TypePairJoin, Code: code, Commit: make([]byte, proto.CommitSize)}); !errors.Is(err, proto.ErrBadCode) {
		t.Fatalf("reused code: err = %v", err)
	}

	if err := h.Handle(sa, &offer); err != nil {
		t.Fatalf("paired signal: %v", err)
	}
	fwd := fb.last(t, proto.TypeSignal)
	if fwd.From != a.ID || fwd.SDP != offer.SDP {
		t.Fatalf("forwarded %+v", fwd)
	}
	if err := proto.VerifySignal(a.Pub, &fwd); err != nil {
		t.Fatalf("forwarded signal does not verify: %v", err)
	}
	// c, unpaired with both, can reach neither.
	for _, to := range []string{a.ID, b.ID} {
		m := proto.Message{Type: proto.TypeSignal, To: to, Call: "c2", Kind: proto.KindRing}
		proto.SignSignal(c, &m)
		if err := h.Handle(sc, &m); !errors.Is(err, proto.ErrNotPaired) {
			t.Fatalf("c -> %s: err = %v, want ErrNotPaired", to, err)
		}
	}
	// The pairing is persistent: a new hub on a new connection to the same
	// store file knows it.
	path := filepath.Join(t.TempDir(), "restart.db")
	h1 := newTestHubOn(t, time.Now, path)
	register(t, h1, a, &fakeSession{})
	register(t, h1, b, &fakeSession{})
	if err := h1.pair(a.ID, b.ID); err != nil {
		t.Fatal(err)
	}
	h1.Close()
	h2 := newTestHubOn(t, time.Now, path)
	if !h2.Paired(a.ID, b.ID) || h2.Paired(a.ID, c.ID) {
		t.Fatal("pairs not restored from the state file")
	}
}

// A right code starts a pairing that holds only once both owners confirm
// within the code's lifetime; the steps go in order and only between the
// two boxes of that pairing.
func TestHubPairingNeedsBothConfirmations(t *testing.T) {
	now := time.Now()
	h := newTestHub(t, func() time.Time { return now })
	a, b, c := mustIdentity(t), mustIdentity(t), mustIdentity(t)
	var fa, fb, fc fakeSession
	sa, sb, sc := register(t, h, a, &fa), register(t, h, b, &fb), register(t, h, c, &fc)
	if err := h.Handle(sa, &proto.Message{Type: proto.TypePairCode}); err != nil {
		t.Fatal(err)
	}
	code := fa.last(t, proto.TypePairCode).Code
	if err := h.Handle(sb, &proto.Message{Type: proto.TypePairJoin, Code: code, Commit: make([]byte, proto.CommitSize)}); err != nil {
		t.Fatal(err)
	}
	// Out of turn: confirm before the nonces, a reveal before the owner's
	// nonce, a third box stepping in.
	if err := h.Handle(sb, &proto.Message{Type: proto.TypePairConfirm, To: a.ID}); err == nil {
		t.Fatal("confirmation before the SAS could be shown accepted")
	}
	if err := h.Handle(sb, &proto.Message{Type: proto.TypePairReveal, To: a.ID, Nonce: nonce(t)}); err == nil {
		t.Fatal("reveal before the owner's nonce accepted")
	}
	if err := h.Handle(sc, &proto.Message{Type: proto.TypePairNonce, To: b.ID, Nonce: nonce(t)}); !errors.Is(err, proto.ErrNotPaired) {
		t.Fatalf("a third box's nonce: %v", err)
	}
	if err := h.Handle(sa, &proto.Message{Type: proto.TypePairNonce, To: b.ID, Nonce: nonce(t)}); err != nil {
		t.Fatal(err)
	}
	if err := h.Handle(sb, &proto.Message{Type: proto.TypePairReveal, To: a.ID, Nonce: nonce(t)}); err != nil {
		t.Fatal(err)
	}
	if err := h.Handle(sa, &proto.Message{Type: proto.TypePairConfirm, To: b.ID}); err != nil {
		t.Fatal(err)
	}
	if m := fb.last(t, proto.TypePairConfirm); m.From != a.ID {
		t.Fatalf("b not told that a confirmed: %+v", m)
	}
	// b's owner never confirms: past the code's lifetime the pairing is
	// dropped (each box was given the deadline and gives up by itself),
	// and a late confirmation pairs nothing.
	now = now.Add(h.cfg.PairCodeTTL + time.Second)
	if err := h.Handle(sb, &proto.Message{Type: proto.TypePairConfirm, To: a.ID}); err == nil {
		t.Fatal("a confirmation after the code's lifetime accepted")
	}
	if h.Paired(a.ID, b.ID) {
		t.Fatal("paired without both confirmations in time")
	}
	if m := fb.last(t, proto.TypePairNonce); m.Expires != now.Add(-time.Second).Unix() {
		t.Fatalf("b was told the deadline %d, want %d", m.Expires, now.Add(-time.Second).Unix())
	}
}

// Item 8 of the security review: pair_button paired any two boxes in the
// world that pressed within 15 s. It is withdrawn.
func TestHubRefusesButtonPairing(t *testing.T) {
	h := newTestHub(t, time.Now)
	a, b := mustIdentity(t), mustIdentity(t)
	var fa, fb fakeSession
	sa, sb := register(t, h, a, &fa), register(t, h, b, &fb)
	for _, s := range []*Session{sa, sb} {
		if err := h.Handle(s, &proto.Message{Type: proto.TypePairButton}); err == nil || !strings.Contains(err.Error(), "code") {
			t.Fatalf("pair_button: err = %v, want a refusal pointing to codes", err)
		}
	}
	if h.Paired(a.ID, b.ID) {
		t.Fatal("two button presses paired two boxes")
	}
}

func TestHubLimitsCodeGuessingPerConnection(t *testing.T) {
	h := newTestHub(t, time.Now)
	a := mustIdentity(t)
	var fa fakeSession
	sa := register(t, h, a, &fa)
	var err error
	for i := 0; i < h.cfg.Limits.SessionTries; i++ {
		err = h.Handle(sa, &proto.Message{Type: proto.TypePairJoin, Code: "1234567890", Commit: make([]byte, proto.CommitSize)})
	}
	if !errors.Is(err, errTooManyTries) {
		t.Fatalf("after %d wrong codes: err = %v", h.cfg.Limits.SessionTries, err)
	}
}

// TURN credentials go to boxes with a pairing only (item 7 of the security
// review: a never-paired identity got 24 h credentials and a working
// relay), and last an hour: a box asks for fresh ones (TypeICE).
func TestHubTURNCredentialsOnlyForPairedBoxes(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	h := newTestHub(t, func() time.Time { return now })
	a, b := mustIdentity(t), mustIdentity(t)
	var fa, fb fakeSession
	turnOf := func(ice []proto.ICEServer) *proto.ICEServer {
		for i := range ice {
			if strings.HasPrefix(ice[i].URLs[0], "turn:") {
				return &ice[i]
			}
		}
		return nil
	}
	sa := register(t, h, a, &fa)
	if w := fa.last(t, proto.TypeWelcome); turnOf(w.ICE) != nil || len(w.ICE) != 1 {
		t.Fatalf("an unpaired box got %+v", w.ICE)
	}
	if err := h.Handle(sa, &proto.Message{Type: proto.TypeICE}); err != nil {
		t.Fatal(err)
	}
	if turnOf(fa.last(t, proto.TypeICE).ICE) != nil {
		t.Fatal("an unpaired box got TURN credentials on request")
	}
	sb := register(t, h, b, &fb)
	pairByCode(t, h, sa, &fa, sb, &fb)
	turn := turnOf(fa.last(t, proto.TypePaired).ICE)
	if turn == nil {
		t.Fatal("no TURN credentials with the pairing")
	}
	now = now.Add(40 * time.Minute)
	if err := h.Handle(sa, &proto.Message{Type: proto.TypeICE}); err != nil {
		t.Fatal(err)
	}
	turn = turnOf(fa.last(t, proto.TypeICE).ICE)
	if turn == nil {
		t.Fatal("no TURN credentials on request")
	}
	wantUser := fmt.Sprintf("%d:%s", now.Add(time.Hour).Unix(), a.ID)
	if turn.Username != wantUser {
		t.Fatalf("username %q, want %q (an hour from now)", turn.Username, wantUser)
	}
	// The construction itself is checked against an independent
	// computation in TestTURNCredentialsKnownAnswer.
	_, pw := TURNCredentials("s3cret", a.ID, now.Add(time.Hour))
	if turn.Credential != pw {
		t.Fatalf("credential %q, want %q", turn.Credential, pw)
	}
	// A welcome after a reconnection carries them too.
	register(t, h, a, &fa)
	if turnOf(fa.last(t, proto.TypeWelcome).ICE) == nil {
		t.Fatal("no TURN credentials in a paired box's welcome")
	}
}

// Boxes that never paired are forgotten after Limits.UnpairedTTL without a
// registration; paired ones stay.
func TestHubForgetsNeverPairedBoxes(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	h := newTestHub(t, func() time.Time { return now })
	a, b := mustIdentity(t), mustIdentity(t)
	var fa, fb fakeSession
	sa, sb := register(t, h, a, &fa), register(t, h, b, &fb)
	pairByCode(t, h, sa, &fa, sb, &fb)
	for range 50 {
		s, _ := registerAt(t, h, "203.0.113.5")
		h.Unregister(s)
		now = now.Add(6 * time.Minute) // past the per-address limit on new identities
	}
	h.Unregister(sa)
	h.Unregister(sb)
	if n := h.Stats().Boxes; n != 52 {
		t.Fatalf("%d boxes recorded, want 52", n)
	}
	now = now.Add(h.cfg.Limits.UnpairedTTL + time.Hour)
	registerAt(t, h, "198.51.100.1")
	h.expireUnpaired() // what the minute's sweep does
	if n := h.Stats().Boxes; n != 3 {
		t.Fatalf("%d boxes after the never-paired ones expired, want 3 (a, b, the new one)", n)
	}
	if !h.Paired(a.ID, b.ID) {
		t.Fatal("the expiry dropped a pair")
	}
}

// New identities from one address are limited (a record each); boxes the
// hub knows register again from anywhere.
func TestHubLimitsNewBoxesPerAddress(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	h := newTestHub(t, func() time.Time { return now })
	var known *proto.Identity
	var err error
	n := 0
	for ; n < 100; n++ {
		id := mustIdentity(t)
		s := (&fakeSession{}).session()
		s.Addr = "203.0.113.5"
		hello := proto.NewHello(id, "", now.UnixMilli(), nonce(t))
		if _, err = h.Register(s, &hello); err != nil {
			break
		}
		known = id
	}
	if !errors.Is(err, ErrLimited) || n != h.cfg.Limits.AddrNewBoxes {
		t.Fatalf("new box %d from one address: %v; want ErrLimited after %d", n, err, h.cfg.Limits.AddrNewBoxes)
	}
	s := (&fakeSession{}).session()
	s.Addr = "203.0.113.5"
	hello := proto.NewHello(known, "", now.UnixMilli(), nonce(t))
	if _, err := h.Register(s, &hello); err != nil {
		t.Fatalf("a known box from the limited address: %v", err)
	}
	registerAt(t, h, "198.51.100.1")
}

const turnKnownAnswer = "JHB+ma78tkliRYmKj8HsE260l14="

func TestTURNCredentialsKnownAnswer(t *testing.T) {
	// turnKnownAnswer was computed outside Go, with Python:
	// base64.b64encode(hmac.new(b"secret", b"1700000000:abcdefghijklmnop", hashlib.sha1).digest())
	u, p := TURNCredentials("secret", "abcdefghijklmnop", time.Unix(1700000000, 0))
	if u != "1700000000:abcdefghijklmnop" {
		t.Fatalf("username %q", u)
	}
	if p != turnKnownAnswer {
		t.Fatalf("password %q, want %q", p, turnKnownAnswer)
	}
}

func TestRelayRefusesInternalPeers(t *testing.T) {
	for _, c := range []struct {
		ip   string
		want bool
	}{
		{"198.51.100.2", true}, {"203.0.113.9", true}, {"8.8.8.8", true},
		{"127.0.0.1", false}, {"10.201.1.2", false}, {"192.168.1.1", false}, {"172.16.0.1", false},
		{"169.254.1.1", false}, {"224.0.0.1", false}, {"0.0.0.0", false}, {"::1", false}, {"fd00::1", false},
	} {
		if got := relayPeerAllowed(nil, net.ParseIP(c.ip)); got != c.want {
			t.Errorf("relay to %s allowed=%v, want %v", c.ip, got, c.want)
		}
	}
}

func testenvShort(t *testing.T) {
	if testing.Short() {
		t.Skip("media through the hub takes seconds; skipped with -short")
	}
}

// TestHubDrain: Drain turns /readyz to 503, refuses new registrations and
// tells every connected box to reconnect elsewhere; /metrics counts what
// happened.
func TestHubDrain(t *testing.T) {
	h := newTestHub(t, time.Now)
	ready := httptest.NewRecorder()
	h.Readyz().ServeHTTP(ready, httptest.NewRequest("GET", "/readyz", nil))
	if ready.Code != 200 {
		t.Fatalf("readyz before drain: %d %s", ready.Code, ready.Body)
	}
	drained := make(chan string, 3)
	for i := 0; i < 3; i++ {
		s := register(t, h, mustIdentity(t), &fakeSession{})
		box := s.Box
		s.drain = func() { drained <- box }
	}
	h.Drain(context.Background())
	if len(drained) != 3 {
		t.Fatalf("%d of 3 boxes told to reconnect", len(drained))
	}
	ready = httptest.NewRecorder()
	h.Readyz().ServeHTTP(ready, httptest.NewRequest("GET", "/readyz", nil))
	if ready.Code != http.StatusServiceUnavailable {
		t.Fatalf("readyz while draining: %d", ready.Code)
	}
	id := mustIdentity(t)
	hello := proto.NewHello(id, "late", time.Now().UnixMilli(), nonce(t))
	if _, err := h.Register((&fakeSession{}).session(), &hello); !errors.Is(err, errDraining) {
		t.Fatalf("registration while draining: %v", err)
	}
	m := httptest.NewRecorder()
	h.Metrics().ServeHTTP(m, httptest.NewRequest("GET", "/metrics", nil))
	for _, want := range []string{"callbox_hub_registrations_total 3", "callbox_hub_boxes_online 3",
		// Unpaired boxes get no TURN credentials (docs/security.md).
		"callbox_hub_turn_credentials_total 0", `callbox_hub_store_seconds_count{op="put_box"} 3`} {
		if !strings.Contains(m.Body.String(), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// A factory reset: the box says forget; the hub deletes its record and its
// pairs, tells its paired box, answers, and refuses signals between the two
// from then on.
func TestHubForgetOnFactoryReset(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	h := newTestHub(t, func() time.Time { return now })
	a, b := mustIdentity(t), mustIdentity(t)
	var fa, fb fakeSession
	sa, sb := register(t, h, a, &fa), register(t, h, b, &fb)
	pairByCode(t, h, sa, &fa, sb, &fb)
	if err := h.Handle(sa, &proto.Message{Type: proto.TypeForget}); err != nil {
		t.Fatal(err)
	}
	fa.last(t, proto.TypeForget) // the answer the box waits for
	un := fb.last(t, proto.TypeUnpaired)
	if len(un.Peers) != 1 || un.Peers[0].ID != a.ID || !bytes.Equal(un.Peers[0].Key, a.Pub) {
		t.Fatalf("box B was told %+v, want box A", un.Peers)
	}
	if h.Paired(a.ID, b.ID) {
		t.Fatal("the pair survived the forget")
	}
	if n := h.Stats().Boxes; n != 1 {
		t.Fatalf("%d boxes recorded after A forgot itself, want 1", n)
	}
	sig := proto.Message{Type: proto.TypeSignal, To: a.ID, Call: "c1", Kind: proto.KindRing}
	proto.SignSignal(b, &sig)
	if err := h.Handle(sb, &sig); !errors.Is(err, proto.ErrNotPaired) {
		t.Fatalf("B's signal to the forgotten box: %v, want ErrNotPaired", err)
	}
}
