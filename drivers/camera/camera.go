// Package camera is callbox's V4L2 camera driver: it finds a capture device,
// picks the best format it offers, and yields encoded frames as a
// capture.VideoSource.
//
// # Formats
//
// Preference is MJPEG > H.264 > YUYV. MJPEG and H.264 frames are passed
// through as the camera encoded them. YUYV (raw 4:2:2) is encoded to JPEG in
// software with image/jpeg; that costs CPU on a small board, so YUYV capture
// is capped at YUYVMaxWidth x YUYVMaxHeight and YUYVMaxFPS, and frames that
// arrive faster are returned to the driver without being encoded.
//
// # Buffers
//
// Frames are dequeued with GetFrame, copied into the camera's own buffer and
// the V4L2 buffer is queued back with ReleaseFrame. (blackjack/webcam's
// ReadFrame queues the buffer back before returning it, so the slice it
// returns aliases memory the driver may already be overwriting.) The
// returned VideoFrame.Data is owned by the Camera and valid until the next
// ReadFrame.
//
// # Vanishing devices
//
// A USB camera can be unplugged. Errors that mean the device is gone wrap
// capture.ErrDeviceGone; Reopening wraps a Camera and reopens it when the
// device comes back, so the pipeline above never stops.
package camera

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/jpeg"
	"io/fs"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/callbox/callbox/capture"
)

// V4L2 pixel formats (fourcc codes, little-endian).
const (
	FourccMJPEG uint32 = 'M' | 'J'<<8 | 'P'<<16 | 'G'<<24
	FourccJPEG  uint32 = 'J' | 'P'<<8 | 'E'<<16 | 'G'<<24
	FourccH264  uint32 = 'H' | '2'<<8 | '6'<<16 | '4'<<24
	FourccYUYV  uint32 = 'Y' | 'U'<<8 | 'Y'<<16 | 'V'<<24
)

// FourccString renders a fourcc as its four letters.
func FourccString(f uint32) string {
	return string([]byte{byte(f), byte(f >> 8), byte(f >> 16), byte(f >> 24)})
}

// Software JPEG limits for YUYV cameras: image/jpeg encodes 640x480 in
// roughly 10-20 ms on a Cortex-A72, so 15 fps leaves most of a core free.
const (
	YUYVMaxWidth  = 640
	YUYVMaxHeight = 480
	YUYVMaxFPS    = 15
)

// Device is the V4L2 seam: the subset of *webcam.Webcam the camera uses,
// with plain fourcc codes. cameratest.Device is a fake.
type Device interface {
	Formats() map[uint32]string
	SetFormat(fourcc uint32, width, height int) (gotFourcc uint32, gotWidth, gotHeight int, err error)
	SetFramerate(fps float32) error
	Start(buffers int) error
	// WaitForFrame blocks up to timeout; a timeout is ErrTimeout.
	WaitForFrame(timeout time.Duration) error
	// GetFrame dequeues a filled buffer; the slice is valid until
	// ReleaseFrame(index).
	GetFrame() (data []byte, index uint32, err error)
	ReleaseFrame(index uint32) error
	Close() error
}

// Opener opens a device node.
type Opener func(path string) (Device, error)

var (
	// ErrTimeout reports that no frame arrived in time (Device.WaitForFrame).
	ErrTimeout = errors.New("camera: timeout waiting for frame")
	// ErrNoCamera reports that no usable capture device exists.
	ErrNoCamera = errors.New("camera: no V4L2 capture device")
	// ErrNoFormat reports a device that offers none of MJPEG, H.264, YUYV.
	ErrNoFormat = errors.New("camera: no supported pixel format (want MJPEG, H.264 or YUYV)")
	// ErrClosed reports use of a closed camera.
	ErrClosed = errors.New("camera: closed")
)

