package firmware

import (
	"context"
	"log/slog"
	"strings"
	"sync"
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
	cfg    media.Config
	h264   media.H264Config
	probes *media.Probes // nil: media.DefaultProbes
	log    *slog.Logger
	sink   mediaSink
	board  mediaBoard
	// echo is the speaker's echo cancellation for the microphone; nil:
	// none.
	echo mediaEcho

	pipe  *media.Pipeline
	mu    sync.Mutex
	video media.VideoChoice // what the box sends, and why (/api/state)
}

// videoChoice says what video the box sends and why.
func (p *mediaPart) videoChoice() media.VideoChoice {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.video
}

// chooseVideo probes for H.264 (camera, hardware, software) and sets the
// pipeline up for what it found. In the appliance, "auto" with an encoder
// at hand sends both: JPEG for the page's WebSocket player, TCP viewers,
// /snapshot.jpg and calls, and H.264 from the encoder fed with copies of
// the same frames for WebRTC and RTSP (media.ApplyVideoAlongside; the
// relay keeps its own TCP and WebSocket clients on JPEG). A camera's own
// H.264 cannot run beside its JPEG, so auto then takes the encoder after
// it. "h264" sends H.264 only, "jpeg" JPEG only.
func (p *mediaPart) chooseVideo(mc *media.Config) error {
	probes := media.DefaultProbes
	if p.probes != nil {
		probes = *p.probes
	}
	choice, err := media.ChooseVideo(mc.Camera, p.h264, probes)
	if err != nil {
		return err
	}
	auto := !strings.EqualFold(p.h264.Codec, "h264") && !strings.EqualFold(p.h264.Codec, "jpeg")
	if auto && choice.Path == "camera" {
		encoderOnly := probes
		encoderOnly.CameraH264 = func(string) (string, bool) { return "", false }
		if choice, err = media.ChooseVideo(mc.Camera, p.h264, encoderOnly); err != nil {
			return err
		}
		choice.Reason = "codec auto: the camera's own H.264 cannot run beside its JPEG; " + choice.Reason
	}
	if auto && choice.Codec == capture.CodecH264 {
		if err := media.ApplyVideoAlongside(mc, choice, p.h264); err != nil {
			return err
		}
		choice.Alongside = "jpeg"
		choice.Reason += "; JPEG beside it for the WebSocket page"
		p.sink.SetNativeVideo(capture.CodecJPEG)
	} else if err := media.ApplyVideo(mc, choice, p.h264); err != nil {
		return err
	}
	choice.Transports = videoTransports(choice)
	p.log.Info("video", "codec", choice.Name, "path", choice.Path, "encoder", choice.Encoder,
		"alongside", choice.Alongside, "reason", choice.Reason)
	p.mu.Lock()
	p.video = choice
	p.mu.Unlock()
	return nil
}

// videoTransports says which codec each of the box's ways out carries
// (/api/state): "" where there is no video.
func videoTransports(c media.VideoChoice) map[string]string {
	main, webrtc := c.Name, ""
	if c.Codec == capture.CodecH264 {
		webrtc = "h264"
	}
	if c.Alongside != "" {
		main = c.Alongside
	}
	rtsp := main // RTSP takes H.264 when there is any, else what the relay carries
	if webrtc != "" {
		rtsp = webrtc
	}
	return map[string]string{"websocket": main, "tcp": main, "snapshot": "jpeg", "webrtc": webrtc, "rtsp": rtsp}
}

// mediaSink is where the pipeline's packets go (the relay), and who asks
// for keyframes (a phone joining an H.264 stream).
type mediaSink interface {
	Publish(capture.Burst)
	OnKeyframeRequest(func())
	// SetNativeVideo keeps the relay's own TCP and WebSocket clients on
	// codec c while another is published beside it.
	SetNativeVideo(c capture.Codec)
}

// mediaBoard is what the pipeline needs of the board: mute (button A),
// whether the devices may be synthetic (a simulated board), and the error
// state for a missing or failed device.
type mediaBoard interface {
	muted() bool
	isSimulated() bool
	fault(board.Fault, error)
}

// mediaEcho gives the microphone's stage that cancels the speaker's echo
// (nil: none).
type mediaEcho interface {
	micStage() func(capture.AudioSource) capture.AudioSource
}

// h264Config is the configuration's [video] section for media.ChooseVideo.
func h264Config(c *config.Config) media.H264Config {
	return media.H264Config{Codec: c.Video.Codec, Bitrate: c.Video.Bitrate * 1000, GOP: c.Video.GOP, Profile: c.Video.Profile}
}

// mediaConfig takes the media keys of a configuration (what callbox send
// uses as it is: the synthetic pattern unmarked, PCMU only).
func mediaConfig(c *config.Config) media.Config {
	return media.Config{
		Camera: c.Camera.Device, Mic: c.Audio.Device,
		Video:      media.VideoConfig{Width: c.Camera.Width, Height: c.Camera.Height, FPS: c.Camera.FPS},
		PacketSize: c.Relay.PacketSize,
	}
}

// applianceMediaConfig is mediaConfig for callbox run: the synthetic
// camera marked with the box's name (two boxes in a call tell their
// pictures apart) and Opus beside PCMU for the phones' WebRTC sessions
// (docs/webrtc.md).
func applianceMediaConfig(c *config.Config) media.Config {
	m := mediaConfig(c)
	m.Video.Mark = c.Name
	m.OpusAlongside = true
	return m
}

func (p *mediaPart) start(ctx context.Context) error {
	mc := p.cfg
	mc.Log = p.log
	mc.Publish = p.sink.Publish
	mc.Muted = p.board.muted // no audio while muted (button A)
	if p.echo != nil {
		mc.MicStage = p.echo.micStage()
	}
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
	if err := p.chooseVideo(&mc); err != nil {
		return err
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
