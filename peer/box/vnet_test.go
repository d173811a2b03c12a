package box

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/callbox/callbox/capture/synth"
	"github.com/callbox/callbox/peer/hub"
	"github.com/callbox/callbox/peer/proto"
	"github.com/pion/logging"
	"github.com/pion/transport/v5/vnet"
)

// The virtual internet of these tests: a WAN router (198.51.100.0/24,
// TEST-NET-2) with the hub at .10, and LAN routers with pion/transport's
// NAT models. Signalling runs over loopback to a real hub; ICE, STUN, TURN,
// DTLS and SRTP run over the virtual network.
const vnetHubIP = "198.51.100.10"

var (
	coneNAT      = &vnet.NATType{MappingBehavior: vnet.EndpointIndependent, FilteringBehavior: vnet.EndpointAddrPortDependent}
	symmetricNAT = &vnet.NATType{MappingBehavior: vnet.EndpointAddrPortDependent, FilteringBehavior: vnet.EndpointAddrPortDependent}
)

type vlab struct {
	t        *testing.T
	wan      *vnet.Router
	routers  []*vnet.Router
	hubURL   string
	turn     *hub.TURNServer
	maxUDP   atomic.Int64 // largest UDP payload seen on any router
	nextLAN  int
	lanNames map[string]*vnet.Router
}

func newVLab(t *testing.T) *vlab {
	t.Helper()
	lf := logging.NewDefaultLoggerFactory()
	lf.DefaultLogLevel = logging.LogLevelError
	wan, err := vnet.NewRouter(&vnet.RouterConfig{CIDR: "198.51.100.0/24", LoggerFactory: lf})
	if err != nil {
		t.Fatal(err)
	}
	l := &vlab{t: t, wan: wan, lanNames: map[string]*vnet.Router{}}
	l.watch(wan)
	hubNet, err := vnet.NewNet(&vnet.NetConfig{StaticIPs: []string{vnetHubIP}})
	if err != nil {
		t.Fatal(err)
	}
	if err := wan.AddNet(hubNet); err != nil {
		t.Fatal(err)
	}
	if err := wan.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { wan.Stop() })
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	l.turn, err = hub.StartTURN(hub.TURNConfig{Listen: vnetHubIP + ":3478", PublicIP: net.ParseIP(vnetHubIP), Secret: "lab-secret", Net: hubNet, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.turn.Close() })
	h, err := hub.New(hub.Config{
		STUNURLs:   []string{"stun:" + vnetHubIP + ":3478"},
		TURNURLs:   []string{"turn:" + vnetHubIP + ":3478?transport=udp"},
		TURNSecret: "lab-secret",
		Log:        log,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	l.hubURL = "ws" + strings.TrimPrefix(srv.URL, "http")
	return l
}

// watch records the largest UDP payload a router forwards (S8).
func (l *vlab) watch(r *vnet.Router) {
	r.AddChunkFilter(func(c vnet.Chunk) bool {
		if c.Network() == "udp" {
			n := int64(len(c.UserData()))
			for {
				old := l.maxUDP.Load()
				if n <= old || l.maxUDP.CompareAndSwap(old, n) {
					break
				}
			}
		}
		return true
	})
}

// lan returns the LAN router called name (creating it behind a NAT of the
// given type, with WAN address 198.51.100.<n>).
func (l *vlab) lan(name string, nat *vnet.NATType) *vnet.Router {
	if r, ok := l.lanNames[name]; ok {
		return r
	}
	l.nextLAN++
	lf := logging.NewDefaultLoggerFactory()
	lf.DefaultLogLevel = logging.LogLevelError
	r, err := vnet.NewRouter(&vnet.RouterConfig{
		StaticIPs:     []string{fmt.Sprintf("198.51.100.%d", l.nextLAN)},
		CIDR:          fmt.Sprintf("10.201.%d.0/24", l.nextLAN),
		NATType:       nat,
		LoggerFactory: lf,
	})
	if err != nil {
		l.t.Fatal(err)
	}
	l.watch(r)
	if err := l.wan.AddRouter(r); err != nil {
		l.t.Fatal(err)
	}
	if err := r.Start(); err != nil {
		l.t.Fatal(err)
	}
	// No Stop here: the WAN's Stop stops its children, and gives up (leaving
	// itself running) when one is stopped already.
	l.lanNames[name] = r
	return r
}

type vbox struct {
	client *Client
	caller *Caller
	states chan State
}

// box puts a box on the LAN called lan (or on the WAN itself, with a public
// address, when nat is nil) and registers it at the hub.
func (l *vlab) box(name, lan string, nat *vnet.NATType, ip string) *vbox {
	return l.boxWith(name, lan, nat, ip, nil, nil)
}

// boxWith is box with the Caller's configuration changed by adjust, and
// the box's network interface wrapped by nic (a bandwidth limit) if set.
func (l *vlab) boxWith(name, lan string, nat *vnet.NATType, ip string, adjust func(*CallerConfig), nic func(vnet.NIC) vnet.NIC) *vbox {
	t := l.t
	n, err := vnet.NewNet(&vnet.NetConfig{StaticIPs: []string{ip}})
	if err != nil {
		t.Fatal(err)
	}
	var attach vnet.NIC = n
	if nic != nil {
		attach = nic(n)
	}
	if lan == "" {
		if err := l.wan.AddNet(attach); err != nil {
			t.Fatal(err)
		}
	} else if err := l.lan(lan, nat).AddNet(attach); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})).With("box", name)
	id, err := proto.NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := Dial(ctx, ClientConfig{HubURL: l.hubURL, Identity: id, Name: name, DataDir: t.TempDir(), Log: log})
	if err != nil {
		t.Fatal(err)
	}
	b := &vbox{client: c, states: make(chan State, 64)}
	cfg := CallerConfig{
		Client: c,
		Net:    n,
		Media:  SynthMedia(synth.CameraConfig{Width: 160, Height: 120, FPS: 15}, synth.MicConfig{Rate: 8000}),
		OnState: func(s State) {
			select {
			case b.states <- s:
			default:
			}
		},
		Log: log,
	}
	if adjust != nil {
		adjust(&cfg)
	}
	b.caller, err = NewCaller(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		b.caller.Close()
		c.Close()
	})
	return b
}