// Config selects and sets up a camera.
type Config struct {
	// Device is a /dev/video* path; "" or "auto" means the first capture
	// device that offers a supported format.
	Device string
	// Format forces "mjpeg", "h264" or "yuyv"; "" or "auto" uses the
	// preference order.
	Format string
	// Width, Height and FPS are requests: the driver may adjust them, and
	// YUYV is capped (see the package doc). Zero means 640x480 at 15 fps.
	Width, Height, FPS int
	// JPEGQuality is used when encoding YUYV (1-100, 0 means 75).
	JPEGQuality int
	// Raw makes a YUYV camera yield I420 pictures (capture.CodecI420),
	// for an H.264 encoder, instead of JPEG: no JPEG encode, so none of
	// the YUYV caps either. MJPEG and H.264 are unaffected.
	Raw bool
	// FrameTimeout is how long ReadFrame waits for the driver before it
	// reports the device gone (a stalled USB camera). Zero means 5 s.
	FrameTimeout time.Duration
	// Open opens devices; nil means the real V4L2 driver.
	Open Opener
	// Nodes are the candidates for Device "auto"; nil means /dev/video*.
	Nodes []string
	// Now reads the clock for capture timestamps; nil means time.Now.
	Now func() time.Time
}

func (c *Config) normalize() error {
	if c.Width == 0 && c.Height == 0 {
		c.Width, c.Height = 640, 480
	}
	if c.Width <= 0 || c.Height <= 0 || c.Width > 8192 || c.Height > 8192 {
		return fmt.Errorf("camera: bad size %dx%d", c.Width, c.Height)
	}
	if c.FPS == 0 {
		c.FPS = 15
	}
	if c.FPS < 0 || c.FPS > 240 {
		return fmt.Errorf("camera: bad frame rate %d", c.FPS)
	}
	if c.JPEGQuality == 0 {
		c.JPEGQuality = 75
	}
	if c.JPEGQuality < 1 || c.JPEGQuality > 100 {
		return fmt.Errorf("camera: bad JPEG quality %d", c.JPEGQuality)
	}
	if c.FrameTimeout == 0 {
		c.FrameTimeout = 5 * time.Second
	}
	switch strings.ToLower(c.Format) {
	case "", "auto", "mjpeg", "h264", "yuyv":
	default:
		return fmt.Errorf("camera: unknown format %q (want auto, mjpeg, h264 or yuyv)", c.Format)
	}
	if c.Open == nil {
		c.Open = openV4L2
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return nil
}

// pickFormat applies the preference order (or the forced format) to what a
// device offers.
func pickFormat(offered map[uint32]string, force string) (uint32, error) {
	prefs := []uint32{FourccMJPEG, FourccJPEG, FourccH264, FourccYUYV}
	switch strings.ToLower(force) {
	case "mjpeg":
		prefs = []uint32{FourccMJPEG, FourccJPEG}
	case "h264":
		prefs = []uint32{FourccH264}
	case "yuyv":
		prefs = []uint32{FourccYUYV}
	}
	for _, f := range prefs {
		if _, ok := offered[f]; ok {
			return f, nil
		}
	}
	names := make([]string, 0, len(offered))
	for f := range offered {
		names = append(names, FourccString(f))
	}
	return 0, fmt.Errorf("%w; device offers %v", ErrNoFormat, names)
}

// Info describes an open camera.
type Info struct {
	Path   string
	Fourcc uint32 // what the device delivers
	Codec  capture.Codec
	Width  int
	Height int
	FPS    int // the rate frames are delivered at (after YUYV capping)
}

func (i Info) String() string {
	return fmt.Sprintf("%s %s %dx%d@%d -> %s", i.Path, FourccString(i.Fourcc), i.Width, i.Height, i.FPS, i.Codec)
}

// Camera is an open V4L2 capture device. It implements capture.VideoSource.
type Camera struct {
	cfg  Config
	info Info
	dev  Device

	mu      sync.Mutex // held by ReadFrame; Close waits for it
	closing atomic.Bool
	closed  bool
	gone    error

	seq     uint64
	buf     []byte
	next    time.Time // YUYV rate cap: the earliest time the next frame is used
	yuv     *image.YCbCr
	jpegBuf bytes.Buffer
}

// Open opens the camera cfg selects and starts streaming.
func Open(cfg Config) (*Camera, error) {
	if err := cfg.normalize(); err != nil {
		return nil, err
	}
	path := cfg.Device
	if path == "" || path == "auto" {
		nodes := cfg.Nodes
		if nodes == nil {
			nodes = videoNodes()
		}
		devs := list(cfg.Open, nodes)
		if len(devs) == 0 || !devs[0].Usable {
			return nil, fmt.Errorf("%w (found %d V4L2 capture nodes)", ErrNoCamera, len(devs))
		}
		path = devs[0].Path
	}
	dev, err := cfg.Open(path)
	if err != nil {
		return nil, fmt.Errorf("camera: open %s: %w", path, classify(err))
	}
	c, err := start(cfg, path, dev)
	if err != nil {
		dev.Close()
		return nil, err
	}
	return c, nil
}

func start(cfg Config, path string, dev Device) (*Camera, error) {
	f, err := pickFormat(dev.Formats(), cfg.Format)
	if err != nil {
		return nil, fmt.Errorf("camera: %s: %w", path, err)
	}
	w, h, fps := cfg.Width, cfg.Height, cfg.FPS
	if f == FourccYUYV && !cfg.Raw {
		w, h, fps = min(w, YUYVMaxWidth), min(h, YUYVMaxHeight), min(fps, YUYVMaxFPS)
	}
	gf, gw, gh, err := dev.SetFormat(f, w, h)
	if err != nil {
		return nil, fmt.Errorf("camera: %s: set format %s %dx%d: %w", path, FourccString(f), w, h, classify(err))
	}
	if gf != f {
		return nil, fmt.Errorf("camera: %s: asked for %s, driver chose %s", path, FourccString(f), FourccString(gf))
	}
	if gw <= 0 || gh <= 0 || (f == FourccYUYV && gw%2 != 0) {
		return nil, fmt.Errorf("camera: %s: driver chose unusable size %dx%d", path, gw, gh)
	}
	// Not every driver supports VIDIOC_S_PARM (v4l2loopback follows its
	// producer); the rate cap below still holds for YUYV.
	_ = dev.SetFramerate(float32(fps))
	// Four buffers: one being filled, one being read, two of slack for a
	// reader that is briefly late, without queueing seconds of latency.
	if err := dev.Start(4); err != nil {
		return nil, fmt.Errorf("camera: %s: start streaming: %w", path, classify(err))
	}
	codec := capture.CodecJPEG
	switch {
	case f == FourccH264:
		codec = capture.CodecH264
	case f == FourccYUYV && cfg.Raw:
		codec = capture.CodecI420
		if gh%2 != 0 {
			return nil, fmt.Errorf("camera: %s: driver chose odd height %d (I420 needs even)", path, gh)
		}
	}
	c := &Camera{cfg: cfg, dev: dev, info: Info{Path: path, Fourcc: f, Codec: codec, Width: gw, Height: gh, FPS: fps}}
	if f == FourccYUYV && !cfg.Raw {
		c.yuv = image.NewYCbCr(image.Rect(0, 0, gw, gh), image.YCbCrSubsampleRatio422)
	}
	return c, nil
}

// Info describes the stream.
func (c *Camera) Info() Info { return c.info }

// ReadFrame implements capture.VideoSource.
func (c *Camera) ReadFrame(ctx context.Context) (capture.VideoFrame, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return capture.VideoFrame{}, ErrClosed
	}
	if c.gone != nil {
		return capture.VideoFrame{}, c.gone
	}
	for {
		fr, err := c.readOne(ctx)
		if err == errSkip {
			continue
		}
		if errors.Is(err, capture.ErrDeviceGone) {
			c.gone = err
		}
		return fr, err
	}
}

