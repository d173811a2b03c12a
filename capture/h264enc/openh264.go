//go:build cgo && !noh264

package h264enc

import (
	"fmt"
	"image"

	"github.com/pion/mediadevices/pkg/codec"
	"github.com/pion/mediadevices/pkg/codec/openh264"
	"github.com/pion/mediadevices/pkg/io/video"
	"github.com/pion/mediadevices/pkg/prop"
)

// The software encoder is Cisco's OpenH264 through pion/mediadevices'
// cgo binding (pkg/codec/openh264), linked statically from the library
// that module carries for linux amd64, arm64 and armv7 (build with
// -tags dynamic to link the system's libopenh264 through pkg-config
// instead). Why OpenH264 rather than x264: docs/h264.md.

// SoftwareName names the software encoder in the log and /api/state.
const SoftwareName = "openh264 (software)"

// SoftwareAvailable reports whether this build has the software encoder.
func SoftwareAvailable() bool { return true }

type openH264 struct {
	cfg  Config
	img  image.YCbCr // the picture being encoded; points into the caller's buffer
	enc  codec.ReadCloser
	kf   interface{ ForceKeyFrame() error }
	name string
}

// NewSoftware opens the software encoder. OpenH264 makes constrained
// baseline only; asking it for main or high is an error.
func NewSoftware(cfg Config) (Engine, error) {
	if err := cfg.Fill(); err != nil {
		return nil, err
	}
	if cfg.Profile != ProfileConstrainedBaseline {
		return nil, fmt.Errorf("h264enc: %s encodes constrained baseline only, not %s", SoftwareName, cfg.Profile)
	}
	p, err := openh264.NewParams()
	if err != nil {
		return nil, fmt.Errorf("h264enc: openh264: %w", err)
	}
	p.BitRate = cfg.Bitrate
	p.IntraPeriod = uint(cfg.GOP)
	p.UsageType = openh264.CameraVideoRealTime
	p.RCMode = openh264.RCBitrateMode
	// Every picture in gives an access unit out: a skipped frame would be
	// a hole in the stream that the receiver sees as a freeze.
	p.EnableFrameSkip = false
	// One slice per picture, one thread: the lowest bitrate for the
	// quality, and a 720p30 frame takes a few ms on one core.
	p.SliceMode = openh264.SMSingleSlice
	p.SliceNum = 1
	p.MultipleThreadIdc = 1
	e := &openH264{cfg: cfg, name: SoftwareName}
	w, h := cfg.Width, cfg.Height
	e.img = image.YCbCr{YStride: w, CStride: w / 2, SubsampleRatio: image.YCbCrSubsampleRatio420, Rect: image.Rect(0, 0, w, h)}
	r := video.ReaderFunc(func() (image.Image, func(), error) { return &e.img, func() {}, nil })
	enc, err := p.BuildVideoEncoder(r, prop.Media{Video: prop.Video{Width: w, Height: h, FrameRate: float32(cfg.FPS)}})
	if err != nil {
		return nil, fmt.Errorf("h264enc: openh264 %dx%d: %w", w, h, err)
	}
	e.enc = enc
	kf, ok := enc.(interface{ ForceKeyFrame() error })
	if !ok {
		enc.Close()
		return nil, fmt.Errorf("h264enc: openh264 binding has no ForceKeyFrame")
	}
	e.kf = kf
	return e, nil
}

func (e *openH264) Name() string { return e.name }

func (e *openH264) Encode(pic []byte, forceIDR bool) ([]byte, error) {
	w, h := e.cfg.Width, e.cfg.Height
	ys, cs := w*h, (w/2)*(h/2)
	if len(pic) != ys+2*cs {
		return nil, ErrFormat
	}
	e.img.Y, e.img.Cb, e.img.Cr = pic[:ys], pic[ys:ys+cs], pic[ys+cs:]
	if forceIDR {
		if err := e.kf.ForceKeyFrame(); err != nil {
			return nil, err
		}
	}
	au, release, err := e.enc.Read()
	if release != nil {
		release()
	}
	e.img.Y, e.img.Cb, e.img.Cr = nil, nil, nil
	return au, err
}

// SetBitrate changes the rate control's target between pictures (what a
// call's bandwidth estimate drives).
func (e *openH264) SetBitrate(bps int) error {
	c, ok := e.enc.(interface{ SetBitRate(int) error })
	if !ok {
		return fmt.Errorf("h264enc: openh264 binding has no SetBitRate")
	}
	return c.SetBitRate(bps)
}

func (e *openH264) Close() error { return e.enc.Close() }
