package firmware

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/callbox/callbox/board"
	"github.com/callbox/callbox/board/config"
	"github.com/callbox/callbox/relay"
)

// boardFixture is a started boardPart on a simulated board with its HTTP
// API served by httptest.
type boardFixture struct {
	a   *appliance
	srv *httptest.Server
}

func startBoard(t *testing.T, configText string, args ...string) *boardFixture {
	t.Helper()
	args = append([]string{"--board", "sim", "--data", filepath.Join(t.TempDir(), "data")}, args...)
	a := newTestAppliance(t, configText, args...)
	ctx, cancel := context.WithCancel(context.Background())
	if err := a.board.start(ctx); err != nil {
		cancel()
		t.Fatal(err)
	}
	f := &boardFixture{a: a, srv: httptest.NewServer(a.mux)}
	t.Cleanup(func() {
		f.srv.Close()
		cancel()
		a.board.stop()
	})
	return f
}

func (f *boardFixture) state(t *testing.T, token string) boardAPIState {
	t.Helper()
	resp, err := http.Get(f.srv.URL + "/api/state?token=" + token)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("/api/state: %s %s", resp.Status, resp.Header.Get("Content-Type"))
	}
	var st boardAPIState
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	return st
}

func (f *boardFixture) press(t *testing.T, body string) int {
	t.Helper()
	resp, err := http.Post(f.srv.URL+"/api/sim/button", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

type pairResult struct {
	code int
	body map[string]string
}

func (f *boardFixture) pair(t *testing.T) <-chan pairResult {
	out := make(chan pairResult, 1)
	go func() {
		resp, err := http.Post(f.srv.URL+"/api/pair/request", "", nil)
		if err != nil {
			out <- pairResult{code: -1}
			return
		}
		defer resp.Body.Close()
		var body map[string]string
		json.NewDecoder(resp.Body).Decode(&body)
		out <- pairResult{resp.StatusCode, body}
	}()
	return out
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second * loadSlack)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// The pairing story over HTTP: an unpaired phone waits, the box's buttons
// (simulated) admit it, the relay's gate accepts its token, and a factory
// reset revokes it.
func TestBoardAPIPairing(t *testing.T) {
	f := startBoard(t, "")
	st := f.state(t, "")
	if st.State != "booting" || !st.Simulated || st.Paired || st.Name != "callbox" {
		t.Fatalf("fresh box: %+v", st)
	}
	f.a.board.booted()
	if st := f.state(t, ""); st.State != "ready" || st.LED != "ready" {
		t.Fatalf("booted box: %+v", st)
	}
	if f.a.relay.auth == nil {
		t.Fatal("the relay got no pairing gate")
	}
	if err := f.a.relay.auth.Authorize(""); err == nil {
		t.Fatal("the relay admits unpaired clients")
	}

	res := f.pair(t)
	eventually(t, "the phone to wait", func() bool { return f.state(t, "").Waiting == 1 })
	if st := f.state(t, ""); st.State != "pairing" || st.LED != "pairing" {
		t.Fatalf("phone waiting: %+v", st)
	}
	// Button A alone (mute) must not admit it.
	if code := f.press(t, `{"button":"a","ms":100}`); code != 200 {
		t.Fatalf("sim button: %d", code)
	}
	select {
	case r := <-res:
		t.Fatalf("admitted by the mute button: %+v", r)
	case <-time.After(50 * time.Millisecond):
	}
	if code := f.press(t, `{"button":"both","ms":300}`); code != 200 {
		t.Fatalf("sim button: %d", code)
	}
	r := <-res
	tok := r.body["token"]
	if r.code != 200 || tok == "" {
		t.Fatalf("pair: %+v", r)
	}
	if st := f.state(t, tok); !st.Paired || !st.Muted {
		t.Fatalf("paired phone: %+v", st)
	}
	if f.state(t, "forged").Paired {
		t.Fatal("a forged token counts as paired")
	}
	if err := f.a.relay.auth.Authorize(tok); err != nil {
		t.Fatalf("relay refuses the paired token: %v", err)
	}
	// No pairing window: a second phone waits for a press of its own.
	res2 := f.pair(t)
	eventually(t, "the second phone to wait", func() bool { return f.a.board.box.Status().Waiting == 1 })
	select {
	case r2 := <-res2:
		t.Fatalf("second phone admitted without a press: %+v", r2)
	case <-time.After(300 * time.Millisecond):
	}
	f.press(t, `{"button":"both","ms":300}`)
	if r2 := <-res2; r2.code != 200 || r2.body["token"] == "" || r2.body["token"] == tok {
		t.Fatalf("second phone after its press: %+v", r2)
	}

	// Factory reset: A held 10.5 s (back-dated), then A to confirm.
	f.press(t, `{"button":"a","ms":10500}`)
	if st := f.state(t, tok); st.LED != "reset" {
		t.Fatalf("reset not asked: %+v", st)
	}
	f.press(t, `{"button":"a","ms":100}`)
	if st := f.state(t, tok); st.Paired || st.Muted {
		t.Fatalf("after factory reset: %+v", st)
	}
	if err := f.a.relay.auth.Authorize(tok); err == nil {
		t.Fatal("relay still admits a revoked token")
	}
}

func TestBoardAPIPairTimeout(t *testing.T) {
	f := startBoard(t, "[pairing]\nrequest_timeout = \"1s\"\n")
	start := time.Now()
	r := <-f.pair(t)
	if r.code != http.StatusRequestTimeout || !strings.Contains(r.body["error"], "press") {
		t.Fatalf("pair without a press: %+v", r)
	}
	if d := time.Since(start); d < time.Second || d > 4*time.Second {
		t.Fatalf("timed out after %v, want about 1s", d)
	}
	if f.state(t, "").Waiting != 0 {
		t.Fatal("timed-out phone still waiting")
	}
}

func TestBoardAPIOpen(t *testing.T) {
	f := startBoard(t, "[pairing]\nopen = false\n", "--open")
	st := f.state(t, "")
	if !st.Open || !st.Paired {
		t.Fatalf("--open: %+v", st)
	}
	if err := f.a.relay.auth.Authorize(""); err != nil {
		t.Fatalf("--open refuses: %v", err)
	}
	r := <-f.pair(t)
	if r.code != 200 || r.body["token"] == "" {
		t.Fatalf("pair in open mode: %+v", r)
	}
}

func TestBoardAPIBadInput(t *testing.T) {
	f := startBoard(t, "")
	for _, body := range []string{``, `{`, `{"button":"z"}`, `{"button":"a","ms":-5}`, strings.Repeat("x", 10000)} {
		if code := f.press(t, body); code != 400 {
			t.Errorf("sim button %.20q: %d, want 400", body, code)
		}
	}
	resp, err := http.Post(f.srv.URL+"/api/pair/request", "application/json", strings.NewReader(`{"nope":1}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Errorf("pair with a bad body: %d", resp.StatusCode)
	}
	resp, err = http.Get(f.srv.URL + "/api/pair/request")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET pair: %d", resp.StatusCode)
	}
	// Real buttons are never pressed from the network, not even on a
	// real box whose GPIO failed (LED shown in the terminal instead).
	f.a.board.netButtons = false
	if code := f.press(t, `{"button":"a","ms":100}`); code != 404 {
		t.Errorf("sim button on a real board: %d, want 404", code)
	}
	f.a.board.sim = nil
	if code := f.press(t, `{"button":"a","ms":100}`); code != 404 {
		t.Errorf("sim button on real hardware: %d, want 404", code)
	}
}

// A bad file does not stop the box: it runs, shows the error state, and
// the message names the key and the line.
func TestBoardBadConfig(t *testing.T) {
	f := startBoard(t, "name = \"kitchen\"\n[camera]\nfps = 1000\n")
	f.a.board.booted()
	st := f.state(t, "")
	if st.State != "error" || st.LED != "error" {
		t.Fatalf("bad config: %+v", st)
	}
	if !strings.Contains(st.Message, "line 3") || !strings.Contains(st.Message, "camera.fps") {
		t.Fatalf("message %q does not name key and line", st.Message)
	}
	if st.Name != "kitchen" {
		t.Fatalf("the valid keys were not applied: %+v", st)
	}
	f2 := startBoard(t, "[camera\n")
	if st := f2.state(t, ""); !strings.Contains(st.Message, "line 1") {
		t.Fatalf("syntax error message %q", st.Message)
	}
}

// The file and the command line fill one configuration; the command line
// wins, and the parts get its typed values (the relay its relay.Config).
func TestBoardConfigAndFlags(t *testing.T) {
	f := startBoard(t, "http = \"127.0.0.1:9999\"\n[relay]\nhealth_check = 4\nidle_limit = 12\n", "--relay-hc", "6")
	c := f.a.cfg
	if c.HTTP != "127.0.0.1:9999" {
		t.Errorf("http = %s", c.HTTP)
	}
	rc := relayConfig(c.Relay)
	if rc.Video.IdleLimit != 12 {
		t.Errorf("idle limit = %d, want 12 from the file", rc.Video.IdleLimit)
	}
	if rc.Video.HealthInterval != 6 {
		t.Errorf("health interval = %d, want 6 from the command line", rc.Video.HealthInterval)
	}
	if rc.Video.Batch != 32 {
		t.Errorf("batch = %d: a key the file does not set changed", rc.Video.Batch)
	}
}

// The relay's defaults are written in board/config's declaration (which
// must not import the relay): they must be the relay's own.
func TestConfigRelayDefaultsAreTheRelays(t *testing.T) {
	got, want := relayConfig(config.Default().Relay), relay.DefaultConfig()
	got.Now, want.Now = nil, nil
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("config defaults give\n%+v\nthe relay's are\n%+v", got, want)
	}
}

func TestBoardFlags(t *testing.T) {
	if _, err := parseTestAppliance(t, "", "--board", "rpi9"); err == nil || !strings.Contains(err.Error(), "rpi9") {
		t.Fatalf("--board rpi9: %v", err)
	}
	// A command line breaking a rule between keys stops the start.
	if _, err := parseTestAppliance(t, "[relay]\nidle_limit = 12\n", "--relay-hc", "20"); err == nil || !strings.Contains(err.Error(), "idle_limit") {
		t.Fatalf("--relay-hc 20 over idle_limit 12: %v", err)
	}
}

func FuzzParseBoardPairRequest(f *testing.F) {
	f.Add([]byte(``))
	f.Add([]byte(`{"name":"Anna's phone"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := parseBoardPairRequest(body)
		if err == nil && len(req.Name) > 64 {
			t.Fatalf("accepted a %d-byte name", len(req.Name))
		}
	})
}

// wsFirst dials a relay WebSocket and returns its first text message.
func wsFirst(t *testing.T, ctx context.Context, url string) (*websocket.Conn, string) {
	t.Helper()
	c, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	typ, msg, err := c.Read(ctx)
	if err != nil || typ != websocket.MessageText {
		t.Fatalf("first message: %v %v", typ, err)
	}
	return c, string(msg)
}

// With the real relay: an unpaired client gets only "unpaired", a paired
// one its stream header, and a factory reset cuts the paired one off and
// refuses it from then on.
func TestBoardRelayGate(t *testing.T) {
	f := startBoard(t, "", "--relay", "")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := f.a.relay.start(ctx); err != nil {
		t.Fatal(err)
	}
	defer f.a.relay.stop()
	ws := "ws" + strings.TrimPrefix(f.srv.URL, "http") + "/ws/video"

	c, msg := wsFirst(t, ctx, ws)
	if !strings.Contains(msg, "unpaired") {
		t.Fatalf("unpaired client got %q", msg)
	}
	c.CloseNow()

	res := f.pair(t)
	eventually(t, "the phone to wait", func() bool { return f.state(t, "").Waiting == 1 })
	f.press(t, `{"button":"both","ms":200}`)
	tok := (<-res).body["token"]
	c, msg = wsFirst(t, ctx, ws+"?token="+tok)
	defer c.CloseNow()
	if strings.Contains(msg, "error") || !strings.Contains(msg, `"kind":"video"`) {
		t.Fatalf("paired client got %q", msg)
	}
	eventually(t, "the viewer count", func() bool { return f.state(t, "").Viewers == 1 })

	f.press(t, `{"button":"a","ms":10500}`)
	f.press(t, `{"button":"a","ms":100}`)
	// The open connection ends: reading fails soon.
	rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
	defer rcancel()
	for {
		if _, _, err := c.Read(rctx); err != nil {
			if rctx.Err() != nil {
				t.Fatal("connection still open 5 s after the factory reset")
			}
			break
		}
	}
	c2, msg := wsFirst(t, ctx, ws+"?token="+tok)
	c2.CloseNow()
	if !strings.Contains(msg, "unpaired") {
		t.Fatalf("revoked token got %q", msg)
	}
}

// Button A mutes: the media pipeline (media.Config.Muted, tested in
// package media) reads board.muted.
func TestBoardMute(t *testing.T) {
	f := startBoard(t, "")
	var got []bool
	got = append(got, f.a.board.muted())
	f.press(t, `{"button":"a","ms":100}`) // mute
	got = append(got, f.a.board.muted())
	f.press(t, `{"button":"a","ms":100}`) // unmute
	got = append(got, f.a.board.muted())
	if fmt.Sprint(got) != "[false true false]" {
		t.Fatalf("muted %v, want [false true false]", got)
	}
}

// Starting and stopping the board leaves no goroutine behind.
func TestBoardStopLeavesNoGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	for i := 0; i < 3; i++ {
		a := newTestAppliance(t, "", "--board", "sim", "--data", t.TempDir())
		if err := a.board.start(context.Background()); err != nil {
			t.Fatal(err)
		}
		a.board.booted()
		a.board.stop()
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines before, %d after:\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A board that was asked for but cannot be driven (here: a Pi 5 profile on
// a machine without its GPIO chip) shows the error, keeps its LED in the
// terminal, and still refuses presses from the network.
func TestBoardMissingHardware(t *testing.T) {
	f := startBoard(t, "", "--board", "rpi5")
	f.a.board.booted()
	if st := f.a.board.box.Status(); st.State != board.Error || !strings.Contains(st.Message, "board:") {
		t.Fatalf("missing board: %+v", st)
	}
	// A stranger learns only that it must pair, not the configuration's
	// errors (issue 12, item 11).
	if st := lanState(t, f, ""); st.State != "unpaired" || strings.Contains(st.Message, "board:") || st.Simulated {
		t.Fatalf("missing board, as a stranger sees it: %+v", st)
	}
	if code := f.press(t, `{"button":"both","ms":100}`); code != 404 {
		t.Fatalf("network press on a real board's profile: %d, want 404", code)
	}
}