var errSkip = errors.New("skip")

func (c *Camera) readOne(ctx context.Context) (capture.VideoFrame, error) {
	// Wait in short slices so that ctx and Close are noticed promptly;
	// the total wait is bounded by FrameTimeout.
	deadline := c.cfg.Now().Add(c.cfg.FrameTimeout)
	for {
		if err := ctx.Err(); err != nil {
			return capture.VideoFrame{}, err
		}
		if c.closing.Load() {
			return capture.VideoFrame{}, ErrClosed
		}
		err := c.dev.WaitForFrame(200 * time.Millisecond)
		if err == nil {
			break
		}
		if !errors.Is(err, ErrTimeout) {
			return capture.VideoFrame{}, fmt.Errorf("camera: %s: wait: %w", c.info.Path, classify(err))
		}
		if c.cfg.Now().After(deadline) {
			return capture.VideoFrame{}, fmt.Errorf("camera: %s: no frame for %v: %w", c.info.Path, c.cfg.FrameTimeout, capture.ErrDeviceGone)
		}
	}
	data, idx, err := c.dev.GetFrame()
	if err != nil {
		if isAgain(err) {
			return capture.VideoFrame{}, errSkip // poll woke us but the buffer went to no one; wait again
		}
		return capture.VideoFrame{}, fmt.Errorf("camera: %s: dequeue: %w", c.info.Path, classify(err))
	}
	now := c.cfg.Now()
	fr, err := c.convert(data, now)
	if rerr := c.dev.ReleaseFrame(idx); rerr != nil && err == nil {
		err = fmt.Errorf("camera: %s: requeue: %w", c.info.Path, classify(rerr))
	}
	return fr, err
}

