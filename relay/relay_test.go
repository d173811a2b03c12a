package relay

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callbox/callbox/capture"
	"github.com/callbox/callbox/internal/testenv"
	"github.com/callbox/callbox/relay/internal/gen"
	"github.com/callbox/callbox/relay/viewer"
	"github.com/callbox/callbox/relay/wire"
)

// startRelay serves a relay on a loopback TCP port until the test ends.
func startRelay(t testing.TB, cfg Config) (*Relay, string) {
	t.Helper()
	r := New(cfg, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- r.ServeTCP(ln) }()
	t.Cleanup(func() {
		r.Close()
		if err := <-done; !errors.Is(err, ErrClosed) {
			t.Errorf("ServeTCP: %v", err)
		}
	})
	return r, ln.Addr().String()
}

// publishLive publishes 30 fps video of frameBytes and 50 Hz audio in real
// time until ctx ends.
func publishLive(ctx context.Context, r *Relay, frameBytes int) {
	v := gen.Video(frameBytes, capture.DefaultMaxPacketSize, 1)
	a := gen.Audio(1)
	vt := time.NewTicker(time.Second / 30)
	at := time.NewTicker(capture.ChunkDuration)
	defer vt.Stop()
	defer at.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-vt.C:
			r.Publish(v.Next(now))
		case now := <-at.C:
			r.Publish(a.Next(now))
		}
	}
}

// view receives kind from addr until ctx ends and returns what it measured.
func view(ctx context.Context, addr string, kind capture.Kind, opt viewer.Options) (viewer.Summary, error) {
	c, err := viewer.Dial(ctx, addr, kind, opt)
	if err != nil {
		return viewer.Summary{}, err
	}
	defer c.Close()
	go func() { <-ctx.Done(); c.Close() }()
	tr := viewer.NewTracker(kind, 0)
	for {
		pkt, err := c.Next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return tr.Summary(), nil
			}
			return tr.Summary(), err
		}
		off, _ := c.Offset()
		tr.Add(pkt, time.Now(), off)
	}
}

