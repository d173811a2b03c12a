package firmware

import (
	"errors"
	"fmt"
	"strings"

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

// deviceInfo describes the source that was opened, for the log and the board.
type deviceInfo struct {
	desc string
	// fallback is why "auto" found no real device and took the synthetic
	// one: on a real box that is the "camera missing" error state.
	fallback error
}

// openCamera opens the camera named by spec (auto, synthetic, or a device
// such as /dev/video0).
func openCamera(spec string, vc videoConfig) (capture.VideoSource, deviceInfo, error) {
	switch spec {
	case "synthetic":
		src, desc, err := openSynthCamera(vc)
		return src, deviceInfo{desc: desc}, err
	case "", "auto":
		// The first real V4L2 camera, else the test pattern.
		src, desc, err := openRealCamera("auto", vc)
		if err == nil {
			return src, deviceInfo{desc: desc}, nil
		}
		src, desc, serr := openSynthCamera(vc)
		return src, deviceInfo{desc: desc + " (auto: no usable V4L2 camera: " + err.Error() + ")", fallback: err}, serr
	default:
		if !strings.HasPrefix(spec, "/dev/") {
			return nil, deviceInfo{}, fmt.Errorf("camera %q (want auto, synthetic or a /dev/video* path): %w", spec, errNoDriver)
		}
		src, desc, err := openRealCamera(spec, vc)
		if err != nil {
			return nil, deviceInfo{}, fmt.Errorf("camera %q: %w", spec, err)
		}
		return src, deviceInfo{desc: desc}, nil
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
// device name).
func openMic(spec string) (capture.AudioSource, deviceInfo, error) {
	switch spec {
	case "synthetic":
		src, desc, err := openSynthMic()
		return src, deviceInfo{desc: desc}, err
	case "", "auto":
		// The default ALSA input, else the test tone.
		src, desc, err := openRealMic("auto")
		if err == nil {
			return src, deviceInfo{desc: desc}, nil
		}
		src, desc, serr := openSynthMic()
		return src, deviceInfo{desc: desc + " (auto: no usable microphone: " + err.Error() + ")", fallback: err}, serr
	default:
		src, desc, err := openRealMic(spec)
		if err != nil {
			return nil, deviceInfo{}, fmt.Errorf("microphone %q: %w", spec, err)
		}
		return src, deviceInfo{desc: desc}, nil
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
