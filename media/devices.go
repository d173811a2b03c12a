package media

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/callbox/callbox/capture"
	"github.com/callbox/callbox/capture/synth"
	"github.com/callbox/callbox/drivers/camera"
	"github.com/callbox/callbox/drivers/mic"
)

// Device selection: which camera and microphone a --camera/--mic value
// (config camera.device, audio.device) means. "synthetic" is always the
// built-in test pattern and tone; "auto" is the first real device, and
// falls back to the synthetic one only where that is allowed (a
// development machine: Config.SyntheticFallback).

// ErrNoDriver reports a device name this build cannot open.
var ErrNoDriver = errors.New("no driver for this device in this build")

// VideoConfig is what the pipeline asks of a camera.
type VideoConfig struct {
	Width, Height, FPS int
	// Format is what the pipeline wants from the camera: JPEG (0, the
	// default), I420 for an encoder stage (the synthetic camera gives raw
	// pictures; a real camera still gives JPEG, which the stage decodes),
	// or H.264 (a camera's own H.264 mode; ChooseVideo decides).
	Format capture.Codec
	// Mark tells the synthetic camera's picture apart (synth.CameraConfig.Mark:
	// the box's name).
	Mark string
}

// device is a source chosen at start and how to open it again after it
// fails: the same device (an "auto" that found a camera reopens a camera,
// never the test pattern).
type device[U Unit] struct {
	first Source[U] // nil: missing at start (see missing)
	open  func() (Source[U], error)
	desc  string
	// missing is why "auto" found no real device: on a development
	// machine the synthetic one stands in, on a real board it is a fault
	// until the device appears.
	missing error
}

// openCamera opens the camera named by spec (auto, synthetic, or a device
// such as /dev/video0).
func openCamera(spec string, vc VideoConfig, fallback bool) (device[capture.VideoFrame], error) {
	synthOpen := func() (Source[capture.VideoFrame], error) {
		format := capture.CodecJPEG
		if vc.Format == capture.CodecI420 {
			format = capture.CodecI420
		}
		c, err := synth.NewCamera(synth.CameraConfig{Width: vc.Width, Height: vc.Height, FPS: vc.FPS, Format: format, Mark: vc.Mark})
		if err != nil {
			return nil, fmt.Errorf("synthetic camera: %w", err)
		}
		return VideoSource(c), nil
	}
	synthFormat := "JPEG"
	if vc.Format == capture.CodecI420 {
		synthFormat = "I420"
	}
	synthDesc := fmt.Sprintf("synthetic camera %dx%d@%d %s", vc.Width, vc.Height, vc.FPS, synthFormat)
	switch spec {
	case "synthetic":
		s, err := synthOpen()
		return device[capture.VideoFrame]{first: s, open: synthOpen, desc: synthDesc}, err
	case "", "auto":
		c, err := openRealCamera("auto", vc)
		open := func() (Source[capture.VideoFrame], error) { return openRealCamera("auto", vc) }
		if err == nil {
			return device[capture.VideoFrame]{first: c, open: open, desc: c.(videoSource).desc()}, nil
		}
		if !fallback {
			return device[capture.VideoFrame]{open: open, desc: "V4L2 camera (auto: none yet)", missing: err}, nil
		}
		s, serr := synthOpen()
		return device[capture.VideoFrame]{first: s, open: synthOpen, missing: err,
			desc: synthDesc + " (auto: no usable V4L2 camera: " + err.Error() + ")"}, serr
	default:
		if !strings.HasPrefix(spec, "/dev/") {
			return device[capture.VideoFrame]{}, fmt.Errorf("camera %q (want auto, synthetic or a /dev/video* path): %w", spec, ErrNoDriver)
		}
		c, err := openRealCamera(spec, vc)
		if err != nil {
			return device[capture.VideoFrame]{}, fmt.Errorf("camera %q: %w", spec, err)
		}
		return device[capture.VideoFrame]{first: c, open: func() (Source[capture.VideoFrame], error) { return openRealCamera(spec, vc) },
			desc: c.(videoSource).desc()}, nil
	}
}