func pair(t *testing.T, a, b *vbox) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	pairClients(t, ctx, a.client, b.client)
}

// runCall calls b from a and waits until each side has decoded enough of
// the other's frames and audio, then returns both summaries.
// steady is called once media flows both ways, and again a second later:
// the lab reads the hub's relay counter there.
func runCall(t *testing.T, a, b *vbox, steady func()) (Summary, Summary) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	ca, err := a.caller.Call(ctx, b.client.ID())
	if err != nil {
		t.Fatal(err)
	}
	var cb *Call
	for {
		cb = b.caller.Current()
		if ca.Summary().FramesDecoded >= 10 && cb != nil && cb.Summary().FramesDecoded >= 10 &&
			ca.Summary().AudioReceived >= 20 && cb.Summary().AudioReceived >= 20 {
			break
		}
		select {
		case <-ca.Done():
			t.Fatalf("call ended: %+v", ca.Summary())
		case <-ctx.Done():
			sb := Summary{}
			if cb != nil {
				sb = cb.Summary()
			}
			t.Fatalf("media did not flow both ways:\na: %+v\nb: %+v", ca.Summary(), sb)
		case <-time.After(50 * time.Millisecond):
		}
	}
	steady()
	time.Sleep(time.Second)
	steady()
	sa, sb := ca.Summary(), cb.Summary()
	a.caller.HangUp()
	select {
	case <-cb.Done():
	case <-time.After(5 * time.Second):
		t.Error("the peer did not see the hang-up")
	}
	return sa, sb
}

