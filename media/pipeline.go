package media

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/callbox/callbox/capture"
	"github.com/callbox/callbox/capture/opus"
	"github.com/callbox/callbox/capture/pcmu"
	"github.com/callbox/callbox/capture/rtpext"
)

// Config is a pipeline: which devices, how to packetize, where the packets
// go.
type Config struct {
	Camera string // "auto", "synthetic" or a V4L2 node (config camera.device)
	Mic    string // "auto", "synthetic" or an ALSA device (config audio.device)
	Video  VideoConfig
	// PacketSize is the largest RTP packet (config relay.packet_size).
	PacketSize int
	// SyntheticFallback lets "auto" take the test pattern and tone when
	// there is no device (a development machine). Without it a missing
	// device is reported through OnDevice and waited for.
	SyntheticFallback bool

	// VideoPacketizer and AudioPacketizer replace the default ones (by
	// codec; PCMU) when set: `callbox send` chooses its timestamp bases.
	VideoPacketizer capture.VideoPacketizer
	AudioPacketizer capture.AudioPacketizer
	// Encode, when set, puts an encoder stage between each camera source
	// the pipeline opens and the packetizer (H.264).
	Encode func(camera capture.VideoSource) (VideoEncoder, error)
	// EncodeAlongside runs Encode's stage beside the camera's own track
	// instead of in it: the camera's frames are published as they are
	// (JPEG, for the WebSocket page, /snapshot.jpg and calls) and a second
	// video track encodes copies of them from a tap (H.264, for WebRTC and
	// RTSP). Keyframe requests reach that stage.
	EncodeAlongside bool
	// OpusAlongside publishes the microphone's chunks a second time as
	// Opus (capture/opus, 48 kHz mono, 20 ms) from a tap, beside the PCMU
	// every other way out uses; WebRTC sessions offering Opus get it. A
	// build without libopus logs that and publishes PCMU only.
	OpusAlongside bool

	// MicStage, when set, wraps each microphone source the pipeline opens
	// before anything reads it (the speaker's echo cancellation,
	// capture/echo): the microphone's track, its tap (calls) and the Opus
	// track all carry what it returns.
	MicStage func(capture.AudioSource) capture.AudioSource

	// Publish is the sink: it gets every burst, from the video and the
	// audio goroutine; the packets are valid only during the call.
	Publish func(capture.Burst)
	// Muted drops the microphone's packets and its tap copies while it
	// reports true (button A). Dropping rather than sending silence means
	// nothing from the microphone exists on the network at all.
	Muted func() bool
	// OnDevice hears a device's state: an error while it is missing or
	// failed, nil once it works. May be nil.
	OnDevice func(kind capture.Kind, err error)
	// VideoStats and AudioStats receive the counts (nil: the pipeline's own).
	VideoStats, AudioStats *Stats
	// StatsEvery is how often the rates are logged (0: every 10 s).
	StatsEvery time.Duration
	Log        *slog.Logger
}

// Pipeline is a running Config.
type Pipeline struct {
	cfg          Config
	videoTap     Tap[capture.VideoFrame]
	encodeTap    Tap[capture.VideoFrame] // the camera's frames for the encoder beside it (EncodeAlongside)
	audioTap     Tap[capture.AudioChunk]
	opusTap      Tap[capture.AudioChunk] // the microphone's chunks for the Opus track (OpusAlongside); apart from audioTap so Subscribers counts only calls
	camera, mic  string                  // descriptions
	enc          sync.Mutex
	encoder      VideoEncoder // the current one, if Encode is set
	video, audio *Stats
	encoded      *Stats // the encoder track's, with EncodeAlongside
	opus         *Stats // the Opus track's, with OpusAlongside
	cancel       context.CancelFunc
	wg           sync.WaitGroup
}

