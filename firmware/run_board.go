package firmware

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	pgpio "periph.io/x/conn/v3/gpio"

	"github.com/callbox/callbox/board"
	"github.com/callbox/callbox/board/config"
	"github.com/callbox/callbox/board/store"
	"github.com/callbox/callbox/drivers/gpio"
	"github.com/callbox/callbox/internal/netmon"
	"github.com/callbox/callbox/media"
	"github.com/callbox/callbox/peer/box"
)

// boardPart is the appliance's board: the persistent state, the buttons
// and the LED (real GPIO, or the simulated board when the machine has
// none), pairing, and the error state. It starts first because the others
// depend on what it decides: whether a client may receive media
// (Authorize), whether the devices are real (simulated).
type boardPart struct {
	// Set by wire.
	cfg    *config.Config
	cfgErr error // what was wrong with the configuration file: shown as a fault
	log    *slog.Logger
	logOut *switchWriter // nil: leave the log where it is
	mux    *http.ServeMux
	net    boardNet
	relay  boardRelay
	calls  boardCalls
	// onToken is told each token a pairing hands out (the outputs' gate
	// remembers it, in memory, for RTSP Digest); nil: nobody.
	onToken func(token string)
	video   boardVideo   // nil: not shown
	speaker boardSpeaker // nil: not shown
	talk    *talkBack    // remote phones' push-to-talk; nil: not shown
	remote  boardRemote  // S7 for phones away from home; nil: not shown

	box       *board.Box
	sim       *board.Sim // nil on real hardware
	wiring    board.Wiring
	simulated bool // no GPIO in use: the LED is shown in the terminal
	// netButtons allows /api/sim/button: only without any real board.
	netButtons bool
	// dir is the data directory in use (the peer part keeps the box's
	// identity and paired boxes there too).
	dir string

	unwatchNet func() // ends the network monitor's callback

	mu    sync.Mutex
	hooks board.Hooks
	// resetHooks run after a factory reset, after the relay's clients are
	// cut off (onReset).
	resetHooks []func()
	closers    []io.Closer
	ctx        context.Context // ends when the appliance stops
	cancel     context.CancelFunc
	wg         sync.WaitGroup

	// revokeHooks end an unpaired phone's sessions (onRevoke).
	revokeHooks []func(hash string) int
}

// boardNet is what the board needs of the network monitor: a callback on
// every change of the box's addresses (netmon.Monitor).
type boardNet interface {
	Current() netmon.State
	RegisterChangeCallback(f func(old, new netmon.State)) (unregister func())
}

// boardRelay is what the board needs of the relay: the number of phones
// watching (the LED), and cutting off phones whose pairing a factory reset
// revoked.
type boardRelay interface {
	Viewers() int
	DisconnectAll(reason string) int
	// disconnectPhone ends one unpaired phone's sessions (its token's
	// hash is their owner) and returns how many.
	disconnectPhone(hash string) int
}

// boardVideo is what the board shows of the video codec on /api/state.
type boardVideo interface {
	videoChoice() media.VideoChoice
}

// boardRemote is what the board shows of S7 for remote phones on
// /api/state (run_fanout.go); nil when the box has no hub.
type boardRemote interface {
	remoteState() *remoteAPIState
}

// boardCalls is what the board shows of calls on /api/state.
type boardCalls interface {
	callsEnabled() bool // a hub is configured
	peerLabel() string  // the other box in a call, "" without one
	// pairing is the pairing with another box under way (nil: none).
	pairing() *box.Pairing
	// missedCalls are the incoming calls nobody answered.
	missedCalls() []missedCall
	// peers are the paired boxes.
	peers() []callAPIPeer
}

// boardConfigPaths are tried, in order, when --config is not given: the
// boot partition as Raspberry Pi OS and Buildroot images mount it.
var boardConfigPaths = []string{"/boot/firmware/callbox.toml", "/boot/callbox.toml"}

// boxDataDir is the data directory on a real box (a partition that
// survives firmware updates).
const boxDataDir = "/data/callbox"