// convert copies (or encodes) one dequeued buffer into the camera's own
// buffer. It runs while the V4L2 buffer is still dequeued, so data cannot
// change underneath it.
func (c *Camera) convert(data []byte, now time.Time) (capture.VideoFrame, error) {
	fr := capture.VideoFrame{Codec: c.info.Codec, Width: c.info.Width, Height: c.info.Height, CaptureTime: now}
	switch c.info.Fourcc {
	case FourccMJPEG, FourccJPEG:
		n := jpegLength(data)
		if n == 0 {
			c.seq++ // a corrupt frame counts as a dropped one
			return fr, errSkip
		}
		c.buf = append(c.buf[:0], data[:n]...)
		fr.Keyframe = true
	case FourccH264:
		data = trimAccessUnit(data)
		if len(data) == 0 {
			return fr, errSkip
		}
		c.buf = append(c.buf[:0], data...)
		fr.Keyframe = h264Keyframe(c.buf)
	case FourccYUYV:
		if want := c.info.Width * c.info.Height * 2; len(data) < want {
			c.seq++
			return fr, errSkip // a short buffer from a device being torn down
		}
		if c.cfg.Raw {
			c.buf = yuyvToI420(c.buf[:0], data, c.info.Width, c.info.Height)
			fr.Keyframe = true
			break
		}
		if c.info.FPS > 0 {
			if now.Before(c.next) {
				return fr, errSkip
			}
			period := time.Second / time.Duration(c.info.FPS)
			// Allow 20% early so a driver at exactly the cap rate is
			// not halved by jitter.
			c.next = now.Add(period * 8 / 10)
		}
		yuyvToYCbCr(c.yuv, data)
		c.jpegBuf.Reset()
		if err := jpeg.Encode(&c.jpegBuf, c.yuv, &jpeg.Options{Quality: c.cfg.JPEGQuality}); err != nil {
			return fr, fmt.Errorf("camera: encode JPEG: %w", err)
		}
		c.buf = append(c.buf[:0], c.jpegBuf.Bytes()...)
		fr.Keyframe = true
	}
	c.seq++
	fr.Seq = c.seq
	fr.Data = c.buf
	return fr, nil
}