func TestCallOverVirtualNAT(t *testing.T) {
	testenvShort(t)
	cases := []struct {
		name       string
		lanA, lanB string // "" = public address
		natA, natB *vnet.NATType
		ipA, ipB   string
		want       Path
		maxConnect time.Duration
	}{
		{"both cone", "A", "B", coneNAT, coneNAT, "10.201.1.2", "10.201.2.2", PathSrflx, time.Second},
		{"same LAN", "A", "A", coneNAT, coneNAT, "10.201.1.2", "10.201.1.3", PathHost, time.Second},
		{"one public", "A", "", coneNAT, nil, "10.201.1.2", "198.51.100.50", PathSrflx, time.Second},
		{"one symmetric", "A", "B", coneNAT, symmetricNAT, "10.201.1.2", "10.201.2.2", PathRelay, 3 * time.Second},
		{"both symmetric", "A", "B", symmetricNAT, symmetricNAT, "10.201.1.2", "10.201.2.2", PathRelay, 3 * time.Second},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l := newVLab(t)
			a := l.box("a", tc.lanA, tc.natA, tc.ipA)
			b := l.box("b", tc.lanB, tc.natB, tc.ipB)
			pair(t, a, b)
			// The hub's relay counter once media flows, and a second later:
			// during those seconds only a relayed call may use the relay
			// (before, ICE's connectivity checks probe relayed pairs too).
			var marks []uint64
			sa, sb := runCall(t, a, b, func() { marks = append(marks, l.turn.RelayedBytes()) })
			relayed := marks[1] - marks[0]
			t.Logf("a: path=%s local=%q remote=%q connect=%.0fms first media=%.0fms first frame=%.0fms frames=%d audio=%d relay bytes=%d",
				sa.Path, sa.LocalCandidate, sa.RemoteCandidate, sa.ConnectMS, sa.FirstMediaMS, sa.FirstFrameMS, sa.FramesDecoded, sa.AudioReceived, sa.BytesViaRelay)
			t.Logf("b: path=%s local=%q remote=%q connect=%.0fms first media=%.0fms frames=%d audio=%d",
				sb.Path, sb.LocalCandidate, sb.RemoteCandidate, sb.ConnectMS, sb.FirstMediaMS, sb.FramesDecoded, sb.AudioReceived)
			if sa.Path != tc.want || sb.Path != tc.want {
				t.Errorf("path a=%s b=%s, want %s", sa.Path, sb.Path, tc.want)
			}
			if got := time.Duration(sa.ConnectMS * float64(time.Millisecond)); got > tc.maxConnect {
				t.Errorf("connected after %v, target %v", got, tc.maxConnect)
			}
			if tc.want == PathRelay {
				if sa.BytesViaRelay == 0 || relayed == 0 {
					t.Errorf("relayed call but relay bytes box=%d hub=%d", sa.BytesViaRelay, relayed)
				}
			} else if sa.BytesViaRelay != 0 {
				t.Errorf("direct call counted %d relay bytes", sa.BytesViaRelay)
			}
			if tc.want != PathRelay && relayed != 0 {
				t.Errorf("direct call sent %d bytes through the hub's relay in one second of media", relayed)
			}
			if m := l.maxUDP.Load(); m > DefaultMaxDatagram {
				t.Errorf("largest datagram %d bytes exceeds the %d limit (S8)", m, DefaultMaxDatagram)
			}
			if sa.MaxRTPPacket > MaxRTPPacket(DefaultMaxDatagram) || sa.MaxRTPPacket == 0 {
				t.Errorf("largest RTP packet %d, budget %d", sa.MaxRTPPacket, MaxRTPPacket(DefaultMaxDatagram))
			}
		})
	}
}

func testenvShort(t *testing.T) {
	if testing.Short() {
		t.Skip("calls over virtual networks take seconds; skipped with -short")
	}
}

// newTestHub is a hub with a state file in a temporary directory and
// STUN/TURN URLs (nobody answers them: these tests do not gather over the
// real network).
func newTestHub(t *testing.T) *hub.Hub {
	t.Helper()
	h, err := hub.New(hub.Config{
		STUNURLs:   []string{"stun:198.51.100.10:3478"},
		TURNURLs:   []string{"turn:198.51.100.10:3478?transport=udp"},
		TURNSecret: "s3cret",
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

func mustIdentity(t *testing.T) *proto.Identity {
	t.Helper()
	id, err := proto.NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	return id
}
