package firmware

import (
	"context"

	"github.com/callbox/callbox/board"
	"github.com/callbox/callbox/board/config"
	"github.com/callbox/callbox/capture"
	"github.com/callbox/callbox/media"
)

// mediaPart is the appliance's media pipeline (package media): camera and
// microphone packetized to RTP and published to the relay, muted by button
// A, tapped by calls.
type mediaPart struct {
	pipe *media.Pipeline
}

// mediaConfig takes the media keys of a configuration.
func mediaConfig(c *config.Config) media.Config {
	return media.Config{
		Camera: c.Camera.Device, Mic: c.Audio.Device,
		Video:      media.VideoConfig{Width: c.Camera.Width, Height: c.Camera.Height, FPS: c.Camera.FPS},
		PacketSize: c.Relay.PacketSize,
	}
}

func (p *mediaPart) start(ctx context.Context, a *appliance) error {
	mc := mediaConfig(a.cfg)
	mc.Log = a.log.With("part", "media")
	mc.Publish = a.relay.Publish
	mc.Muted = a.board.muted // no audio while muted (button A)
	// A development machine has no camera or microphone by design: the
	// test pattern and tone stand in. A real box without one shows the
	// error state, with the message, until the device appears.
	mc.SyntheticFallback = a.board.simulated
	mc.OnDevice = func(kind capture.Kind, err error) {
		if a.board.simulated {
			return
		}
		if kind == capture.KindVideo {
			a.board.fault(board.FaultCamera, err)
		} else {
			a.board.fault(board.FaultAudio, err)
		}
	}
	pipe, err := media.Start(ctx, mc)
	if err != nil {
		return err
	}
	p.pipe = pipe
	a.relay.OnKeyframeRequest(pipe.RequestKeyframe)
	return nil
}

func (p *mediaPart) stop() {
	p.pipe.Stop()
}
