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
)

// runOptions are the appliance's command-line flags. The configuration file
// (board.Config) supplies the same settings; flags win.
type runOptions struct {
	configPath string
	httpAddr   string
}

func cmdRun(args []string) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	var o runOptions
	fs.StringVar(&o.configPath, "config", "", "configuration file (TOML)")
	fs.StringVar(&o.httpAddr, "http", ":8080", "HTTP address for the page, WebSocket and /metrics")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := runAppliance(ctx, o); err != nil {
		slog.Error("callbox run", "err", err)
		return 1
	}
	return 0
}

func runAppliance(ctx context.Context, o runOptions) error {
	mux := http.NewServeMux()
	ln, err := net.Listen("tcp", o.httpAddr)
	if err != nil {
		return fmt.Errorf("http listen: %w", err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	fmt.Printf("callbox: page at http://%s/\n", ln.Addr())
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
