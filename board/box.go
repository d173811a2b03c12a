package board

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/callbox/callbox/board/pairing"
	"github.com/callbox/callbox/board/store"
)

// Hooks are the parts of the appliance the buttons reach. Each may be nil;
// they are called without the Box's lock, so they may call back into it
// (a Call hook typically reports SetCall as the call progresses). They run
// on the goroutine that delivered the press, so they must return quickly:
// a Call hook starts the call in the background and returns; the Box shows
// "calling" until the hook's side reports SetCall.
type Hooks struct {
	Mute   func(muted bool) // silence or restore the microphone
	Call   func() error     // call the configured peer
	HangUp func() error     // end or cancel the call
	Answer func() error     // take the incoming call that rings
	// ConfirmBoxPairing: the owner saw the same code on both boxes (A+B
	// while a pairing with another box shows it).
	ConfirmBoxPairing func() error
	// Reset runs after a factory reset has revoked every token: clients
	// already receiving media must be cut off too.
	Reset func()
}

// BoxOptions configure a Box.
type BoxOptions struct {
	Clock   Clock // nil: WallClock
	Machine MachineConfig
	Store   *store.Store // nil: nothing survives a restart
	Open    bool         // every client may receive media without pairing
	LED     LED          // nil: no LED
	Log     *slog.Logger // nil: discard
	// OnRefresh, if set, is called after every status evaluation (at least
	// every tick while Run runs); the simulated board redraws from it.
	OnRefresh func()
}

// Box is the board as the appliance sees it: the state machine, pairing,
// persistent settings and the LED, safe for concurrent use.
type Box struct {
	clk    Clock
	log    *slog.Logger
	store  *store.Store
	reg    *pairing.Registry
	player *Player
	onRef  func()

	mu    sync.Mutex
	m     *Machine
	hooks Hooks
	// onPress observes every gesture (OnPress).
	onPress func(Press)

	saveMu sync.Mutex
	saved  store.State
}

// tick is how often Run re-evaluates time-driven changes (a pairing window
// closing, a held button crossing the reset threshold). A tenth of a second
// is below what a person notices and costs nothing.
const tick = 100 * time.Millisecond

