package hub

import (
	"crypto/hmac"
	"crypto/sha1" // #nosec: HMAC-SHA1 is what the TURN REST scheme (and coturn) specifies
	"encoding/base64"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/pion/logging"
	transport "github.com/pion/transport/v5"
	"github.com/pion/transport/v5/stdnet"
	"github.com/pion/turn/v5"
)

// TURNCredentials returns the TURN REST credentials coturn accepts with
// use-auth-secret: username "expiry:boxid" (expiry in Unix seconds), password
// base64(HMAC-SHA1(secret, username)).
func TURNCredentials(secret, boxID string, expiry time.Time) (username, password string) {
	username = strconv.FormatInt(expiry.Unix(), 10) + ":" + boxID
	mac := hmac.New(sha1.New, []byte(secret))
	mac.Write([]byte(username))
	return username, base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// TURNConfig configures the hub's STUN/TURN server.
type TURNConfig struct {
	Listen   string // UDP address for STUN and TURN, e.g. ":3478"
	PublicIP net.IP // the address boxes reach the hub at; advertised as the relay address
	Secret   string // TURN REST shared secret (coturn's static-auth-secret)
	Realm    string // default "callbox"
	// MinPort and MaxPort bound the relay ports (default 49152-65535, what
	// coturn uses), so a firewall can open exactly that range.
	MinPort, MaxPort uint16
	Net              transport.Net
	Log              *slog.Logger
}

// TURNServer answers STUN binding requests (a box learns its external
// address: S3) and relays for allocations authenticated with TURN REST
// credentials (S6). What it relays is SRTP and DTLS: ciphertext.
type TURNServer struct {
	srv     *turn.Server
	conn    net.PacketConn
	relayed atomic.Uint64
}

// StartTURN starts the STUN/TURN server.
func StartTURN(cfg TURNConfig) (*TURNServer, error) {
	if cfg.Secret == "" {
		return nil, fmt.Errorf("peer: TURN needs a shared secret")
	}
	if cfg.PublicIP == nil {
		return nil, fmt.Errorf("peer: TURN needs the hub's public IP")
	}
	if cfg.Realm == "" {
		cfg.Realm = "callbox"
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.MinPort == 0 {
		cfg.MinPort = 49152
	}
	if cfg.MaxPort == 0 {
		cfg.MaxPort = 65535
	}
	if cfg.MinPort > cfg.MaxPort {
		return nil, fmt.Errorf("peer: TURN relay ports %d-%d: empty range", cfg.MinPort, cfg.MaxPort)
	}
	if cfg.Net == nil {
		n, err := stdnet.NewNet()
		if err != nil {
			return nil, fmt.Errorf("peer: TURN net: %w", err)
		}
		cfg.Net = n
	}
	conn, err := cfg.Net.ListenPacket("udp4", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("peer: TURN listen: %w", err)
	}
	t := &TURNServer{conn: conn}
	lf := logging.NewDefaultLoggerFactory()
	lf.DefaultLogLevel = logging.LogLevelWarn
	bind := "0.0.0.0"
	if ua, ok := conn.LocalAddr().(*net.UDPAddr); ok && !ua.IP.IsUnspecified() {
		bind = ua.IP.String()
	}
	srv, err := turn.NewServer(turn.ServerConfig{
		Realm:         cfg.Realm,
		LoggerFactory: lf,
		AuthHandler:   turn.LongTermTURNRESTAuthHandler(cfg.Secret, lf.NewLogger("turn-auth")),
		PacketConnConfigs: []turn.PacketConnConfig{{
			PacketConn:        conn,
			PermissionHandler: relayPeerAllowed,
			RelayAddressGenerator: &countingGenerator{
				RelayAddressGeneratorPortRange: turn.RelayAddressGeneratorPortRange{
					RelayAddress: cfg.PublicIP, Address: bind, Net: cfg.Net,
					MinPort: cfg.MinPort, MaxPort: cfg.MaxPort,
				},
				n: &t.relayed,
			},
		}},
		EventHandler: turn.EventHandler{
			OnAllocationCreated: func(src, _ net.Addr, _, user, _ string, relay net.Addr, _ int) {
				cfg.Log.Info("turn allocation", "box", boxOfUser(user), "from", src, "relay", relay)
			},
			OnAllocationDeleted: func(src, _ net.Addr, _, user, _ string) {
				cfg.Log.Info("turn allocation closed", "box", boxOfUser(user), "from", src)
			},
		},
	})
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("peer: TURN server: %w", err)
	}
	t.srv = srv
	return t, nil
}

// relayPeerAllowed keeps the relay from being a way into the hub's own
// networks: boxes are reached at public addresses (their NATs' or their
// own), never at loopback, private, link-local, multicast or unspecified
// ones (coturn's denied-peer-ip does the same job).
func relayPeerAllowed(_ net.Addr, peer net.IP) bool {
	return !(peer.IsLoopback() || peer.IsPrivate() || peer.IsLinkLocalUnicast() ||
		peer.IsLinkLocalMulticast() || peer.IsMulticast() || peer.IsUnspecified())
}

func boxOfUser(u string) string {
	if i := strings.IndexByte(u, ':'); i >= 0 {
		return u[i+1:]
	}
	return u
}

// Addr is the UDP address the server listens on.
func (t *TURNServer) Addr() net.Addr { return t.conn.LocalAddr() }

// RelayedBytes is the number of bytes the relay has carried between
// allocations and peers, both directions.
func (t *TURNServer) RelayedBytes() uint64 { return t.relayed.Load() }

// Allocations is the number of live TURN allocations.
func (t *TURNServer) Allocations() int { return t.srv.AllocationCount() }

// Close stops the server and frees every allocation.
func (t *TURNServer) Close() error { return t.srv.Close() }

// countingGenerator counts what goes through each relay socket, so the hub
// can report how much traffic it relays.
type countingGenerator struct {
	turn.RelayAddressGeneratorPortRange
	n *atomic.Uint64
}

func (g *countingGenerator) AllocatePacketConn(c turn.AllocateListenerConfig) (net.PacketConn, net.Addr, error) {
	pc, addr, err := g.RelayAddressGeneratorPortRange.AllocatePacketConn(c)
	if err != nil {
		return nil, nil, err
	}
	return &countingConn{PacketConn: pc, n: g.n}, addr, nil
}

type countingConn struct {
	net.PacketConn
	n *atomic.Uint64
}

func (c *countingConn) ReadFrom(p []byte) (int, net.Addr, error) {
	n, a, err := c.PacketConn.ReadFrom(p)
	c.n.Add(uint64(max(n, 0)))
	return n, a, err
}

func (c *countingConn) WriteTo(p []byte, a net.Addr) (int, error) {
	n, err := c.PacketConn.WriteTo(p, a)
	c.n.Add(uint64(max(n, 0)))
	return n, err
}
