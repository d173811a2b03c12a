package browser

import (
	"bytes"
	"fmt"
	"image/color"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/callbox/callbox/capture/synth"
	"github.com/callbox/callbox/internal/testenv"
)

// TestPageCall: the boxes pair from their pages (a code on A's page,
// entered on B's, the same confirmation on both, confirmed on both), then
// the page's Call button calls the paired box and hangs up, and the page
// says whether the call is direct or relayed (call.spec.mjs). Two `callbox
// run` boxes and a `callbox hub` on this machine. The call's ICE uses the machine's own
// (non-loopback) addresses, so it stays on this machine.
func TestPageCall(t *testing.T) {
	testenv.Short(t)
	testenv.LookPath(t, "chromium")
	if !hasNonLoopbackIPv4() {
		testenv.Unavailable(t, "no non-loopback IPv4 address for the boxes' ICE host candidates")
	}
	bin := callbox(t)
	hubAddr := freeAddr(t)
	hub := exec.Command(bin, "hub", "--listen", hubAddr, "--stun-listen", "", "--public-ip", "127.0.0.1", "--data", t.TempDir())
	hub.Env = append(os.Environ(), "CALLBOX_TURN_SECRET=browser-test")
	var hubLog bytes.Buffer
	hub.Stdout, hub.Stderr = &hubLog, &hubLog
	if err := hub.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hub.Process.Kill(); hub.Wait() })
	hubURL := "ws://" + hubAddr + "/v1/ws"
	// Named boxes: their synthetic cameras paint different marks. B rings
	// (no auto-answer) and its page answers.
	conf := func(name string) string {
		p := filepath.Join(t.TempDir(), "callbox.toml")
		if err := os.WriteFile(p, []byte("name = \""+name+"\"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	a := startBoxWith(t, freeAddr(t), "--open", "--board", "sim", "--hub", hubURL, "--config", conf("kitchen"))
	b := startBoxWith(t, freeAddr(t), "--open", "--board", "sim", "--hub", hubURL, "--config", conf("attic"))

	// The pages pair the boxes once both are registered with the hub
	// (their logs say so).
	for _, x := range []*box{a, b} {
		if err := x.waitLog("registered with the hub", 60*time.Second); err != nil {
			t.Fatalf("%v\n%s", err, hubLog.String())
		}
	}
	shot := filepath.Join(t.TempDir(), "call.png")
	if d := os.Getenv("CALLBOX_SHOTS"); d != "" {
		shot = filepath.Join(d, "call-page-b.png")
	}
	r := nodeScript(t, "call", nil, "call.spec.mjs", "--url", "http://"+a.addr+"/", "--other", "http://"+b.addr+"/", "--shot", shot)
	t.Logf("paired from the pages in %.0f ms: %q, then %q, then %q", r.num("pairMs"), r["codeText"], r["compareText"], r["pairedText"])
	if sa, _ := r["sasA"].(string); len(sa) != 6 || r["sasA"] != r["sasB"] {
		t.Errorf("the pages show the confirmations %v and %v, want the same 6 digits", r["sasA"], r["sasB"])
	}
	if p, _ := r["pairedText"].(string); !strings.HasPrefix(p, "Paired with") {
		t.Errorf("box A's page after both confirmed: %q", p)
	}
	t.Logf("button after %.0f ms; in a call %.0f ms after the tap: %q", r.num("buttonMs"), r.num("inCallMs"), r["boxstateInCall"])
	if r["labelIdle"] != "Call" || r["labelInCall"] != "Hang up" {
		t.Errorf("button labels %v / %v, want Call / Hang up", r["labelIdle"], r["labelInCall"])
	}
	if s, _ := r["boxstateInCall"].(string); !strings.Contains(s, "(direct)") {
		t.Errorf("page's box state in the call: %q, want it to say direct", s)
	}
	if r["otherInCall"] != "direct" || r["otherAfter"] != "idle" {
		t.Errorf("box B's call: %v in the call, %v after the hang-up; want direct, idle", r["otherInCall"], r["otherAfter"])
	}
	t.Logf("B rang %.0f ms after the tap (%q, state %v); in a call %.0f ms after Answer", r.num("ringMs"), r["ringText"], r["stateRinging"], r.num("inCallMs"))
	if r["stateRinging"] != "ringing" || !strings.Contains(fmt.Sprint(r["ringText"]), "kitchen") {
		t.Errorf("box B while ringing: state %v, notice %q", r["stateRinging"], r["ringText"])
	}
	t.Logf("B's page: call frames %v, colours %v (want call ≈ kitchen %v, own ≈ attic %v), call view %v, own PiP %v, %q, call audio running %v",
		r["callFrames"], r["colours"], synth.MarkColor("kitchen"), synth.MarkColor("attic"), r["callRect"], r["ownRect"], r["callInfo"], r["callAudioRunning"])
	if fr, _ := r["callFrames"].(map[string]any); fr == nil || fr["drawn"].(float64) < 10 || fr["w"].(float64) == 0 {
		t.Errorf("B's page decoded no call frames: %v", r["callFrames"])
	}
	cols, _ := r["colours"].(map[string]any)
	near := func(v any, want color.RGBA) bool {
		c, _ := v.([]any)
		if len(c) != 3 {
			return false
		}
		d := 0.0
		for i, w := range []uint8{want.R, want.G, want.B} {
			d = max(d, math.Abs(c[i].(float64)-float64(w)))
		}
		return d < 40
	}
	if cols == nil || !near(cols["call"], synth.MarkColor("kitchen")) || !near(cols["own"], synth.MarkColor("attic")) {
		t.Errorf("B's page: the call shows %v (want kitchen's mark %v), its own room %v (want attic's %v)",
			cols["call"], synth.MarkColor("kitchen"), cols["own"], synth.MarkColor("attic"))
	}
	if cr, or := r["callRect"].([]any), r["ownRect"].([]any); len(cr) != 2 || len(or) != 2 || cr[0].(float64) < 2*or[0].(float64) {
		t.Errorf("B's page: call picture %v should be full-screen, own room %v picture-in-picture", r["callRect"], r["ownRect"])
	}
	if info, _ := r["callInfo"].(string); !strings.Contains(info, "kitchen") || !strings.Contains(info, "direct") || !regexp.MustCompile(`\d+:\d\d`).MatchString(info) {
		t.Errorf("B's page call info %q: want the peer, the path and the duration", info)
	}
	// The call view's path: WebRTC (/whep/call, the other box's H.264
	// forwarded by B without decoding) when B's call relay carries H.264,
	// the WebSocket path for a JPEG call.
	cs, _ := r["callStats"].(map[string]any)
	ca, _ := r["callAudio"].(map[string]any)
	t.Logf("B's call view: path %v (%v), call relay carries %v; answer to the other home drawn %.0f ms (page: call up to first frame %v ms, steps %v), %.1f fps drawn, video %v, %v decoded; audio %v",
		cs["path"], cs["fallbackReason"], r["callLive"], r.num("answerToDrawnMs"), cs["firstFrameMs"], cs["steps"], r.num("callFps"), cs["codec"], cs["decoded"], ca)
	bc, _ := r["boxCall"].(map[string]any)
	t.Logf("box B received A's call video at %v fps meanwhile: %v", bc["receivedFps"], bc)
	// Calls carry H.264 where the calling box can encode it (a box
	// built without an encoder sends JPEG): then B must forward it to its
	// phone over WebRTC.
	if bc["videoSentByA"] == "h264" && r["callLive"] != "h264" {
		t.Errorf("A sends the call in H.264 but B's call relay carries %v", r["callLive"])
	}
	switch r["callLive"] {
	case "h264":
		if cs["path"] != "webrtc" || !strings.EqualFold(fmt.Sprint(cs["codec"]), "video/H264") {
			t.Errorf("an H.264 call: B's call view on %v (%v), codec %v; want WebRTC, video/H264", cs["path"], cs["fallbackReason"], cs["codec"])
		}
		if n, _ := ca["packets"].(float64); n == 0 {
			t.Errorf("an H.264 call: B's page received no call audio over WebRTC: %v", ca)
		}
		if e, _ := ca["energy"].(float64); e <= 0 {
			t.Errorf("an H.264 call: B's page plays no call sound (audio energy %v)", ca["energy"])
		}
	case "jpeg":
		if cs["path"] != "websocket" || cs["fallbackReason"] != "the call carries JPEG" {
			t.Errorf("a JPEG call: B's call view on %v (%v); want the WebSocket path because the call carries JPEG", cs["path"], cs["fallbackReason"])
		}
	default:
		t.Errorf("B's call relay carries %v during the call (OPTIONS /whep/call), want h264 or jpeg", r["callLive"])
	}
	mi, _ := r["mutedInCall"].(map[string]any)
	ui, _ := r["unmutedInCall"].(map[string]any)
	if mi["muted"] != true || !strings.Contains(fmt.Sprint(mi["info"]), "muted") || ui["muted"] != false {
		t.Errorf("mute by a tap in the call: %v, then unmute: %v", mi, ui)
	}
	if r["callPathAfter"] != "" {
		t.Errorf("B's call view path after the hang-up: %v, want none", r["callPathAfter"])
	}
	if r["labelB"] != "Hang up" || r["callViewAfter"] != false {
		t.Errorf("B's page: button %v in the call, call view after hang-up %v", r["labelB"], r["callViewAfter"])
	}
	if r["callError"] != "" {
		t.Errorf("page's call error: %v", r["callError"])
	}
}

func hasNonLoopbackIPv4() bool {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return false
	}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil && !ipn.IP.IsLoopback() {
			return true
		}
	}
	return false
}
