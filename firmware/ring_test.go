package firmware

import (
	"net/http"
	"testing"
	"time"

	"github.com/callbox/callbox/peer/box"
)

// ringPair starts two paired boxes on loopback: kitchen (A) calls, attic
// (B) takes calls without call.auto_answer (the default), with args.
func ringPair(t *testing.T, argsB ...string) (a, b *callBox) {
	t.Helper()
	hubURL := startTestHub(t)
	dirA, dirB := t.TempDir(), t.TempDir()
	pairBoxes(t, hubURL, dirA, dirB)
	a = startCallBox(t, hubURL, dirA, "kitchen", "--open")
	b = startCallBox(t, hubURL, dirB, "attic", append([]string{"--open", "--auto-answer=false"}, argsB...)...)
	online := func(x *callBox) bool {
		c, _ := x.a.peer.current()
		return c != nil && len(c.Peers()) == 1 && c.Peers()[0].Online
	}
	waitFor(t, 10*time.Second, "both boxes registered, each seeing the other online", func() bool { return online(a) && online(b) })
	return a, b
}

// rings has A call B and waits for B to ring (LED, /api/state) while A
// shows calling.
func rings(t *testing.T, a, b *callBox, what string) {
	t.Helper()
	if err := a.a.peer.call(""); err != nil {
		t.Fatalf("%s: box A's call: %v", what, err)
	}
	waitFor(t, 10*time.Second, what+": box B rings", func() bool {
		st := b.state(t, "")
		return st.Call.State == "ringing" && st.State == "ringing" && st.LED == "ringing"
	})
	if st := b.state(t, ""); st.Call.Peer != "kitchen" {
		t.Errorf("%s: box B's call.peer %q, want kitchen", what, st.Call.Peer)
	}
	if st := a.state(t, ""); st.Call.State != "calling" {
		t.Errorf("%s: box A's call.state %q while B rings, want calling", what, st.Call.State)
	}
}

// noMediaWhileRinging: for d, neither box connects and a phone on either
// box's call relay gets nothing.
func noMediaWhileRinging(t *testing.T, a, b *callBox, d time.Duration) {
	t.Helper()
	media := make(chan int, 2)
	go func() { media <- callMedia(t, a, d) }()
	go func() { media <- callMedia(t, b, d) }()
	if !neverConnects(t, a, d) || !neverConnects(t, b, d) {
		t.Error("a box connected before the call was answered")
	}
	if n := <-media + <-media; n != 0 {
		t.Errorf("phones got %d packets of the other home before anyone answered", n)
	}
	if st := b.state(t, ""); st.Call.State != "ringing" {
		t.Errorf("box B stopped ringing: %q", st.Call.State)
	}
}

func inDirectCall(t *testing.T, a, b *callBox, what string) {
	t.Helper()
	waitFor(t, 10*time.Second, what+": both boxes in a direct call", func() bool {
		sa, sb := a.state(t, ""), b.state(t, "")
		return sa.Call.State == "direct" && sb.Call.State == "direct"
	})
	for _, x := range []*callBox{a, b} {
		waitFor(t, 5*time.Second, what+": media both ways", func() bool {
			_, caller := x.a.peer.current()
			cur := caller.Current()
			return cur != nil && cur.Summary().FramesDecoded >= 5
		})
	}
}

func bothIdle(t *testing.T, a, b *callBox, what string) {
	t.Helper()
	waitFor(t, 5*time.Second, what+": both boxes idle", func() bool {
		return a.state(t, "").Call.State == "idle" && b.state(t, "").Call.State == "idle"
	})
}

// TestIncomingCallRings (issue 15): without call.auto_answer a paired
// box's call rings; nothing is negotiated, so no media flows, until it is
// answered by the API, then by button B; DELETE /api/call declines.
func TestIncomingCallRings(t *testing.T) {
	// B's microphone goes through the echo canceller (as with a real
	// speaker), so the appliance's stage runs too.
	a, b := ringPair(t, "--echo-cancel", "software")

	rings(t, a, b, "answer by the API")
	speakerRings(t, b)
	noMediaWhileRinging(t, a, b, 2*time.Second)
	var st callAPIState
	if code := b.do(t, "POST", "/api/call/answer", "", &st); code != http.StatusOK {
		t.Fatalf("POST /api/call/answer: %d %+v", code, st)
	}
	inDirectCall(t, a, b, "answered by the API")
	speakerPlaysCall(t, b)
	remoteFrames(t, "ws"+b.srv.URL[len("http"):]+"/ws/call/video", 3)
	if code := b.do(t, "POST", "/api/call/answer", "", &st); code != http.StatusConflict {
		t.Errorf("answering a call that is up: %d, want 409", code)
	}
	b.do(t, "DELETE", "/api/call", "", nil)
	bothIdle(t, a, b, "hung up")
	if st := b.state(t, "").Speaker; st == nil || len(st.Sources) != 0 {
		t.Errorf("box B's speaker after the call: %+v, want nothing playing", st)
	}

	rings(t, a, b, "answer by button B")
	if code := b.do(t, "POST", "/api/sim/button", `{"button":"b"}`, nil); code != 200 {
		t.Fatalf("press B: %d", code)
	}
	inDirectCall(t, a, b, "answered by button B")
	a.do(t, "DELETE", "/api/call", "", nil)
	bothIdle(t, a, b, "hung up by the caller")

	rings(t, a, b, "decline")
	b.do(t, "DELETE", "/api/call", "", nil)
	bothIdle(t, a, b, "declined")
	if !neverConnects(t, a, 500*time.Millisecond) {
		t.Error("the declined call connected")
	}
	if m := b.state(t, "").Call.Missed; len(m) != 0 {
		t.Errorf("a declined call shows as missed: %+v", m)
	}
}

