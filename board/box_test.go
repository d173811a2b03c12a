package board

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/callbox/callbox/board/pairing"
	"github.com/callbox/callbox/board/store"
)

func newTestBox(t *testing.T, dir string) (*Box, *fakeClock) {
	t.Helper()
	st, err := store.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	clk := newFakeClock()
	b := NewBox(BoxOptions{Clock: clk, Store: st, Machine: MachineConfig{Timing: DefaultTiming, ResetConfirm: 15 * time.Second}})
	b.Booted()
	return b, clk
}

func tap(b *Box, clk *fakeClock, btns ...Button) {
	for _, x := range btns {
		b.Press(x, clk.Now())
	}
	clk.Advance(200 * time.Millisecond)
	for _, x := range btns {
		b.Release(x, clk.Now())
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// The whole pairing story through the Box: a phone waits, the buttons admit
// it, the token survives a restart, a factory reset revokes it.
func TestBoxPairingAndReset(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	b, clk := newTestBox(t, dir)
	var mu sync.Mutex
	var mutes []bool
	b.SetHooks(Hooks{Mute: func(m bool) { mu.Lock(); mutes = append(mutes, m); mu.Unlock() }})

	type res struct {
		tok string
		err error
	}
	got := make(chan res, 1)
	go func() {
		tok, err := b.RequestPairing(context.Background(), "test phone", "192.0.2.7")
		got <- res{tok, err}
	}()
	waitFor(t, "the request", func() bool { return b.Status().Waiting == 1 })
	if b.Status().State != Pairing {
		t.Fatalf("state %v while a phone waits", b.Status().State)
	}
	tap(b, clk, ButtonA) // mute: must not admit the phone
	select {
	case r := <-got:
		t.Fatalf("admitted by the mute button: %+v", r)
	case <-time.After(20 * time.Millisecond):
	}
	tap(b, clk, ButtonA, ButtonB)
	r := <-got
	if r.err != nil {
		t.Fatal(r.err)
	}
	if err := b.Authorize(r.tok); err != nil {
		t.Fatalf("paired token refused: %v", err)
	}
	if err := b.Authorize("someone-else"); !errors.Is(err, pairing.ErrUnpaired) {
		t.Fatalf("unknown token: %v", err)
	}

	// Restart: token and mute come back.
	b2, clk2 := newTestBox(t, dir)
	if err := b2.Authorize(r.tok); err != nil {
		t.Fatalf("token lost across restart: %v", err)
	}
	if !b2.Muted() {
		t.Fatal("mute lost across restart")
	}

	// Factory reset with the buttons: very long A, then A short.
	resets := 0
	b2.SetHooks(Hooks{Reset: func() { resets++ }})
	b2.Press(ButtonA, clk2.Now())
	clk2.Advance(DefaultTiming.VeryLong)
	b2.Release(ButtonA, clk2.Now())
	tap(b2, clk2, ButtonA)
	if err := b2.Authorize(r.tok); !errors.Is(err, pairing.ErrUnpaired) {
		t.Fatalf("token survived the factory reset: %v", err)
	}
	if b2.Muted() {
		t.Fatal("mute survived the factory reset")
	}
	if resets != 1 {
		t.Fatalf("reset hook ran %d times, want 1", resets)
	}
	b3, _ := newTestBox(t, dir)
	if err := b3.Authorize(r.tok); err == nil || b3.Muted() || b3.Paired() != 0 {
		t.Fatal("factory reset not persisted")
	}
	mu.Lock()
	if len(mutes) != 1 || !mutes[0] {
		t.Errorf("mute hook calls %v, want [true]", mutes)
	}
	mu.Unlock()
}

func TestBoxCallHooks(t *testing.T) {
	b, clk := newTestBox(t, t.TempDir())
	tap(b, clk, ButtonB) // no hook: nothing happens, no panic
	if st := b.Status(); st.Call != CallIdle {
		t.Fatalf("call state %v without a peer", st.Call)
	}
	calls, hangups := 0, 0
	b.SetHooks(Hooks{
		Call:   func() error { calls++; return nil },
		HangUp: func() error { hangups++; return nil },
	})
	tap(b, clk, ButtonB)
	if calls != 1 || b.Status().State != Calling {
		t.Fatalf("calls %d state %v", calls, b.Status().State)
	}
	b.SetCall(CallRelayed)
	if st := b.Status(); st.State != InCall || st.LED.Name != "in-call-relayed" {
		t.Fatalf("in call: %v %s", st.State, st.LED.Name)
	}
	tap(b, clk, ButtonB)
	if hangups != 1 || b.Status().State != Ready {
		t.Fatalf("hangups %d state %v", hangups, b.Status().State)
	}
	b.SetHooks(Hooks{Call: func() error { return errors.New("no peer answers") }})
	tap(b, clk, ButtonB)
	if st := b.Status(); st.Call != CallIdle {
		t.Fatalf("failed call left state %v", st.Call)
	}
}

// A corrupt state file does not stop the box: it starts unpaired and
// shows the storage fault.
func TestBoxCorruptState(t *testing.T) {
	dir := t.TempDir()
	if err := store.WriteFileAtomic(filepath.Join(dir, store.FileName), []byte("{garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	b, _ := newTestBox(t, dir)
	st := b.Status()
	if st.State != Error || st.Message == "" {
		t.Fatalf("corrupt state: %+v", st)
	}
}

// Run drives the LED from the status, including time-driven changes.
func TestBoxRunDrivesLED(t *testing.T) {
	clk := newFakeClock()
	led := &recLED{clk: clk, t0: clk.Now()}
	b := NewBox(BoxOptions{Clock: clk, LED: led, Machine: MachineConfig{Timing: DefaultTiming, ResetConfirm: 15 * time.Second}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { b.Run(ctx); close(done) }()
	last := func() Color {
		c := led.get()
		if len(c) == 0 {
			return 255
		}
		return c[len(c)-1].c
	}
	waitFor(t, "booting white", func() bool { return last() == White })
	b.Booted()
	waitFor(t, "ready green", func() bool { return last() == Green })
	b.Gesture(Press{ButtonA, VeryLong})
	waitFor(t, "reset asked: red", func() bool { return last() == Red })
	// The question lapses by itself after ResetConfirm; Run notices on
	// its tick.
	for i := 0; i < 16; i++ {
		clk.Advance(time.Second)
		time.Sleep(time.Millisecond)
	}
	waitFor(t, "ready again", func() bool { clk.Advance(time.Millisecond); return last() == Green })
	cancel()
	<-done
	if last() != Off {
		t.Fatal("LED left on after Run")
	}
}
