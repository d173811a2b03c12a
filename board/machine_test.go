package board

import (
	"reflect"
	"testing"
	"time"
)

func newTestMachine() (*Machine, *fakeClock) {
	clk := newFakeClock()
	m := NewMachine(clk, MachineConfig{Timing: DefaultTiming, ResetConfirm: 15 * time.Second})
	return m, clk
}

// hold presses b for d and returns the actions of the release.
func hold(m *Machine, clk *fakeClock, b Button, d time.Duration) []Action {
	m.Press(b, clk.Now())
	clk.Advance(d)
	return m.Release(b, clk.Now())
}

func TestPressClassification(t *testing.T) {
	tm := DefaultTiming
	tests := []struct {
		d    time.Duration
		want Gesture
		ok   bool
	}{
		{5 * time.Millisecond, 0, false}, // contact noise
		{tm.Debounce - 1, 0, false},
		{tm.Debounce, Short, true},
		{200 * time.Millisecond, Short, true},
		{tm.Long - 1, Short, true},
		{tm.Long, Long, true},
		{5 * time.Second, Long, true},
		{tm.VeryLong - 1, Long, true},
		{tm.VeryLong, VeryLong, true},
		{time.Minute, VeryLong, true},
	}
	for _, tt := range tests {
		for _, b := range []Button{ButtonA, ButtonB} {
			c := classifier{t: tm}
			t0 := time.Unix(1000, 0)
			c.press(b, t0)
			p, ok := c.release(b, t0.Add(tt.d))
			if ok != tt.ok || ok && p != (Press{b, tt.want}) {
				t.Errorf("%v held %v: got %v %v, want %v %v", b, tt.d, p, ok, tt.want, tt.ok)
			}
		}
	}
}

func TestBothButtons(t *testing.T) {
	c := classifier{t: DefaultTiming}
	t0 := time.Unix(1000, 0)
	c.press(ButtonA, t0)
	c.press(ButtonB, t0.Add(80*time.Millisecond))
	if _, ok := c.release(ButtonA, t0.Add(300*time.Millisecond)); ok {
		t.Fatal("gesture before both were released")
	}
	// Pressing A again while B is still down stays one gesture.
	c.press(ButtonA, t0.Add(400*time.Millisecond))
	c.release(ButtonA, t0.Add(450*time.Millisecond))
	p, ok := c.release(ButtonB, t0.Add(5*time.Second))
	if !ok || p.Gesture != Both {
		t.Fatalf("got %v %v, want both", p, ok)
	}
	// The next press is a fresh single-button gesture.
	c.press(ButtonB, t0.Add(6*time.Second))
	if p, ok := c.release(ButtonB, t0.Add(6100*time.Millisecond)); !ok || p != (Press{ButtonB, Short}) {
		t.Fatalf("after both: got %v %v", p, ok)
	}
	// Repeated edges and releases of unpressed buttons are ignored.
	c.release(ButtonA, t0.Add(7*time.Second))
	c.press(ButtonA, t0.Add(8*time.Second))
	c.press(ButtonA, t0.Add(9*time.Second))
	if p, ok := c.release(ButtonA, t0.Add(8500*time.Millisecond+time.Second)); !ok || p.Gesture != Long {
		t.Fatalf("duplicate press edge restarted the hold: %v %v", p, ok)
	}
}

func TestStatePrecedence(t *testing.T) {
	type facts struct {
		booted  bool
		viewers int
		call    Call
		fault   string
		muted   bool
		waiting int
	}
	tests := []struct {
		name  string
		f     facts
		state State
		led   string
	}{
		{"booting", facts{}, Booting, "booting"},
		{"booting hides all", facts{viewers: 3, fault: "x", muted: true}, Booting, "booting"},
		{"ready", facts{booted: true}, Ready, "ready"},
		{"one phone", facts{booted: true, viewers: 1}, Streaming, "streaming-1"},
		{"three phones", facts{booted: true, viewers: 3}, Streaming, "streaming-3"},
		{"many phones", facts{booted: true, viewers: 40}, Streaming, "streaming-5"},
		{"muted", facts{booted: true, viewers: 2, muted: true}, Muted, "muted"},
		{"in call direct", facts{booted: true, viewers: 2, call: CallDirect}, InCall, "in-call-direct"},
		{"in call relayed", facts{booted: true, call: CallRelayed}, InCall, "in-call-relayed"},
		{"muted in call", facts{booted: true, call: CallDirect, muted: true}, Muted, "muted"},
		{"calling", facts{booted: true, call: CallDialing, muted: true}, Calling, "calling"},
		{"error", facts{booted: true, viewers: 1, fault: "camera missing", muted: true}, Error, "error"},
		{"calling over error", facts{booted: true, fault: "x", call: CallDialing}, Calling, "calling"},
		{"phone waiting", facts{booted: true, waiting: 1, fault: "x", call: CallDialing}, Pairing, "pairing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, _ := newTestMachine()
			if tt.f.booted {
				m.Booted()
			}
			m.SetViewers(tt.f.viewers)
			m.SetCall(tt.f.call)
			m.SetMuted(tt.f.muted)
			m.SetWaiting(tt.f.waiting)
			if tt.f.fault != "" {
				m.SetFault(FaultCamera, tt.f.fault)
			}
			st := m.Status()
			if st.State != tt.state || st.LED.Name != tt.led {
				t.Fatalf("state %v led %s, want %v %s", st.State, st.LED.Name, tt.state, tt.led)
			}
			if (st.Message != "") != (tt.f.fault != "") {
				t.Fatalf("message %q with fault %q", st.Message, tt.f.fault)
			}
		})
	}
}

