package board

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// State is what the box shows a person.
type State int

// The states, in the order of the /api/state enum.
const (
	Booting State = iota
	Ready
	Streaming
	Pairing
	Calling
	InCall
	Muted
	Error
	Ringing // a paired box calls: press B to answer
)

var stateNames = [...]string{"booting", "ready", "streaming", "pairing", "calling", "in-call", "muted", "error", "ringing"}

func (s State) String() string {
	if s >= 0 && int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// Call is the state of a call to another box, reported by the peer side.
type Call int

// Call states.
const (
	CallIdle    Call = iota
	CallDialing      // calling a peer, not connected yet
	CallDirect       // connected peer to peer
	CallRelayed      // connected through a relay
	CallRinging      // a paired box calls; nobody answered yet
)

// Fault names a class of error the box shows. Several can be active.
type Fault string

// The faults the appliance reports.
const (
	FaultConfig  Fault = "config"
	FaultCamera  Fault = "camera"
	FaultAudio   Fault = "audio"
	FaultNetwork Fault = "network"
	FaultStorage Fault = "storage"
)

// Action is something the Machine asks the box to do.
type Action int

// The actions.
const (
	ActMute              Action = iota + 1 // stop sending the microphone
	ActUnmute                              // send it again
	ActCall                                // call the configured peer
	ActHangUp                              // end or cancel the call
	ActApprove                             // admit every phone waiting to pair
	ActFactoryReset                        // forget every phone and setting
	ActAnswer                              // take the incoming call that rings
	ActConfirmBoxPairing                   // the owner saw the same code on both boxes
)

func (a Action) String() string {
	switch a {
	case ActMute:
		return "mute"
	case ActUnmute:
		return "unmute"
	case ActCall:
		return "call"
	case ActHangUp:
		return "hang up"
	case ActApprove:
		return "approve pairing"
	case ActFactoryReset:
		return "factory reset"
	case ActAnswer:
		return "answer"
	case ActConfirmBoxPairing:
		return "confirm box pairing"
	}
	return fmt.Sprintf("Action(%d)", int(a))
}

// MachineConfig sets the Machine's timings.
type MachineConfig struct {
	Timing       Timing
	ResetConfirm time.Duration // time to confirm a factory reset
}

// Status is a snapshot of what the box shows and why.
type Status struct {
	State   State
	LED     Pattern
	Message string // the active faults, "" when none
	Muted   bool
	Viewers int
	Call    Call
	// Waiting is the number of phones waiting for approval: the LED's
	// pairing pattern blinks once per phone, so the person at the box sees
	// how many one press will admit.
	Waiting int

	ResetAsked bool // a factory reset waits for confirmation
}

// Machine is the device state machine. It is not safe for concurrent use;
// Box serialises access to it.
type Machine struct {
	clk Clock
	cfg MachineConfig
	cls classifier

	booted     bool
	updating   bool // an update is being checked or written
	muted      bool
	presses    uint64 // gestures classified so far (for Box.OnPress)
	lastPress  Press
	viewers    int
	call       Call
	faults     map[Fault]string
	waiting    int
	boxCompare bool      // a pairing with another box waits for this owner's confirmation
	resetUntil time.Time // a reset confirmation is awaited before this
}

// Defaults for a zero MachineConfig field, matching the configuration's.
const (
	DefaultResetConfirm = 15 * time.Second
)

// NewMachine returns a Machine in the booting state. Zero fields of cfg
// take the defaults.
func NewMachine(clk Clock, cfg MachineConfig) *Machine {
	if cfg.Timing == (Timing{}) {
		cfg.Timing = DefaultTiming
	}
	if cfg.ResetConfirm <= 0 {
		cfg.ResetConfirm = DefaultResetConfirm
	}
	return &Machine{clk: clk, cfg: cfg, cls: classifier{t: cfg.Timing}, faults: map[Fault]string{}}
}

// Booted ends the booting state.
func (m *Machine) Booted() { m.booted = true }

// SetUpdating shows (or stops showing) that an update is being installed.
func (m *Machine) SetUpdating(on bool) { m.updating = on }

// SetMuted sets the mute flag without an action (restoring saved state).
func (m *Machine) SetMuted(on bool) { m.muted = on }

// SetViewers records how many phones receive media.
func (m *Machine) SetViewers(n int) { m.viewers = max(n, 0) }

// SetCall records the call state reported by the peer side.
func (m *Machine) SetCall(c Call) { m.call = c }

// SetFault sets (msg != "") or clears (msg == "") a fault.
func (m *Machine) SetFault(f Fault, msg string) {
	if msg == "" {
		delete(m.faults, f)
		return
	}
	m.faults[f] = msg
}

// SetWaiting records how many phones wait for pairing approval. Nothing
// admits them but a press of both buttons while they wait: there is no
// window in which a later request would be admitted unseen.
func (m *Machine) SetWaiting(n int) { m.waiting = max(n, 0) }

// SetBoxPairing records whether a pairing with another box shows its
// confirmation code and waits for this box's owner (A+B confirms it).
func (m *Machine) SetBoxPairing(on bool) { m.boxCompare = on }

func (m *Machine) resetAsked(now time.Time) bool { return now.Before(m.resetUntil) }

// Press records a button going down at the given instant (the edge's time
// from the driver, which is more exact than reading the clock later).
func (m *Machine) Press(b Button, at time.Time) { m.cls.press(b, at) }

// Release records a button going up and returns the actions of the gesture
// it completes.
func (m *Machine) Release(b Button, at time.Time) []Action {
	p, ok := m.cls.release(b, at)
	if !ok {
		return nil
	}
	return m.gesture(p, at)
}

// Gesture applies a gesture as if pressed now: for the simulated board and
// the terminal keys, which know the gesture rather than edges.
func (m *Machine) Gesture(p Press) []Action { return m.gesture(p, m.clk.Now()) }

func (m *Machine) gesture(p Press, now time.Time) []Action {
	m.presses++
	m.lastPress = p
	if m.resetAsked(now) {
		m.resetUntil = time.Time{}
		// Only a short press of A confirms; anything else is the person
		// changing their mind, and its usual action is not performed.
		if p == (Press{ButtonA, Short}) {
			m.muted = false
			return []Action{ActFactoryReset}
		}
		return nil
	}
	switch {
	case p.Gesture == Both:
		// Admits the phones waiting now (the LED showed how many), and
		// no later one.
		if m.waiting > 0 {
			return []Action{ActApprove}
		}
		// With no phone waiting, a pairing with another box that shows
		// its code is confirmed (the owner compared the codes).
		if m.boxCompare {
			return []Action{ActConfirmBoxPairing}
		}
		return nil
	case p.Button == ButtonA && p.Gesture == Short:
		m.muted = !m.muted
		if m.muted {
			return []Action{ActMute}
		}
		return []Action{ActUnmute}
	case p.Button == ButtonA && p.Gesture == VeryLong:
		m.resetUntil = now.Add(m.cfg.ResetConfirm)
		return nil
	case m.call == CallRinging:
		// A short press of B answers; a long press of B, or of A,
		// declines.
		if p == (Press{ButtonB, Short}) {
			return []Action{ActAnswer}
		}
		return []Action{ActHangUp}
	default: // A long, or any press of B
		if m.call == CallIdle {
			return []Action{ActCall}
		}
		return []Action{ActHangUp}
	}
}

// Status computes what the box shows now. Precedence: booting; pairing
// (someone at the box is admitting a phone); calling; error; muted (the
// person in the room must see that the microphone is off, also during a
// call); in a call; streaming; ready. An update being installed, then a
// pending factory reset or A held past the very-long threshold, override
// the LED pattern only.
func (m *Machine) Status() Status {
	now := m.clk.Now()
	st := Status{
		Muted:      m.muted,
		Viewers:    m.viewers,
		Call:       m.call,
		Waiting:    m.waiting,
		ResetAsked: m.resetAsked(now),
		Message:    m.message(),
	}
	switch {
	case !m.booted:
		st.State, st.LED = Booting, PatternBooting
	case m.waiting > 0:
		st.State, st.LED = Pairing, PairingPattern(m.waiting)
	case m.call == CallRinging:
		st.State, st.LED = Ringing, PatternRinging
	case m.boxCompare:
		st.State, st.LED = Pairing, PatternBoxPairing
	case m.call == CallDialing:
		st.State, st.LED = Calling, PatternCalling
	case len(m.faults) > 0:
		st.State, st.LED = Error, PatternError
	case m.muted:
		st.State, st.LED = Muted, PatternMuted
	case m.call == CallDirect:
		st.State, st.LED = InCall, PatternDirect
	case m.call == CallRelayed:
		st.State, st.LED = InCall, PatternRelayed
	case m.viewers > 0:
		st.State, st.LED = Streaming, StreamingPattern(m.viewers)
	default:
		st.State, st.LED = Ready, PatternReady
	}
	if m.updating {
		st.LED = PatternUpdating
	}
	if g, ok := m.cls.holding(ButtonA, now); st.ResetAsked || ok && g == VeryLong {
		st.LED = PatternReset
	}
	return st
}

// message joins the active faults in a stable order.
func (m *Machine) message() string {
	if len(m.faults) == 0 {
		return ""
	}
	keys := make([]string, 0, len(m.faults))
	for f := range m.faults {
		keys = append(keys, string(f))
	}
	sort.Strings(keys)
	msgs := make([]string, len(keys))
	for i, k := range keys {
		msgs[i] = k + ": " + m.faults[Fault(k)]
	}
	return strings.Join(msgs, "; ")
}
