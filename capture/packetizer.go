package capture

import "errors"

// RTP payload types and clock rates callbox uses (docs/protocol.md).
const (
	PayloadTypeJPEG = 26 // static, RFC 3551
	PayloadTypeH264 = 96 // dynamic; announced in SDP and in the relay handshake
	PayloadTypePCMU = 0  // static, RFC 3551
	// PayloadTypeOpus is dynamic (RFC 7587), announced in SDP; the relay
	// offers Opus audio only to sessions that asked for it (WebRTC).
	PayloadTypeOpus = 111

	VideoClockRate = 90000 // RTP clock of every video payload format
	PCMUClockRate  = 8000  // RTP clock of PCMU
)

// DefaultMaxPacketSize is the largest marshalled RTP packet (header,
// header extension and payload) the packetizers produce unless told
// otherwise. 1200 bytes plus IPv6 (40), UDP (8) and a tunnel or TURN
// overhead (up to ~100) still fits a 1500-byte Ethernet MTU with room to
// spare, so no datagram is IP-fragmented on a normal path (design S8). It is
// the value WebRTC stacks use for the same reason; see docs/rtp.md.
const DefaultMaxPacketSize = 1200

// VideoPacketizer turns encoded video frames into RTP packets.
//
// Packetize returns every packet of one frame, the last with the marker bit.
// The packets are owned by the packetizer and valid until its next call.
// Sequence numbers continue across frames; the RTP timestamp is derived from
// f.CaptureTime (90 kHz) relative to a random start. A frame the payload
// format cannot carry is rejected with an error and consumes no sequence
// numbers.
type VideoPacketizer interface {
	Packetize(f VideoFrame) (Burst, error)
}

// AudioPacketizer turns audio chunks into RTP packets. The same ownership
// and numbering rules as VideoPacketizer apply.
type AudioPacketizer interface {
	Packetize(c AudioChunk) (Burst, error)
}

// Depacketizers (rtpjpeg, rtph264, pcmu) share one convention: Push takes one
// marshalled RTP packet and returns (unit, ok, err). ok reports that unit is
// a complete media unit, valid until the next Push. err reports a bad packet,
// or media lost before this packet (errors.Is(err, ErrMediaLost)); a loss
// error may come together with ok == true, when the packet after a loss
// completes a unit of its own.
var (
	// ErrMediaLost reports that a depacketizer dropped media because packets
	// were missing, duplicated inconsistently or corrupt. It never emits
	// part of a frame instead.
	ErrMediaLost = errors.New("capture: media lost")

	// ErrPacketSize reports a maximum packet size too small to carry the
	// payload format's headers and at least one byte of media.
	ErrPacketSize = errors.New("capture: max packet size too small")

	// ErrBadPacket reports an RTP packet that cannot be parsed.
	ErrBadPacket = errors.New("capture: malformed RTP packet")
)
