package hubcluster

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callbox/callbox/internal/natstest"
	"github.com/callbox/callbox/internal/testenv"
	"github.com/callbox/callbox/peer/box"
	"github.com/callbox/callbox/relay"
	"github.com/callbox/callbox/relay/webrtc"
	"github.com/callbox/callbox/relay/webrtc/testsrc"
	pion "github.com/pion/webrtc/v4"
)

// phoneBox is a box that answers remote phones: a hub client whose phone
// offers are answered by the relay's WebRTC transport, fed by an H.264
// test pattern (as firmware/run_remote.go does with the camera).
type phoneBox struct {
	client *box.Client
	srv    *webrtc.Server
	tokens map[string]bool // paired phones' token hashes
	mu     sync.Mutex
	byes   []string
}

func newPhoneBox(t *testing.T, hubURL string) *phoneBox {
	t.Helper()
	testenv.LookPath(t, "ffmpeg")
	aus, err := testsrc.Make(t.TempDir(), testsrc.Spec{Width: 320, Height: 240, FPS: 15, Seconds: 2, Kbps: 300, GOP: 15})
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})).With("box", "porch")
	r := relay.New(relay.Config{}, log)
	srv, err := webrtc.New(r, webrtc.Config{Loopback: true, IPFilter: func(ip net.IP) bool { return ip.IsLoopback() }, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	player := &testsrc.Player{AUs: aus, FPS: 15, Publish: r.Publish, Audio: true}
	r.OnKeyframeRequest(player.RequestKeyframe)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = player.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done; srv.Close() })

	id, err := protoIdentity()
	if err != nil {
		t.Fatal(err)
	}
	dctx, dcancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer dcancel()
	c, err := box.Dial(dctx, box.ClientConfig{HubURL: hubURL, Identity: id, Name: "porch", DataDir: t.TempDir(), Log: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	b := &phoneBox{client: c, srv: srv, tokens: map[string]bool{}}
	sessions := map[string]string{} // hub request ID -> relay session
	c.OnPhoneOffer(func(ctx context.Context, o box.PhoneOffer) (string, error) {
		cred, err := c.VerifyPhoneCredential(o.Credential)
		if err != nil {
			return "", err
		}
		b.mu.Lock()
		ok := b.tokens[cred.TokenID]
		b.mu.Unlock()
		if !ok {
			return "", errors.New("unpaired: unknown phone")
		}
		ice := make([]pion.ICEServer, 0, len(o.ICE))
		for _, s := range o.ICE {
			ice = append(ice, pion.ICEServer{URLs: s.URLs, Username: s.Username, Credential: s.Credential})
		}
		sid, answer, err := srv.AnswerRemote(ctx, "remote phone", o.SDP, ice)
		if err == nil {
			b.mu.Lock()
			sessions[o.Request] = sid
			b.mu.Unlock()
		}
		return answer, err
	})
	c.OnPhoneBye(func(o box.PhoneOffer) {
		b.mu.Lock()
		sid := sessions[o.Request]
		b.byes = append(b.byes, o.Request)
		b.mu.Unlock()
		srv.CloseSession(sid)
	})
	return b
}

// TestHubClusterRemotePhone: two hub instances on one store and one NATS;
// the box is connected to instance one, the phone's WHEP offer goes to
// instance two (as a load balancer may send it). Instance two forwards
// the offer through NATS, instance one hands it to the box, and the box's
// answer comes back the same way: media flows to the phone (a pion WHEP
// client), and its DELETE reaches the box too. A box on no instance is
// 503, an unpaired phone 401.
func TestHubClusterRemotePhone(t *testing.T) {
	testenv.Short(t)
	nats := natstest.Start(t)
	dir := t.TempDir()
	db := "sqlite:" + filepath.Join(dir, "hub.db") // one store for both (PostgreSQL in production)
	one := startHub(t, "one", "127.0.0.1:0", "--store", db, "--cluster", nats.URL, "--instance", "one", "--data", dir)
	two := startHub(t, "two", "127.0.0.1:0", "--store", db, "--cluster", nats.URL, "--instance", "two", "--data", dir)
	porch := newPhoneBox(t, one.ws)
	if s1, s2 := one.stats(t), two.stats(t); s1.BoxesOnline != 1 || s2.BoxesOnline != 0 {
		t.Fatalf("boxes online: one %d, two %d; want 1 and 0", s1.BoxesOnline, s2.BoxesOnline)
	}
	tokID := strings.Repeat("5a", 32)
	porch.mu.Lock()
	porch.tokens[tokID] = true
	porch.mu.Unlock()
	cred := porch.client.IssuePhoneCredential(tokID, time.Now().Add(time.Hour))
	whep := "http://" + two.addr + "/box/" + porch.client.ID() + "/whep"

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	phone, err := webrtc.Dial(ctx, whep, webrtc.ClientOptions{Token: cred, Loopback: true, TimeProbes: -1})
	if err != nil {
		t.Fatalf("phone's offer through instance two: %v\none:\n%s\ntwo:\n%s", err, one.output(), two.output())
	}
	answered := time.Since(start)
	defer phone.Close()
	waitFor(t, 20*time.Second, "whole frames at the phone", func() bool { return phone.Stats().Decodable >= 15 })
	t.Logf("answer through NATS in %v; 15 decodable frames %v after the offer", answered.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	if !strings.Contains(phone.Resource(), "/box/"+porch.client.ID()+"/whep/") {
		t.Errorf("Location %q", phone.Resource())
	}
	if porch.srv.Peers() != 1 {
		t.Errorf("box has %d sessions, want 1", porch.srv.Peers())
	}

	// The phone leaves: its DELETE to instance two reaches the box.
	if err := phone.Close(); err != nil {
		t.Logf("close: %v", err)
	}
	waitFor(t, 10*time.Second, "the box heard the phone's bye", func() bool {
		porch.mu.Lock()
		defer porch.mu.Unlock()
		return len(porch.byes) == 1
	})
	waitFor(t, 10*time.Second, "the box's session ended", func() bool { return porch.srv.Peers() == 0 })

	// A phone the box no longer knows: the box's refusal crosses back.
	stranger := porch.client.IssuePhoneCredential(strings.Repeat("6b", 32), time.Now().Add(time.Hour))
	_, err = webrtc.Dial(ctx, whep, webrtc.ClientOptions{Token: stranger, Loopback: true, TimeProbes: -1})
	var se *webrtc.StatusError
	if !errors.As(err, &se) || se.Code != http.StatusUnauthorized {
		t.Errorf("unknown phone through instance two: %v, want 401", err)
	}
	// The box goes away: no instance holds it, the phone hears 503.
	porch.client.Close()
	waitFor(t, 10*time.Second, "the box offline", func() bool { return one.stats(t).BoxesOnline == 0 })
	_, err = webrtc.Dial(ctx, whep, webrtc.ClientOptions{Token: cred, Loopback: true, TimeProbes: -1})
	if !errors.As(err, &se) || se.Code != http.StatusServiceUnavailable {
		t.Errorf("box offline: %v, want 503", err)
	}
}
