//go:build cgo

package mic_test

import (
	"errors"
	"testing"

	"github.com/callbox/callbox/drivers/mic"
)

// The real PortAudio backend on a machine that may have no sound card at
// all: it must initialise, list, and refuse an unknown device by name with
// a clear error. (Capture from a real ALSA device is proven in test/hil.)
func TestPortAudioBackend(t *testing.T) {
	devs, err := mic.Devices()
	if err != nil {
		t.Fatalf("PortAudio %s: %v", mic.Version(), err)
	}
	t.Logf("PortAudio %s, inputs: %q", mic.Version(), devs)
	_, err = mic.Open(mic.Config{Device: "no-such-microphone-xyz"})
	if !errors.Is(err, mic.ErrNoDevice) {
		t.Fatalf("unknown device: %v", err)
	}
}
