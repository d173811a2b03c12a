// Package h264enc turns a raw video source into an H.264 one: a
// capture.VideoSource stage that reads I420 pictures from the source below
// it, hands them to an Engine (the software encoder in this package, or a
// hardware one such as drivers/encoder's V4L2 memory-to-memory encoder) and
// yields capture.VideoFrame{Codec: capture.CodecH264} access units in Annex B
// form, SPS and PPS in front of every IDR, with the source's capture time.
//
// Keyframes come on demand (Stage.RequestKeyframe, for the relay's flush and
// a newcomer), rate-limited: requests that arrive within MinKeyframeInterval
// of the last keyframe are served together by one keyframe at the end of
// that interval, so a burst of joining phones costs one IDR, not one each.
package h264enc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/callbox/callbox/capture"
)

// Defaults of Config.
const (
	DefaultBitrate             = 2_000_000 // bit/s: 720p30 at a good quality
	DefaultGOP                 = 60        // frames: an IDR every 2 s at 30 fps
	DefaultMinKeyframeInterval = 500 * time.Millisecond
)

// Profile is an H.264 profile.
type Profile string

// The profiles callbox asks for. Constrained baseline is what every WebRTC
// endpoint decodes (profile-level-id 42e01f); main and high compress better
// where the encoder has them.
const (
	ProfileConstrainedBaseline Profile = "baseline"
	ProfileMain                Profile = "main"
	ProfileHigh                Profile = "high"
)

// ParseProfile reads a profile name: baseline (constrained baseline), main
// or high.
func ParseProfile(s string) (Profile, error) {
	switch p := Profile(strings.ToLower(strings.TrimSpace(s))); p {
	case ProfileConstrainedBaseline, ProfileMain, ProfileHigh:
		return p, nil
	case "constrained-baseline", "cb":
		return ProfileConstrainedBaseline, nil
	}
	return "", fmt.Errorf("h264enc: profile %q: want baseline, main or high", s)
}

// ProfileIDC is the profile_idc and constraint flags of the SPS and the
// SDP's profile-level-id (RFC 6184 8.1), without the level.
func (p Profile) ProfileIDC() (idc, constraints byte) {
	switch p {
	case ProfileMain:
		return 77, 0x00
	case ProfileHigh:
		return 100, 0x00
	}
	return 66, 0xe0 // constrained baseline: constraint_set0/1/2
}

// Config configures an encoder. Zero fields take the defaults.
type Config struct {
	Width, Height int     // pixels, even
	FPS           int     // frames per second of the source
	Bitrate       int     // target, bit/s
	GOP           int     // frames from one IDR to the next (1 = all IDR)
	Profile       Profile // ProfileConstrainedBaseline when empty
	// MinKeyframeInterval is the shortest time between two keyframes that
	// requests force (DefaultMinKeyframeInterval when zero).
	MinKeyframeInterval time.Duration
}

// Fill sets the defaults and checks the ranges.
func (c *Config) Fill() error {
	if c.FPS == 0 {
		c.FPS = 30
	}
	if c.Bitrate == 0 {
		c.Bitrate = DefaultBitrate
	}
	if c.GOP == 0 {
		c.GOP = DefaultGOP
	}
	if c.Profile == "" {
		c.Profile = ProfileConstrainedBaseline
	}
	if c.MinKeyframeInterval == 0 {
		c.MinKeyframeInterval = DefaultMinKeyframeInterval
	}
	switch {
	case c.Width <= 0 || c.Height <= 0 || c.Width%2 != 0 || c.Height%2 != 0 || c.Width > 4096 || c.Height > 4096:
		return fmt.Errorf("h264enc: size %dx%d: want even sizes up to 4096", c.Width, c.Height)
	case c.FPS < 1 || c.FPS > 120:
		return fmt.Errorf("h264enc: fps %d out of range 1..120", c.FPS)
	case c.Bitrate < 50_000 || c.Bitrate > 50_000_000:
		return fmt.Errorf("h264enc: bitrate %d bit/s out of range 50k..50M", c.Bitrate)
	case c.GOP < 1 || c.GOP > 10_000:
		return fmt.Errorf("h264enc: gop %d frames out of range 1..10000", c.GOP)
	case c.MinKeyframeInterval < 0:
		return fmt.Errorf("h264enc: negative keyframe interval %v", c.MinKeyframeInterval)
	}
	_, err := ParseProfile(string(c.Profile))
	return err
}

