package media

import (
	"fmt"

	"github.com/callbox/callbox/capture"
	"github.com/callbox/callbox/capture/rtpext"
	"github.com/callbox/callbox/capture/rtph264"
	"github.com/callbox/callbox/capture/rtpjpeg"
)

// CodecPacketizer picks the RTP payload format by each frame's codec:
// RTP/JPEG (PT 26) for MJPEG cameras and the synthetic one, H.264 (PT 96)
// for an encoder's frames. The relay learns the codec from the payload
// type. Each format has its own SSRC and sequence, as RFC 3550 wants when
// the payload format of a stream changes (e.g. a different camera after a
// reopen).
type CodecPacketizer struct {
	maxSize int
	jpeg    *rtpjpeg.Packetizer
	h264    *rtph264.Packetizer // made on the first H.264 frame
}

// NewCodecPacketizer makes packets of at most maxSize bytes.
func NewCodecPacketizer(maxSize int) (*CodecPacketizer, error) {
	j, err := rtpjpeg.NewPacketizer(maxSize, rtpext.Random32(), capture.PayloadTypeJPEG)
	if err != nil {
		return nil, fmt.Errorf("video packetizer: %w", err)
	}
	return &CodecPacketizer{maxSize: maxSize, jpeg: j}, nil
}

// Packetize implements capture.VideoPacketizer.
func (p *CodecPacketizer) Packetize(f capture.VideoFrame) (capture.Burst, error) {
	switch f.Codec {
	case capture.CodecJPEG:
		return p.jpeg.Packetize(f)
	case capture.CodecH264:
		if p.h264 == nil {
			h, err := rtph264.NewPacketizer(p.maxSize, rtpext.Random32(), capture.PayloadTypeH264)
			if err != nil {
				return capture.Burst{}, fmt.Errorf("video packetizer: %w", err)
			}
			p.h264 = h
		}
		return p.h264.Packetize(f)
	}
	return capture.Burst{}, fmt.Errorf("video packetizer: no RTP payload format for codec %v", f.Codec)
}
