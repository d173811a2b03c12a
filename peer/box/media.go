package box

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/callbox/callbox/capture"
	"github.com/callbox/callbox/capture/pcmu"
	"github.com/callbox/callbox/capture/rtpjpeg"
	"github.com/callbox/callbox/capture/synth"
)

// Media is what a box sends in a call: its sources and their packetizers.
// The call owns it and closes the sources when it ends.
type Media struct {
	Video           capture.VideoSource
	VideoPacketizer capture.VideoPacketizer
	Audio           capture.AudioSource
	AudioPacketizer capture.AudioPacketizer
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