// NewBox loads the persistent state and returns a Box in the booting state.
// A state file that cannot be read is not fatal: the box starts with no
// paired phones and shows a storage fault.
func NewBox(opts BoxOptions) *Box {
	if opts.Clock == nil {
		opts.Clock = WallClock{}
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	b := &Box{clk: opts.Clock, log: opts.Log, store: opts.Store, onRef: opts.OnRefresh, m: NewMachine(opts.Clock, opts.Machine)}
	if b.store != nil {
		st, err := b.store.Load()
		if err != nil {
			b.log.Error("board: loading state", "err", err)
			b.m.SetFault(FaultStorage, err.Error())
		}
		b.saved = st
	}
	b.m.SetMuted(b.saved.Muted)
	b.reg = pairing.New(pairing.Options{
		Tokens:    b.saved.Tokens,
		Save:      b.saveTokens,
		OnWaiting: b.setWaiting,
		Open:      opts.Open,
		Now:       b.clk.Now,
	})
	if opts.LED != nil {
		b.player = NewPlayer(opts.LED, b.clk)
		b.player.OnError = func(err error) { b.log.Warn("board: LED", "err", err) }
	}
	return b
}

// Run plays the LED and follows time-driven changes until ctx ends.
func (b *Box) Run(ctx context.Context) {
	if b.player != nil {
		done := make(chan struct{})
		go func() { b.player.Run(ctx); close(done) }()
		defer func() { <-done }()
	}
	for {
		b.refresh()
		select {
		case <-ctx.Done():
			return
		case <-b.clk.After(tick):
		}
	}
}

// refresh shows the current pattern.
func (b *Box) refresh() {
	if b.player != nil {
		b.mu.Lock()
		st := b.m.Status()
		b.mu.Unlock()
		b.player.Show(st.LED)
	}
	if b.onRef != nil {
		b.onRef()
	}
}

// SetHooks installs the hooks.
func (b *Box) SetHooks(h Hooks) {
	b.mu.Lock()
	b.hooks = h
	b.mu.Unlock()
}

// Status returns what the box shows now.
func (b *Box) Status() Status {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.m.Status()
}

// Muted reports whether the microphone should be silent.
func (b *Box) Muted() bool { return b.Status().Muted }

// Booted ends the booting state.
func (b *Box) Booted() { b.with(func(m *Machine) { m.Booted() }) }

// SetViewers records how many phones receive media.
func (b *Box) SetViewers(n int) { b.with(func(m *Machine) { m.SetViewers(n) }) }

// SetUpdating shows the updating pattern while on (docs/update.md).
func (b *Box) SetUpdating(on bool) { b.with(func(m *Machine) { m.SetUpdating(on) }) }

// SetBoxPairing shows (or stops showing) that a pairing with another box
// waits for this owner's confirmation.
func (b *Box) SetBoxPairing(on bool) { b.with(func(m *Machine) { m.SetBoxPairing(on) }) }

// SetCall records the call state.
func (b *Box) SetCall(c Call) { b.with(func(m *Machine) { m.SetCall(c) }) }

// SetFault sets (err != nil) or clears (err == nil) a fault.
func (b *Box) SetFault(f Fault, err error) {
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	b.with(func(m *Machine) { m.SetFault(f, msg) })
}

func (b *Box) with(f func(m *Machine)) {
	b.mu.Lock()
	f(b.m)
	b.mu.Unlock()
	b.refresh()
}

// Press records a button going down.
func (b *Box) Press(btn Button, at time.Time) { b.with(func(m *Machine) { m.Press(btn, at) }) }

// Release records a button going up and performs its gesture's actions.
func (b *Box) Release(btn Button, at time.Time) {
	b.mu.Lock()
	n := b.m.presses
	acts := b.m.Release(btn, at)
	pressed, p, on := b.m.presses != n, b.m.lastPress, b.onPress
	b.mu.Unlock()
	if pressed && on != nil {
		on(p)
	}
	b.do(acts)
}

// Gesture performs a whole gesture at once (simulated buttons).
func (b *Box) Gesture(p Press) {
	b.mu.Lock()
	acts := b.m.Gesture(p)
	on := b.onPress
	b.mu.Unlock()
	if on != nil {
		on(p)
	}
	b.do(acts)
}

// OnPress sets a function told of every gesture the buttons make (Home
// Assistant's button events), before its actions run. It must not block.
func (b *Box) OnPress(f func(Press)) {
	b.mu.Lock()
	b.onPress = f
	b.mu.Unlock()
}

// SetMuted mutes or unmutes the microphone as button A does (remembered
// across restarts), for remote controls such as Home Assistant's switch.
func (b *Box) SetMuted(on bool) {
	b.mu.Lock()
	was := b.m.muted
	b.m.SetMuted(on)
	b.mu.Unlock()
	if was == on {
		b.refresh()
		return
	}
	if on {
		b.do([]Action{ActMute})
	} else {
		b.do([]Action{ActUnmute})
	}
}

// Authorize is the relay's gate: nil for a paired token (or in open mode).
func (b *Box) Authorize(token string) error { return b.reg.Authorize(token) }

// AuthorizeHash accepts the hash of a paired phone's token (a phone away
// from home: pairing.Registry.AuthorizeHash).
func (b *Box) AuthorizeHash(hash string) error { return b.reg.AuthorizeHash(hash) }

// Open reports whether pairing is off (every client admitted).
func (b *Box) Open() bool { return b.reg.Open() }

// RequestPairing waits for the person at the box to approve this phone and
// returns its token; addr is where the request comes from (a few waiting
// requests per address at most); see pairing.Registry.RequestFrom.
func (b *Box) RequestPairing(ctx context.Context, name, addr string) (string, error) {
	return b.reg.RequestFrom(ctx, name, addr)
}

// Paired reports the number of paired phones.
func (b *Box) Paired() int { return b.reg.Paired() }

// Phones lists the paired phones (their token hashes, names and pairing
// times), oldest first.
func (b *Box) Phones() []store.Token { return b.reg.Tokens() }

// RevokePhone unpairs one phone by its token hash (pairing.Registry.Revoke);
// the caller ends its live sessions.
func (b *Box) RevokePhone(hash string) (store.Token, error) {
	t, err := b.reg.Revoke(hash)
	if err == nil {
		b.log.Info("board: phone unpaired", "phone", hash[:8], "name", t.Name)
	}
	return t, err
}

func (b *Box) setWaiting(n int) { b.with(func(m *Machine) { m.SetWaiting(n) }) }

// do performs actions outside the lock.
func (b *Box) do(acts []Action) {
	defer b.refresh()
	b.mu.Lock()
	h := b.hooks
	b.mu.Unlock()
	for _, a := range acts {
		b.log.Info("board: action", "action", a.String())
		switch a {
		case ActMute, ActUnmute:
			muted := a == ActMute
			b.saveMuted(muted)
			if h.Mute != nil {
				h.Mute(muted)
			}
		case ActCall:
			if h.Call == nil {
				b.log.Warn("board: call button pressed, but no peer to call is configured")
				continue
			}
			b.SetCall(CallDialing)
			if err := h.Call(); err != nil {
				b.log.Warn("board: call", "err", err)
				b.SetCall(CallIdle)
			}
		case ActConfirmBoxPairing:
			if h.ConfirmBoxPairing == nil {
				continue
			}
			if err := h.ConfirmBoxPairing(); err != nil {
				b.log.Warn("board: confirm box pairing", "err", err)
			}
		case ActAnswer:
			if h.Answer == nil {
				continue
			}
			if err := h.Answer(); err != nil {
				b.log.Warn("board: answer", "err", err)
			}
		case ActHangUp:
			if h.HangUp != nil {
				if err := h.HangUp(); err != nil {
					b.log.Warn("board: hang up", "err", err)
				}
			}
			b.SetCall(CallIdle)
		case ActApprove:
			n, err := b.reg.ApproveAll()
			if err != nil {
				b.log.Error("board: pairing", "err", err)
				b.SetFault(FaultStorage, err)
				continue
			}
			b.log.Info("board: phones paired", "count", n)
		case ActFactoryReset:
			b.factoryReset(h)
		}
	}
}

// FactoryReset forgets every paired phone and every setting changed with
// the buttons. The buttons reach it through the confirmed very long press.
func (b *Box) FactoryReset() {
	b.mu.Lock()
	h := b.hooks
	b.m.SetMuted(false)
	b.mu.Unlock()
	b.factoryReset(h)
	b.refresh()
}

func (b *Box) factoryReset(h Hooks) {
	err := b.reg.RevokeAll()
	b.saveMu.Lock()
	b.saved = store.State{}
	if err == nil && b.store != nil {
		err = b.store.Save(b.saved)
	}
	b.saveMu.Unlock()
	if h.Mute != nil {
		h.Mute(false)
	}
	if h.Reset != nil {
		h.Reset()
	}
	if err != nil {
		b.log.Error("board: factory reset", "err", err)
		b.SetFault(FaultStorage, fmt.Errorf("factory reset: %w", err))
		return
	}
	b.SetFault(FaultStorage, nil)
	b.log.Info("board: factory reset: all phones unpaired, settings cleared")
}

func (b *Box) saveTokens(toks []store.Token) error {
	b.saveMu.Lock()
	defer b.saveMu.Unlock()
	next := b.saved
	next.Tokens = toks
	if b.store != nil {
		if err := b.store.Save(next); err != nil {
			return err
		}
	}
	b.saved = next
	return nil
}

func (b *Box) saveMuted(muted bool) {
	b.saveMu.Lock()
	next := b.saved
	next.Muted = muted
	var err error
	if b.store != nil {
		err = b.store.Save(next)
	}
	if err == nil {
		b.saved = next
	}
	b.saveMu.Unlock()
	if err != nil {
		// The mute itself still applies; only its memory is lost.
		b.log.Error("board: saving mute", "err", err)
		b.SetFault(FaultStorage, err)
	}
}
