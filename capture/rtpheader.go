package capture

import (
	"fmt"

	"github.com/callbox/callbox/capture/rtpext"
	"github.com/pion/rtp"
)

// NewRTPHeader checks a packetizer's settings and returns its maximum packet
// size (0 means DefaultMaxPacketSize; it must be at least minSize) and the
// header every packet of its stream starts from, with a random first
// sequence number and room for the abs-capture-time extension.
func NewRTPHeader(maxSize, minSize int, ssrc uint32, pt uint8) (int, rtp.Header, error) {
	if maxSize == 0 {
		maxSize = DefaultMaxPacketSize
	}
	if maxSize < minSize {
		return 0, rtp.Header{}, fmt.Errorf("%d bytes, need at least %d: %w", maxSize, minSize, ErrPacketSize)
	}
	if pt > 127 {
		return 0, rtp.Header{}, fmt.Errorf("payload type %d out of range", pt)
	}
	return maxSize, rtp.Header{
		Version:        2,
		PayloadType:    pt,
		SSRC:           ssrc,
		SequenceNumber: uint16(rtpext.Random32()),
		Extensions:     make([]rtp.Extension, 0, 1),
	}, nil
}
