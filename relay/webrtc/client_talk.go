package webrtc

import (
	"errors"
	"time"

	pion "github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"
)

// addMic adds the client's microphone: a sendrecv audio transceiver whose
// track sends Opus (or PCMU) frames given to Talk.
func (c *Client) addMic(opus bool) error {
	codec := pion.RTPCodecCapability{MimeType: pion.MimeTypePCMU, ClockRate: 8000, Channels: 1}
	if opus {
		codec = OpusCodec.RTPCodecCapability
	}
	tr, err := pion.NewTrackLocalStaticSample(codec, "audio", "callbox-phone-mic")
	if err != nil {
		return err
	}
	if _, err := c.pc.AddTransceiverFromTrack(tr, pion.RTPTransceiverInit{Direction: pion.RTPTransceiverDirectionSendrecv}); err != nil {
		return err
	}
	c.mic = tr
	return nil
}

// ErrNoMic: the client was dialled without ClientOptions.Talk.
var ErrNoMic = errors.New("webrtc: the client offered no microphone (ClientOptions.Talk)")

// Talk sends one encoded audio frame (an Opus packet, or PCMU bytes) of
// duration d on the client's microphone track, as a browser does while
// its push-to-talk button is held.
func (c *Client) Talk(frame []byte, d time.Duration) error {
	if c.mic == nil {
		return ErrNoMic
	}
	return c.mic.WriteSample(media.Sample{Data: frame, Duration: d})
}
