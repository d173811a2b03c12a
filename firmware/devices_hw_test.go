package firmware

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/callbox/callbox/capture"
)

// auto must always give a working source: the first real device where the
// machine has one (the HIL VM proves that path), else the synthetic one
// with the reason in its description, which the appliance logs.
func TestAutoDevicesAlwaysWork(t *testing.T) {
	cam, info, err := openCamera("auto", videoConfig{width: 320, height: 240, fps: 15})
	desc := info.desc
	if err != nil {
		t.Fatal(err)
	}
	defer cam.Close()
	t.Logf("camera: %s", desc)
	if !strings.HasPrefix(desc, "V4L2 camera") && !strings.Contains(desc, "auto: no usable V4L2 camera") {
		t.Fatalf("auto camera description does not say what was chosen: %q", desc)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if f, err := cam.ReadFrame(ctx); err != nil || len(f.Data) == 0 {
		t.Fatalf("auto camera: %v (%d bytes)", err, len(f.Data))
	}

	m, info, err := openMic("auto")
	desc = info.desc
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	t.Logf("mic: %s", desc)
	if !strings.HasPrefix(desc, "ALSA microphone") && !strings.Contains(desc, "auto: no usable microphone") {
		t.Fatalf("auto mic description does not say what was chosen: %q", desc)
	}
	if c, err := m.ReadChunk(ctx); err != nil || len(c.Samples) == 0 {
		t.Fatalf("auto mic: %v", err)
	}
}

func TestExplicitDevicesFailClearly(t *testing.T) {
	vc := videoConfig{width: 320, height: 240, fps: 15}
	if _, _, err := openCamera("webcam", vc); !errors.Is(err, errNoDriver) {
		t.Errorf("camera name that is no device path: %v", err)
	}
	if _, _, err := openCamera("/dev/video-none", vc); !errors.Is(err, capture.ErrDeviceGone) {
		t.Errorf("missing camera node: %v", err)
	}
	if _, _, err := openMic("no-such-microphone-xyz"); err == nil {
		t.Error("unknown microphone accepted")
	}
}