func (p *boardPart) start(ctx context.Context) error {
	// A bad file never stops the box: it runs on the defaults (plus every
	// valid key) and shows the error (cfgErr).
	cfg, cfgErr := p.cfg, p.cfgErr
	w, model, known, werr := p.resolveWiring()
	// Config-class faults, shown together as one message.
	faults := []error{cfgErr, werr}

	dir := cfg.DataDir
	if dir == "" {
		dir = boardDataDir(p.simulated)
	}
	p.dir = dir
	st, serr := store.Open(dir)
	if serr != nil {
		p.log.Error("board: data dir unusable; nothing will survive a restart", "err", serr)
		st = nil
	}

	led, lerr := p.openLED(w, known)
	faults = append(faults, lerr)
	opts := board.BoxOptions{
		Machine: board.MachineConfig{
			Timing:       board.Timing{Debounce: cfg.Board.Debounce, Long: cfg.Board.LongPress, VeryLong: cfg.Board.VeryLongPress},
			ResetConfirm: cfg.Pairing.ResetConfirm,
		},
		Store: st,
		Open:  cfg.Pairing.Open,
		LED:   led,
		Log:   p.log,
	}
	if p.sim != nil {
		opts.OnRefresh = p.sim.Refresh
	}
	p.box = board.NewBox(opts)
	if serr != nil {
		p.box.SetFault(board.FaultStorage, serr)
	}
	// A factory reset cuts off the clients whose tokens it revokes (the
	// relay asks Authorize, the pairing gate, for every new client).
	// Then the other parts' own (onReset: the peer part forgets the boxes
	// this one paired with).
	open := cfg.Pairing.Open
	p.hooks.Reset = func() {
		if !open && p.relay != nil {
			n := p.relay.DisconnectAll("unpaired")
			p.log.Info("board: factory reset disconnected clients", "count", n)
		}
		p.mu.Lock()
		more := p.resetHooks
		p.mu.Unlock()
		for _, f := range more {
			f()
		}
	}
	p.box.SetHooks(p.hooks)

	ctx, p.cancel = context.WithCancel(ctx)
	p.ctx = ctx
	p.goRun(func() { p.box.Run(ctx) })
	if p.sim != nil {
		p.sim.Attach(p.box)
		if board.IsTerminal(os.Stdin) {
			p.goRun(func() {
				if err := p.sim.ReadKeys(ctx, os.Stdin); err != nil {
					p.log.Warn("board: terminal keys", "err", err)
				}
			})
		}
	} else {
		if err := p.openButtons(w, cfg.Board.Debounce); err != nil {
			faults = append(faults, fmt.Errorf("board: %w", err))
		}
		// A box with no network cannot be reached by any phone: show it.
		// (The simulated board runs on a developer's machine, where
		// localhost is enough.)
		p.watchNetwork()
	}
	if err := errors.Join(faults...); err != nil {
		p.box.SetFault(board.FaultConfig, err)
	}
	if p.relay != nil {
		p.goRun(func() { p.watchViewers(ctx, p.relay.Viewers) })
	}
	if cfg.Pairing.Open {
		p.log.Warn("pairing is off (open access): every client on the network gets media")
	}
	p.log.Info("board", "profile", cfg.Board.Profile, "model", model, "simulated", p.simulated, "data", dir, "open", cfg.Pairing.Open)
	p.routes(p.mux)
	return nil
}

// resolveWiring finds the board: real GPIO when the profile resolves, else
// the simulation (p.simulated). The error is a fault to show: a board was
// asked for, or this is a known board, and it cannot be driven.
func (p *boardPart) resolveWiring() (w board.Wiring, model string, known bool, fault error) {
	var chips []board.Chip
	if infos, err := gpio.Chips(); err == nil {
		for _, c := range infos {
			chips = append(chips, board.Chip{Name: c.Name, Label: c.Label})
		}
	}
	model = board.ReadModel()
	_, known = board.DetectProfile(model)
	profile := p.cfg.Board.Profile
	w, werr := board.Resolve(p.cfg.Board, model, chips)
	if werr != nil {
		p.simulated = true
		if !errors.Is(werr, board.ErrNoBoard) || profile != "auto" && profile != "sim" || known {
			fault = fmt.Errorf("board: %w", werr)
		}
		p.log.Info("board: simulated", "why", werr)
	}
	p.wiring = w
	return w, model, known, fault
}

// openLED opens the board's LED, or the simulated board's (in the
// terminal) when there is no real one or it cannot be opened (the error,
// a fault to show).
func (p *boardPart) openLED(w board.Wiring, known bool) (board.LED, error) {
	var led board.LED
	var fault error
	if !p.simulated {
		l, closers, err := openBoardLED(w)
		if err != nil {
			fault = fmt.Errorf("board: %w", err)
			p.simulated = true
		} else {
			led = l
			p.closers = append(p.closers, closers...)
		}
	}
	// Presses from the network (/api/sim/button) only where there is no
	// real board at all: a development machine, or --board sim. A real
	// box whose GPIO failed shows its LED in the terminal but never lets
	// the network press its buttons, which would let anyone pair.
	profile := p.cfg.Board.Profile
	p.netButtons = p.simulated && (profile == "sim" || profile == "auto" && !known)
	if p.simulated {
		tty := board.IsTerminal(os.Stderr)
		p.sim = board.NewSim(os.Stderr, tty)
		led = p.sim
		if tty && p.logOut != nil {
			// Keep the status line below the log rather than broken by it.
			p.logOut.set(p.sim.Writer())
		}
	}
	return led, fault
}