// Engine is one H.264 encoder session: I420 pictures in, access units out.
type Engine interface {
	// Encode encodes one I420 picture of the configured size. With
	// forceIDR the access unit is an IDR. The result is Annex B, SPS and
	// PPS before each IDR, owned by the engine until the next call; it is
	// empty when the engine holds the picture back (none of ours does).
	Encode(pic []byte, forceIDR bool) ([]byte, error)
	// Name says which encoder this is, for the log and /api/state.
	Name() string
	Close() error
}

// BitrateSetter is an Engine whose target bitrate can change while it
// encodes (OpenH264, and V4L2 encoders with the bitrate control).
type BitrateSetter interface {
	SetBitrate(bps int) error
}

// Errors.
var (
	ErrUnavailable = errors.New("h264enc: no software H.264 encoder in this build")
	ErrFormat      = errors.New("h264enc: source frame is not I420 of the configured size")
	ErrClosed      = errors.New("h264enc: closed")
)

// Stats counts what a Stage did.
type Stats struct {
	Frames            uint64 // access units out
	Keyframes         uint64 // IDRs out (GOP and forced)
	KeyframeRequests  uint64 // RequestKeyframe calls
	ForcedKeyframes   uint64 // IDRs that requests forced
	Bytes             uint64 // bitstream bytes out
	LastEncodeLatency time.Duration
}

// Stage is a capture.VideoSource that encodes the raw frames of the
// source below it: I420, or JPEG (a camera that gives nothing else), which
// it decodes first. ReadFrame is for one goroutine; RequestKeyframe, Stats
// and Close may be called from any.
type Stage struct {
	src  capture.VideoSource
	eng  Engine                       // nil until the first picture with open
	open func(Config) (Engine, error) // NewStageOpen's
	cfg  Config

	pending  atomic.Bool // a keyframe was requested
	lastKey  time.Time   // when the last IDR went out (clock of now)
	now      func() time.Time
	picSize  int
	conv     []byte     // a JPEG source's picture as I420
	mu       sync.Mutex // guards stats
	stats    Stats
	closed   atomic.Bool
	encMu    sync.Mutex // held while the engine encodes; Close waits for it
	closeErr error
	once     sync.Once
}

var _ capture.VideoSource = (*Stage)(nil)

// NewStage returns a stage encoding src's I420 frames with eng. cfg must
// be the configuration eng was opened with. The stage owns src and eng:
// Close closes both.
func NewStage(src capture.VideoSource, eng Engine, cfg Config) (*Stage, error) {
	if err := cfg.Fill(); err != nil {
		return nil, err
	}
	return &Stage{src: src, eng: eng, cfg: cfg, now: time.Now, picSize: capture.I420Size(cfg.Width, cfg.Height)}, nil
}

// NewStageOpen is NewStage with the engine opened by open at the size of
// the source's first picture (a camera may deliver another size than the
// one asked for), and opened again should the size change. cfg's size is
// only the first guess.
func NewStageOpen(src capture.VideoSource, open func(Config) (Engine, error), cfg Config) (*Stage, error) {
	if err := cfg.Fill(); err != nil {
		return nil, err
	}
	return &Stage{src: src, open: open, cfg: cfg, now: time.Now, picSize: capture.I420Size(cfg.Width, cfg.Height)}, nil
}

// resize (re)opens the engine for pictures of w x h.
func (s *Stage) resize(w, h int) error {
	cfg := s.cfg
	cfg.Width, cfg.Height = w, h
	if err := cfg.Fill(); err != nil {
		return err
	}
	eng, err := s.open(cfg)
	if err != nil {
		return err
	}
	s.encMu.Lock()
	old := s.eng
	s.eng, s.cfg, s.picSize = eng, cfg, capture.I420Size(w, h)
	s.encMu.Unlock()
	if old != nil {
		old.Close()
	}
	return nil
}

// Engine returns the encoder behind the stage (nil before NewStageOpen's
// first picture).
func (s *Stage) Engine() Engine {
	s.encMu.Lock()
	defer s.encMu.Unlock()
	return s.eng
}

// Config returns the stage's configuration, defaults filled in.
func (s *Stage) Config() Config { return s.cfg }

