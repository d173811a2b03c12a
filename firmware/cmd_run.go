package firmware

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/callbox/callbox/board/config"
	"github.com/callbox/callbox/internal/netguard"
	"github.com/callbox/callbox/internal/webguard"
)

// appliance is `callbox run`: the box. Each part lives in its own file
// (run_*.go) and has the same life cycle: flags, start, stop.
//
// Start order: board (configuration, LED, buttons) -> relay -> media
// (sources and packetizers publishing into the relay) -> peer (calls to
// other boxes) -> page and HTTP.
// Stop runs in reverse.
type appliance struct {
	configPath string
	flags      *config.Flags // the configuration keys' flags
	// cfg is the configuration: the file, then the command line over it
	// (loadConfig, before any part starts). cfgErr is what was wrong with
	// the file; the board shows it.
	cfg    *config.Config
	cfgErr error
	log    *slog.Logger
	mux    *http.ServeMux

	board boardPart
	relay relayPart
	media mediaPart
	peer  peerPart
	page  pagePart
}

func cmdRun(args []string) int {
	a := &appliance{log: slog.New(slog.NewTextHandler(os.Stderr, nil)), mux: http.NewServeMux()}
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	a.registerFlags(fs)
	if err := fs.Parse(args); err != nil {
		return 2
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
	a.page.flags(fs)
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
	return nil
}

func (a *appliance) run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := a.loadConfig(); err != nil {
		return err
	}
	if err := a.board.start(ctx, a); err != nil {
		return fmt.Errorf("board: %w", err)
	}
	defer a.board.stop()
	if err := a.relay.start(ctx, a); err != nil {
		return fmt.Errorf("relay: %w", err)
	}
	defer a.relay.stop()
	if err := a.media.start(ctx, a); err != nil {
		return fmt.Errorf("media: %w", err)
	}
	defer a.media.stop()
	if err := a.peer.start(ctx, a); err != nil {
		return fmt.Errorf("peer: %w", err)
	}
	defer a.peer.stop()
	if err := a.page.start(ctx, a); err != nil {
		return fmt.Errorf("page: %w", err)
	}
	defer a.page.stop()

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