func (p *boardPart) goRun(f func()) {
	p.wg.Add(1)
	go func() { defer p.wg.Done(); f() }()
}

func (p *boardPart) stop() {
	if p.cancel != nil {
		p.cancel()
	}
	p.mu.Lock()
	closers := p.closers
	p.closers = nil
	p.mu.Unlock()
	// Closing the inputs ends the edge goroutines; Run switches the LED
	// off before the outputs are released.
	for _, c := range closers {
		if _, isIn := c.(gpio.Input); isIn {
			c.Close()
		}
	}
	p.wg.Wait()
	if p.unwatchNet != nil {
		p.unwatchNet()
	}
	if p.sim != nil {
		if p.logOut != nil {
			p.logOut.set(os.Stderr)
		}
		p.sim.Close()
	}
	for _, c := range closers {
		if _, isIn := c.(gpio.Input); !isIn {
			c.Close()
		}
	}
}

// booted ends the booting state once the appliance serves its page.
func (p *boardPart) booted() {
	if p.box != nil {
		p.box.Booted()
	}
}

// onReset adds f to what a factory reset does (the peer part forgets the
// boxes this one paired with).
func (p *boardPart) onReset(f func()) {
	p.mu.Lock()
	p.resetHooks = append(p.resetHooks, f)
	p.mu.Unlock()
}

// setHooks merges hooks other parts provide (nil fields keep what is set).
func (p *boardPart) setHooks(h board.Hooks) {
	p.mu.Lock()
	if h.Mute != nil {
		p.hooks.Mute = h.Mute
	}
	if h.Call != nil {
		p.hooks.Call = h.Call
	}
	if h.HangUp != nil {
		p.hooks.HangUp = h.HangUp
	}
	if h.Answer != nil {
		p.hooks.Answer = h.Answer
	}
	if h.ConfirmBoxPairing != nil {
		p.hooks.ConfirmBoxPairing = h.ConfirmBoxPairing
	}
	if h.Reset != nil {
		p.hooks.Reset = h.Reset
	}
	hooks := p.hooks
	p.mu.Unlock()
	if p.box != nil {
		p.box.SetHooks(hooks)
	}
}

// muted reports whether the microphone must stay silent (button A).
func (p *boardPart) muted() bool { return p.box != nil && p.box.Muted() }

// fault sets (err != nil) or clears a fault such as board.FaultCamera.
func (p *boardPart) fault(f board.Fault, err error) {
	if p.box != nil {
		p.box.SetFault(f, err)
	}
}

// loadBoardConfig reads path, or the first default path that exists.
func loadBoardConfig(path string, log *slog.Logger) (*config.Config, error) {
	if path == "" {
		for _, c := range boardConfigPaths {
			if _, err := os.Stat(c); err == nil {
				path = c
				break
			}
		}
	}
	if path == "" {
		return config.Default(), nil
	}
	cfg, err := config.LoadFile(path)
	if err != nil {
		log.Error("configuration has errors; the bad keys keep their defaults", "err", err)
		return cfg, err
	}
	log.Info("configuration", "file", path)
	return cfg, nil
}

// boardDataDir is /data/callbox on a box; in simulation (a developer's
// machine) the user's cache directory, so `make run` needs no root.
func boardDataDir(simulated bool) string {
	if !simulated {
		return boxDataDir
	}
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "callbox")
	}
	return filepath.Join(os.TempDir(), "callbox")
}

// openBoardLED opens the LED lines of w: one line, or three for an RGB LED.
func openBoardLED(w board.Wiring) (board.LED, []io.Closer, error) {
	opts := gpio.OutputOptions{ActiveLow: w.LEDActiveLow}
	var closers []io.Closer
	open := func(line int) (gpio.Output, error) {
		o, err := gpio.OpenOutput(fmt.Sprintf("%s:%d", w.Chip, line), opts)
		if err != nil {
			return nil, fmt.Errorf("LED on %s line %d: %w", w.Chip, line, err)
		}
		closers = append(closers, o)
		return o, nil
	}
	fail := func(err error) (board.LED, []io.Closer, error) {
		for _, c := range closers {
			c.Close()
		}
		return nil, nil, err
	}
	if w.RGB[0] != config.NoPin {
		var outs [3]gpio.Output
		for i, line := range w.RGB {
			o, err := open(line)
			if err != nil {
				return fail(err)
			}
			outs[i] = o
		}
		leds := []board.LED{board.RGBLED{R: outs[0], G: outs[1], B: outs[2]}}
		if w.LED != config.NoPin {
			o, err := open(w.LED)
			if err != nil {
				return fail(err)
			}
			leds = append(leds, board.MonoLED{Switch: o})
		}
		return boardMultiLED(leds), closers, nil
	}
	o, err := open(w.LED)
	if err != nil {
		return fail(err)
	}
	return board.MonoLED{Switch: o}, closers, nil
}