func TestFaultsMessage(t *testing.T) {
	m, _ := newTestMachine()
	m.Booted()
	m.SetFault(FaultNetwork, "no network")
	m.SetFault(FaultConfig, "line 3: camera.width: out of range")
	if got, want := m.Status().Message, "config: line 3: camera.width: out of range; network: no network"; got != want {
		t.Fatalf("message %q, want %q", got, want)
	}
	m.SetFault(FaultConfig, "")
	m.SetFault(FaultNetwork, "")
	if st := m.Status(); st.State != Ready || st.Message != "" {
		t.Fatalf("cleared faults: %v %q", st.State, st.Message)
	}
}

func TestButtonActions(t *testing.T) {
	tm := DefaultTiming
	short, long := 100*time.Millisecond, tm.Long+time.Millisecond
	m, clk := newTestMachine()
	m.Booted()
	steps := []struct {
		name  string
		do    func() []Action
		want  []Action
		state State
	}{
		{"A short mutes", func() []Action { return hold(m, clk, ButtonA, short) }, []Action{ActMute}, Muted},
		{"A short unmutes", func() []Action { return hold(m, clk, ButtonA, short) }, []Action{ActUnmute}, Ready},
		{"A long calls", func() []Action { return hold(m, clk, ButtonA, long) }, []Action{ActCall}, Ready},
		{"peer dials", func() []Action { m.SetCall(CallDialing); return nil }, nil, Calling},
		{"B hangs up", func() []Action { return hold(m, clk, ButtonB, short) }, []Action{ActHangUp}, Calling},
		{"peer idle", func() []Action { m.SetCall(CallIdle); return nil }, nil, Ready},
		{"B long calls", func() []Action { return hold(m, clk, ButtonB, long) }, []Action{ActCall}, Ready},
		{"glitch does nothing", func() []Action { return hold(m, clk, ButtonA, time.Millisecond) }, nil, Ready},
		{"a box calls: rings", func() []Action { m.SetCall(CallRinging); return nil }, nil, Ringing},
		{"B short answers", func() []Action { return hold(m, clk, ButtonB, short) }, []Action{ActAnswer}, Ringing},
		{"B long declines", func() []Action { return hold(m, clk, ButtonB, long) }, []Action{ActHangUp}, Ringing},
		{"A long declines", func() []Action { return hold(m, clk, ButtonA, long) }, []Action{ActHangUp}, Ringing},
		{"A short still mutes", func() []Action { return hold(m, clk, ButtonA, short) }, []Action{ActMute}, Ringing},
	}
	for _, s := range steps {
		got := s.do()
		if !reflect.DeepEqual(got, s.want) {
			t.Fatalf("%s: actions %v, want %v", s.name, got, s.want)
		}
		if st := m.Status(); st.State != s.state {
			t.Fatalf("%s: state %v, want %v", s.name, st.State, s.state)
		}
	}
}

func both(m *Machine, clk *fakeClock) []Action {
	m.Press(ButtonA, clk.Now())
	clk.Advance(50 * time.Millisecond)
	m.Press(ButtonB, clk.Now())
	clk.Advance(300 * time.Millisecond)
	m.Release(ButtonA, clk.Now())
	return m.Release(ButtonB, clk.Now())
}