func TestTCPFanoutWholeFrames(t *testing.T) {
	// Frame counts and a 100 ms latency bound over real sockets in real
	// time: end to end (under qemu-user on a busy machine p99 reached
	// 180 ms).
	testenv.Short(t)
	r, addr := startRelay(t, Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	var wg sync.WaitGroup
	res := make([]viewer.Summary, 6)
	errs := make([]error, 6)
	for i := range res {
		kind := capture.KindVideo
		if i%2 == 1 {
			kind = capture.KindAudio
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			res[i], errs[i] = view(ctx, addr, kind, viewer.Options{})
		}()
	}
	waitViewers(t, r, 3)
	go publishLive(ctx, r, 16000)
	wg.Wait()
	for i, s := range res {
		if errs[i] != nil {
			t.Fatalf("viewer %d: %v", i, errs[i])
		}
		min := uint64(25) // 1.5 s at 30 fps, less start-up
		if s.Kind == "audio" {
			min = 40
		}
		if s.Whole < min || s.Incomplete != 0 || s.Gaps != 0 {
			t.Errorf("viewer %d (%s): %d whole, %d incomplete, %d gaps", i, s.Kind, s.Whole, s.Incomplete, s.Gaps)
		}
		if s.LatencyP99Ms > 100 || s.LatencySamples == 0 {
			t.Errorf("viewer %d (%s): latency p99 %.1f ms over %d samples", i, s.Kind, s.LatencyP99Ms, s.LatencySamples)
		}
	}
}

func waitViewers(t testing.TB, r *Relay, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for r.Viewers() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d viewers connected, want %d", r.Viewers(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestTCPUnpaired(t *testing.T) {
	_, addr := startRelay(t, Config{Authorize: func(token string) error {
		if token != "sesame" {
			return errors.New("secret reason that must not leak")
		}
		return nil
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_, err := viewer.Dial(ctx, addr, capture.KindVideo, viewer.Options{Token: "wrong"})
	if !viewer.IsRefused(err) || !strings.Contains(err.Error(), "unpaired") || strings.Contains(err.Error(), "secret") {
		t.Fatalf("wrong token: %v; want a refusal saying only unpaired", err)
	}
	c, err := viewer.Dial(ctx, addr, capture.KindVideo, viewer.Options{Token: "sesame"})
	if err != nil {
		t.Fatalf("right token: %v", err)
	}
	c.Close()
}

func TestTCPBadHandshake(t *testing.T) {
	_, addr := startRelay(t, Config{})
	for _, hello := range []string{"HELLO", "CALLBOX/1 smell", "CALLBOX/1 video token"} {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		frame, _ := wire.AppendFrame(nil, []byte(hello))
		c.Write(frame)
		c.SetDeadline(time.Now().Add(3 * time.Second))
		buf := make([]byte, 100)
		body, err := wire.ReadFrame(c, buf)
		if err != nil || string(body) != "ERR bad handshake" {
			t.Errorf("%q: answer %q, %v", hello, body, err)
		}
		c.Close()
	}
}

func TestWebSocket(t *testing.T) {
	r := New(Config{Authorize: func(tok string) error {
		if tok != "sesame" {
			return errors.New("no")
		}
		return nil
	}}, nil)
	defer r.Close()
	mux := http.NewServeMux()
	mux.Handle("/ws/video", r.WebSocketHandler(capture.KindVideo))
	mux.Handle("/ws/audio", r.WebSocketHandler(capture.KindAudio))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	url := "ws" + strings.TrimPrefix(srv.URL, "http")
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	if _, err := viewer.Dial(ctx, url, capture.KindVideo, viewer.Options{Token: "bad"}); !viewer.IsRefused(err) || !strings.Contains(err.Error(), "unpaired") {
		t.Fatalf("bad token over WebSocket: %v", err)
	}
	// The rest counts frames in 1.5 s of real time: end to end.
	testenv.Short(t)
	var wg sync.WaitGroup
	var vs, as viewer.Summary
	var verr, aerr error
	wg.Add(2)
	go func() { defer wg.Done(); vs, verr = view(ctx, url, capture.KindVideo, viewer.Options{Token: "sesame"}) }()
	go func() { defer wg.Done(); as, aerr = view(ctx, url, capture.KindAudio, viewer.Options{Token: "sesame"}) }()
	waitViewers(t, r, 1)
	for len(*r.subs[capture.KindAudio].Load()) < 1 {
		time.Sleep(time.Millisecond)
	}
	go publishLive(ctx, r, 16000)
	wg.Wait()
	if verr != nil || aerr != nil {
		t.Fatalf("viewers: %v, %v", verr, aerr)
	}
	if vs.Whole < 25 || vs.Incomplete != 0 || as.Whole < 40 || as.Incomplete != 0 {
		t.Fatalf("over WebSocket: video %+v audio %+v", vs, as)
	}
}

func TestStalledClientEjected(t *testing.T) {
	// A 3 s bound in real time over real sockets: end to end (the rules
	// themselves are unit-tested with a fake clock in policy_test.go).
	testenv.Short(t)
	r, addr := startRelay(t, Config{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// A client that handshakes and then never reads again.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	frame, _ := wire.AppendFrame(nil, wire.Hello{Kind: capture.KindVideo}.Append(nil))
	c.Write(frame)
	waitViewers(t, r, 1)
	start := time.Now()
	go publishLive(ctx, r, 16000)
	for r.Viewers() > 0 {
		if time.Since(start) > 5*time.Second {
			t.Fatal("stalled client still connected after 5 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	took := time.Since(start)
	if took > 3*time.Second {
		t.Fatalf("stalled client ejected after %v, want within 3 s", took)
	}
	t.Logf("stalled client ejected after %v", took.Round(time.Millisecond))
	// Either rule may fire first: no Health Check for HealthTimeout, or
	// MaxFlushes flushes without progress (one per MaxDelay of media).
	// The session leaves the fan-out before its reason is counted (after
	// its writer has stopped): wait for the count.
	waitFor(t, "the disconnect to be counted", func() bool {
		r.tot.mu.Lock()
		defer r.tot.mu.Unlock()
		var n uint64
		for _, c := range r.tot.disconnects {
			n += c
		}
		return n > 0
	})
	r.tot.mu.Lock()
	n := r.tot.disconnects["health check timeout"] + r.tot.disconnects["flushes"]
	t.Logf("disconnects: %v", r.tot.disconnects)
	r.tot.mu.Unlock()
	if n != 1 {
		t.Fatalf("the stalled client was not ejected by the policy")
	}
}

// TestDisconnectOwner: each session keeps its token's owner (TCP and
// WebSocket from Config.Owner, an attached PacketConn from its options);
// DisconnectOwner ends one phone's sessions and no other's.
func TestDisconnectOwner(t *testing.T) {
	cfg := Config{
		Authorize: func(tok string) error {
			if tok != "alice" && tok != "bob" {
				return errors.New("no")
			}
			return nil
		},
		Owner: func(tok string) string { return "owner-" + tok },
	}
	r, addr := startRelay(t, cfg)
	mux := http.NewServeMux()
	mux.Handle("/ws/video", r.WebSocketHandler(capture.KindVideo))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	alice, err := viewer.Dial(ctx, addr, capture.KindVideo, viewer.Options{Token: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	defer alice.Close()
	aliceWS, err := viewer.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http")+"/ws/video", capture.KindVideo, viewer.Options{Token: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	defer aliceWS.Close()
	bob, err := viewer.Dial(ctx, addr, capture.KindVideo, viewer.Options{Token: "bob"})
	if err != nil {
		t.Fatal(err)
	}
	defer bob.Close()
	if _, err := r.Attach(capture.KindAudio, nopPacketConn{}, AttachOptions{Owner: "owner-alice"}); err != nil {
		t.Fatal(err)
	}
	waitViewers(t, r, 3)
	if n := r.DisconnectOwner("", "revoked"); n != 0 {
		t.Fatalf("the empty owner ended %d sessions", n)
	}
	if n := r.DisconnectOwner("owner-alice", "revoked"); n != 3 {
		t.Fatalf("DisconnectOwner ended %d sessions, want alice's 3 (TCP, WebSocket, attached)", n)
	}
	waitFor(t, "alice's sessions to end", func() bool { return r.Viewers() == 1 })
	for _, s := range r.snapshot(nil) {
		if s.owner != "owner-bob" {
			t.Errorf("left: a session of %q", s.owner)
		}
	}
}

// nopPacketConn is a PacketConn that drops what it is sent.
type nopPacketConn struct{}

func (nopPacketConn) WriteUnits([]*Unit) error { return nil }
func (nopPacketConn) Abort()                   {}
func (nopPacketConn) RemoteAddr() string       { return "nop" }
