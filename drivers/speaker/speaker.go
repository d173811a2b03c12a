// Package speaker is callbox's speaker path. A Mixer sums everything that
// plays at once (a call's far-end audio, the ring tone, a remote phone's
// push-to-talk) into 20 ms frames of mono signed 16-bit PCM at 48 kHz and
// writes them to an Output: the box's ALSA output through PortAudio, a
// simulated speaker that counts what it was given (a development machine,
// tests), or nothing at all.
//
// Producers either push decoded PCM into a Stream (Mixer.Stream; any rate,
// resampled to the mixer's) or are pulled frame by frame as a Generator
// (Mixer.Play: the ring tone). Every frame the mixer writes, silence
// included, is also offered to the echo canceller as its far-end reference
// (Mixer.FarEnd): the exact samples the speaker was given, stamped with
// when they leave it.
package speaker

import (
	"errors"
	"time"
)

// The mixer's format: everything is converted to it.
const (
	Rate          = 48000
	FrameDuration = 20 * time.Millisecond
	FrameSamples  = Rate * int(FrameDuration/time.Millisecond) / 1000 // 960
)

// Output is the speaker itself: the hardware seam.
type Output interface {
	// Write plays one frame (FrameSamples mono samples at Rate). It blocks
	// while the device's buffer is full: that is what paces the mixer.
	Write(frame []int16) error
	// Latency is how long a sample written now takes to leave the
	// speaker (the device's buffer); the echo canceller aligns its
	// reference with it.
	Latency() time.Duration
	Close() error
}

var (
	// ErrNoCgo reports a binary built without cgo, hence without PortAudio.
	ErrNoCgo = errors.New("speaker: no speaker: built without cgo (PortAudio needs it)")
	// ErrNoDevice reports that no output device matches.
	ErrNoDevice = errors.New("speaker: no such output device")
	// ErrClosed reports use of a closed mixer, stream or output.
	ErrClosed = errors.New("speaker: closed")
)
