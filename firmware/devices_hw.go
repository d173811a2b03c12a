package firmware

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/callbox/callbox/capture"
	"github.com/callbox/callbox/drivers/camera"
	"github.com/callbox/callbox/drivers/mic"
)

// Real devices for openCamera and openMic (devices.go).
//
// A real device is opened once up front, so that a wrong --camera or --mic
// fails the start, and is then wrapped so that an unplug stays inside the
// source: the wrapper logs the outage and retries every
// camera.DefaultRetry (the microphone with its own short backoff) until the
// device is back. Handing capture.ErrDeviceGone to the pipeline instead
// would let its reopen back off to many seconds, and would turn "auto" into
// the synthetic source for good after an unplug.

// openRealCamera opens spec ("auto" or a /dev/video* path) through
// drivers/camera.
func openRealCamera(spec string, vc videoConfig) (capture.VideoSource, string, error) {
	cfg := camera.Config{Device: spec, Width: vc.width, Height: vc.height, FPS: vc.fps}
	open := func() (*camera.Camera, error) {
		// The pipeline packetizes JPEG (RFC 2435) only, so an H.264
		// camera is used through its YUYV mode.
		cfg.Format = "mjpeg"
		c, err := camera.Open(cfg)
		if errors.Is(err, camera.ErrNoFormat) {
			cfg.Format = "yuyv"
			c, err = camera.Open(cfg)
		}
		return c, err
	}
	first, err := open()
	if err != nil {
		return nil, "", err
	}
	desc := "V4L2 camera " + first.Info().String()
	r, err := camera.NewReopening(first, func() (capture.VideoSource, error) { return open() },
		camera.DefaultRetry, slog.Default().With("camera", spec))
	if err != nil {
		first.Close()
		return nil, "", err
	}
	return holdVideo{r}, desc, nil
}

// holdVideo retries a vanished camera inside ReadFrame (see above).
type holdVideo struct{ r *camera.Reopening }

func (h holdVideo) ReadFrame(ctx context.Context) (capture.VideoFrame, error) {
	for {
		// Reopening paces the retries (once per camera.DefaultRetry).
		f, err := h.r.ReadFrame(ctx)
		if err == nil || !errors.Is(err, capture.ErrDeviceGone) || ctx.Err() != nil {
			return f, err
		}
	}
}

func (h holdVideo) Close() error { return h.r.Close() }

// openRealMic opens spec ("auto" for the default input, or a device name)
// through drivers/mic (PortAudio).
func openRealMic(spec string) (capture.AudioSource, string, error) {
	m, err := mic.Open(mic.Config{Device: spec, Rate: 48000, Log: slog.Default().With("mic", spec)})
	if err != nil {
		return nil, "", err
	}
	name := spec
	if name == "" || name == "auto" {
		name = "default input"
	}
	return holdAudio{m}, fmt.Sprintf("ALSA microphone %q (PortAudio), %d Hz mono", name, m.Rate()), nil
}

// holdAudio retries a vanished microphone inside ReadChunk; mic.Mic paces
// the retries with its backoff.
type holdAudio struct{ m *mic.Mic }

func (h holdAudio) ReadChunk(ctx context.Context) (capture.AudioChunk, error) {
	for {
		c, err := h.m.ReadChunk(ctx)
		if err == nil || !errors.Is(err, capture.ErrDeviceGone) || ctx.Err() != nil {
			return c, err
		}
	}
}

func (h holdAudio) Close() error { return h.m.Close() }