// Start opens the sources and starts the pipeline's goroutines. A device
// named explicitly that cannot be opened fails the start (a wrong flag);
// "auto" never does.
func Start(ctx context.Context, cfg Config) (*Pipeline, error) {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Publish == nil {
		cfg.Publish = func(capture.Burst) {}
	}
	p := &Pipeline{cfg: cfg, video: cfg.VideoStats, audio: cfg.AudioStats}
	if p.video == nil {
		p.video = new(Stats)
	}
	if p.audio == nil {
		p.audio = new(Stats)
	}
	vp, ap, err := packetizers(cfg)
	if err != nil {
		return nil, err
	}
	cam, err := openCamera(cfg.Camera, cfg.Video, cfg.SyntheticFallback)
	if err != nil {
		return nil, err
	}
	mic, err := openMic(cfg.Mic, cfg.SyntheticFallback)
	if err != nil {
		closeSource(cam.first)
		return nil, err
	}
	video, err := p.videoTrack(cam, vp)
	if err != nil {
		closeSource(mic.first)
		return nil, err
	}
	audio := p.audioTrack(mic, ap)
	var encoded *Track[capture.VideoFrame]
	if cfg.Encode != nil && cfg.EncodeAlongside {
		if encoded, err = p.encodedTrack(); err != nil {
			closeSource(cam.first)
			closeSource(mic.first)
			return nil, err
		}
	}
	var opusTrack *Track[capture.AudioChunk]
	if cfg.OpusAlongside {
		if opusTrack, err = p.opusTrack(); err != nil {
			cfg.Log.Warn("no Opus beside PCMU", "err", err)
		}
	}
	p.camera, p.mic = cam.desc, mic.desc
	cfg.Log.Info("media sources", "camera", cam.desc, "mic", mic.desc, "packet_size", cfg.PacketSize)
	if cfg.OnDevice != nil {
		cfg.OnDevice(capture.KindVideo, cam.missing)
		cfg.OnDevice(capture.KindAudio, mic.missing)
	}
	every := cfg.StatsEvery
	if every <= 0 {
		every = 10 * time.Second
	}
	ctx, p.cancel = context.WithCancel(ctx)
	p.wg.Add(3)
	go func() { defer p.wg.Done(); video.Run(ctx) }()
	go func() { defer p.wg.Done(); audio.Run(ctx) }()
	go func() { defer p.wg.Done(); LogStats(ctx, cfg.Log, every, p.video, p.audio) }()
	if opusTrack != nil {
		p.wg.Add(1)
		go func() { defer p.wg.Done(); opusTrack.Run(ctx) }()
	}
	if encoded != nil {
		p.wg.Add(2)
		go func() { defer p.wg.Done(); encoded.Run(ctx) }()
		go func() { defer p.wg.Done(); LogEncodedStats(ctx, cfg.Log, every, p.encoded) }()
	}
	return p, nil
}

// packetizers are cfg's, or the defaults: by codec for video, PCMU.
func packetizers(cfg Config) (capture.VideoPacketizer, capture.AudioPacketizer, error) {
	vp, ap := cfg.VideoPacketizer, cfg.AudioPacketizer
	if vp == nil {
		cp, err := NewCodecPacketizer(cfg.PacketSize)
		if err != nil {
			return nil, nil, err
		}
		vp = cp
	}
	if ap == nil {
		a, err := pcmu.NewPacketizer(cfg.PacketSize, rtpext.Random32(), capture.PayloadTypePCMU)
		if err != nil {
			return nil, nil, fmt.Errorf("audio packetizer: %w", err)
		}
		ap = a
	}
	return vp, ap, nil
}

// onDevice is the track's OnDevice for kind, or nil.
func (p *Pipeline) onDevice(kind capture.Kind) func(error) {
	if p.cfg.OnDevice == nil {
		return nil
	}
	return func(err error) { p.cfg.OnDevice(kind, err) }
}

