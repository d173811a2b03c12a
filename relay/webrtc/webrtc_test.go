package webrtc

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callbox/callbox/internal/testenv"
	"github.com/callbox/callbox/relay"
	"github.com/callbox/callbox/relay/webrtc/testsrc"
)

var (
	ausOnce sync.Once
	ausErr  error
	ausHD   []testsrc.AU
)

// testAUs is 720p30 H.264 at 2 Mbit/s with a 1 s GOP, encoded once per run.
func testAUs(t testing.TB) []testsrc.AU {
	t.Helper()
	{
		testenv.LookPath(t, "ffmpeg")
	}
	ausOnce.Do(func() {
		dir := filepath.Join(os.TempDir(), "callbox-webrtc-testsrc")
		if ausErr = os.MkdirAll(dir, 0o755); ausErr == nil {
			ausHD, ausErr = testsrc.Make(dir, testsrc.Spec{Width: 1280, Height: 720, FPS: 30, Seconds: 4, Kbps: 2000, GOP: 30})
		}
	})
	if ausErr != nil {
		t.Fatal(ausErr)
	}
	return ausHD
}

// box is a relay with a WHEP endpoint on loopback, publishing the test
// stream.
type box struct {
	r      *relay.Relay
	srv    *Server
	http   *httptest.Server
	player *testsrc.Player
	cancel context.CancelFunc
	done   chan struct{}
}

func newBox(t testing.TB, cfg Config, rcfg relay.Config) *box {
	t.Helper()
	return newBoxAudio(t, cfg, rcfg, true)
}

// newBoxAudio is newBox; playerAudio false leaves the audio to the test.
func newBoxAudio(t testing.TB, cfg Config, rcfg relay.Config, playerAudio bool) *box {
	t.Helper()
	aus := testAUs(t)
	r := relay.New(rcfg, nil)
	cfg.Loopback = true
	if cfg.IPFilter == nil {
		cfg.IPFilter = func(ip net.IP) bool { return ip.IsLoopback() }
	}
	srv, err := New(r, cfg)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/whep", srv)
	mux.Handle("/whep/", srv)
	hs := httptest.NewServer(mux)
	b := &box{r: r, srv: srv, http: hs, done: make(chan struct{})}
	b.player = &testsrc.Player{AUs: aus, FPS: 30, Publish: r.Publish, Audio: playerAudio}
	r.OnKeyframeRequest(b.player.RequestKeyframe)
	ctx, cancel := context.WithCancel(context.Background())
	b.cancel = cancel
	go func() {
		defer close(b.done)
		b.player.Run(ctx)
	}()
	t.Cleanup(b.close)
	// The relay learns the codec from the first published frame.
	deadline := time.Now().Add(5 * time.Second)
	for r.VideoCodec().String() != "h264" {
		if time.Now().After(deadline) {
			t.Fatal("no H.264 published")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return b
}

func (b *box) url() string { return b.http.URL + "/whep" }

func (b *box) close() {
	b.cancel()
	<-b.done
	b.srv.Close()
	b.http.Close()
	b.r.Close()
}

// waitFor polls cond until it holds or the budget runs out.
func waitFor(t testing.TB, budget time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(budget)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestWHEPPlaysDecodableH264(t *testing.T) {
	testenv.Short(t)
	b := newBox(t, Config{}, relay.Config{})
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Dial(ctx, b.url(), ClientOptions{Loopback: true, H264Out: &syncWriter{w: &out}})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "60 decodable frames", func() bool { return c.Stats().Decodable >= 60 })
	st := c.Stats()
	if err := c.Close(); err != nil {
		t.Error(err)
	}
	waitFor(t, 5*time.Second, "the session to end", func() bool { return b.srv.Peers() == 0 })
	t.Logf("video %+v", st.Video)
	t.Logf("audio whole %d, %.0f kbit/s; decodable %d, keyframe waits %v, offset %v", st.Audio.Whole, st.Audio.Kbps, st.Decodable, st.KeyframeWaits, st.ClockOffset)
	if st.Video.Incomplete != 0 {
		t.Errorf("%d incomplete frames", st.Video.Incomplete)
	}
	if st.Audio.Whole == 0 {
		t.Error("no audio")
	}
	// The client offered Opus first, but this box publishes no Opus.
	if st.AudioCodec != "audio/PCMU" {
		t.Errorf("audio codec %q, want audio/PCMU", st.AudioCodec)
	}
	if len(st.KeyframeWaits) == 0 {
		t.Error("no keyframe wait recorded: the first frame must be an IDR")
	}
	// ffmpeg must decode every frame the client received.
	f := filepath.Join(t.TempDir(), "got.h264")
	if err := os.WriteFile(f, out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("ffmpeg", "-hide_banner", "-v", "error", "-xerror", "-err_detect", "explode", "-f", "h264", "-i", f, "-f", "null", "-")
	if o, err := cmd.CombinedOutput(); err != nil || len(bytes.TrimSpace(o)) > 0 {
		t.Fatalf("ffmpeg could not decode the client's stream: %v: %s", err, o)
	}
	n := countFrames(t, f)
	if n < 60 {
		t.Errorf("ffmpeg decoded %d frames, want >= 60", n)
	}
	t.Logf("ffmpeg decoded %d frames", n)
}

func countFrames(t *testing.T, f string) int {
	o, err := exec.Command("ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0", "-show_entries",
		"stream=nb_read_frames", "-of", "csv=p=0", f).Output()
	if err != nil {
		t.Fatalf("ffprobe: %v", err)
	}
	var n int
	_, _ = fmt.Sscan(strings.TrimSpace(string(o)), &n)
	return n
}

type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
