package browser

import (
	"strings"
	"testing"

	"github.com/callbox/callbox/internal/testenv"
)

// TestPageWebRTC: `callbox run --codec auto` (the default: the synthetic
// camera's JPEG and, beside it, the software H.264 encoder) and the page in
// headless Chromium: the page takes the WebRTC path (WHEP), the browser
// decodes the box's H.264 and plays its audio, and the mute button and
// volume work; the same box's WebSocket path (?path=ws, the fallback)
// draws whole JPEG frames. The same scenario runs in-process in firmware's
// TestPageWebRTCChromium with ffmpeg's H.264; this one is the appliance as
// shipped.
func TestPageWebRTC(t *testing.T) {
	testenv.Short(t)
	testenv.LookPath(t, "chromium")
	needNode(t, true)
	addr := freeAddr(t)
	b := startBoxWith(t, addr, "--open", "--codec", "auto")
	if !strings.Contains(b.log.String(), "h264") {
		t.Logf("box log:\n%s", b.log)
	}
	r := scenario(t, "webrtc", "http://"+addr+"/", nil, "--seconds", "5")
	num := r.num
	p := pageStats(t, r)
	t.Logf("WebRTC from callbox run: path %v (%v), %v decoded, codec %v, candidates %v, %.1f fps shown, %.0f kbit/s, latency p50 %.1f ms p99 %.1f ms (%v), audio packets %v, energy %.3f, muted %v, unmuted %v, volume %v, Chromium %.2f cores, load %v",
		r["path"], r["pathShown"], r["framesDecoded"], r["codec"], r["candidatePair"], p.num("fps"), p.num("kbps"),
		num("latencyP50"), num("latencyP99"), r["latencySource"], r["audioPackets"], num("audioEnergy"),
		r["muted"], r["unmuted"], r["volume"], num("chromiumCores"), r["load"])
	if r["path"] != "webrtc" {
		t.Fatalf("path %v (fallback: %v), want webrtc", r["path"], r["fallbackReason"])
	}
	if num("framesDecoded") < 60 {
		t.Errorf("%v frames decoded, want >= 60", r["framesDecoded"])
	}
	if c, _ := r["codec"].(string); !strings.Contains(strings.ToLower(c), "h264") {
		t.Errorf("codec %v, want H.264", r["codec"])
	}
	if num("audioPackets") < 100 || num("audioEnergy") <= 0 {
		t.Errorf("audio: %v packets, energy %v", r["audioPackets"], r["audioEnergy"])
	}
	// Chromium offers Opus first and the box publishes it beside PCMU.
	t.Logf("audio codec %v", r["audioCodec"])
	if c, _ := r["audioCodec"].(string); !strings.EqualFold(c, "audio/opus") {
		t.Errorf("audio codec %v, want audio/opus", r["audioCodec"])
	}
	if m, _ := r["muted"].(map[string]any); m == nil || m["element"] != true {
		t.Errorf("mute: %v", r["muted"])
	}
	if r["unmuted"] != true {
		t.Error("a second tap did not unmute")
	}
	// The fallback on the same box: JPEG over WebSocket.
	w := scenario(t, "play", "http://"+addr+"/?path=ws", nil, "--seconds", "3")
	wp := pageStats(t, w)
	t.Logf("WebSocket fallback from the same box: %.1f fps, %v incomplete, %v video Health Checks, latency p50 %.1f ms",
		wp.num("fps"), wp["framesIncomplete"], wp["healthChecksVideo"], wp.num("latencyP50"))
	if wp.num("fps") < 10 || wp.num("framesIncomplete") != 0 || wp.num("healthChecksVideo") <= 0 {
		t.Errorf("WebSocket fallback: %.1f fps (want >= 10), %v incomplete (want 0), %v video Health Checks (want > 0)",
			wp.num("fps"), wp["framesIncomplete"], wp["healthChecksVideo"])
	}
}