// openRealCamera opens spec ("auto" or a /dev/video* path) through
// drivers/camera: MJPEG, else YUYV (made JPEG by the driver, or I420 for
// an encoder stage); or the
// camera's own H.264 when the video choice says so (ChooseVideo), with no
// fallback then, since the packetizer and the receivers expect H.264.
func openRealCamera(spec string, vc VideoConfig) (Source[capture.VideoFrame], error) {
	if vc.Format == capture.CodecH264 {
		c, err := camera.Open(camera.Config{Device: spec, Width: vc.Width, Height: vc.Height, FPS: vc.FPS, Format: "h264"})
		if err != nil {
			return nil, err
		}
		return VideoSource(c), nil
	}
	// For an encoder (I420 wanted) a YUYV camera gives raw pictures; an
	// MJPEG one still gives JPEG, which the encoder stage decodes.
	cfg := camera.Config{Device: spec, Width: vc.Width, Height: vc.Height, FPS: vc.FPS, Format: "mjpeg",
		Raw: vc.Format == capture.CodecI420}
	c, err := camera.Open(cfg)
	if errors.Is(err, camera.ErrNoFormat) {
		cfg.Format = "yuyv"
		c, err = camera.Open(cfg)
	}
	if err != nil {
		return nil, err
	}
	return VideoSource(c), nil
}

// desc describes a real camera for the log.
func (s videoSource) desc() string {
	if c, ok := s.VideoSource.(*camera.Camera); ok {
		return "V4L2 camera " + c.Info().String()
	}
	return "camera"
}

// openMic opens the microphone named by spec (auto, synthetic, or a
// device name).
func openMic(spec string, fallback bool) (device[capture.AudioChunk], error) {
	synthOpen := func() (Source[capture.AudioChunk], error) {
		m, err := synth.NewMic(synth.MicConfig{})
		if err != nil {
			return nil, fmt.Errorf("synthetic microphone: %w", err)
		}
		return AudioSource(m), nil
	}
	synthDesc := fmt.Sprintf("synthetic microphone %d Hz, %g Hz tone, click every %v",
		synth.DefaultRate, float64(synth.DefaultToneHz), synth.DefaultClickEvery)
	switch spec {
	case "synthetic":
		s, err := synthOpen()
		return device[capture.AudioChunk]{first: s, open: synthOpen, desc: synthDesc}, err
	case "", "auto":
		m, desc, err := openRealMic("auto")
		open := func() (Source[capture.AudioChunk], error) { m, _, err := openRealMic("auto"); return m, err }
		if err == nil {
			return device[capture.AudioChunk]{first: m, open: open, desc: desc}, nil
		}
		if !fallback {
			return device[capture.AudioChunk]{open: open, desc: "microphone (auto: none yet)", missing: err}, nil
		}
		s, serr := synthOpen()
		return device[capture.AudioChunk]{first: s, open: synthOpen, missing: err,
			desc: synthDesc + " (auto: no usable microphone: " + err.Error() + ")"}, serr
	default:
		m, desc, err := openRealMic(spec)
		if err != nil {
			return device[capture.AudioChunk]{}, fmt.Errorf("microphone %q: %w", spec, err)
		}
		open := func() (Source[capture.AudioChunk], error) { m, _, err := openRealMic(spec); return m, err }
		return device[capture.AudioChunk]{first: m, open: open, desc: desc}, nil
	}
}

// openRealMic opens spec ("auto" for the default input, or a device name)
// through drivers/mic (PortAudio).
func openRealMic(spec string) (Source[capture.AudioChunk], string, error) {
	m, err := mic.Open(mic.Config{Device: spec, Rate: 48000, Log: slog.Default().With("mic", spec)})
	if err != nil {
		return nil, "", err
	}
	name := spec
	if name == "" || name == "auto" {
		name = "default input"
	}
	return AudioSource(m), fmt.Sprintf("ALSA microphone %q (PortAudio), %d Hz mono", name, m.Rate()), nil
}