// TestIncomingCallMissed: a call nobody answers stops ringing after
// call.ring_timeout, both boxes return to idle, and the page lists it as
// missed until dismissed.
func TestIncomingCallMissed(t *testing.T) {
	a, b := ringPair(t, "--ring-timeout", "5s")
	start := time.Now()
	rings(t, a, b, "missed")
	waitFor(t, 10*time.Second, "the ring ends", func() bool { return b.state(t, "").Call.State == "idle" })
	rang := time.Since(start)
	if rang < 4*time.Second {
		t.Errorf("the call stopped ringing after %v, before the 5 s ring timeout", rang)
	}
	bothIdle(t, a, b, "after the ring timeout")
	m := b.state(t, "").Call.Missed
	if len(m) != 1 || m[0].Peer != "kitchen" {
		t.Fatalf("missed calls %+v, want one from kitchen", m)
	}
	if _, caller := a.a.peer.current(); caller.Current() != nil {
		t.Error("the caller still has a call")
	}
	var st callAPIState
	if code := b.do(t, "DELETE", "/api/call/missed", "", &st); code != 200 || len(st.Missed) != 0 {
		t.Errorf("DELETE /api/call/missed: %d %+v", code, st.Missed)
	}
}

// TestIncomingCallRingsNotAfterReset: a factory reset on B makes A a
// stranger: A's next call never rings at B and brings no media.
func TestIncomingCallRingsNotAfterReset(t *testing.T) {
	a, b := ringPair(t)
	cb, _ := b.a.peer.current()
	oldID := cb.ID()
	b.a.board.box.FactoryReset()
	waitFor(t, 10*time.Second, "box B registered under a new identity", func() bool {
		c, _ := b.a.peer.current()
		return c != nil && c.ID() != oldID
	})
	_ = a.a.peer.call("")
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		if st := b.state(t, ""); st.Call.State != "idle" {
			t.Fatalf("the reset box shows call state %q", st.Call.State)
		}
		if s := a.a.peer.state(); s.Phase == box.PhaseConnected {
			t.Fatal("box A got through to the reset box")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestPairBoxesByButtons: the pairing code from A's API, entered on B's;
// both boxes' LEDs show box-pairing; A+B on each box confirms, and the
// boxes are paired.
func TestPairBoxesByButtons(t *testing.T) {
	hubURL := startTestHub(t)
	a := startCallBox(t, hubURL, t.TempDir(), "kitchen", "--open")
	b := startCallBox(t, hubURL, t.TempDir(), "attic", "--open")
	waitFor(t, 10*time.Second, "both boxes registered", func() bool {
		ca, _ := a.a.peer.current()
		cb, _ := b.a.peer.current()
		return ca != nil && cb != nil
	})
	var got struct{ Code, Expires string }
	if code := a.do(t, "POST", "/api/call/pair", "", &got); code != 200 {
		t.Fatalf("POST /api/call/pair: %d %+v", code, got)
	}
	if code := b.do(t, "POST", "/api/call/pair", `{"code":"`+got.Code+`"}`, nil); code != 200 {
		t.Fatalf("POST /api/call/pair with the code: %d", code)
	}
	for _, x := range []*callBox{a, b} {
		waitFor(t, 5*time.Second, "the LED shows box-pairing", func() bool {
			st := x.state(t, "")
			return st.LED == "box-pairing" && st.State == "pairing"
		})
		if code := x.do(t, "POST", "/api/sim/button", `{"button":"both"}`, nil); code != 200 {
			t.Fatalf("press A+B: %d", code)
		}
	}
	for _, x := range []*callBox{a, b} {
		waitFor(t, 5*time.Second, "paired by the buttons", func() bool {
			var st callAPIState
			x.do(t, "GET", "/api/call", "", &st)
			return len(st.Peers) == 1
		})
		waitFor(t, 5*time.Second, "the LED back to ready", func() bool { return x.state(t, "").LED == "ready" })
	}
	// /api/state lists the paired boxes (the page's choice of whom to call).
	if p := a.state(t, "").Call.Peers; len(p) != 1 || p[0].Name != "attic" {
		t.Errorf("box A's /api/state call.peers %+v, want attic", p)
	}
}
