package firmware

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/callbox/callbox/board"
	"github.com/callbox/callbox/board/config"
	"github.com/callbox/callbox/capture"
	"github.com/callbox/callbox/capture/pcmu"
	"github.com/callbox/callbox/capture/rtpext"
	"github.com/callbox/callbox/capture/rtph264"
	"github.com/callbox/callbox/capture/rtpjpeg"
)

// mediaPart is the appliance's media: camera and microphone, each read by
// its own goroutine, packetized to RTP and published to the relay.
type mediaPart struct {
	opts mediaOptions

	cancel context.CancelFunc
	wg     sync.WaitGroup
	video  kindStats
	audio  kindStats
	// tap hands copies of the sources' frames and chunks to a call (run_peer_media.go).
	tap mediaTap

	// onFallback hears why "auto" took a synthetic source (nil: it did not).
	onFallback func(camera, mic error)
}

// mediaOptions are the media flags `callbox run` and `callbox send` share.
type mediaOptions struct {
	camera     string
	mic        string
	size       frameSize
	fps        int
	packetSize int
}

// mediaOptionsOf takes the media keys of a configuration.
func mediaOptionsOf(c *config.Config) mediaOptions {
	return mediaOptions{
		camera: c.Camera.Device, mic: c.Audio.Device,
		size: frameSize{c.Camera.Width, c.Camera.Height}, fps: c.Camera.FPS,
		packetSize: c.Relay.PacketSize,
	}
}

func (o *mediaOptions) check() error {
	if o.fps < 1 || o.fps > 240 {
		return fmt.Errorf("--fps %d: out of range 1..240", o.fps)
	}
	if o.packetSize < rtpjpeg.MinPacketSize || o.packetSize > 65000 {
		return fmt.Errorf("--packet-size %d: out of range %d..65000", o.packetSize, rtpjpeg.MinPacketSize)
	}
	return nil
}

func (o *mediaOptions) videoConfig() videoConfig {
	return videoConfig{width: o.size.w, height: o.size.h, fps: o.fps}
}

// frameSize is a WxH flag value.
type frameSize struct{ w, h int }

func (s *frameSize) String() string { return fmt.Sprintf("%dx%d", s.w, s.h) }

func (s *frameSize) Set(v string) error {
	ws, hs, ok := strings.Cut(strings.ToLower(v), "x")
	w, err1 := strconv.Atoi(ws)
	h, err2 := strconv.Atoi(hs)
	if !ok || err1 != nil || err2 != nil || w <= 0 || h <= 0 {
		return fmt.Errorf("%q is not a size like 1280x720", v)
	}
	s.w, s.h = w, h
	return nil
}

// publisher is what the relay offers the media pipeline. Publish is called
// from the video and the audio goroutine; the burst's packets are valid only
// during the call.
type publisher interface{ Publish(capture.Burst) }

func (p *mediaPart) start(ctx context.Context, a *appliance) error {
	log := a.log.With("part", "media")
	p.opts = mediaOptionsOf(a.cfg)
	publish := func(capture.Burst) {}
	if s, ok := any(&a.relay).(publisher); ok {
		publish = a.board.muteFilter(s.Publish) // no audio while muted (button A)
	} else {
		log.Warn("the relay takes no media in this build; packets are made and dropped")
	}
	p.onFallback = func(camErr, _ error) {
		// A development machine has no camera by design; a real box
		// without one shows the error state (its microphone is optional).
		if !a.board.simulated {
			a.board.fault(board.FaultCamera, camErr)
		}
	}
	return p.launch(ctx, publish, log)
}

// launch opens the sources and starts the pipeline's goroutines.
func (p *mediaPart) launch(ctx context.Context, publish func(capture.Burst), log *slog.Logger) error {
	if err := p.opts.check(); err != nil {
		return err
	}
	// Open both sources now so a bad flag fails the start instead of
	// retrying forever in the background.
	cam, camInfo, err := openCamera(p.opts.camera, p.opts.videoConfig())
	if err != nil {
		return err
	}
	mic, micInfo, err := openMic(p.opts.mic)
	if err != nil {
		cam.Close()
		return err
	}
	cam, mic = p.tap.wrapVideo(cam), p.tap.wrapAudio(mic)
	vp, err := newCodecPacketizer(p.opts.packetSize)
	if err != nil {
		cam.Close()
		mic.Close()
		return err
	}
	ap, err := pcmu.NewPacketizer(p.opts.packetSize, rtpext.Random32(), capture.PayloadTypePCMU)
	if err != nil {
		cam.Close()
		mic.Close()
		return fmt.Errorf("audio packetizer: %w", err)
	}
	log.Info("media sources", "camera", camInfo.desc, "mic", micInfo.desc, "packet_size", p.opts.packetSize)
	if p.onFallback != nil {
		p.onFallback(camInfo.fallback, micInfo.fallback)
	}

	ctx, p.cancel = context.WithCancel(ctx)
	p.wg.Add(3)
	go func() {
		defer p.wg.Done()
		vc := p.opts.videoConfig()
		reopen := func() (capture.VideoSource, error) {
			s, _, err := openCamera(p.opts.camera, vc)
			return p.tap.wrapVideo(s), err
		}
		runVideo(ctx, cam, reopen, vp, publish, &p.video, log)
	}()
	go func() {
		defer p.wg.Done()
		reopen := func() (capture.AudioSource, error) {
			s, _, err := openMic(p.opts.mic)
			return p.tap.wrapAudio(s), err
		}
		runAudio(ctx, mic, reopen, ap, publish, &p.audio, log)
	}()
	go func() {
		defer p.wg.Done()
		logStats(ctx, log, 10*time.Second, &p.video, &p.audio)
	}()
	return nil
}

