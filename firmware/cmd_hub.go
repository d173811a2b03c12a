package firmware

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/callbox/callbox/internal/netguard"
	"github.com/callbox/callbox/peer/hub"
	"github.com/callbox/callbox/peer/hub/store"
)

// cmdHub is `callbox hub`: the public rendezvous server for calls between
// boxes (design S3, S6): registration and pairing, signalling over
// WebSocket, STUN, and a TURN relay with TURN REST credentials. With
// --turn-url it hands out credentials for another TURN service (coturn with
// use-auth-secret and the same secret) and runs no relay of its own.
func cmdHub(args []string) int {
	fs := newFlagSet("hub", usageText{
		synopsis: []string{"[flags]"},
		about: "The public server boxes meet at: pairing, signalling (/v1/ws), STUN and a TURN relay, the\n" +
			"S7 fan-out relay, /v1/stats (docs/peer.md).",
		examples: []string{
			"callbox hub --listen :8443 --public-ip 203.0.113.7 --turn-secret-file /etc/callbox/turn.secret",
			"callbox hub --listen 127.0.0.1:8443 --stun-listen \"\"          # a hub for local tests",
			"callbox hub --store postgres://hub@db/hub --cluster nats://db:4222  # one of several instances",
			"callbox hub --config /etc/callbox/hub.toml                       # [hub] store = \"sqlite:/var/lib/callbox-hub/hub.db\"",
		},
	})
	listen := fs.String("listen", ":8443", "HTTP address for the signalling WebSocket (/v1/ws), the S7 fan-out relay (/v1/publish, /v1/fanout/) and /v1/stats")
	stunListen := fs.String("stun-listen", ":3478", "UDP address of the STUN/TURN server (\"\" to run none)")
	publicIP := fs.String("public-ip", "", "the hub's public IPv4 address: the TURN relay address, and the STUN/TURN URLs' host unless --public-host is given")
	publicHost := fs.String("public-host", "", "host name boxes use in STUN/TURN URLs (default: --public-ip)")
	secretFile := fs.String("turn-secret-file", "", "file holding the TURN REST shared secret (coturn's static-auth-secret); or set CALLBOX_TURN_SECRET")
	turnURLs := fs.String("turn-url", "", "comma-separated TURN URLs of an external TURN service (coturn); the hub then runs STUN only")
	dataDir := fs.String("data", "callbox-hub", "directory for the hub's default SQLite store (hub.db); a hub.json state file of older hubs found there is imported into the store once")
	storeURL := fs.String("store", "", "the hub's state: sqlite:PATH (one machine) or postgres://user:pass@host/db (several instances); default sqlite:DATA/hub.db")
	clusterURL := fs.String("cluster", "", "NATS URL (nats://host:4222) joining this hub to other instances on the same PostgreSQL store; \"\" works alone")
	instance := fs.String("instance", "", "this instance's name in the cluster (default: random; letters, digits, - and _: it is a NATS subject token)")
	drain := fs.Duration("drain", 5*time.Second, "on SIGTERM, how long to spread telling the connected boxes to reconnect elsewhere")
	certFile := fs.String("tls-cert", "", "TLS certificate for wss:// (recommended in production)")
	keyFile := fs.String("tls-key", "", "TLS key for --tls-cert")
	ttl := fs.Duration("credential-ttl", time.Hour, "lifetime of the TURN credentials handed to a paired box (it asks for fresh ones when half has passed)")
	maxConns := fs.Int("max-conns", 4096, "connections open at once on --listen (each box keeps one); beyond it idle ones are closed first, then new ones refused")
	maxConnsPerAddr := fs.Int("max-conns-per-addr", 64, "connections open at once from one address (IPv4, or IPv6 /64): boxes behind one NAT share it")
	minPort := fs.Uint("relay-min-port", 49152, "lowest UDP port of a TURN relay allocation (open the range in the firewall)")
	maxPort := fs.Uint("relay-max-port", 65535, "highest UDP port of a TURN relay allocation")
	configPath := fs.String("config", "", "TOML file with a [hub] table whose keys are these flags' names (store = \"postgres://...\"); flags on the command line win")
	if code, ok := parseArgs(fs, args); !ok {
		return code
	}
	if *configPath != "" {
		if err := applyHubConfig(fs, *configPath); err != nil {
			fmt.Fprintf(os.Stderr, "callbox hub: %v\n", err)
			return 2
		}
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	secret := os.Getenv("CALLBOX_TURN_SECRET")
	if *secretFile != "" {
		b, err := os.ReadFile(*secretFile)
		if err != nil {
			fmt.Fprintf(os.Stderr, "callbox hub: %v\n", err)
			return 2
		}
		secret = strings.TrimSpace(string(b))
	}
	if secret == "" {
		fmt.Fprintln(os.Stderr, "callbox hub: a TURN shared secret is required (--turn-secret-file or CALLBOX_TURN_SECRET)")
		return 2
	}
	ip := net.ParseIP(*publicIP).To4()
	if ip == nil {
		fmt.Fprintf(os.Stderr, "callbox hub: --public-ip %q is not an IPv4 address\n", *publicIP)
		return 2
	}
	host := *publicHost
	if host == "" {
		host = ip.String()
	}
	if *storeURL == "" {
		*storeURL = "sqlite:" + filepath.Join(*dataDir, "hub.db")
	}
	sctx, scancel := context.WithTimeout(context.Background(), 30*time.Second)
	st, err := store.Open(sctx, *storeURL)
	scancel()
	if err != nil {
		log.Error("callbox hub", "err", err)
		return 1
	}
	defer st.Close()
	cfg := hub.Config{
		Store:         st,
		ImportJSON:    filepath.Join(*dataDir, "hub.json"),
		Cluster:       *clusterURL,
		Instance:      *instance,
		DrainPeriod:   *drain,
		TURNSecret:    secret,
		CredentialTTL: *ttl,
		Log:           log,
	}
	var turn *hub.TURNServer
	if *stunListen != "" {
		_, port, err := net.SplitHostPort(*stunListen)
		if err != nil {
			fmt.Fprintf(os.Stderr, "callbox hub: --stun-listen: %v\n", err)
			return 2
		}
		hp := net.JoinHostPort(host, port)
		cfg.STUNURLs = []string{"stun:" + hp}
		if *turnURLs == "" {
			cfg.TURNURLs = []string{"turn:" + hp + "?transport=udp"}
		}
		if *minPort == 0 || *maxPort > 65535 || *minPort > *maxPort {
			fmt.Fprintf(os.Stderr, "callbox hub: relay ports %d-%d are not a port range\n", *minPort, *maxPort)
			return 2
		}
		turn, err = hub.StartTURN(hub.TURNConfig{Listen: *stunListen, PublicIP: ip, Secret: secret, Log: log,
			MinPort: uint16(*minPort), MaxPort: uint16(*maxPort)})
		if err != nil {
			log.Error("callbox hub", "err", err)
			return 1
		}
		defer turn.Close()
	}
	if *turnURLs != "" {
		cfg.TURNURLs = strings.Split(*turnURLs, ",")
	}
	if *publicIP != "" {
		cfg.PublicIPs = []string{*publicIP} // phones on the fan-out relay reach the hub there
	}
	h, err := hub.New(cfg)
	if err != nil {
		log.Error("callbox hub", "err", err)
		return 1
	}
	defer h.Close()
	fanout := hub.NewFanoutRelay(h, log)
	defer fanout.Close()
	mux := http.NewServeMux()
	mux.Handle("/v1/ws", h)
	// S7: a box whose uplink cannot carry a copy per receiver publishes
	// one copy here; the hub's relay serves the receivers.
	mux.Handle("/v1/publish", fanout)
	mux.Handle("/v1/fanout/", fanout)
	mux.Handle("/box/", h.PhoneHandler())
	mux.Handle("/metrics", h.Metrics())
	mux.Handle("/healthz", h.Healthz())
	mux.Handle("/readyz", h.Readyz())
	mux.HandleFunc("/v1/stats", func(w http.ResponseWriter, r *http.Request) {
		st := struct {
			hub.Stats
			Pairing hub.PairingStats `json:"pairing"`
		}{h.Stats(), h.PairingStats()}
		if turn != nil {
			st.RelayedBytes = turn.RelayedBytes()
			st.Allocations = turn.Allocations()
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(st)
	})
	// Bounded headers and timeouts, and connection caps (docs/security.md,
	// "The hub"): a flood of oversized headers or idle connections costs
	// the hub a bounded amount of memory and descriptors.
	limits := netguard.Limits{MaxHeaderBytes: 16 << 10, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 60 * time.Second,
		MaxConns: *maxConns, MaxConnsPerAddr: *maxConnsPerAddr}
	ln, err := netguard.Listen(*listen, limits)
	if err != nil {
		log.Error("callbox hub", "err", err)
		return 1
	}
	srv := netguard.Server(mux, limits)
	ln.Watch(srv)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() {
		if *certFile != "" {
			errc <- srv.ServeTLS(ln, *certFile, *keyFile)
		} else {
			errc <- srv.Serve(ln)
		}
	}()
	scheme := "ws"
	if *certFile != "" {
		scheme = "wss"
	}
	fmt.Printf("callbox hub: signalling at %s://%s/v1/ws, STUN/TURN %v %v, store %s\n", scheme, ln.Addr(), cfg.STUNURLs, cfg.TURNURLs, store.Redact(*storeURL))
	select {
	case <-ctx.Done():
	case err := <-errc:
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("callbox hub", "err", err)
			return 1
		}
	}
	// Drain: /readyz turns 503 at once (the load balancer stops sending
	// boxes here) and the connected boxes are told to reconnect, spread
	// over --drain; then the server stops.
	dctx, dcancel := context.WithTimeout(context.Background(), *drain+5*time.Second)
	h.Drain(dctx)
	dcancel()
	shctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_ = srv.Shutdown(shctx)
	return 0
}
