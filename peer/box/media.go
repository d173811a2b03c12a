package box

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/callbox/callbox/capture"
	"github.com/callbox/callbox/capture/h264enc"
	"github.com/callbox/callbox/capture/pcmu"
	"github.com/callbox/callbox/capture/rtpjpeg"
	"github.com/callbox/callbox/capture/synth"
)

// Media is what a box sends in a call: its camera and microphone. The call
// encodes them as the negotiation says: H.264 it makes itself from the
// camera's raw (I420) or JPEG frames, at the size and bitrate the path
// allows, or the JPEG frames as they are for an older box; Opus, or PCMU
// for an older box. The call owns the sources and closes them when it
// ends.
type Media struct {
	Video           capture.VideoSource
	VideoPacketizer capture.VideoPacketizer // RFC 2435 for a JPEG-only peer (nil: the call makes one)
	Audio           capture.AudioSource
	AudioPacketizer capture.AudioPacketizer // PCMU for a peer without Opus (nil: the call makes one)
	// OpenH264 opens the H.264 encoder at a step's size (nil: the software
	// encoder, h264enc.NewSoftware). An engine that is also an
	// h264enc.BitrateSetter follows the bandwidth estimate.
	OpenH264 func(h264enc.Config) (h264enc.Engine, error)
}

// Close closes the sources.
func (m *Media) Close() error {
	var errs []error
	if m.Video != nil {
		errs = append(errs, m.Video.Close())
	}
	if m.Audio != nil {
		errs = append(errs, m.Audio.Close())
	}
	return errors.Join(errs...)
}

// MediaFactory makes the media for one call; maxPacket is the largest RTP
// packet the call can carry without exceeding the datagram limit (S8).
type MediaFactory func(maxPacket int) (*Media, error)

// SynthMedia returns a MediaFactory for the synthetic camera and
// microphone, packetized as RFC 2435 JPEG and PCMU: what a box without
// hardware, and every test, sends.
func SynthMedia(cam synth.CameraConfig, mic synth.MicConfig) MediaFactory {
	return func(maxPacket int) (*Media, error) {
		vp, err := rtpjpeg.NewPacketizer(maxPacket, randomSSRC(), capture.PayloadTypeJPEG)
		if err != nil {
			return nil, fmt.Errorf("peer: video packetizer: %w", err)
		}
		ap, err := pcmu.NewPacketizer(maxPacket, randomSSRC(), capture.PayloadTypePCMU)
		if err != nil {
			return nil, fmt.Errorf("peer: audio packetizer: %w", err)
		}
		c, err := synth.NewCamera(cam)
		if err != nil {
			return nil, fmt.Errorf("peer: camera: %w", err)
		}
		m, err := synth.NewMic(mic)
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("peer: microphone: %w", err)
		}
		return &Media{Video: c, VideoPacketizer: vp, Audio: m, AudioPacketizer: ap}, nil
	}
}

// randomSSRC picks an SSRC; pion rewrites it per binding anyway, but the
// packetizers need one.
func randomSSRC() uint32 {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return binary.BigEndian.Uint32(b[:])
}