// Close stops streaming and closes the device. A ReadFrame in progress
// returns ErrClosed within its wait slice.
func (c *Camera) Close() error {
	c.closing.Store(true)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	if err := c.dev.Close(); err != nil && c.gone == nil {
		return fmt.Errorf("camera: close %s: %w", c.info.Path, err)
	}
	return nil
}

// yuyvToI420 appends the I420 picture of a packed YUYV (4:2:2) frame to
// dst: luma as is, chroma averaged over each pair of rows. Both are the
// camera's own (limited) range.
func yuyvToI420(dst, src []byte, w, h int) []byte {
	ys, cw := w*h, w/2
	n := len(dst)
	need := n + ys + 2*cw*(h/2)
	if cap(dst) < need {
		nd := make([]byte, n, need)
		copy(nd, dst)
		dst = nd
	}
	dst = dst[:need]
	p := dst[n:]
	y, u, v := p[:ys], p[ys:ys+cw*(h/2)], p[ys+cw*(h/2):]
	for r := range h {
		row := src[r*w*2 : (r+1)*w*2]
		for c := range w {
			y[r*w+c] = row[2*c]
		}
	}
	for r := range h / 2 {
		r0, r1 := src[2*r*w*2:], src[(2*r+1)*w*2:]
		for c := range cw {
			u[r*cw+c] = uint8((int(r0[4*c+1]) + int(r1[4*c+1]) + 1) / 2)
			v[r*cw+c] = uint8((int(r0[4*c+3]) + int(r1[4*c+3]) + 1) / 2)
		}
	}
	return dst
}

// yuyvToYCbCr de-interleaves packed YUYV (Y0 Cb Y1 Cr) into a 4:2:2
// image.YCbCr, which image/jpeg encodes without a colour conversion.
func yuyvToYCbCr(img *image.YCbCr, src []byte) {
	w, h := img.Rect.Dx(), img.Rect.Dy()
	for y := 0; y < h; y++ {
		row := src[y*w*2 : (y+1)*w*2]
		yo, co := y*img.YStride, y*img.CStride
		for x := 0; x < w; x += 2 {
			i := x * 2
			img.Y[yo+x] = row[i]
			img.Y[yo+x+1] = row[i+2]
			img.Cb[co+x/2] = row[i+1]
			img.Cr[co+x/2] = row[i+3]
		}
	}
}

// jpegLength returns the length of the JPEG image at the start of b
// (through its EOI marker), or 0 if b does not hold a whole one. Drivers
// such as v4l2loopback report the whole buffer as used, so what follows EOI
// may be stale bytes of an earlier, larger frame. The scan walks the marker
// segments by their lengths, then the entropy-coded data, where a 0xFF byte
// is always followed by 0x00 (stuffing) or a restart marker: so the first
// other marker there is the real EOI, not a byte pattern inside an embedded
// EXIF thumbnail.
func jpegLength(b []byte) int {
	if len(b) < 4 || b[0] != 0xFF || b[1] != 0xD8 {
		return 0
	}
	i := 2
	for i+2 <= len(b) {
		if b[i] != 0xFF {
			return 0
		}
		m := b[i+1]
		switch {
		case m == 0xFF: // fill byte
			i++
			continue
		case m == 0xD9:
			return i + 2
		case m == 0x01 || (m >= 0xD0 && m <= 0xD7):
			i += 2
			continue
		}
		if i+4 > len(b) {
			return 0
		}
		seg := int(b[i+2])<<8 | int(b[i+3])
		if seg < 2 || i+2+seg > len(b) {
			return 0
		}
		i += 2 + seg
		if m != 0xDA { // not SOS
			continue
		}
		// Entropy-coded data up to the next marker that is not stuffing
		// or a restart marker.
		for i+1 < len(b) {
			if b[i] != 0xFF {
				i++
				continue
			}
			n := b[i+1]
			if n == 0x00 || (n >= 0xD0 && n <= 0xD7) || n == 0xFF {
				i++
				continue
			}
			break
		}
	}
	return 0
}

