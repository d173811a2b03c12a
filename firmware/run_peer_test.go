package firmware

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"image/jpeg"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/callbox/callbox/capture"
	"github.com/callbox/callbox/capture/rtpjpeg"
	"github.com/callbox/callbox/peer/box"
	"github.com/callbox/callbox/peer/hub"
	"github.com/callbox/callbox/peer/proto"
	"github.com/callbox/callbox/relay/viewer"
)

// callBox is a whole appliance (simulated board, relay, synthetic media,
// peer part) serving its HTTP API through httptest.
type callBox struct {
	a   *appliance
	srv *httptest.Server
}

func startCallBox(t *testing.T, hubURL, dataDir, name string, args ...string) *callBox {
	t.Helper()
	return startCallBoxConf(t, hubURL, dataDir, name, "", args...)
}

// startCallBoxConf is startCallBox with more configuration file text
// (after the name); hubURL "" gives no --hub flag.
func startCallBoxConf(t *testing.T, hubURL, dataDir, name, conf string, args ...string) *callBox {
	t.Helper()
	// --auto-answer: these boxes take calls (security_test.go checks the
	// default, which refuses them).
	args = append([]string{"--board", "sim", "--data", dataDir, "--relay=", "--camera", "synthetic", "--mic", "synthetic", "--speaker", "synthetic", "--auto-answer",
		"--size", "320x240", "--fps", "15"}, args...)
	if hubURL != "" {
		args = append(args, "--hub", hubURL)
	}
	a := newTestAppliance(t, "name = \""+name+"\"\n"+conf, args...)
	if testing.Verbose() {
		a.log = slog.New(slog.NewTextHandler(os.Stderr, nil)).With("box", name)
	}
	a.peer.loopbackOnly = true
	ctx, cancel := context.WithCancel(context.Background())
	var stops []func()
	t.Cleanup(func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
		cancel()
	})
	// The appliance's parts but the page (no mDNS in tests).
	for _, part := range []part{a.board, a.relay, a.speaker, a.media, a.peer} {
		if err := part.start(ctx); err != nil {
			t.Fatal(err)
		}
		stops = append(stops, part.stop)
	}
	b := &callBox{a: a, srv: httptest.NewServer(a.mux)}
	stops = append(stops, b.srv.Close)
	a.board.booted()
	return b
}

func (b *callBox) state(t *testing.T, token string) boardAPIState {
	t.Helper()
	resp, err := http.Get(b.srv.URL + "/api/state?token=" + token)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st boardAPIState
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	return st
}

