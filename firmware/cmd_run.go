package firmware

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/callbox/callbox/board/config"
	"github.com/callbox/callbox/internal/netguard"
	"github.com/callbox/callbox/internal/netmon"
	"github.com/callbox/callbox/internal/webguard"
)

// appliance is `callbox run`: the box. Each part lives in its own file
// (run_*.go), is built by wire with what it needs of the others (small
// interfaces each part declares for itself), and has the same life cycle:
// start, stop. No part reaches into another's fields.
//
// Start order (parts): board (LED, buttons, pairing) -> relay -> speaker
// (the mixer, and the echo cancellation the microphone needs) -> media
// (sources and packetizers publishing into the relay) -> peer (calls to
// other boxes) -> page (and mDNS) -> outputs (RTSP, /snapshot.jpg, Home
// Assistant); then the HTTP server. Stop runs in reverse.
type appliance struct {
	configPath string
	flags      *config.Flags // the configuration keys' flags
	mdnsName   string        // --mdns-name
	// cfg is the configuration: the file, then the command line over it
	// (loadConfig, before any part starts). cfgErr is what was wrong with
	// the file; the board shows it.
	cfg    *config.Config
	cfgErr error
	log    *slog.Logger
	logOut *switchWriter // where log goes: the simulated board moves it above its status line
	mux    *http.ServeMux
	// net is the one network monitor: the board's "no network" fault and
	// the calls' ICE restarts follow it.
	net *netmon.Monitor

	board   *boardPart
	relay   *relayPart
	speaker *speakerPart
	media   *mediaPart
	peer    *peerPart
	page    *pagePart
	outputs *outputsPart
	// update installs bundles uploaded from the page (run_update.go).
	update     *updatePart
	updateOpts updateOptions
}

// part is one part of the appliance.
type part interface {
	start(ctx context.Context) error
	stop()
}

func newAppliance() *appliance {
	out := &switchWriter{w: os.Stderr}
	return &appliance{log: slog.New(slog.NewTextHandler(out, nil)), logOut: out, mux: http.NewServeMux()}
}

// wire builds the parts and connects them; this is the only place that
// knows which part serves which. The board is built first but reaches the
// relay (viewers, disconnecting revoked phones) and the calls (their state
// on /api/state) only through the interfaces it declares, set here.
func (a *appliance) wire() {
	a.net = netmon.New(nil, 0)
	a.board = &boardPart{cfg: a.cfg, cfgErr: a.cfgErr, log: a.log, logOut: a.logOut, mux: a.mux, net: a.net}
	a.relay = &relayPart{cfg: a.cfg.Relay, log: a.log.With("part", "relay"), mux: a.mux, auth: a.board}
	a.speaker = &speakerPart{cfg: a.cfg.Speaker, log: a.log.With("part", "speaker"), board: a.board}
	a.media = &mediaPart{cfg: applianceMediaConfig(a.cfg), h264: h264Config(a.cfg), log: a.log.With("part", "media"), sink: a.relay, board: a.board,
		echo: a.speaker}
	a.peer = &peerPart{cfg: a.cfg.Call, name: a.cfg.Name, relayCfg: relayConfig(a.cfg.Relay),
		log: a.log.With("part", "peer"), mux: a.mux, board: a.board, media: a.media, net: a.net, phones: a.relay, uplink: a.relay,
		speaker: a.speaker}
	a.page = &pagePart{mdnsName: a.mdnsName, boxName: a.cfg.Name, httpAddr: a.cfg.HTTP, log: a.log, mux: a.mux}
	a.outputs = newOutputsPart(a.cfg, a.log.With("part", "outputs"), a.mux, a.board, a.relay, a.media, a.page)
	a.board.relay, a.board.calls, a.board.video, a.board.speaker = a.relay, a.peer, a.media, a.speaker
	// Remote phones' push-to-talk plays on the speaker's mixer.
	a.peer.talk = newTalkBack(a.speaker.talkMixer, a.log.With("part", "talkback"))
	a.board.talk = a.peer.talk
	a.board.remote = a.peer // S7 for remote phones on /api/state
	a.peer.phoneHashes = a.board.pairedHashes
	a.update = &updatePart{opts: a.updateOpts, log: a.log.With("part", "update"), mux: a.mux, board: a.board}
	// The outputs' gate stands in front of the board's pairing check, for
	// the relay and for the tokens a pairing hands out: RTSP Digest needs
	// the tokens in clear (docs/integrations.md).
	a.relay.auth = a.outputs
	a.board.onToken = a.outputs.learnToken
}

