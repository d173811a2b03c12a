package firmware

import (
	"context"
	"log/slog"
	"time"

	"github.com/callbox/callbox/board"
	"github.com/callbox/callbox/board/config"
	"github.com/callbox/callbox/capture"
	"github.com/callbox/callbox/media"
)

// mediaPart is the appliance's media pipeline (package media): camera and
// microphone packetized to RTP and published to the relay, muted by button
// A, tapped by calls.
type mediaPart struct {
	// Set by wire.
	cfg   media.Config
	log   *slog.Logger
	sink  mediaSink
	board mediaBoard

	pipe *media.Pipeline
}

// mediaSink is where the pipeline's packets go (the relay), and who asks
// for keyframes (a phone joining an H.264 stream).
type mediaSink interface {
	Publish(capture.Burst)
	OnKeyframeRequest(func())
}

// mediaBoard is what the pipeline needs of the board: mute (button A),
// whether the devices may be synthetic (a simulated board), and the error
// state for a missing or failed device.
type mediaBoard interface {
	muted() bool
	isSimulated() bool
	fault(board.Fault, error)
}

// mediaConfig takes the media keys of a configuration.
func mediaConfig(c *config.Config) media.Config {
	return media.Config{
		Camera: c.Camera.Device, Mic: c.Audio.Device,
		Video:      media.VideoConfig{Width: c.Camera.Width, Height: c.Camera.Height, FPS: c.Camera.FPS},
		PacketSize: c.Relay.PacketSize,
	}
}

func (p *mediaPart) start(ctx context.Context) error {
	mc := p.cfg
	mc.Log = p.log
	mc.Publish = p.sink.Publish
	mc.Muted = p.board.muted // no audio while muted (button A)
	// A development machine has no camera or microphone by design: the
	// test pattern and tone stand in. A real box without one shows the
	// error state, with the message, until the device appears.
	simulated := p.board.isSimulated()
	mc.SyntheticFallback = simulated
	mc.OnDevice = func(kind capture.Kind, err error) {
		if simulated {
			return
		}
		if kind == capture.KindVideo {
			p.board.fault(board.FaultCamera, err)
		} else {
			p.board.fault(board.FaultAudio, err)
		}
	}
	pipe, err := media.Start(ctx, mc)
	if err != nil {
		return err
	}
	p.pipe = pipe
	p.sink.OnKeyframeRequest(pipe.RequestKeyframe)
	return nil
}

func (p *mediaPart) stop() {
	p.pipe.Stop()
}

// SubscribeVideo gives a call copies of the camera's frames (media.Tap).
func (p *mediaPart) SubscribeVideo(codec capture.Codec, minGap time.Duration) capture.VideoSource {
	return p.pipe.SubscribeVideo(codec, minGap)
}

// SubscribeAudio gives a call copies of the microphone's chunks; none
// while muted.
func (p *mediaPart) SubscribeAudio() capture.AudioSource { return p.pipe.SubscribeAudio() }

// subscribers counts the calls' open subscriptions (tests).
func (p *mediaPart) subscribers() int {
	if p.pipe == nil {
		return 0
	}
	return p.pipe.Subscribers()
}
