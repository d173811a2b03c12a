//go:build !cgo || noopus

package opus

import "github.com/callbox/callbox/capture"

// Available reports whether this build has the Opus encoder.
const Available = false

// Packetizer is absent from this build; see ErrUnavailable.
type Packetizer struct{}

// NewPacketizer returns ErrUnavailable: this build has no libopus.
func NewPacketizer(maxSize int, ssrc uint32, pt uint8) (*Packetizer, error) {
	return nil, ErrUnavailable
}

// Packetize returns ErrUnavailable.
func (p *Packetizer) Packetize(c capture.AudioChunk) (capture.Burst, error) {
	return capture.Burst{}, ErrUnavailable
}
