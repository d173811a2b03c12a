package firmware

import (
	"bytes"
	"context"
	"fmt"
	"image/jpeg"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callbox/callbox/capture"
	"github.com/callbox/callbox/capture/h264enc"
	"github.com/callbox/callbox/capture/rtpjpeg"
	"github.com/callbox/callbox/internal/testenv"
	"github.com/callbox/callbox/relay/viewer"
)

// TestRunAutoBothCodecs: `callbox run --codec auto` with the software
// encoder at hand publishes both codecs from one camera: at the same time
// a WHEP client gets decodable H.264 (its keyframe request reaching the
// encoder beside the JPEG track) and a WebSocket viewer gets only JPEG,
// whole frames that image/jpeg decodes; /api/state's video says which
// codec goes where.
func TestRunAutoBothCodecs(t *testing.T) {
	testenv.Short(t)
	if !h264enc.SoftwareAvailable() {
		testenv.Unavailable(t, "no software H.264 encoder in this build")
	}
	a := newTestAppliance(t, "", "--relay", "", "--camera", "synthetic", "--mic", "synthetic", "--size", "640x480",
		"--codec", "auto", "--gop", "300", "--bitrate", "800")
	a.relay.auth = authFunc(func(string) error { return nil })
	a.media.probes = &softwareOnly
	a.media.board = &simMediaBoard{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for _, p := range []part{a.relay, a.media} {
		if err := p.start(ctx); err != nil {
			t.Fatal(err)
		}
		defer p.stop()
	}
	v := a.media.videoChoice()
	if v.Name != "h264" || v.Path != "software" || v.Alongside != "jpeg" {
		t.Fatalf("video choice %+v: want H.264 from the software encoder beside JPEG", v)
	}
	want := map[string]string{"websocket": "jpeg", "tcp": "jpeg", "snapshot": "jpeg", "webrtc": "h264", "rtsp": "h264"}
	for k, c := range want {
		if v.Transports[k] != c {
			t.Errorf("transports %v: %s carries %q, want %q", v.Transports, k, v.Transports[k], c)
		}
	}
	srv := httptest.NewServer(a.mux)
	defer srv.Close()
	r := a.relay.r
	eventually(t, "both codecs published", func() bool {
		return r.Publishing(capture.CodecH264) && r.Publishing(capture.CodecJPEG)
	})
	if c := r.VideoCodec(); c != capture.CodecJPEG {
		t.Fatalf("relay announces %v to TCP/WebSocket clients, want JPEG", c)
	}
	// GOP 300 (10 s): the WHEP client's first keyframe comes only because
	// its request reaches the encoder beside the JPEG track.
	time.Sleep(500 * time.Millisecond)
	vctx, vcancel := context.WithTimeout(ctx, 3*time.Second)
	defer vcancel()
	var wg sync.WaitGroup
	var sum viewSummary
	var werr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		sum, werr = viewWebRTC(vctx, srv.URL+"/whep", "any", nil)
	}()
	jpegs, other, jerr := viewJPEG(vctx, "ws"+strings.TrimPrefix(srv.URL, "http")+"/ws/video")
	wg.Wait()
	if werr != nil || jerr != nil {
		t.Fatalf("webrtc: %v; websocket: %v", werr, jerr)
	}
	t.Logf("webrtc (H.264): %d whole, %d incomplete, %.1f fps, %.0f kbit/s, decodable %d, keyframe waits %v ms; websocket (JPEG): %d decoded pictures, %d packets of another codec",
		sum.FramesWhole, sum.FramesIncomplete, sum.FPS, sum.Kbps, sum.Decodable, sum.KeyframeWaitsMs, jpegs, other)
	if sum.Decodable < 30 || sum.FramesIncomplete != 0 {
		t.Errorf("webrtc: want >= 30 decodable H.264 frames in 3 s and none incomplete")
	}
	if len(sum.KeyframeWaitsMs) == 0 || sum.KeyframeWaitsMs[0] > 1500 {
		t.Errorf("keyframe waits %v ms: the request did not reach the encoder", sum.KeyframeWaitsMs)
	}
	if jpegs < 30 || other != 0 {
		t.Errorf("websocket: want >= 30 whole JPEG pictures in 3 s and no packet of another codec")
	}
}

// viewJPEG watches a relay's video over WebSocket until ctx ends: the
// JPEG pictures it reassembled and decoded, and the packets that were not
// RTP/JPEG. A picture that does not decode is an error.
func viewJPEG(ctx context.Context, url string) (pictures, other int, err error) {
	c, err := viewer.Dial(ctx, url, capture.KindVideo, viewer.Options{Token: "any"})
	if err != nil {
		return 0, 0, err
	}
	defer c.Close()
	go func() { <-ctx.Done(); c.Close() }()
	if codec := c.Accept().Codec; codec != "jpeg" {
		return 0, 0, fmt.Errorf("handshake announces %q, want jpeg", codec)
	}
	d := rtpjpeg.NewDepacketizer()
	for {
		pkt, err := c.Next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return pictures, other, nil
			}
			return pictures, other, err
		}
		if len(pkt) < 12 || pkt[1]&0x7f != capture.PayloadTypeJPEG {
			other++
			continue
		}
		f, ok, _ := d.Push(pkt)
		if !ok {
			continue
		}
		if _, err := jpeg.Decode(bytes.NewReader(f.Data)); err != nil {
			return pictures, other, fmt.Errorf("picture %d: %w", pictures+1, err)
		}
		pictures++
	}
}