// parts lists the parts in start order.
func (a *appliance) parts() []struct {
	name string
	p    part
} {
	return []struct {
		name string
		p    part
	}{{"board", a.board}, {"relay", a.relay}, {"speaker", a.speaker}, {"media", a.media}, {"peer", a.peer}, {"page", a.page},
		{"outputs", a.outputs}, {"update", a.update}}
}

// start starts the parts in order; the returned stop stops the ones
// started, in reverse. On an error, what was started is stopped.
func (a *appliance) start(ctx context.Context) (stop func(), err error) {
	var started []part
	stop = func() {
		for i := len(started) - 1; i >= 0; i-- {
			started[i].stop()
		}
	}
	for _, p := range a.parts() {
		if err := p.p.start(ctx); err != nil {
			stop()
			return func() {}, fmt.Errorf("%s: %w", p.name, err)
		}
		started = append(started, p.p)
	}
	return stop, nil
}

// switchWriter is an io.Writer whose destination can change (the log).
type switchWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *switchWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

func (s *switchWriter) set(w io.Writer) {
	s.mu.Lock()
	s.w = w
	s.mu.Unlock()
}

func cmdRun(args []string) int {
	a := newAppliance()
	fs := newFlagSet("run", usageText{
		synopsis: []string{"[--config FILE] [flags]"},
		about: "The appliance: camera and microphone, the relay to phones, the phone page, the board\n" +
			"(buttons, LED, pairing), calls to other boxes. Every flag below but --config and\n" +
			"--mdns-name is also a key of the configuration file (docs/config.md); the flag wins.",
		examples: []string{
			"callbox run --http 127.0.0.1:8080            # what `make run` does",
			"callbox run --config /boot/firmware/callbox.toml",
			"callbox run --http :8080 --open --camera /dev/video0 --size 640x480 --fps 15",
		},
	})
	a.registerFlags(fs)
	if code, ok := parseArgs(fs, args); !ok {
		return code
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := a.run(ctx); err != nil {
		a.log.Error("callbox run", "err", err)
		return 1
	}
	return 0
}

// registerFlags registers `callbox run`'s flags: --config, one per
// configuration key that has one (board/config declares them), and the
// page's --mdns-name.
func (a *appliance) registerFlags(fs *flag.FlagSet) {
	fs.StringVar(&a.configPath, "config", "", "configuration `file` (TOML, docs/config.md); a bad file boots on defaults and shows the error")
	a.flags = config.RegisterFlags(fs)
	fs.StringVar(&a.mdnsName, "mdns-name", "auto", "answer mDNS queries for `name`.local on the LAN; auto: from the box's configured name; \"\" turns mDNS off")
	a.updateOpts.register(fs)
}

// loadConfig reads the configuration file (--config, else the first of
// boardConfigPaths) and applies the command line over it. A bad file is
// not an error here (the box boots and shows it); a command line that
// breaks a rule between keys is.
func (a *appliance) loadConfig() error {
	cfg, err := loadBoardConfig(a.configPath, a.log)
	if ferr := a.flags.Apply(cfg); ferr != nil {
		return ferr
	}
	a.cfg, a.cfgErr = cfg, err
	a.wire()
	return nil
}

func (a *appliance) run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := a.loadConfig(); err != nil {
		return err
	}
	stop, err := a.start(ctx)
	if err != nil {
		return err
	}
	defer stop()

	// Bounded headers, timeouts and connection caps (docs/security.md):
	// no stranger's connections can exhaust the box's memory or descriptors.
	ln, err := netguard.Listen(a.cfg.HTTP, netguard.DefaultLimits())
	if err != nil {
		return fmt.Errorf("http listen: %w", err)
	}
	// Only the box's own names as Host, same-origin JSON for changes
	// (DNS rebinding, cross-site POSTs: docs/security.md).
	srv := netguard.Server(webguard.Guard(a.mux, a.page.hostNames), netguard.DefaultLimits())
	ln.Watch(srv)
	go srv.Serve(ln)
	a.announce(ln.Addr().(*net.TCPAddr))
	a.board.booted() // the LED leaves "booting" once the page is served
	<-ctx.Done()
	a.log.Info("shutting down")
	sctx, scancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer scancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// announce prints where people find the page.
func (a *appliance) announce(addr *net.TCPAddr) {
	for _, u := range a.page.pageURLs(addr) {
		fmt.Printf("callbox: page at %s\n", u)
	}
}