// RequestKeyframe asks for an IDR: the next frame is one unless a keyframe
// went out less than MinKeyframeInterval ago, in which case one IDR goes
// out when that interval ends, however many requests came meanwhile.
func (s *Stage) RequestKeyframe() {
	s.pending.Store(true)
	s.mu.Lock()
	s.stats.KeyframeRequests++
	s.mu.Unlock()
}

// Stats returns the counters so far.
func (s *Stage) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// ReadFrame reads the next raw frame from the source and encodes it.
func (s *Stage) ReadFrame(ctx context.Context) (capture.VideoFrame, error) {
	if s.closed.Load() {
		return capture.VideoFrame{}, ErrClosed
	}
	for {
		raw, err := s.src.ReadFrame(ctx)
		if err != nil {
			return capture.VideoFrame{}, err
		}
		if s.open != nil && (s.eng == nil || raw.Width != s.cfg.Width || raw.Height != s.cfg.Height) {
			if err := s.resize(raw.Width, raw.Height); err != nil {
				return capture.VideoFrame{}, fmt.Errorf("h264enc: open the encoder for %dx%d: %w", raw.Width, raw.Height, err)
			}
		}
		if raw.Codec == capture.CodecJPEG && raw.Width == s.cfg.Width && raw.Height == s.cfg.Height {
			if s.conv, err = jpegToI420(s.conv, raw.Data, raw.Width, raw.Height); err != nil {
				return capture.VideoFrame{}, err
			}
			raw.Codec, raw.Data = capture.CodecI420, s.conv
		}
		if raw.Codec != capture.CodecI420 || raw.Width != s.cfg.Width || raw.Height != s.cfg.Height || len(raw.Data) != s.picSize {
			return capture.VideoFrame{}, fmt.Errorf("%w: got %v %dx%d (%d bytes), want i420 %dx%d",
				ErrFormat, raw.Codec, raw.Width, raw.Height, len(raw.Data), s.cfg.Width, s.cfg.Height)
		}
		now := s.now()
		force := false
		if s.pending.Load() && (s.lastKey.IsZero() || now.Sub(s.lastKey) >= s.cfg.MinKeyframeInterval) {
			force = true
			s.pending.Store(false)
		}
		t0 := time.Now()
		s.encMu.Lock()
		if s.closed.Load() {
			s.encMu.Unlock()
			return capture.VideoFrame{}, ErrClosed
		}
		au, err := s.eng.Encode(raw.Data, force)
		s.encMu.Unlock()
		if err != nil {
			return capture.VideoFrame{}, fmt.Errorf("h264enc: %s: %w", s.eng.Name(), err)
		}
		if len(au) == 0 {
			continue // held back; the next picture brings output
		}
		key := IsKeyframe(au)
		if key {
			s.lastKey = now
			// A GOP IDR serves any request made before it.
			s.pending.Store(false)
		}
		s.mu.Lock()
		s.stats.Frames++
		s.stats.Bytes += uint64(len(au))
		s.stats.LastEncodeLatency = time.Since(t0)
		if key {
			s.stats.Keyframes++
			if force {
				s.stats.ForcedKeyframes++
			}
		}
		s.mu.Unlock()
		return capture.VideoFrame{
			Codec:       capture.CodecH264,
			Data:        au,
			Width:       raw.Width,
			Height:      raw.Height,
			Keyframe:    key,
			CaptureTime: raw.CaptureTime,
			Seq:         raw.Seq,
		}, nil
	}
}

// Close closes the source, then the engine once any encode under way is
// over (the engine's memory is C memory: never freed under an encode). A
// ReadFrame blocked in the source returns.
func (s *Stage) Close() error {
	s.once.Do(func() {
		s.closed.Store(true)
		err := s.src.Close()
		s.encMu.Lock()
		defer s.encMu.Unlock()
		if s.eng != nil {
			err = errors.Join(err, s.eng.Close())
		}
		s.closeErr = err
	})
	return s.closeErr
}

// IsKeyframe reports whether the Annex B access unit au holds an IDR slice.
func IsKeyframe(au []byte) bool {
	for i := 0; ; {
		j := bytes.Index(au[i:], []byte{0, 0, 1})
		if j < 0 || i+j+3 >= len(au) {
			return false
		}
		i += j + 3
		if au[i]&0x1f == 5 {
			return true
		}
	}
}