// videoStages puts a camera source behind the tap (calls get the camera's
// own frames) and the encoder, if any.
func (p *Pipeline) videoStages(s Source[capture.VideoFrame]) (Source[capture.VideoFrame], error) {
	if s == nil {
		return nil, nil
	}
	s = tee[capture.VideoFrame]{s, &p.videoTap}
	if p.cfg.Encode == nil {
		return s, nil
	}
	if p.cfg.EncodeAlongside {
		return tee[capture.VideoFrame]{s, &p.encodeTap}, nil
	}
	e, err := p.cfg.Encode(videoFromSource{s})
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("encoder: %w", err)
	}
	p.enc.Lock()
	p.encoder = e
	p.enc.Unlock()
	return VideoSource(e), nil
}

// videoTrack is the camera's track; it closes cam's first source on an
// error.
func (p *Pipeline) videoTrack(cam device[capture.VideoFrame], vp capture.VideoPacketizer) (*Track[capture.VideoFrame], error) {
	first, err := p.videoStages(cam.first)
	if err != nil {
		return nil, err
	}
	t := &Track[capture.VideoFrame]{
		Name: "camera", Source: first, Packetize: vp.Packetize, Publish: p.cfg.Publish,
		Stats: p.video, Log: p.cfg.Log, OnDevice: p.onDevice(capture.KindVideo),
		Open: func() (Source[capture.VideoFrame], error) {
			s, err := cam.open()
			if err != nil {
				return nil, err
			}
			return p.videoStages(s)
		},
	}
	if cam.first == nil {
		t.markDown() // missing at start: OnDevice hears when it appears
	}
	return t, nil
}

// encodedTrack is the encoder's track beside the camera's
// (EncodeAlongside): it reads copies of the camera's frames from a tap,
// with a queue of two (an encoder falling behind loses frames, the camera
// never waits for it), and has its own packetizer, so its own SSRC and
// sequence.
func (p *Pipeline) encodedTrack() (*Track[capture.VideoFrame], error) {
	vp, err := NewCodecPacketizer(p.cfg.PacketSize)
	if err != nil {
		return nil, err
	}
	p.encoded = new(Stats)
	open := func() (Source[capture.VideoFrame], error) {
		sub := VideoSub{p.encodeTap.Subscribe(2, nil)}
		e, err := p.cfg.Encode(sub)
		if err != nil {
			sub.Close()
			return nil, fmt.Errorf("encoder: %w", err)
		}
		p.enc.Lock()
		p.encoder = e
		p.enc.Unlock()
		return VideoSource(e), nil
	}
	first, err := open()
	if err != nil {
		return nil, err
	}
	return &Track[capture.VideoFrame]{
		Name: "encoder", Source: first, Open: open, Packetize: vp.Packetize, Publish: p.cfg.Publish,
		Stats: p.encoded, Log: p.cfg.Log,
	}, nil
}

// opusTrack encodes copies of the microphone's chunks as Opus: it reads
// the tap (none while muted, like every subscriber), with its own
// packetizer, SSRC and sequence. A chunk the encoder has no time for is
// lost to it alone; the microphone never waits.
func (p *Pipeline) opusTrack() (*Track[capture.AudioChunk], error) {
	op, err := opus.NewPacketizer(p.cfg.PacketSize, rtpext.Random32(), opus.PayloadType)
	if err != nil {
		return nil, err
	}
	p.opus = new(Stats)
	muted := p.cfg.Muted
	open := func() (Source[capture.AudioChunk], error) {
		return p.opusTap.Subscribe(10, func(capture.AudioChunk) bool { return muted == nil || !muted() }), nil
	}
	first, _ := open()
	publish := p.cfg.Publish
	if muted := p.cfg.Muted; muted != nil {
		// A chunk tapped just before the button must not leave either.
		publish = func(b capture.Burst) {
			if !muted() {
				p.cfg.Publish(b)
			}
		}
	}
	return &Track[capture.AudioChunk]{
		Name: "opus", Source: first, Open: open, Packetize: op.Packetize, Publish: publish,
		Stats: p.opus, Log: p.cfg.Log,
	}, nil
}

// OpusStats returns the counts of the Opus track (OpusAlongside), or nil
// when there is none.
func (p *Pipeline) OpusStats() *Stats { return p.opus }