// TestPairingNoWindow (issue 12): a press of both buttons admits the
// phones waiting then, and opens no window: a phone asking afterwards waits
// for a press of its own. The LED blinks once per waiting phone.
func TestPairingNoWindow(t *testing.T) {
	m, clk := newTestMachine()
	m.Booted()
	// A phone asks: the LED says so, nothing is approved by itself, and the
	// mute button does not approve it.
	m.SetWaiting(1)
	if st := m.Status(); st.State != Pairing || st.Waiting != 1 || st.LED.Name != "pairing" || len(st.LED.Steps) != 4 {
		t.Fatalf("waiting phone: %+v", st)
	}
	if acts := hold(m, clk, ButtonA, 100*time.Millisecond); !reflect.DeepEqual(acts, []Action{ActMute}) {
		t.Fatalf("A short while a phone waits: %v", acts)
	}
	// Two waiting: the long flash, then two short ones per cycle.
	m.SetWaiting(2)
	if st := m.Status(); len(st.LED.Steps) != 6 || st.LED.Steps[2].Color != Blue || st.LED.Steps[4].Color != Blue {
		t.Fatalf("two waiting: LED %+v", st.LED)
	}
	if acts := both(m, clk); !reflect.DeepEqual(acts, []Action{ActApprove}) {
		t.Fatalf("both buttons: %v", acts)
	}
	m.SetWaiting(0)
	if st := m.Status(); st.State == Pairing {
		t.Fatalf("after approval: %+v", st)
	}
	// A phone asking after the press is not admitted by that press, nor by
	// time passing; only by a press of its own.
	clk.Advance(time.Second)
	m.SetWaiting(1)
	clk.Advance(30 * time.Second)
	if st := m.Status(); st.State != Pairing || st.Waiting != 1 {
		t.Fatalf("later phone: %+v", st)
	}
	if acts := both(m, clk); !reflect.DeepEqual(acts, []Action{ActApprove}) {
		t.Fatalf("second press: %v", acts)
	}
	m.SetWaiting(0)
	// Both buttons with nobody waiting do nothing.
	if acts := both(m, clk); acts != nil {
		t.Fatalf("both buttons with nobody waiting: %v", acts)
	}
}

func TestFactoryResetNeedsConfirmation(t *testing.T) {
	tm := DefaultTiming
	m, clk := newTestMachine()
	m.Booted()
	hold(m, clk, ButtonA, 100*time.Millisecond) // muted
	// Holding A: the LED warns once the very-long threshold is reached.
	m.Press(ButtonA, clk.Now())
	clk.Advance(tm.VeryLong - time.Millisecond)
	if led := m.Status().LED.Name; led == "reset" {
		t.Fatal("reset warning too early")
	}
	clk.Advance(time.Millisecond)
	if led := m.Status().LED.Name; led != "reset" {
		t.Fatalf("LED %s while held past the threshold, want reset", led)
	}
	if acts := m.Release(ButtonA, clk.Now()); acts != nil {
		t.Fatalf("very long press acted at once: %v", acts)
	}
	if st := m.Status(); !st.ResetAsked || st.LED.Name != "reset" {
		t.Fatalf("no confirmation asked: %+v", st)
	}
	// Anything but A short cancels, without its usual action.
	if acts := hold(m, clk, ButtonB, 100*time.Millisecond); acts != nil {
		t.Fatalf("B during confirmation: %v", acts)
	}
	if m.Status().ResetAsked {
		t.Fatal("B did not cancel")
	}
	// Asked again, and left alone: it times out.
	hold(m, clk, ButtonA, tm.VeryLong)
	clk.Advance(15 * time.Second)
	if m.Status().ResetAsked {
		t.Fatal("confirmation did not time out")
	}
	if acts := hold(m, clk, ButtonA, 100*time.Millisecond); !reflect.DeepEqual(acts, []Action{ActUnmute}) {
		t.Fatalf("after timeout A short is mute again: %v", acts)
	}
	// Asked and confirmed.
	hold(m, clk, ButtonA, 100*time.Millisecond) // muted again
	both(m, clk)                                // nobody waiting: nothing
	hold(m, clk, ButtonA, tm.VeryLong+time.Second)
	clk.Advance(5 * time.Second)
	if acts := hold(m, clk, ButtonA, 100*time.Millisecond); !reflect.DeepEqual(acts, []Action{ActFactoryReset}) {
		t.Fatalf("confirmation: %v", acts)
	}
	if st := m.Status(); st.Muted || st.ResetAsked {
		t.Fatalf("after reset: %+v", st)
	}
}

// TestBoxPairingGesture: A+B confirms a pairing with another box only while
// one shows its code and no phone waits (phones come first).
func TestBoxPairingGesture(t *testing.T) {
	m, clk := newTestMachine()
	m.Booted()
	if acts := both(m, clk); acts != nil {
		t.Fatalf("A+B with nothing to confirm: %v", acts)
	}
	m.SetBoxPairing(true)
	if st := m.Status(); st.State != Pairing || st.LED.Name != PatternBoxPairing.Name {
		t.Fatalf("box pairing shows %v / %s", st.State, st.LED.Name)
	}
	m.SetWaiting(1)
	if acts := both(m, clk); !reflect.DeepEqual(acts, []Action{ActApprove}) {
		t.Fatalf("A+B with a phone waiting: %v, want approve", acts)
	}
	m.SetWaiting(0)
	if acts := both(m, clk); !reflect.DeepEqual(acts, []Action{ActConfirmBoxPairing}) {
		t.Fatalf("A+B while the box pairing shows its code: %v", acts)
	}
	m.SetBoxPairing(false)
	if st := m.Status(); st.State != Ready {
		t.Fatalf("after the box pairing: %v", st.State)
	}
}