// trimAccessUnit cuts an H.264 buffer after its first access unit. A
// camera delivers one access unit per buffer, but a driver that reports
// the whole buffer as used (v4l2loopback does, at times) leaves the tail of
// an earlier, larger frame behind it: NAL units of another picture, which
// a decoder would take for a new one. The cut is where H.264 (7.4.1.2.3)
// says a new access unit begins: after a slice, an access unit delimiter,
// SEI, SPS or PPS, or a slice whose first_mb_in_slice is 0.
func trimAccessUnit(b []byte) []byte {
	seenSlice := false
	for i := 0; i+3 < len(b); i++ {
		if b[i] != 0 || b[i+1] != 0 || b[i+2] != 1 {
			continue
		}
		start := i // the start code, with its leading zero if it has one
		if start > 0 && b[start-1] == 0 {
			start--
		}
		t := b[i+3] & 0x1F
		switch {
		case t == 1 || t == 5:
			// first_mb_in_slice is ue(v): 0 is the single bit 1.
			if seenSlice && i+4 < len(b) && b[i+4]&0x80 != 0 {
				return b[:start]
			}
			seenSlice = true
		case seenSlice && (t == 6 || t == 7 || t == 8 || t == 9):
			return b[:start]
		}
		i += 2
	}
	return b
}

// h264Keyframe reports whether an Annex B access unit holds an IDR slice
// or a sequence parameter set (a decoder can start there).
func h264Keyframe(au []byte) bool {
	for i := 0; i+3 < len(au); i++ {
		if au[i] == 0 && au[i+1] == 0 && au[i+2] == 1 {
			switch au[i+3] & 0x1F {
			case 5, 7:
				return true
			}
			i += 2
		}
	}
	return false
}

// DeviceInfo describes a capture device found by List.
type DeviceInfo struct {
	Path    string
	Formats []string // fourccs the device offers
	Usable  bool     // offers MJPEG, H.264 or YUYV
}

// List finds the capture devices of this machine: the usable ones first,
// each group in node order (/dev/video0, /dev/video1, ...).
func List() []DeviceInfo { return list(openV4L2, videoNodes()) }

// list opens every node in turn and keeps the capture devices. Nodes that
// do not open as capture devices (a Pi's codec nodes, a UVC camera's
// metadata node, a device busy elsewhere) are left out.
func list(open Opener, nodes []string) []DeviceInfo {
	var usable, other []DeviceInfo
	for _, p := range nodes {
		d, err := open(p)
		if err != nil {
			continue
		}
		offered := d.Formats()
		d.Close()
		di := DeviceInfo{Path: p}
		for f := range offered {
			di.Formats = append(di.Formats, FourccString(f))
		}
		sort.Strings(di.Formats)
		if _, err := pickFormat(offered, ""); err == nil {
			di.Usable = true
			usable = append(usable, di)
		} else {
			other = append(other, di)
		}
	}
	return append(usable, other...)
}

// classify marks the errors that mean the device is no longer there
// (unplugged, driver unbound) with capture.ErrDeviceGone.
func classify(err error) error {
	if err == nil || errors.Is(err, capture.ErrDeviceGone) {
		return err
	}
	for _, gone := range []error{syscall.ENODEV, syscall.ENXIO, syscall.EIO, syscall.ENOENT, fs.ErrNotExist} {
		if errors.Is(err, gone) {
			return fmt.Errorf("%w: %w", capture.ErrDeviceGone, err)
		}
	}
	return err
}

func isAgain(err error) bool { return errors.Is(err, syscall.EAGAIN) }