func (p *mediaPart) stop() {
	if p.cancel != nil {
		p.cancel()
	}
	p.wg.Wait()
}

// kindStats counts one media kind's pipeline; read by the stats logger
// and `callbox send`'s summary while the pipeline runs.
type kindStats struct {
	units   atomic.Uint64 // frames or chunks packetized
	packets atomic.Uint64
	bytes   atomic.Uint64 // RTP bytes (headers included)
	gaps    atomic.Uint64 // units the source skipped (Seq jumps)
	errors  atomic.Uint64 // read, packetize and publish errors
	reopens atomic.Uint64
}

func (s *kindStats) count(b capture.Burst) {
	s.units.Add(1)
	s.packets.Add(uint64(len(b.Packets)))
	var n int
	for _, p := range b.Packets {
		n += len(p)
	}
	s.bytes.Add(uint64(n))
}

// seqTracker counts gaps in a source's Seq.
type seqTracker struct {
	next    uint64
	started bool
}

func (t *seqTracker) gap(seq uint64) uint64 {
	var g uint64
	if t.started && seq > t.next {
		g = seq - t.next
	}
	t.started, t.next = true, seq+1
	return g
}

const (
	minBackoff = 100 * time.Millisecond
	maxBackoff = 10 * time.Second
)

// sleepCtx waits d or until ctx is done; it reports whether to go on.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// errLogger logs the first error of a run of the same kind and then at
// most once per interval, so a failing device cannot flood the log.
type errLogger struct {
	log   *slog.Logger
	last  time.Time
	quiet int
}

func (l *errLogger) log1(msg string, err error) {
	now := time.Now()
	if now.Sub(l.last) < 5*time.Second {
		l.quiet++
		return
	}
	l.log.Warn(msg, "err", err, "suppressed", l.quiet)
	l.last, l.quiet = now, 0
}

// runVideo reads frames from src, packetizes them and publishes each
// frame's packets until ctx is done. A source that fails (for a camera,
// typically capture.ErrDeviceGone after an unplug) is closed and reopened
// with exponential backoff; the packetizer, and so the RTP sequence, lives
// on across reopens.
func runVideo(ctx context.Context, src capture.VideoSource, reopen func() (capture.VideoSource, error),
	pk capture.VideoPacketizer, publish func(capture.Burst), st *kindStats, log *slog.Logger) {
	k := sourceKind[capture.VideoFrame]{
		name: "camera", unit: "video frame",
		seq:       func(f capture.VideoFrame) uint64 { return f.Seq },
		packetize: pk.Packetize,
	}
	runSource(ctx, k, videoReader{src}, func() (unitReader[capture.VideoFrame], error) {
		s, err := reopen()
		if err != nil {
			return nil, err
		}
		return videoReader{s}, nil
	}, publish, st, log)
}

// runAudio is runVideo for the microphone.
func runAudio(ctx context.Context, src capture.AudioSource, reopen func() (capture.AudioSource, error),
	pk capture.AudioPacketizer, publish func(capture.Burst), st *kindStats, log *slog.Logger) {
	k := sourceKind[capture.AudioChunk]{
		name: "microphone", unit: "audio chunk",
		seq:       func(c capture.AudioChunk) uint64 { return c.Seq },
		packetize: pk.Packetize,
	}
	runSource(ctx, k, audioReader{src}, func() (unitReader[capture.AudioChunk], error) {
		s, err := reopen()
		if err != nil {
			return nil, err
		}
		return audioReader{s}, nil
	}, publish, st, log)
}