// do sends an API request and decodes the JSON answer into v (if not nil).
func (b *callBox) do(t *testing.T, method, path, body string, v any) int {
	t.Helper()
	req, err := http.NewRequest(method, b.srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if v != nil {
		if err := json.Unmarshal(data, v); err != nil {
			t.Fatalf("%s %s: %v in %q", method, path, err, data)
		}
	}
	return resp.StatusCode
}

// pairBoxes pairs the identities in two data dirs through the hub, as
// `callbox call --data DIR --pair` and `--join CODE` do.
func pairBoxes(t *testing.T, hubURL, dirA, dirB string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	log := slog.New(slog.DiscardHandler)
	ca, err := dialHub(ctx, hubURL, dirA, "kitchen", false, log)
	if err != nil {
		t.Fatal(err)
	}
	defer ca.Close()
	cb, err := dialHub(ctx, hubURL, dirB, "attic", false, log)
	if err != nil {
		t.Fatal(err)
	}
	defer cb.Close()
	code, _, err := ca.RequestPairCode(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pb, err := cb.JoinPairCode(ctx, code)
	if err != nil {
		t.Fatal(err)
	}
	pa, err := ca.WaitPairStage(ctx, box.PairCompare)
	if err != nil || pa.SAS != pb.SAS {
		t.Fatalf("the boxes show %q and %q (%v)", pa.SAS, pb.SAS, err)
	}
	for _, c := range []*box.Client{ca, cb} {
		if err := c.ConfirmPairing(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []*box.Client{ca, cb} {
		if _, err := c.WaitPaired(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

// waitFor checks cond until it holds, failing after the budget. d is what
// a quiet machine needs; the budget is loadSlack times that, for
// a 2-core machine busy with other tests (a wait ends as soon as cond
// holds, so the slack costs a passing test nothing).
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	d *= loadSlack
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestApplianceCallByButton: two appliances on loopback, paired through an
// in-process hub. Button B on box A calls box B; both reach the in-call
// state on a direct path with media decoded both ways, and /api/state says
// so; button B again hangs up and both return to ready. Then the same by
// the HTTP API.
func TestApplianceCallByButton(t *testing.T) {
	hubURL := startTestHub(t)
	dirA, dirB := t.TempDir(), t.TempDir()
	pairBoxes(t, hubURL, dirA, dirB)

	a := startCallBox(t, hubURL, dirA, "kitchen", "--open")
	b := startCallBox(t, hubURL, dirB, "attic") // pairing on: strangers see no peer name
	registered := func(x *callBox) func() bool {
		return func() bool { c, _ := x.a.peer.current(); return c != nil && len(c.Peers()) == 1 && c.Peers()[0].Online }
	}
	waitFor(t, 10*time.Second, "both boxes registered, each seeing the other online", func() bool { return registered(a)() && registered(b)() })

	// B's call API is for paired phones only.
	if code := b.do(t, "POST", "/api/call", "", nil); code != http.StatusUnauthorized {
		t.Errorf("POST /api/call without a token on a box with pairing: %d, want 401", code)
	}
	if st := a.state(t, ""); st.Call.State != "idle" || st.State != "ready" || !st.Call.Enabled {
		t.Fatalf("before the call: %+v", st)
	}

	inCall := func(what string) {
		t.Helper()
		waitFor(t, 10*time.Second, what+": both boxes in a direct call", func() bool {
			sa, sb := a.state(t, ""), b.state(t, "")
			return sa.State == "in-call" && sa.Call.State == "direct" && sb.State == "in-call" && sb.Call.State == "direct"
		})
		sa, sb := a.state(t, ""), b.state(t, "")
		if sa.LED != "in-call-direct" || sb.LED != "in-call-direct" {
			t.Errorf("LED %q / %q, want in-call-direct", sa.LED, sb.LED)
		}
		if sa.Call.Peer != "attic" {
			t.Errorf("box A's /api/state call.peer = %q, want attic (open mode)", sa.Call.Peer)
		}
		if sb.Call.Peer != "" {
			t.Errorf("box B's /api/state tells an unpaired client the peer: %q", sb.Call.Peer)
		}
		// Media both ways: the other box's frames decode, its audio arrives.
		for _, x := range []*callBox{a, b} {
			waitFor(t, 5*time.Second, what+": media both ways", func() bool {
				_, caller := x.a.peer.current()
				cur := caller.Current()
				if cur == nil {
					return false
				}
				s := cur.Summary()
				return s.FramesDecoded >= 5 && s.AudioReceived >= 10
			})
		}
		var st callAPIState
		if code := a.do(t, "GET", "/api/call", "", &st); code != 200 || st.State != "direct" || st.Peer != "attic" ||
			(st.Path != string(box.PathHost) && st.Path != string(box.PathSrflx)) || st.Last == nil || st.Last.FramesSent == 0 {
			t.Errorf("GET /api/call: %d %+v", code, st)
		} else {
			t.Logf("%s: connected in %.0f ms, first frame %.0f ms, path %s", what, st.Last.ConnectMS, st.Last.FirstFrameMS, st.Path)
		}
	}
	idle := func(what string) {
		t.Helper()
		waitFor(t, 5*time.Second, what+": both boxes back to ready", func() bool {
			sa, sb := a.state(t, ""), b.state(t, "")
			return sa.State == "ready" && sa.Call.State == "idle" && sb.State == "ready" && sb.Call.State == "idle"
		})
		for _, x := range []*callBox{a, b} {
			if _, caller := x.a.peer.current(); caller.Current() != nil {
				t.Errorf("%s: a call is still current", what)
			}
			if n := x.a.media.subscribers(); n != 0 {
				t.Errorf("%s: %d media tap subscribers left", what, n)
			}
		}
	}

	// The button: B on box A calls, B again hangs up.
	if code := a.do(t, "POST", "/api/sim/button", `{"button":"b"}`, nil); code != 200 {
		t.Fatalf("press B: %d", code)
	}
	inCall("button")
	// Button A mutes box A during the call: box B stops hearing it, the
	// call goes on (the LED shows muted, /api/state's call stays direct).
	audioFromA := func() uint64 {
		_, caller := b.a.peer.current()
		if cur := caller.Current(); cur != nil {
			return cur.Summary().AudioReceived
		}
		return 0
	}
	if code := a.do(t, "POST", "/api/sim/button", `{"button":"a"}`, nil); code != 200 {
		t.Fatalf("press A: %d", code)
	}
	if st := a.state(t, ""); st.State != "muted" || st.Call.State != "direct" {
		t.Errorf("muted in a call: %+v", st)
	}
	// Chunks already on their way still arrive (the tap queues up to
	// 200 ms); then nothing may, for half a second. Unmuted, 50 arrive
	// per second.
	last, quietSince := audioFromA(), time.Now()
	waitFor(t, 5*time.Second, "box B hearing nothing from muted box A for 500 ms", func() bool {
		if n := audioFromA(); n != last {
			last, quietSince = n, time.Now()
		}
		return time.Since(quietSince) >= 500*time.Millisecond
	})
	if code := a.do(t, "POST", "/api/sim/button", `{"button":"a"}`, nil); code != 200 {
		t.Fatalf("press A: %d", code)
	}
	before := audioFromA()
	waitFor(t, 5*time.Second, "box A's sound again after unmuting", func() bool { return audioFromA() >= before+10 })
	// Phones watching box A see box B: its frames come out of A's
	// /ws/call/video (a relay client, like the page) and decode; box B's
	// own relay gate applies to its call stream too.
	remoteFrames(t, "ws"+strings.TrimPrefix(a.srv.URL, "http")+"/ws/call/video", 3)
	func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c, msg := wsFirst(t, ctx, "ws"+strings.TrimPrefix(b.srv.URL, "http")+"/ws/call/video")
		c.CloseNow()
		if !strings.Contains(msg, "unpaired") {
			t.Errorf("an unpaired client on box B's /ws/call/video got %q", msg)
		}
	}()
	if code := a.do(t, "POST", "/api/sim/button", `{"button":"b"}`, nil); code != 200 {
		t.Fatalf("press B: %d", code)
	}
	idle("button")

	// The API: POST calls the named box, DELETE on the other box hangs up.
	var st callAPIState
	if code := a.do(t, "POST", "/api/call", `{"peer":"attic"}`, &st); code != 200 || !st.Enabled || !st.Registered {
		t.Fatalf("POST /api/call: %d %+v", code, st)
	}
	inCall("API")
	if code := b.do(t, "DELETE", "/api/call", "", nil); code != http.StatusUnauthorized {
		t.Errorf("DELETE /api/call without a token: %d, want 401", code)
	}
	// A paired phone on B: approve it with both buttons.
	tok := make(chan string, 1)
	go func() {
		var r struct{ Token string }
		b.do(t, "POST", "/api/pair/request", "", &r)
		tok <- r.Token
	}()
	waitFor(t, 5*time.Second, "a phone waiting on box B", func() bool { return b.state(t, "").Waiting == 1 })
	if code := b.do(t, "POST", "/api/sim/button", `{"button":"both"}`, nil); code != 200 {
		t.Fatalf("press both: %d", code)
	}
	token := <-tok
	if sb := b.state(t, token); sb.Call.Peer != "kitchen" {
		t.Errorf("box B's /api/state for a paired phone: call.peer = %q, want kitchen", sb.Call.Peer)
	}
	if code := b.do(t, "DELETE", "/api/call?token="+token, "", &st); code != 200 {
		t.Errorf("DELETE /api/call with a token: %d %+v", code, st)
	}
	// Pairing mode (opened by the both-buttons press) shows on B's LED
	// until it is closed: close it so B can show ready.
	if code := b.do(t, "POST", "/api/sim/button", `{"button":"both"}`, nil); code != 200 {
		t.Fatalf("press both: %d", code)
	}
	idle("API")
	if code := a.do(t, "POST", "/api/call", `{"peer":"nobody"}`, &st); code != http.StatusNotFound || st.Error == "" {
		t.Errorf("POST /api/call to an unknown box: %d %+v", code, st)
	}
}

// startTestHub serves an in-process hub on loopback; it returns its URL.
func startTestHub(t *testing.T) string {
	t.Helper()
	hub, err := hub.New(hub.Config{Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hub.Close() })
	mux := http.NewServeMux()
	mux.Handle("/v1/ws", hub)
	hs := httptest.NewServer(mux)
	t.Cleanup(hs.Close)
	return "ws" + strings.TrimPrefix(hs.URL, "http") + "/v1/ws"
}

// TestAppliancePairByAPI: two running appliances pair through
// /api/call/pair (one asks for a code, the other enters it), and the first
// then calls the second by the API with no peer named (the only one).
func TestAppliancePairByAPI(t *testing.T) {
	hubURL := startTestHub(t)
	a := startCallBox(t, hubURL, t.TempDir(), "kitchen", "--open")
	b := startCallBox(t, hubURL, t.TempDir(), "attic", "--open")
	waitFor(t, 10*time.Second, "both boxes registered", func() bool {
		ca, _ := a.a.peer.current()
		cb, _ := b.a.peer.current()
		return ca != nil && cb != nil
	})
	var st callAPIState
	if code := a.do(t, "POST", "/api/call", "", &st); code != http.StatusBadRequest || !strings.Contains(st.Error, "no paired box") {
		t.Errorf("POST /api/call with no paired box: %d %+v", code, st)
	}
	var got struct{ Code, Expires string }
	if code := a.do(t, "POST", "/api/call/pair", "", &got); code != 200 || len(got.Code) != proto.PairCodeLen {
		t.Fatalf("POST /api/call/pair: %d %+v", code, got)
	}
	var bad struct{ Error string }
	if code := b.do(t, "POST", "/api/call/pair", `{"code":"0000000000"}`, &bad); code != http.StatusConflict || bad.Error == "" {
		t.Errorf("a wrong code: %d %+v", code, bad)
	}
	if code := b.do(t, "POST", "/api/call/pair", `{"code":"12x4567890"}`, &bad); code != http.StatusBadRequest {
		t.Errorf("a malformed code: %d %+v", code, bad)
	}
	// Confirming with nothing to confirm is refused.
	if code := b.do(t, "POST", "/api/call/pair/confirm", "", &bad); code != http.StatusConflict {
		t.Errorf("a confirmation with no pairing to confirm: %d %+v", code, bad)
	}
	// The code as a person types it, grouped.
	var joined struct{ Pairing box.Pairing }
	typed := got.Code[:4] + "-" + got.Code[4:7] + " " + got.Code[7:]
	if code := b.do(t, "POST", "/api/call/pair", `{"code":"`+typed+`"}`, &joined); code != 200 || joined.Pairing.PeerName != "kitchen" || joined.Pairing.Stage != box.PairCompare {
		t.Fatalf("POST /api/call/pair with the code: %d %+v", code, joined)
	}
	// Both boxes show the same confirmation in /api/state; nothing is
	// pinned until both owners confirm.
	var sasA string
	waitFor(t, 5*time.Second, "box A shows the confirmation", func() bool {
		p := a.state(t, "").Call.Pairing
		if p != nil {
			sasA = p.SAS
		}
		return p != nil && p.Stage == box.PairCompare
	})
	if pb := b.state(t, "").Call.Pairing; pb == nil || pb.SAS != sasA || len(sasA) != proto.SASDigits {
		t.Fatalf("box B shows %+v, box A %q", pb, sasA)
	}
	if code := a.do(t, "POST", "/api/call/pair/confirm", "", &joined); code != 200 || joined.Pairing.Stage != box.PairConfirmed {
		t.Fatalf("confirm on A: %d %+v", code, joined)
	}
	a.do(t, "GET", "/api/call", "", &st)
	if len(st.Peers) != 0 {
		t.Fatalf("box A pinned box B on one confirmation: %+v", st.Peers)
	}
	if code := b.do(t, "POST", "/api/call/pair/confirm", "", &joined); code != 200 {
		t.Fatalf("confirm on B: %d %+v", code, joined)
	}
	waitFor(t, 5*time.Second, "box A pinned box B", func() bool {
		a.do(t, "GET", "/api/call", "", &st)
		return len(st.Peers) == 1 && st.Peers[0].Name == "attic" && st.Peers[0].Online
	})
	// B pins A when the hub relays A's confirmation, which may land a
	// moment after A has pinned B.
	waitFor(t, 5*time.Second, "box B's pairing done", func() bool {
		pb := b.state(t, "").Call.Pairing
		return pb != nil && pb.Stage == box.PairDone
	})
	if code := a.do(t, "POST", "/api/call", "", &st); code != 200 {
		t.Fatalf("POST /api/call: %d %+v", code, st)
	}
	waitFor(t, 10*time.Second, "both boxes in a direct call", func() bool {
		sa, sb := a.state(t, ""), b.state(t, "")
		return sa.Call.State == "direct" && sb.Call.State == "direct" && sb.Call.Peer == "kitchen"
	})
	if code := a.do(t, "DELETE", "/api/call", "", &st); code != 200 {
		t.Fatalf("DELETE /api/call: %d", code)
	}
	waitFor(t, 5*time.Second, "both boxes idle", func() bool {
		return a.state(t, "").Call.State == "idle" && b.state(t, "").Call.State == "idle"
	})
}

// TestApplianceCallsOff: without --hub the button and the API say that
// calls are off, and the box stays ready.
func TestApplianceCallsOff(t *testing.T) {
	a := startCallBox(t, "", t.TempDir(), "kitchen", "--open")
	if code := a.do(t, "POST", "/api/sim/button", `{"button":"b"}`, nil); code != 200 {
		t.Fatalf("press B: %d", code)
	}
	var st callAPIState
	if code := a.do(t, "POST", "/api/call", "", &st); code != http.StatusServiceUnavailable || st.Enabled || !strings.Contains(st.Error, "no hub") {
		t.Errorf("POST /api/call without a hub: %d %+v", code, st)
	}
	if s := a.state(t, ""); s.State != "ready" || s.Call.State != "idle" || s.Call.Enabled {
		t.Errorf("after a call attempt without a hub: %+v", s)
	}
}

// TestApplianceCallConfig: the configuration file's [call] keys reach the
// peer part's flags (the command line wins), and the box registers with
// the hub the file names.
func TestApplianceCallConfig(t *testing.T) {
	hubURL := startTestHub(t)
	a := startCallBoxConf(t, "", t.TempDir(), "kitchen", "[call]\nhub = \""+hubURL+"\"\npeer = \"attic\"\nfps = 5\n", "--call-fps", "10")
	if a.a.peer.hubURL != hubURL || a.a.peer.peerName != "attic" || a.a.peer.callFPS != 10 {
		t.Errorf("peer part: hub %q peer %q fps %d; want the file's hub and peer, the command line's fps 10",
			a.a.peer.hubURL, a.a.peer.peerName, a.a.peer.callFPS)
	}
	waitFor(t, 10*time.Second, "registered with the file's hub", func() bool { c, _ := a.a.peer.current(); return c != nil })
}

// TestApplianceCallsBrokenDataDir: a data dir that cannot hold the
// identity turns calls off, with the reason, and the box still starts.
func TestApplianceCallsBrokenDataDir(t *testing.T) {
	file := filepath.Join(t.TempDir(), "not-a-dir")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	a := startCallBox(t, "ws://127.0.0.1:1/v1/ws", file, "kitchen", "--open")
	var st callAPIState
	if code := a.do(t, "POST", "/api/call", "", &st); code != http.StatusServiceUnavailable || !strings.Contains(st.Error, "calls off") {
		t.Errorf("POST /api/call with no identity: %d %+v", code, st)
	}
}

// TestBoardCallMapping: what the LED and /api/state show for each phase
// and path of a call (relayed calls are the ones the vnet and NAT lab
// tests make; this box-level test can only make direct ones).
func TestBoardCallMapping(t *testing.T) {
	for _, c := range []struct {
		s    box.State
		want string
	}{
		{box.State{Phase: box.PhaseCalling}, "calling"},
		{box.State{Phase: box.PhaseConnected}, "calling"},
		{box.State{Phase: box.PhaseConnected, Path: box.PathHost}, "direct"},
		{box.State{Phase: box.PhaseConnected, Path: box.PathSrflx}, "direct"},
		{box.State{Phase: box.PhaseConnected, Path: box.PathRelay}, "relayed"},
		{box.State{Phase: box.PhaseReconnecting, Path: box.PathRelay}, "calling"},
		{box.State{Phase: box.PhaseEnded}, "idle"},
		{box.State{}, "idle"},
	} {
		if got := callStateNames[boardCall(c.s)]; got != c.want {
			t.Errorf("%+v: %q, want %q", c.s, got, c.want)
		}
	}
}

func TestChoosePeer(t *testing.T) {
	one := []proto.PeerInfo{{ID: "AAAA", Name: "attic"}}
	two := append([]proto.PeerInfo{{ID: "BBBB", Name: "garage"}}, one...)
	twins := append([]proto.PeerInfo{{ID: "CCCC", Name: "attic"}}, one...)
	for _, c := range []struct {
		peers []proto.PeerInfo
		want  string
		id    string
		err   error
	}{
		{one, "", "AAAA", nil},
		{two, "", "", errNoPeer},
		{nil, "", "", errNoPeer},
		{two, "garage", "BBBB", nil},
		{two, "AAAA", "AAAA", nil},
		{two, "cellar", "", proto.ErrUnknownPeer},
		{twins, "attic", "", proto.ErrUnknownPeer},
		{twins, "CCCC", "CCCC", nil},
	} {
		p, err := choosePeer(c.peers, c.want)
		if p.ID != c.id || !errors.Is(err, c.err) {
			t.Errorf("choosePeer(%d peers, %q) = %q, %v; want %q, %v", len(c.peers), c.want, p.ID, err, c.id, c.err)
		}
	}
}

// remoteFrames reads the relay stream at url until n JPEG frames decode.
func remoteFrames(t *testing.T, url string, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := viewer.Dial(ctx, url, capture.KindVideo, viewer.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	d := rtpjpeg.NewDepacketizer()
	decoded := 0
	for decoded < n {
		pkt, err := c.Next(ctx)
		if err != nil {
			t.Fatalf("%s: %v after %d frames", url, err, decoded)
		}
		f, ok, _ := d.Push(pkt)
		if !ok {
			continue
		}
		img, err := jpeg.Decode(bytes.NewReader(f.Data))
		if err != nil {
			t.Fatalf("%s: frame does not decode: %v", url, err)
		}
		if b := img.Bounds(); b.Dx() != 320 || b.Dy() != 240 {
			t.Fatalf("%s: frame %v, want the other box's 320x240", url, b)
		}
		decoded++
	}
}

// TestApplianceCallLeavesNoGoroutines: two appliances make a call by the
// API; once both have stopped (in their cleanups, mid-call for one: its
// stop hangs up), every goroutine they started has ended.
func TestApplianceCallLeavesNoGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Run("call", func(t *testing.T) {
		hubURL := startTestHub(t)
		dirA, dirB := t.TempDir(), t.TempDir()
		pairBoxes(t, hubURL, dirA, dirB)
		a := startCallBox(t, hubURL, dirA, "kitchen", "--open")
		b := startCallBox(t, hubURL, dirB, "attic", "--open")
		waitFor(t, 10*time.Second, "both boxes registered", func() bool {
			ca, _ := a.a.peer.current()
			cb, _ := b.a.peer.current()
			return ca != nil && cb != nil && len(ca.Peers()) == 1 && ca.Peers()[0].Online
		})
		if code := a.do(t, "POST", "/api/call", "", nil); code != 200 {
			t.Fatalf("POST /api/call: %d", code)
		}
		waitFor(t, 10*time.Second, "a direct call", func() bool {
			return a.state(t, "").Call.State == "direct" && b.state(t, "").Call.State == "direct"
		})
		remoteFrames(t, "ws"+strings.TrimPrefix(b.srv.URL, "http")+"/ws/call/video", 1)
	})
	http.DefaultClient.CloseIdleConnections()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<20)
		t.Errorf("%d goroutines before, %d after:\n%s", before, n, buf[:runtime.Stack(buf, true)])
	}
}
