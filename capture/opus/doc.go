// Package opus encodes the microphone's 20 ms chunks as Opus RTP (RFC 7587):
// 48 kHz, mono, one 20 ms frame per packet, each with abs-capture-time, for
// WebRTC sessions whose offer has opus/48000/2. Chunks of another rate are
// resampled to 48 kHz first (pcmu.Resampler).
//
// The encoder is libopus through gopkg.in/hraban/opus.v2 (cgo). Builds
// without cgo, or with the build tag noopus, have no encoder: NewPacketizer
// then returns ErrUnavailable and the box sends PCMU only (Available says
// which build this is).
package opus

import (
	"errors"

	"github.com/callbox/callbox/capture"
)

const (
	// Rate is Opus's RTP clock rate and the encoder's sample rate.
	Rate = 48000
	// FrameSamples is one 20 ms frame at Rate.
	FrameSamples = Rate / 50
	// PayloadType is the dynamic payload type the box offers for Opus.
	PayloadType = capture.PayloadTypeOpus
	// Bitrate is the encoder's target: wideband speech, well under the
	// video's share of a Wi-Fi link.
	Bitrate = 32000
	// maxFrameBytes bounds one encoded frame (RFC 6716 allows 1275).
	maxFrameBytes = 1275
)

// ErrUnavailable reports a build without the Opus encoder.
var ErrUnavailable = errors.New("opus: no Opus in this build (built without cgo or with -tags noopus)")

// ErrEmptyChunk reports a chunk without samples or without a rate.
var ErrEmptyChunk = errors.New("opus: empty audio chunk")