// unitReader is a camera or a microphone seen by runSource: it yields
// frames or chunks.
type unitReader[U any] interface {
	read(ctx context.Context) (U, error)
	Close() error
}

type videoReader struct{ capture.VideoSource }

func (r videoReader) read(ctx context.Context) (capture.VideoFrame, error) { return r.ReadFrame(ctx) }

type audioReader struct{ capture.AudioSource }

func (r audioReader) read(ctx context.Context) (capture.AudioChunk, error) { return r.ReadChunk(ctx) }

// sourceKind is what differs between the video and the audio pipeline.
type sourceKind[U any] struct {
	name      string // the device, for the log
	unit      string // what it yields, for the log
	seq       func(U) uint64
	packetize func(U) (capture.Burst, error)
}

// runSource is the pipeline loop shared by both kinds (see runVideo).
func runSource[U any](ctx context.Context, k sourceKind[U], src unitReader[U], reopen func() (unitReader[U], error),
	publish func(capture.Burst), st *kindStats, log *slog.Logger) {
	el := errLogger{log: log}
	backoff := minBackoff
	var seq seqTracker
	for {
		for src != nil {
			u, err := src.read(ctx)
			if err != nil {
				src.Close()
				src = nil
				if ctx.Err() != nil {
					return
				}
				st.errors.Add(1)
				if errors.Is(err, capture.ErrDeviceGone) {
					log.Warn(k.name+" gone; reopening", "err", err)
				} else {
					log.Warn(k.name+" read failed; reopening", "err", err)
				}
				break
			}
			backoff = minBackoff
			st.gaps.Add(seq.gap(k.seq(u)))
			b, err := k.packetize(u)
			if err != nil {
				st.errors.Add(1)
				el.log1(k.unit+" dropped", err)
				continue
			}
			st.count(b)
			publish(b)
		}
		if !sleepCtx(ctx, backoff) {
			return
		}
		backoff = min(2*backoff, maxBackoff)
		s, err := reopen()
		if err != nil {
			st.errors.Add(1)
			el.log1(k.name+" reopen failed", err)
			continue
		}
		st.reopens.Add(1)
		log.Info(k.name + " reopened")
		src = s
		seq = seqTracker{}
	}
}

// statsSnapshot is one reading of a kindStats.
type statsSnapshot struct {
	units, packets, bytes, gaps, errors uint64
}

func (s *kindStats) snapshot() statsSnapshot {
	return statsSnapshot{s.units.Load(), s.packets.Load(), s.bytes.Load(), s.gaps.Load(), s.errors.Load()}
}

// logStats logs the pipeline's rates every interval until ctx is done.
func logStats(ctx context.Context, log *slog.Logger, every time.Duration, video, audio *kindStats) {
	t := time.NewTicker(every)
	defer t.Stop()
	pv, pa := video.snapshot(), audio.snapshot()
	last := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			v, a := video.snapshot(), audio.snapshot()
			sec := now.Sub(last).Seconds()
			log.Info("media stats",
				"video_fps", fmt.Sprintf("%.1f", float64(v.units-pv.units)/sec),
				"video_kbps", fmt.Sprintf("%.0f", float64(v.bytes-pv.bytes)*8/sec/1000),
				"video_packets", v.packets-pv.packets,
				"video_dropped_frames", v.gaps-pv.gaps,
				"audio_kbps", fmt.Sprintf("%.1f", float64(a.bytes-pa.bytes)*8/sec/1000),
				"audio_packets", a.packets-pa.packets,
				"audio_lost_chunks", a.gaps-pa.gaps,
				"errors", (v.errors-pv.errors)+(a.errors-pa.errors))
			pv, pa, last = v, a, now
		}
	}
}

// codecPacketizer picks the RTP payload format by each frame's codec:
// RTP/JPEG (PT 26) for MJPEG cameras and the synthetic one, H.264 (PT 96)
// for cameras that encode it. The relay learns the codec from the payload
// type. Each format has its own SSRC and sequence, as RFC 3550 wants when
// the payload format of a stream changes (e.g. a different camera after a
// reopen).
type codecPacketizer struct {
	maxSize int
	jpeg    *rtpjpeg.Packetizer
	h264    *rtph264.Packetizer // made on the first H.264 frame
}

func newCodecPacketizer(maxSize int) (*codecPacketizer, error) {
	j, err := rtpjpeg.NewPacketizer(maxSize, rtpext.Random32(), capture.PayloadTypeJPEG)
	if err != nil {
		return nil, fmt.Errorf("video packetizer: %w", err)
	}
	return &codecPacketizer{maxSize: maxSize, jpeg: j}, nil
}

func (p *codecPacketizer) Packetize(f capture.VideoFrame) (capture.Burst, error) {
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
