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

// SetLoss returns ErrUnavailable.
func (p *Packetizer) SetLoss(fec bool, lossPercent int) error { return ErrUnavailable }

// Decoder is absent from this build; see ErrUnavailable.
type Decoder struct{}

// NewDecoder returns ErrUnavailable: this build has no libopus.
func NewDecoder() (*Decoder, error) { return nil, ErrUnavailable }

// Decode returns ErrUnavailable.
func (d *Decoder) Decode(payload []byte) ([]int16, error) { return nil, ErrUnavailable }

// DecodeLost returns ErrUnavailable.
func (d *Decoder) DecodeLost() ([]int16, error) { return nil, ErrUnavailable }

// Recover returns ErrUnavailable.
func (d *Decoder) Recover(next []byte) ([]int16, error) { return nil, ErrUnavailable }
