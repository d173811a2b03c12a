package firmware

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/callbox/callbox/board"
	"github.com/callbox/callbox/capture"
	"github.com/callbox/callbox/capture/h264enc"
	"github.com/callbox/callbox/capture/opus"
	"github.com/callbox/callbox/internal/testenv"
	"github.com/callbox/callbox/relay"
	rwebrtc "github.com/callbox/callbox/relay/webrtc"
	"github.com/callbox/callbox/relay/webrtc/testsrc"
)

// TestRelayPartWHEP: the appliance's relay part serves /whep on the page's
// server; `callbox view --webrtc`'s code plays it with the pairing token
// and is refused without; JPEG video is answered 503 (the page falls back).
func TestRelayPartWHEP(t *testing.T) {
	testenv.Short(t)
	testenv.LookPath(t, "ffmpeg")
	a := newTestAppliance(t, "", "--relay", "")
	p := a.relay
	p.auth = authFunc(func(tok string) error {
		if tok != "paired" {
			return relay.ErrUnpaired
		}
		return nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := p.start(ctx); err != nil {
		t.Fatal(err)
	}
	defer p.stop()
	srv := httptest.NewServer(a.mux)
	defer srv.Close()

	// Before any H.264: 503, so the page uses the WebSocket path.
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/whep", strings.NewReader("v=0\r\n"))
	req.Header.Set("Content-Type", "application/sdp")
	req.Header.Set("Authorization", "Bearer paired")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("WHEP with JPEG video: %d, want 503", resp.StatusCode)
	}

	dir := filepath.Join(os.TempDir(), "callbox-webrtc-testsrc")
	os.MkdirAll(dir, 0o755)
	aus, err := testsrc.Make(dir, testsrc.Spec{Width: 640, Height: 360, FPS: 30, Seconds: 2, Kbps: 800, GOP: 30})
	if err != nil {
		t.Fatal(err)
	}
	pl := &testsrc.Player{AUs: aus, FPS: 30, Publish: p.Publish, Audio: true}
	p.OnKeyframeRequest(pl.RequestKeyframe)
	go pl.Run(ctx)
	for p.r.VideoCodec().String() != "h264" {
		time.Sleep(10 * time.Millisecond)
	}

	vctx, vcancel := context.WithTimeout(ctx, 3*time.Second)
	defer vcancel()
	sum, err := viewWebRTC(vctx, srv.URL+"/whep", "paired", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("webrtc: %d whole, %d incomplete, %.1f fps, %.0f kbit/s, p50 %.1f ms, p99 %.1f ms, decodable %d, keyframe waits %v ms, audio %d",
		sum.FramesWhole, sum.FramesIncomplete, sum.FPS, sum.Kbps, sum.LatencyP50Ms, sum.LatencyP99Ms, sum.Decodable, sum.KeyframeWaitsMs, sum.Audio.Whole)
	if sum.FramesWhole < 30 || sum.FramesIncomplete != 0 || sum.Decodable < 30 || sum.Audio.Whole < 50 {
		t.Errorf("want >= 30 whole decodable frames, 0 incomplete, >= 50 audio chunks")
	}

	rctx, rcancel := context.WithTimeout(ctx, 3*time.Second)
	defer rcancel()
	_, err = viewWebRTC(rctx, srv.URL+"/whep", "wrong", nil)
	var se *rwebrtc.StatusError
	if !errors.As(err, &se) || se.Code != http.StatusUnauthorized {
		t.Fatalf("wrong token: %v, want 401", err)
	}
}

// TestRunH264ToWebRTC: `callbox run --codec h264` end to end on this
// machine: the synthetic camera's raw pictures, the software encoder, the
// relay, WHEP; the headless client gets whole, decodable H.264, its first
// keyframe soon after it joins (the relay's keyframe request reaches the
// encoder stage), and /api/state says where the H.264 comes from.
func TestRunH264ToWebRTC(t *testing.T) {
	testenv.Short(t)
	if !h264enc.SoftwareAvailable() {
		testenv.Unavailable(t, "no software H.264 encoder in this build")
	}
	a := newTestAppliance(t, "", "--relay", "", "--camera", "synthetic", "--mic", "synthetic", "--size", "640x480",
		"--codec", "h264", "--gop", "300", "--bitrate", "800")
	r := a.relay
	r.auth = authFunc(func(string) error { return nil })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := r.start(ctx); err != nil {
		t.Fatal(err)
	}
	defer r.stop()
	m := &mediaPart{cfg: applianceMediaConfig(a.cfg), h264: h264Config(a.cfg), probes: &softwareOnly, log: quietLog, sink: r,
		board: &simMediaBoard{}}
	if err := m.start(ctx); err != nil {
		t.Fatal(err)
	}
	defer m.stop()
	if v := m.videoChoice(); v.Path != "software" || v.Name != "h264" {
		t.Fatalf("video choice %+v", v)
	}
	srv := httptest.NewServer(a.mux)
	defer srv.Close()
	deadline := time.Now().Add(10 * time.Second)
	for !r.r.Publishing(capture.CodecH264) {
		if time.Now().After(deadline) {
			t.Fatal("no H.264 published in 10 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// GOP 300 (10 s): a client joining now gets its first keyframe only
	// because it asks for one.
	time.Sleep(500 * time.Millisecond)
	vctx, vcancel := context.WithTimeout(ctx, 3*time.Second)
	defer vcancel()
	sum, err := viewWebRTC(vctx, srv.URL+"/whep", "any", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("webrtc from the software encoder: %d whole, %d incomplete, %.1f fps, %.0f kbit/s, p50 %.1f ms, decodable %d, keyframe waits %v ms",
		sum.FramesWhole, sum.FramesIncomplete, sum.FPS, sum.Kbps, sum.LatencyP50Ms, sum.Decodable, sum.KeyframeWaitsMs)
	if sum.Decodable < 30 || sum.FramesIncomplete != 0 {
		t.Errorf("want >= 30 decodable frames in 3 s and none incomplete")
	}
	// The client offers Opus first; the media part publishes it beside
	// PCMU when the build has libopus.
	wantAudio := "audio/PCMU"
	if opus.Available {
		wantAudio = "audio/opus"
	}
	t.Logf("audio %s: %d packets", sum.AudioCodec, sum.Audio.Packets)
	if sum.AudioCodec != wantAudio || sum.Audio.Packets < 50 {
		t.Errorf("audio %s, %d packets; want %s, >= 50 packets", sum.AudioCodec, sum.Audio.Packets, wantAudio)
	}
	if len(sum.KeyframeWaitsMs) == 0 || sum.KeyframeWaitsMs[0] > 1500 {
		t.Errorf("keyframe waits %v ms: the request did not reach the encoder", sum.KeyframeWaitsMs)
	}
}

// simMediaBoard is a development machine's board for the media part.
type simMediaBoard struct{}

func (simMediaBoard) muted() bool              { return false }
func (simMediaBoard) isSimulated() bool        { return true }
func (simMediaBoard) fault(board.Fault, error) {}
