package firmware

import (
	"errors"
	"fmt"

	"github.com/callbox/callbox/capture"
	"github.com/callbox/callbox/capture/synth"
)

// Device selection for the media pipeline: which camera and microphone a
// --camera/--mic value means. "synthetic" is always the built-in test
// pattern and tone; "auto" is the box's default, which falls back to them
// when the board has no camera or microphone.

// errNoDriver reports a device name this build cannot open.
var errNoDriver = errors.New("no driver for this device in this build")

// videoConfig is what the pipeline asks of a camera.
type videoConfig struct {
	width, height, fps int
}

// openCamera opens the camera named by spec (auto, synthetic, or a device
// such as /dev/video0) and returns it with a description for the log.
func openCamera(spec string, vc videoConfig) (capture.VideoSource, string, error) {
	switch spec {
	case "", "auto", "synthetic":
		// No hardware driver is wired in yet, so auto means synthetic.
		return openSynthCamera(vc)
	default:
		return nil, "", fmt.Errorf("camera %q: %w", spec, errNoDriver)
	}
}

func openSynthCamera(vc videoConfig) (capture.VideoSource, string, error) {
	c, err := synth.NewCamera(synth.CameraConfig{Width: vc.width, Height: vc.height, FPS: vc.fps})
	if err != nil {
		return nil, "", fmt.Errorf("synthetic camera: %w", err)
	}
	return c, fmt.Sprintf("synthetic camera %dx%d@%d JPEG", vc.width, vc.height, vc.fps), nil
}

// openMic opens the microphone named by spec (auto, synthetic, or a
// device name) and returns it with a description for the log.
func openMic(spec string) (capture.AudioSource, string, error) {
	switch spec {
	case "", "auto", "synthetic":
		return openSynthMic()
	default:
		return nil, "", fmt.Errorf("microphone %q: %w", spec, errNoDriver)
	}
}

func openSynthMic() (capture.AudioSource, string, error) {
	m, err := synth.NewMic(synth.MicConfig{})
	if err != nil {
		return nil, "", fmt.Errorf("synthetic microphone: %w", err)
	}
	return m, fmt.Sprintf("synthetic microphone %d Hz, %g Hz tone, click every %v",
		synth.DefaultRate, float64(synth.DefaultToneHz), synth.DefaultClickEvery), nil
}
