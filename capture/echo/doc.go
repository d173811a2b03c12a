// Package echo removes the box's own speaker from its microphone: acoustic
// echo cancellation with speexdsp (libspeexdsp, through cgo), an adaptive
// MDF filter (speex_echo_cancellation) followed by speexdsp's preprocessor
// with the echo state attached, which suppresses the residual echo and the
// noise (speex_preprocess_run; automatic gain is optional).
//
// The far-end reference is exactly what the speaker was given
// (drivers/speaker's FarEnd), read for the microphone chunk's capture
// time; Stage does that for a capture.AudioSource, so the media pipeline's
// microphone track carries the cancelled signal.
//
// Builds without cgo, or with the build tag nospeex, have no canceller:
// New returns ErrNoCgo ("echo cancellation needs cgo") and the firmware
// says so and sends the microphone as it is.
package echo

import (
	"errors"
	"fmt"
	"time"
)

// ErrNoCgo reports a build without speexdsp.
var ErrNoCgo = errors.New("echo: echo cancellation needs cgo (speexdsp); this build has none")

// ErrClosed reports use of a closed Canceller.
var ErrClosed = errors.New("echo: closed")

// Config sets up a Canceller. Zero fields take the defaults.
type Config struct {
	// Rate of both signals, Hz (default 16000). Stage resamples the
	// 48 kHz microphone and speaker to it and back: speexdsp's filter
	// converges in about 2 s of speech at 16 kHz and cancels 55 dB in
	// the synthetic room, against 18-36 dB after 4-10 s at 48 kHz
	// (docs/audio.md), at a third of the cost. The cancelled microphone
	// is therefore band-limited to 8 kHz: wideband voice.
	Rate int
	// Frame is the processing block (default 20 ms, the microphone's
	// chunk): speexdsp's recommended 10-20 ms. Its filter handles a
	// 200 ms tail in 20 ms blocks well and in 10 ms blocks badly (white
	// noise at 48 kHz: 13 dB against 44 dB, measured: tail/frame, the
	// filter's block count, must stay about 10 or below).
	Frame time.Duration
	// Tail is the longest echo path the filter models: the room's
	// reverberation plus whatever misalignment is left between the
	// reference and the microphone (default 200 ms).
	Tail time.Duration
	// NoiseSuppressDB is the preprocessor's noise attenuation, a negative
	// dB figure (default -15; speexdsp's own default).
	NoiseSuppressDB int
	// AGC turns on the preprocessor's automatic gain (off by default: it
	// raises what is left of the echo along with a quiet talker; the ALSA
	// capture level is the place to set the microphone's gain).
	AGC bool
	// NoPreprocess leaves the preprocessor out (the bare MDF filter); for
	// measurements.
	NoPreprocess bool
}

func (c *Config) fill() error {
	if c.Rate == 0 {
		c.Rate = 16000
	}
	if c.Frame == 0 {
		c.Frame = 20 * time.Millisecond
	}
	if c.Tail == 0 {
		c.Tail = 200 * time.Millisecond
	}
	if c.NoiseSuppressDB == 0 {
		c.NoiseSuppressDB = -15
	}
	if c.Rate < 8000 || c.Rate > 48000 {
		return fmt.Errorf("echo: rate %d Hz (want 8000..48000)", c.Rate)
	}
	if c.Frame < 5*time.Millisecond || c.Frame > 40*time.Millisecond {
		return fmt.Errorf("echo: frame %v (want 5..40 ms)", c.Frame)
	}
	if c.Tail < c.Frame || c.Tail > time.Second {
		return fmt.Errorf("echo: tail %v (want a frame .. 1 s)", c.Tail)
	}
	return nil
}

// FrameSamples is the processing block in samples.
func (c Config) FrameSamples() int { return int(int64(c.Rate) * int64(c.Frame) / int64(time.Second)) }
