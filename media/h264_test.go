package media

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callbox/callbox/capture"
	"github.com/callbox/callbox/capture/h264enc"
	"github.com/callbox/callbox/drivers/encoder"
)

func probes(cam, hw, sw bool) Probes {
	return Probes{
		CameraH264: func(string) (string, bool) { return "/dev/video0", cam },
		Hardware: func() (encoder.Found, error) {
			if hw {
				return encoder.Found{Path: "/dev/video11", Card: "bcm2835-codec-encode", Driver: "bcm2835-codec"}, nil
			}
			return encoder.Found{}, encoder.ErrNoDevice
		},
		Software: func() bool { return sw },
	}
}

// TestChooseVideo: the probing order and the reasons.
func TestChooseVideo(t *testing.T) {
	for _, c := range []struct {
		codec, profile string
		cam, hw, sw    bool
		path           string
		err            bool
		reason         string
	}{
		{"auto", "", true, true, true, "camera", false, "the camera encodes"},
		{"auto", "", false, true, true, "hardware", false, "hardware encoder"},
		{"auto", "", false, false, true, "software", false, "no hardware encoder"},
		{"auto", "", false, false, false, "jpeg", false, "no software encoder"},
		{"h264", "", false, false, false, "", true, ""},
		{"jpeg", "", true, true, true, "jpeg", false, "configured"},
		{"auto", "high", false, false, true, "jpeg", false, "constrained baseline only"},
		{"h264", "high", false, true, true, "hardware", false, ""},
		{"vp8", "", true, true, true, "", true, ""},
	} {
		got, err := ChooseVideo("auto", H264Config{Codec: c.codec, Profile: c.profile}, probes(c.cam, c.hw, c.sw))
		if (err != nil) != c.err {
			t.Errorf("%+v: error %v", c, err)
			continue
		}
		if err != nil {
			continue
		}
		if got.Path != c.path || !strings.Contains(got.Reason, c.reason) {
			t.Errorf("%+v: got %+v", c, got)
		}
		if (got.Codec == capture.CodecH264) != (c.path != "jpeg") {
			t.Errorf("%+v: codec %v", c, got.Codec)
		}
	}
}

// TestSoftwareH264Pipeline: with the software encoder chosen, the pipeline
// publishes H.264 bursts from the synthetic camera (raw pictures into the
// encoder), starting with a keyframe, and RequestKeyframe makes another.
func TestSoftwareH264Pipeline(t *testing.T) {
	if !h264enc.SoftwareAvailable() {
		t.Skip("no software encoder in this build")
	}
	choice, err := ChooseVideo("synthetic", H264Config{Codec: "h264"}, probes(false, false, true))
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var keys, frames int
	got := make(chan struct{}, 1)
	tenth := make(chan struct{})
	cfg := Config{Camera: "synthetic", Mic: "synthetic", Video: VideoConfig{Width: 320, Height: 240, FPS: 30},
		PacketSize: 1200,
		Publish: func(b capture.Burst) {
			if b.Kind != capture.KindVideo {
				return
			}
			mu.Lock()
			frames++
			if b.Keyframe {
				keys++
			}
			n := frames
			mu.Unlock()
			if n == 10 {
				close(tenth)
			}
			if n == 40 {
				got <- struct{}{}
			}
		}}
	if err := ApplyVideo(&cfg, choice, H264Config{Codec: "h264", GOP: 1000}); err != nil {
		t.Fatal(err)
	}
	p, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop()
	if cam, _ := p.Describe(); !strings.Contains(cam, "I420") {
		t.Errorf("camera %q is not the raw synthetic one", cam)
	}
	// One request after the 10th frame (well after the first IDR, which
	// would serve a request made before it); the keyframe interval
	// (500 ms) since the first IDR has passed by frame 16 at 30 fps.
	select {
	case <-tenth:
	case <-time.After(60 * time.Second):
		t.Fatal("no 10 video bursts in 60 s")
	}
	p.RequestKeyframe()
	select {
	case <-got:
	case <-time.After(120 * time.Second):
		t.Fatal("no 40 video bursts in 120 s")
	}
	mu.Lock()
	defer mu.Unlock()
	if keys != 2 {
		t.Fatalf("%d keyframes in %d frames, want the first and the requested one", keys, frames)
	}
	if err := ApplyVideo(&Config{}, VideoChoice{Path: "software"}, H264Config{Profile: "extended"}); err == nil {
		t.Fatal("bad profile accepted")
	}
}
