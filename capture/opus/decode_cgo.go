//go:build cgo && !noopus

package opus

import (
	"fmt"

	hopus "gopkg.in/hraban/opus.v2"
)

// Decoder turns Opus packets (RTP payloads, RFC 7587) into 48 kHz mono
// S16: a phone's microphone for the box's speaker (talk-back). A stereo
// stream is mixed down by libopus. Not safe for concurrent use.
type Decoder struct {
	dec *hopus.Decoder
	pcm []int16
}

// maxFrameSamples bounds one decoded packet: 120 ms at 48 kHz (RFC 6716).
const maxFrameSamples = 120 * Rate / 1000

// NewDecoder returns a 48 kHz mono decoder.
func NewDecoder() (*Decoder, error) {
	dec, err := hopus.NewDecoder(Rate, 1)
	if err != nil {
		return nil, fmt.Errorf("opus: decoder: %w", err)
	}
	return &Decoder{dec: dec, pcm: make([]int16, maxFrameSamples)}, nil
}

// Decode decodes one packet's payload. The samples are valid until the
// next call. A malformed payload is an error and leaves the decoder usable.
func (d *Decoder) Decode(payload []byte) ([]int16, error) {
	if len(payload) == 0 {
		return nil, ErrEmptyChunk
	}
	n, err := d.dec.Decode(payload, d.pcm)
	if err != nil {
		return nil, fmt.Errorf("opus: decode: %w", err)
	}
	return d.pcm[:n], nil
}

// DecodeLost conceals one lost 20 ms packet (libopus's packet loss
// concealment), so a lost packet is not a click.
func (d *Decoder) DecodeLost() ([]int16, error) {
	pcm := d.pcm[:FrameSamples]
	if err := d.dec.DecodePLC(pcm); err != nil {
		return nil, fmt.Errorf("opus: concealment: %w", err)
	}
	return pcm, nil
}
