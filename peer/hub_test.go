package peer

import (
	"context"
	"crypto/rand"
	"errors"
	"net"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeSession records what the hub sends to one box.
type fakeSession struct {
	mu  sync.Mutex
	got []Message
}

func (f *fakeSession) session() *Session {
	return &Session{Send: func(m Message) error {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.got = append(f.got, m)
		return nil
	}, Close: func() {}}
}

func (f *fakeSession) last(t *testing.T, typ string) Message {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := len(f.got) - 1; i >= 0; i-- {
		if f.got[i].Type == typ {
			return f.got[i]
		}
	}
	t.Fatalf("no %s message among %d", typ, len(f.got))
	return Message{}
}

func nonce(t *testing.T) []byte {
	t.Helper()
	b := make([]byte, nonceSize)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func newTestHub(t *testing.T, now func() time.Time) *Hub {
	t.Helper()
	h, err := NewHub(HubConfig{
		StatePath:  filepath.Join(t.TempDir(), "hub.json"),
		STUNURLs:   []string{"stun:198.51.100.10:3478"},
		TURNURLs:   []string{"turn:198.51.100.10:3478?transport=udp"},
		TURNSecret: "s3cret",
		Now:        now,
	})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func mustIdentity(t *testing.T) *Identity {
	t.Helper()
	id, err := NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func register(t *testing.T, h *Hub, id *Identity, f *fakeSession) *Session {
	t.Helper()
	s := f.session()
	hello := NewHello(id, "box", time.Now().UnixMilli(), nonce(t))
	w, err := h.Register(s, &hello)
	if err != nil {
		t.Fatalf("register %s: %v", id, err)
	}
	if w.Type != TypeWelcome || w.Box != id.ID {
		t.Fatalf("welcome = %+v", w)
	}
	return s
}

func TestHubRejectsReplayedRegistration(t *testing.T) {
	h := newTestHub(t, time.Now)
	id := mustIdentity(t)
	hello := NewHello(id, "kitchen", time.Now().UnixMilli(), nonce(t))
	if _, err := h.Register((&fakeSession{}).session(), &hello); err != nil {
		t.Fatalf("first registration: %v", err)
	}
	replay := hello // an attacker who captured the message sends it again
	if _, err := h.Register((&fakeSession{}).session(), &replay); !errors.Is(err, ErrReplay) {
		t.Fatalf("replayed registration: err = %v, want ErrReplay", err)
	}
	// A correctly signed hello that is too old is refused even with a fresh nonce.
	old := NewHello(id, "kitchen", time.Now().Add(-10*time.Minute).UnixMilli(), nonce(t))
	if _, err := h.Register((&fakeSession{}).session(), &old); !errors.Is(err, ErrReplay) {
		t.Fatalf("stale registration: err = %v, want ErrReplay", err)
	}
	future := NewHello(id, "kitchen", time.Now().Add(10*time.Minute).UnixMilli(), nonce(t))
	if _, err := h.Register((&fakeSession{}).session(), &future); !errors.Is(err, ErrReplay) {
		t.Fatalf("future registration: err = %v, want ErrReplay", err)
	}
}

func TestHubRejectsForgedIdentity(t *testing.T) {
	h := newTestHub(t, time.Now)
	victim, attacker := mustIdentity(t), mustIdentity(t)

	// 1. The attacker claims the victim's ID with its own key: ID and key disagree.
	m := NewHello(attacker, "x", time.Now().UnixMilli(), nonce(t))
	m.Box = victim.ID
	if _, err := h.Register((&fakeSession{}).session(), &m); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("ID of another key: err = %v, want ErrBadSignature", err)
	}
	// 2. The attacker presents the victim's key and ID but can only sign with its own key.
	m = NewHello(attacker, "x", time.Now().UnixMilli(), nonce(t))
	m.Box, m.Key = victim.ID, victim.Pub
	if _, err := h.Register((&fakeSession{}).session(), &m); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("victim's key, attacker's signature: err = %v, want ErrBadSignature", err)
	}
	// 3. A genuine hello with a tampered field (the name) fails too.
	m = NewHello(victim, "kitchen", time.Now().UnixMilli(), nonce(t))
	m.Name = "evil"
	if _, err := h.Register((&fakeSession{}).session(), &m); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("tampered hello: err = %v, want ErrBadSignature", err)
	}
	// The forgeries did not burn the nonce: the genuine message still registers.
	m.Name = "kitchen"
	if _, err := h.Register((&fakeSession{}).session(), &m); err != nil {
		t.Fatalf("genuine hello after forgeries: %v", err)
	}
}

func TestHubOnlyConnectsPairedBoxes(t *testing.T) {
	h := newTestHub(t, time.Now)
	a, b, c := mustIdentity(t), mustIdentity(t), mustIdentity(t)
	var fa, fb, fc fakeSession
	sa, sb, sc := register(t, h, a, &fa), register(t, h, b, &fb), register(t, h, c, &fc)

	offer := Message{Type: TypeSignal, To: b.ID, Call: "c1", Kind: KindOffer, SDP: "v=0\r\n"}
	SignSignal(a, &offer)
	if err := h.Handle(sa, &offer); !errors.Is(err, ErrNotPaired) {
		t.Fatalf("unpaired signal: err = %v, want ErrNotPaired", err)
	}

	// Pair a and b by code.
	if err := h.Handle(sa, &Message{Type: TypePairCode}); err != nil {
		t.Fatal(err)
	}
	code := fa.last(t, TypePairCode).Code
	if !validCode(code) {
		t.Fatalf("code %q", code)
	}
	wrong := "000000"
	if wrong == code {
		wrong = "000001"
	}
	if err := h.Handle(sb, &Message{Type: TypePairJoin, Code: wrong}); !errors.Is(err, ErrBadCode) {
		t.Fatalf("wrong code: err = %v", err)
	}
	if err := h.Handle(sb, &Message{Type: TypePairJoin, Code: code}); err != nil {
		t.Fatalf("join: %v", err)
	}
	if p := fa.last(t, TypePaired).Peers[0]; p.ID != b.ID {
		t.Fatalf("a paired with %s, want %s", p.ID, b.ID)
	}
	if p := fb.last(t, TypePaired).Peers[0]; p.ID != a.ID {
		t.Fatalf("b paired with %s, want %s", p.ID, a.ID)
	}
	// A used code cannot pair a third box.
	if err := h.Handle(sc, &Message{Type: TypePairJoin, Code: code}); !errors.Is(err, ErrBadCode) {
		t.Fatalf("reused code: err = %v", err)
	}

	if err := h.Handle(sa, &offer); err != nil {
		t.Fatalf("paired signal: %v", err)
	}
	fwd := fb.last(t, TypeSignal)
	if fwd.From != a.ID || fwd.SDP != offer.SDP {
		t.Fatalf("forwarded %+v", fwd)
	}
	if err := VerifySignal(a.Pub, &fwd); err != nil {
		t.Fatalf("forwarded signal does not verify: %v", err)
	}
	// c, unpaired with both, can reach neither.
	for _, to := range []string{a.ID, b.ID} {
		m := Message{Type: TypeSignal, To: to, Call: "c2", Kind: KindRing}
		SignSignal(c, &m)
		if err := h.Handle(sc, &m); !errors.Is(err, ErrNotPaired) {
			t.Fatalf("c -> %s: err = %v, want ErrNotPaired", to, err)
		}
	}
	// The pairing is persistent: a new hub on the same state file knows it.
	h2, err := NewHub(h.cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !h2.Paired(a.ID, b.ID) || h2.Paired(a.ID, c.ID) {
		t.Fatal("pairs not restored from the state file")
	}
}

func TestHubButtonPairingWindow(t *testing.T) {
	now := time.Now()
	clock := func() time.Time { return now }
	h := newTestHub(t, clock)
	a, b, c := mustIdentity(t), mustIdentity(t), mustIdentity(t)
	var fa, fb, fc fakeSession
	sa, sb, sc := register(t, h, a, &fa), register(t, h, b, &fb), register(t, h, c, &fc)

	if err := h.Handle(sa, &Message{Type: TypePairButton}); err != nil {
		t.Fatal(err)
	}
	now = now.Add(h.cfg.ButtonWindow + time.Second) // too late
	if err := h.Handle(sb, &Message{Type: TypePairButton}); err != nil {
		t.Fatal(err)
	}
	if h.Paired(a.ID, b.ID) {
		t.Fatal("presses outside the window paired")
	}
	now = now.Add(time.Second)
	if err := h.Handle(sc, &Message{Type: TypePairButton}); err != nil {
		t.Fatal(err)
	}
	if !h.Paired(b.ID, c.ID) {
		t.Fatal("presses within the window did not pair")
	}
	if p := fc.last(t, TypePaired).Peers[0]; p.ID != b.ID {
		t.Fatalf("c paired with %s", p.ID)
	}
}

func TestHubLimitsCodeGuessing(t *testing.T) {
	h := newTestHub(t, time.Now)
	a := mustIdentity(t)
	var fa fakeSession
	sa := register(t, h, a, &fa)
	var err error
	for i := 0; i < h.cfg.MaxCodeTries; i++ {
		err = h.Handle(sa, &Message{Type: TypePairJoin, Code: "123456"})
	}
	if !errors.Is(err, errTooManyTries) {
		t.Fatalf("after %d wrong codes: err = %v", h.cfg.MaxCodeTries, err)
	}
}

func TestHubWelcomeCarriesTURNRESTCredentials(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	h := newTestHub(t, func() time.Time { return now })
	id := mustIdentity(t)
	s := (&fakeSession{}).session()
	hello := NewHello(id, "", now.UnixMilli(), nonce(t))
	w, err := h.Register(s, &hello)
	if err != nil {
		t.Fatal(err)
	}
	var turn *ICEServer
	for i := range w.ICE {
		if strings.HasPrefix(w.ICE[i].URLs[0], "turn:") {
			turn = &w.ICE[i]
		}
	}
	if turn == nil {
		t.Fatalf("no TURN server in %+v", w.ICE)
	}
	wantUser := "1700086400:" + id.ID
	if turn.Username != wantUser {
		t.Fatalf("username %q, want %q", turn.Username, wantUser)
	}
	// The construction itself is checked against an independent
	// computation in TestTURNCredentialsKnownAnswer.
	_, pw := TURNCredentials("s3cret", id.ID, now.Add(24*time.Hour))
	if turn.Credential != pw {
		t.Fatalf("credential %q, want %q", turn.Credential, pw)
	}
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

func TestHubOverWebSocket(t *testing.T) {
	h := newTestHub(t, time.Now)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	url := "ws" + strings.TrimPrefix(srv.URL, "http")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	dial := func(name string) *Client {
		c, err := Dial(ctx, ClientConfig{HubURL: url, Identity: mustIdentity(t), Name: name, DataDir: t.TempDir()})
		if err != nil {
			t.Fatalf("dial %s: %v", name, err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	a, b := dial("a"), dial("b")
	if len(a.ICEServers()) != 2 {
		t.Fatalf("ICE servers %+v", a.ICEServers())
	}
	// Unpaired: the hub refuses to forward and says why.
	if err := a.SendSignal(ctx, b.ID(), "x", KindRing, ""); err != nil {
		t.Fatal(err)
	}
	code, _, err := a.RequestPairCode(ctx)
	if err != nil {
		t.Fatal(err)
	}
	waitA := make(chan PeerInfo, 1)
	go func() {
		p, _ := a.WaitPaired(ctx)
		waitA <- p
	}()
	time.Sleep(50 * time.Millisecond) // let WaitPaired register before the join completes
	pb, err := b.JoinPairCode(ctx, code)
	if err != nil {
		t.Fatalf("join: %v", err)
	}
	if pb.ID != a.ID() {
		t.Fatalf("b paired with %s", pb.ID)
	}
	if p := <-waitA; p.ID != b.ID() {
		t.Fatalf("a paired with %q", p.ID)
	}
	if p, err := a.Resolve("b"); err != nil || p.ID != b.ID() {
		t.Fatalf("resolve b: %+v %v", p, err)
	}
	if !a.Online(b.ID()) || !b.Online(a.ID()) {
		t.Fatal("paired boxes do not see each other online")
	}
	if err := a.SendSignal(ctx, b.ID(), "call-1", KindOffer, "v=0\r\n"); err != nil {
		t.Fatal(err)
	}
	select {
	case s := <-b.Signals():
		if s.From != a.ID() || s.Kind != KindOffer || s.SDP != "v=0\r\n" || s.Call != "call-1" {
			t.Fatalf("signal %+v", s)
		}
	case <-ctx.Done():
		t.Fatal("signal not delivered")
	}
	// b leaves: the hub tells a, so a call to b waits instead of signalling
	// into the void.
	b.Close()
	wctx, wcancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer wcancel()
	for a.Online(b.ID()) && wctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
	}
	if a.Online(b.ID()) {
		t.Fatal("a still sees b online after b left")
	}
	if err := a.WaitOnline(wctx, b.ID()); !errors.Is(err, ErrOffline) {
		t.Fatalf("WaitOnline for a box that left: %v", err)
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

// A refused registration reaches the box with the hub's reason.
func TestHubRefusalReachesBox(t *testing.T) {
	h := newTestHub(t, time.Now)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	skewed := func() time.Time { return time.Now().Add(-10 * time.Minute) } // a box with a wrong clock
	_, err := Dial(ctx, ClientConfig{HubURL: "ws" + strings.TrimPrefix(srv.URL, "http"), Identity: mustIdentity(t), Now: skewed})
	if !errors.Is(err, ErrHub) || !strings.Contains(err.Error(), "stale") {
		t.Fatalf("err = %v, want the hub's refusal naming the stale timestamp", err)
	}
}