// audioTrack is the microphone's track: behind the tap, muted by Muted.
func (p *Pipeline) audioTrack(mic device[capture.AudioChunk], ap capture.AudioPacketizer) *Track[capture.AudioChunk] {
	stages := func(s Source[capture.AudioChunk]) Source[capture.AudioChunk] {
		if s == nil {
			return nil
		}
		if p.cfg.MicStage != nil {
			s = AudioSource(p.cfg.MicStage(chunkSource{s}))
		}
		s = tee[capture.AudioChunk]{s, &p.audioTap}
		if p.cfg.OpusAlongside {
			s = tee[capture.AudioChunk]{s, &p.opusTap}
		}
		return s
	}
	publish := p.cfg.Publish
	if muted := p.cfg.Muted; muted != nil {
		publish = func(b capture.Burst) {
			if !muted() {
				p.cfg.Publish(b)
			}
		}
	}
	t := &Track[capture.AudioChunk]{
		Name: "microphone", Source: stages(mic.first), Packetize: ap.Packetize, Publish: publish,
		Stats: p.audio, Log: p.cfg.Log, OnDevice: p.onDevice(capture.KindAudio),
		Open: func() (Source[capture.AudioChunk], error) {
			s, err := mic.open()
			if err != nil {
				return nil, err
			}
			return stages(s), nil
		},
	}
	if mic.first == nil {
		t.markDown()
	}
	return t
}

func closeSource[U Unit](s Source[U]) {
	if s != nil {
		s.Close()
	}
}

// chunkSource is a Source as a capture.AudioSource (a MicStage's input).
type chunkSource struct{ Source[capture.AudioChunk] }

func (s chunkSource) ReadChunk(ctx context.Context) (capture.AudioChunk, error) {
	return s.Read(ctx)
}

// videoFromSource is a Source as a capture.VideoSource (an encoder's input).
type videoFromSource struct{ Source[capture.VideoFrame] }

func (s videoFromSource) ReadFrame(ctx context.Context) (capture.VideoFrame, error) {
	return s.Read(ctx)
}

// Stop ends the pipeline and closes its sources.
func (p *Pipeline) Stop() {
	if p == nil {
		return
	}
	p.cancel()
	p.wg.Wait()
}

// Stats returns the video and the audio track's counts.
func (p *Pipeline) Stats() (video, audio *Stats) { return p.video, p.audio }

// EncodedStats returns the counts of the encoder's track beside the
// camera's (EncodeAlongside), or nil.
func (p *Pipeline) EncodedStats() *Stats { return p.encoded }

// Describe says which camera and microphone the pipeline uses.
func (p *Pipeline) Describe() (camera, mic string) { return p.camera, p.mic }

// RequestKeyframe asks the encoder, if any, for a frame a decoder can
// start from (a client joined or lost packets). Without an encoder every
// frame is one (JPEG) and it does nothing.
func (p *Pipeline) RequestKeyframe() {
	p.enc.Lock()
	e := p.encoder
	p.enc.Unlock()
	if e != nil {
		e.RequestKeyframe()
	}
}

// SubscribeVideo returns a source of copies of the camera's frames of codec
// (0: any), at most one per minGap of capture time (0: every frame).
func (p *Pipeline) SubscribeVideo(codec capture.Codec, minGap time.Duration) VideoSub {
	return VideoSub{p.videoTap.Subscribe(2, VideoFilter(codec, minGap))}
}

// SubscribeAudio returns a source of copies of the microphone's chunks;
// none while muted.
func (p *Pipeline) SubscribeAudio() AudioSub {
	muted := p.cfg.Muted
	return AudioSub{p.audioTap.Subscribe(10, func(capture.AudioChunk) bool { return muted == nil || !muted() })}
}

// Subscribers counts the open tap subscribers of both kinds.
func (p *Pipeline) Subscribers() int {
	return p.videoTap.Subscribers() + p.audioTap.Subscribers()
}