// boardMultiLED shows the same colour on several LEDs.
type boardMultiLED []board.LED

func (m boardMultiLED) Set(c board.Color) error {
	var errs []error
	for _, l := range m {
		errs = append(errs, l.Set(c))
	}
	return errors.Join(errs...)
}

// openButtons opens both button lines (to ground: active low) and feeds
// their debounced edges to the Box.
func (p *boardPart) openButtons(w board.Wiring, debounce time.Duration) error {
	pull := pgpio.Float
	if w.PullUp {
		pull = pgpio.PullUp
	}
	for _, b := range []struct {
		btn  board.Button
		line int
	}{{board.ButtonA, w.ButtonA}, {board.ButtonB, w.ButtonB}} {
		in, err := gpio.OpenInput(fmt.Sprintf("%s:%d", w.Chip, b.line), gpio.InputOptions{Debounce: debounce, ActiveLow: true, Pull: pull})
		if err != nil {
			return fmt.Errorf("button %v on %s line %d: %w", b.btn, w.Chip, b.line, err)
		}
		p.mu.Lock()
		p.closers = append(p.closers, in)
		p.mu.Unlock()
		btn := b.btn
		p.goRun(func() {
			for e := range in.Events() {
				if e.Active {
					p.box.Press(btn, e.Time)
				} else {
					p.box.Release(btn, e.Time)
				}
			}
		})
	}
	return nil
}

// viewerPoll is how often the LED's phone count follows the relay: fast
// enough that a phone joining shows within a blink.
const viewerPoll = 500 * time.Millisecond

// watchViewers keeps the "streaming to N phones" state current.
func (p *boardPart) watchViewers(ctx context.Context, viewers func() int) {
	for {
		p.box.SetViewers(viewers())
		select {
		case <-ctx.Done():
			return
		case <-time.After(viewerPoll):
		}
	}
}

// watchNetwork shows the "no network" fault while the box has no address
// a phone could reach, following the appliance's network monitor.
func (p *boardPart) watchNetwork() {
	show := func(s netmon.State) {
		if s.HasRoutable() {
			p.box.SetFault(board.FaultNetwork, nil)
		} else {
			p.box.SetFault(board.FaultNetwork, errors.New("no network: connect Ethernet or configure Wi-Fi"))
		}
	}
	p.unwatchNet = p.net.RegisterChangeCallback(func(_, s netmon.State) { show(s) })
	show(p.net.Current())
}

// Authorize is the pairing gate: nil when token belongs to a paired phone
// (or pairing is off). The relay and the call API ask it.
func (p *boardPart) Authorize(token string) error {
	if p.box == nil {
		return errBoardNotStarted
	}
	return p.box.Authorize(token)
}

// errBoardNotStarted refuses everyone before the board has started.
var errBoardNotStarted = errors.New("board: not started")

// isSimulated reports whether the board is simulated (no GPIO: a
// development machine, or a board that cannot be driven).
func (p *boardPart) isSimulated() bool { return p.simulated }

// dataDir is the data directory in use: the calls keep the box's identity
// and paired boxes there too.
func (p *boardPart) dataDir() string { return p.dir }

// authorizeHash accepts the hash of a paired phone's token (a phone away
// from home presents its credential, which names the hash).
// pairedHashes are the paired phones' token IDs (hex SHA-256): the hub's
// fan-out relay admits only these (run_fanout.go).
func (p *boardPart) pairedHashes() []string {
	if p.box == nil {
		return nil
	}
	ts := p.box.Phones()
	out := make([]string, 0, len(ts))
	for _, t := range ts {
		out = append(out, t.Hash)
	}
	return out
}

func (p *boardPart) authorizeHash(hash string) error {
	if p.box == nil {
		return errBoardNotStarted
	}
	return p.box.AuthorizeHash(hash)
}

// setCall shows a call's progress on the LED and /api/state.
func (p *boardPart) setCall(c board.Call) {
	if p.box != nil {
		p.box.SetCall(c)
	}
}

// setBoxPairing shows that a pairing with another box waits for the
// owner's confirmation (LED box-pairing; A+B confirms).
func (p *boardPart) setBoxPairing(on bool) {
	if p.box != nil {
		p.box.SetBoxPairing(on)
	}
}

// callState is the call the board shows.
func (p *boardPart) callState() board.Call {
	if p.box == nil {
		return board.CallIdle
	}
	return p.box.Status().Call
}
