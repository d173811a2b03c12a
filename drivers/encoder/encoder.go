// Package encoder drives a V4L2 stateful memory-to-memory video encoder:
// the kernel's documented encoder interface (Documentation/userspace-api/
// media/v4l/dev-encoder.rst), as the Raspberry Pi's bcm2835-codec
// (/dev/video11, H.264), the Rockchip/Allwinner/Qualcomm encoders and the
// kernel's virtual codec vicodec (FWHT) implement it. Raw pictures go in on
// the OUTPUT queue, the bitstream comes out on the CAPTURE queue; encoder
// commands drain and restart it; controls set bitrate, rate control, GOP,
// profile, level, inline SPS/PPS and forced keyframes.
//
// An Encoder is an h264enc.Engine: h264enc.NewStage wraps it into a
// capture.VideoSource exactly like the software encoder.
//
// # Buffers: MMAP
//
// Buffers are the driver's own (V4L2_MEMORY_MMAP), mapped once; a picture
// is copied into a free OUTPUT buffer and the bitstream is copied out of
// the CAPTURE buffer. DMABUF would save the input copy, but only when the
// camera exports its buffers (VIDIOC_EXPBUF) in exactly the encoder's
// input format and alignment: the V4L2 camera library callbox uses cannot
// export them, MJPEG cameras need a decode first anyway, and the synthetic
// camera's pictures are ordinary memory. One 720p I420 copy is 1.4 MB,
// about 0.3-0.5 ms on a Cortex-A72: small against a 33 ms frame.
//
// # Formats
//
// The multi-planar API (V4L2_CAP_VIDEO_M2M_MPLANE), which bcm2835-codec and
// the other SoC encoders use (vicodec with multiplanar=1); pictures are
// I420 (V4L2_PIX_FMT_YUV420, one plane), rows copied at the driver's
// bytesperline.
package encoder

import (
	"errors"
	"fmt"
	"time"

	"github.com/callbox/callbox/capture/h264enc"
)

// Bitstream formats (fourcc).
const (
	FourccH264 uint32 = 'H' | '2'<<8 | '6'<<16 | '4'<<24
	FourccFWHT uint32 = 'F' | 'W'<<8 | 'H'<<16 | 'T'<<24 // vicodec's codec
	FourccI420 uint32 = 'Y' | 'U'<<8 | '1'<<16 | '2'<<24 // V4L2_PIX_FMT_YUV420
)

// Errors.
var (
	ErrNoDevice = errors.New("encoder: no V4L2 memory-to-memory encoder found")
	ErrTimeout  = errors.New("encoder: the device returned no bitstream in time")
	ErrStopped  = errors.New("encoder: stopped (drained); Start it again")
	ErrClosed   = errors.New("encoder: closed")
)

// Config configures an Encoder. Zero fields take the defaults.
type Config struct {
	// Device is the encoder's node; "" probes /dev/video* for one that
	// encodes to Codec.
	Device string
	// Codec is the bitstream format: FourccH264 (default) or FourccFWHT.
	Codec         uint32
	Width, Height int // pixels, even
	FPS           int // default 30
	// H.264 settings (ignored by codecs without those controls).
	Bitrate int             // bit/s, default h264enc.DefaultBitrate
	GOP     int             // frames between keyframes, default h264enc.DefaultGOP
	Profile h264enc.Profile // default constrained baseline
	// Buffers per queue (default 2).
	Buffers int
	// Timeout for one picture's bitstream (default 2 s).
	Timeout time.Duration
}

func (c *Config) fill() error {
	if c.Codec == 0 {
		c.Codec = FourccH264
	}
	if c.FPS == 0 {
		c.FPS = 30
	}
	if c.Bitrate == 0 {
		c.Bitrate = h264enc.DefaultBitrate
	}
	if c.GOP == 0 {
		c.GOP = h264enc.DefaultGOP
	}
	if c.Profile == "" {
		c.Profile = h264enc.ProfileConstrainedBaseline
	}
	if c.Buffers == 0 {
		c.Buffers = 2
	}
	if c.Timeout == 0 {
		c.Timeout = 2 * time.Second
	}
	if c.Width <= 0 || c.Height <= 0 || c.Width%2 != 0 || c.Height%2 != 0 || c.Width > 8192 || c.Height > 8192 {
		return fmt.Errorf("encoder: size %dx%d: want even sizes", c.Width, c.Height)
	}
	if c.Buffers < 1 || c.Buffers > 32 {
		return fmt.Errorf("encoder: %d buffers out of range 1..32", c.Buffers)
	}
	return nil
}

// FourccString renders a fourcc as its four letters.
func FourccString(f uint32) string {
	return string([]byte{byte(f), byte(f >> 8), byte(f >> 16), byte(f >> 24)})
}

// Found is an encoder that Probe found.
type Found struct {
	Path   string // /dev/videoN
	Card   string // the driver's card name, e.g. "bcm2835-codec-encode"
	Driver string
}

func (f Found) String() string { return fmt.Sprintf("%s (%s, %s)", f.Path, f.Card, f.Driver) }

// Rejected says why a node is not an encoder for the codec asked for.
type Rejected struct {
	Path, Why string
}
