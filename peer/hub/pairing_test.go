package hub

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/callbox/callbox/peer/proto"
)

// registerAt registers a new identity from the source address addr.
func registerAt(t *testing.T, h *Hub, addr string) (*Session, *fakeSession) {
	t.Helper()
	f := &fakeSession{}
	s := f.session()
	s.Addr = addr
	id := mustIdentity(t)
	hello := proto.NewHello(id, "", h.cfg.Now().UnixMilli(), nonce(t))
	if _, err := h.Register(s, &hello); err != nil {
		t.Fatalf("register %s from %s: %v", id, addr, err)
	}
	return s, f
}

// Item 2 of the security review: 1,000 joins from 200 identities on 20
// addresses (identities and connections cost nothing), one of them the
// live code itself, as a lucky guess would be. Before, the hub checked
// every join (5 wrong codes per connection, new connections for free) and
// the lucky one paired the attacker. Now the per-address and hub-wide
// limits refuse joins unchecked, the lucky guess never reaches the code,
// and the legitimate join still works.
func TestHubPairingGuessesNeverReachALiveCode(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	h := newTestHub(t, func() time.Time { return now })
	owner, fo := registerAt(t, h, "198.51.100.7")
	if err := h.Handle(owner, &proto.Message{Type: proto.TypePairCode}); err != nil {
		t.Fatal(err)
	}
	code := fo.last(t, proto.TypePairCode).Code
	slot, _ := proto.CodeSlot(code)

	const identities, addrs, joins, lucky = 200, 20, 1000, 500
	attackers := make([]*Session, identities)
	for i := range attackers {
		attackers[i], _ = registerAt(t, h, fmt.Sprintf("203.0.113.%d", i%addrs))
	}
	reached := 0
	for i := range joins {
		guess := fmt.Sprintf("%04d%06d", (i*7919)%10000, i)
		if guess[:proto.PairSlotLen] == slot {
			guess = fmt.Sprintf("%04d%06d", (i*7919+1)%10000, i) // wrong ones stay wrong
		}
		if i == lucky {
			guess = code
		}
		s := attackers[i%identities]
		err := h.Handle(s, &proto.Message{Type: proto.TypePairJoin, Code: guess, Commit: make([]byte, proto.CommitSize)})
		if err == nil {
			reached++
			t.Errorf("join %d (%q) from %s reached the live code", i, guess, s.Addr)
		}
	}
	st := h.PairingStats()
	t.Logf("%d joins from %d identities on %d addresses: %d looked at, %d refused unchecked, %d reached a live code",
		joins, identities, addrs, st.Checked, st.Rejected, reached)
	l := h.cfg.Limits
	if want := int64(min(addrs*l.AddrGuesses, l.HubGuesses)); st.Checked > want {
		t.Errorf("%d joins looked at, want at most %d", st.Checked, want)
	}
	for _, m := range fo.got {
		if m.Type == proto.TypePairRequest {
			t.Fatalf("the owner was asked to pair with an attacker: %+v", m)
		}
	}

	// The owner's friend, at home, enters the code: refused while the
	// hub-wide budget is spent, accepted a minute later.
	friend, _ := registerAt(t, h, "192.0.2.44")
	join := proto.Message{Type: proto.TypePairJoin, Code: code, Commit: make([]byte, proto.CommitSize)}
	if err := h.Handle(friend, &join); !errors.Is(err, ErrLimited) {
		t.Fatalf("join with the hub's budget spent: %v, want ErrLimited", err)
	}
	now = now.Add(time.Minute)
	if err := h.Handle(friend, &join); err != nil {
		t.Fatalf("the legitimate join: %v", err)
	}
	if m := fo.last(t, proto.TypePairRequest); m.From != friend.Box {
		t.Fatalf("pair request from %s, want the friend %s", m.From, friend.Box)
	}
}

// A code dies after a few wrong secrets, whoever sends them: an attacker
// who learnt the slot (the first digits) gets CodeTries guesses at a
// 6-digit secret, then the owner is told to ask for a new code.
func TestHubCodeDiesAfterWrongTries(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	h := newTestHub(t, func() time.Time { return now })
	owner, fo := registerAt(t, h, "198.51.100.7")
	if err := h.Handle(owner, &proto.Message{Type: proto.TypePairCode}); err != nil {
		t.Fatal(err)
	}
	code := fo.last(t, proto.TypePairCode).Code
	slot, secret := proto.CodeSlot(code)
	for i := range h.cfg.Limits.CodeTries {
		s, _ := registerAt(t, h, fmt.Sprintf("203.0.113.%d", i)) // a new identity and address each time
		wrong := fmt.Sprintf("%s%06d", slot, i)
		if wrong[proto.PairSlotLen:] == secret {
			wrong = fmt.Sprintf("%s%06d", slot, 999_999-i)
		}
		if err := h.Handle(s, &proto.Message{Type: proto.TypePairJoin, Code: wrong, Commit: make([]byte, proto.CommitSize)}); !errors.Is(err, proto.ErrBadCode) {
			t.Fatalf("wrong secret %d: %v", i, err)
		}
	}
	if e := fo.last(t, proto.TypeError); e.Ref != proto.TypePairCode || !strings.Contains(e.Error, "withdrawn") {
		t.Fatalf("owner told %+v", e)
	}
	friend, _ := registerAt(t, h, "192.0.2.44")
	if err := h.Handle(friend, &proto.Message{Type: proto.TypePairJoin, Code: code, Commit: make([]byte, proto.CommitSize)}); !errors.Is(err, proto.ErrBadCode) {
		t.Fatalf("the right code after the code died: %v", err)
	}
	if st := h.PairingStats(); st.Matched != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// Codes asked for from one address are limited (they take slots).
func TestHubLimitsCodesPerAddress(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	h := newTestHub(t, func() time.Time { return now })
	var err error
	n := 0
	for ; n < 100 && err == nil; n++ {
		s, _ := registerAt(t, h, "203.0.113.9")
		err = h.Handle(s, &proto.Message{Type: proto.TypePairCode})
		if n%15 == 14 {
			now = now.Add(time.Hour) // new identities per address are limited too
		}
	}
	if !errors.Is(err, ErrLimited) || n-1 != h.cfg.Limits.AddrCodes {
		t.Fatalf("code %d from one address: %v; want ErrLimited after %d", n, err, h.cfg.Limits.AddrCodes)
	}
	s, f := registerAt(t, h, "198.51.100.7")
	if err := h.Handle(s, &proto.Message{Type: proto.TypePairCode}); err != nil {
		t.Fatalf("another address: %v", err)
	}
	f.last(t, proto.TypePairCode)
}

func TestAddrKey(t *testing.T) {
	for in, want := range map[string]string{
		"203.0.113.5:4242":           "203.0.113.5",
		"203.0.113.5":                "203.0.113.5",
		"[::ffff:203.0.113.5]:1":     "203.0.113.5",
		"[2001:db8:1:2:aaaa::1]:443": "2001:db8:1:2::/64",
		"[2001:db8:1:2:bbbb::9]:443": "2001:db8:1:2::/64",
		"[2001:db8:1:3::1]:443":      "2001:db8:1:3::/64",
		"not an address":             "not an address",
	} {
		if got := AddrKey(in); got != want {
			t.Errorf("AddrKey(%q) = %q, want %q", in, got, want)
		}
	}
}
