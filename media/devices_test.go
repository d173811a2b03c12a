package media

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
	dev, err := openCamera("auto", VideoConfig{Width: 320, Height: 240, FPS: 15}, true)
	desc := dev.desc
	if err != nil {
		t.Fatal(err)
	}
	cam := dev.first
	defer cam.Close()
	t.Logf("camera: %s", desc)
	if !strings.HasPrefix(desc, "V4L2 camera") && !strings.Contains(desc, "auto: no usable V4L2 camera") {
		t.Fatalf("auto camera description does not say what was chosen: %q", desc)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if f, err := cam.Read(ctx); err != nil || len(f.Data) == 0 {
		t.Fatalf("auto camera: %v (%d bytes)", err, len(f.Data))
	}

	mdev, err := openMic("auto", true)
	desc = mdev.desc
	if err != nil {
		t.Fatal(err)
	}
	m := mdev.first
	defer m.Close()
	t.Logf("mic: %s", desc)
	if !strings.HasPrefix(desc, "ALSA microphone") && !strings.Contains(desc, "auto: no usable microphone") {
		t.Fatalf("auto mic description does not say what was chosen: %q", desc)
	}
	if c, err := m.Read(ctx); err != nil || len(c.Samples) == 0 {
		t.Fatalf("auto mic: %v", err)
	}
}

func TestExplicitDevicesFailClearly(t *testing.T) {
	vc := VideoConfig{Width: 320, Height: 240, FPS: 15}
	if _, err := openCamera("webcam", vc, true); !errors.Is(err, ErrNoDriver) {
		t.Errorf("camera name that is no device path: %v", err)
	}
	if _, err := openCamera("/dev/video-none", vc, true); !errors.Is(err, capture.ErrDeviceGone) {
		t.Errorf("missing camera node: %v", err)
	}
	if _, err := openMic("no-such-microphone-xyz", true); err == nil {
		t.Error("unknown microphone accepted")
	}
}

// Without the synthetic fallback (a real board), "auto" with no device
// starts with the device missing, to be reported and waited for, and never
// with the test pattern or tone.
func TestAutoWithoutFallback(t *testing.T) {
	dev, err := openCamera("auto", VideoConfig{Width: 320, Height: 240, FPS: 15}, false)
	if err != nil {
		t.Fatal(err)
	}
	if dev.first != nil {
		defer dev.first.Close()
		if !strings.HasPrefix(dev.desc, "V4L2 camera") {
			t.Fatalf("auto without fallback opened %q", dev.desc)
		}
	} else if dev.missing == nil || strings.Contains(dev.desc, "synthetic") {
		t.Fatalf("no camera: missing %v, desc %q", dev.missing, dev.desc)
	}
	mdev, err := openMic("auto", false)
	if err != nil {
		t.Fatal(err)
	}
	if mdev.first != nil {
		defer mdev.first.Close()
		if !strings.HasPrefix(mdev.desc, "ALSA microphone") {
			t.Fatalf("auto without fallback opened %q", mdev.desc)
		}
	} else if mdev.missing == nil || strings.Contains(mdev.desc, "synthetic") {
		t.Fatalf("no microphone: missing %v, desc %q", mdev.missing, mdev.desc)
	}
}
