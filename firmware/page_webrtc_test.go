package firmware

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/callbox/callbox/internal/testenv"
	"github.com/callbox/callbox/relay/webrtc/testsrc"
)

// TestPageWebRTCChromium: the page (this package's embedded firmware/web)
// in headless Chromium plays the box's H.264 over WebRTC, decodes it
// (getStats framesDecoded), plays audio, and its mute button and volume
// control work. The box is this process: the page and relay parts on one
// server, H.264 from ffmpeg's test pattern (the encoder's stand-in), PCMU.
// It drives test/browser/scenario.mjs, the browser tests' harness.
func TestPageWebRTCChromium(t *testing.T) {
	testenv.Short(t)
	testenv.LookPath(t, "ffmpeg")
	testenv.LookPath(t, "chromium")
	node := testenv.LookPath(t, "node")
	harness, err := filepath.Abs(filepath.Join("..", "test", "browser"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(harness, "node_modules", "playwright-core")); err != nil {
		npm := testenv.LookPath(t, "npm")
		cmd := exec.Command(npm, "ci", "--no-audit", "--no-fund")
		cmd.Dir = harness
		if out, err := cmd.CombinedOutput(); err != nil {
			testenv.Unavailable(t, "playwright-core: npm ci: %v\n%s", err, out)
		}
	}

	a := newTestAppliance(t, "", "--relay", "")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := a.page.start(ctx); err != nil {
		t.Fatal(err)
	}
	defer a.page.stop()
	a.relay.auth = nil // open, as --open makes it
	if err := a.relay.start(ctx); err != nil {
		t.Fatal(err)
	}
	defer a.relay.stop()
	dir := filepath.Join(os.TempDir(), "callbox-webrtc-testsrc")
	os.MkdirAll(dir, 0o755)
	aus, err := testsrc.Make(dir, testsrc.Spec{Width: 1280, Height: 720, FPS: 30, Seconds: 4, Kbps: 2000, GOP: 30})
	if err != nil {
		t.Fatal(err)
	}
	pl := &testsrc.Player{AUs: aus, FPS: 30, Publish: a.relay.Publish, Audio: true}
	a.relay.OnKeyframeRequest(pl.RequestKeyframe)
	go pl.Run(ctx)
	srv := httptest.NewServer(a.mux)
	defer srv.Close()

	sctx, scancel := context.WithTimeout(ctx, 2*time.Minute)
	defer scancel()
	cmd := exec.CommandContext(sctx, node, filepath.Join(harness, "scenario.mjs"), "webrtc", "--url", srv.URL+"/",
		"--artifacts", t.TempDir(), "--seconds", "5")
	cmd.Stderr = testWriter{t}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var res map[string]any
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var ev map[string]any
		if json.Unmarshal(sc.Bytes(), &ev) != nil {
			continue
		}
		switch ev["event"] {
		case "result":
			res = ev
		case "error", "pageerror", "console":
			t.Logf("scenario: %s", sc.Text())
		}
	}
	if err := cmd.Wait(); err != nil || res == nil {
		t.Fatalf("scenario: %v (no result)", err)
	}
	num := func(k string) float64 { f, _ := res[k].(float64); return f }
	page := res["pages"].([]any)[0].(map[string]any)
	pnum := func(k string) float64 { f, _ := page[k].(float64); return f }
	t.Logf("WebRTC in Chromium: path %v (%v), %v decoded, %v dropped, codec %v, candidates %v, %.1f fps shown, %.0f kbit/s, latency p50 %.1f ms p99 %.1f ms (%v, %v samples), audio packets %v, energy %.3f -> %.3f (muted) -> %.3f, muted %v, unmuted %v, volume %v, Chromium %.2f cores, load %v",
		res["path"], res["pathShown"], res["framesDecoded"], res["framesDropped"], res["codec"], res["candidatePair"], pnum("fps"), pnum("kbps"),
		num("latencyP50"), num("latencyP99"), res["latencySource"], res["latencySamples"], res["audioPackets"],
		num("audioEnergyBefore"), num("audioEnergyMuted"), num("audioEnergy"), res["muted"], res["unmuted"], res["volume"], num("chromiumCores"), res["load"])
	remote := a.relay.whep.RemoteCandidates()
	t.Logf("the box reached Chromium through: %v", remote)
	// Chromium hides its host candidates behind mDNS names without
	// camera permission, as Safari does: the box (no mDNS) must reach it
	// through the peer-reflexive candidate its checks reveal.
	if remote["prflx"] == 0 {
		t.Errorf("connections by remote candidate type %v: want the phone reached as peer-reflexive", remote)
	}
	if res["path"] != "webrtc" || res["pathShown"] != "WebRTC" {
		t.Errorf("path %v, shown %q, fallback %v: want webrtc", res["path"], res["pathShown"], res["fallbackReason"])
	}
	if num("framesDecoded") < 100 {
		t.Errorf("%v frames decoded, want >= 100", res["framesDecoded"])
	}
	if !strings.Contains(strings.ToLower(res["codec"].(string)), "h264") {
		t.Errorf("codec %v, want H.264", res["codec"])
	}
	if num("audioPackets") < 200 || num("audioEnergy") <= 0 {
		t.Errorf("audio: %v packets, energy %v: want the tone playing", res["audioPackets"], res["audioEnergy"])
	}
	if m, _ := res["muted"].(map[string]any); m == nil || m["element"] != true || m["stats"] != true {
		t.Errorf("mute button: %v, want the element and the stats muted", res["muted"])
	}
	if res["unmuted"] != true {
		t.Error("a second tap did not unmute")
	}
	if v := num("volume"); v < 0.29 || v > 0.31 {
		t.Errorf("volume %v after setting 0.3", v)
	}
}
