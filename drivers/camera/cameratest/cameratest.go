// Package cameratest provides a fake V4L2 device for drivers/camera: a Bus
// of device nodes that can be unplugged and plugged back, and Devices that
// deliver generated MJPEG, H.264 or YUYV frames. A Device scribbles over
// each buffer when it is queued back, so a reader that kept the driver's
// buffer instead of copying it sees garbage, as it would on real hardware.
package cameratest

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"sync"
	"syscall"
	"time"

	"github.com/callbox/callbox/drivers/camera"
)

// Device is a fake camera.Device.
type Device struct {
	// Offered maps fourccs to descriptions (camera.FourccMJPEG ...).
	Offered map[uint32]string
	// MaxWidth, MaxHeight clamp SetFormat like a driver would (0: none).
	MaxWidth, MaxHeight int
	// Trailer is appended to every MJPEG frame: v4l2loopback reports the
	// whole buffer as used, so stale bytes follow the image.
	Trailer []byte
	// Fixed, when set, is delivered as every frame instead of a generated
	// one (allocation tests: the fake itself then allocates nothing).
	Fixed []byte

	mu        sync.Mutex
	fourcc    uint32
	w, h      int
	streaming bool
	gone      bool
	closed    bool
	n         int
	bufs      [][]byte
	out       map[uint32]bool
	released  int
	fps       float32
	stalled   bool
}

// Stall makes the device stop delivering frames (a hung USB camera) while
// staying present; WaitForFrame then times out.
func (d *Device) Stall(on bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.stalled = on
}

// NewDevice returns a device offering the given formats.
func NewDevice(fourccs ...uint32) *Device {
	d := &Device{Offered: map[uint32]string{}, out: map[uint32]bool{}}
	for _, f := range fourccs {
		d.Offered[f] = camera.FourccString(f)
	}
	return d
}

func (d *Device) Formats() map[uint32]string {
	d.mu.Lock()
	defer d.mu.Unlock()
	m := make(map[uint32]string, len(d.Offered))
	for k, v := range d.Offered {
		m[k] = v
	}
	return m
}

func (d *Device) SetFormat(f uint32, w, h int) (uint32, int, int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.gone {
		return 0, 0, 0, syscall.ENODEV
	}
	if _, ok := d.Offered[f]; !ok {
		return 0, 0, 0, syscall.EINVAL
	}
	if d.MaxWidth > 0 {
		w = min(w, d.MaxWidth)
	}
	if d.MaxHeight > 0 {
		h = min(h, d.MaxHeight)
	}
	d.fourcc, d.w, d.h = f, w, h
	return f, w, h, nil
}

func (d *Device) SetFramerate(fps float32) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.fps = fps
	return nil
}

// Framerate returns the rate last requested.
func (d *Device) Framerate() float32 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.fps
}

func (d *Device) Start(buffers int) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.gone {
		return syscall.ENODEV
	}
	if d.fourcc == 0 {
		return syscall.EINVAL
	}
	d.bufs = make([][]byte, buffers)
	d.streaming = true
	return nil
}

// WaitForFrame has a frame ready at once while streaming (the fake camera
// is infinitely fast), ENODEV once unplugged.
func (d *Device) WaitForFrame(timeout time.Duration) error {
	d.mu.Lock()
	if d.stalled {
		d.mu.Unlock()
		time.Sleep(timeout)
		return camera.ErrTimeout
	}
	defer d.mu.Unlock()
	switch {
	case d.gone:
		return syscall.ENODEV
	case !d.streaming:
		return syscall.EINVAL
	case len(d.out) == len(d.bufs):
		return camera.ErrTimeout // every buffer is with the reader
	}
	return nil
}

func (d *Device) GetFrame() ([]byte, uint32, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.gone {
		return nil, 0, syscall.ENODEV
	}
	var idx uint32
	for ; int(idx) < len(d.bufs) && d.out[idx]; idx++ {
	}
	if int(idx) == len(d.bufs) {
		return nil, 0, syscall.EAGAIN
	}
	d.n++
	d.bufs[idx] = append(d.bufs[idx][:0], d.frame(d.n)...)
	d.out[idx] = true
	return d.bufs[idx], idx, nil
}

func (d *Device) ReleaseFrame(idx uint32) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.gone {
		return syscall.ENODEV
	}
	if !d.out[idx] {
		return syscall.EINVAL
	}
	delete(d.out, idx)
	d.released++
	for i := range d.bufs[idx] {
		d.bufs[idx][i] = 0xEE // the driver fills the buffer again
	}
	return nil
}

func (d *Device) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.closed = true
	d.streaming = false
	return nil
}

// Unplug makes every further call fail as a vanished USB device does.
func (d *Device) Unplug() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.gone = true
}

// Stats reports frames produced, buffers given back, and whether Close ran.
func (d *Device) Stats() (produced, released int, closed bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.n, d.released, d.closed
}

func (d *Device) frame(n int) []byte {
	if d.Fixed != nil {
		return d.Fixed
	}
	switch d.fourcc {
	case camera.FourccMJPEG, camera.FourccJPEG:
		return append(JPEG(d.w, d.h, n), d.Trailer...)
	case camera.FourccH264:
		return H264(n)
	case camera.FourccYUYV:
		return YUYV(d.w, d.h, n)
	}
	return nil
}

// JPEG encodes a w x h test picture whose colour depends on n.
func JPEG(w, h, n int) []byte {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			img.Set(x, y, color.RGBA{uint8(x + n), uint8(y), uint8(n * 16), 255})
		}
	}
	var b bytes.Buffer
	// Encoding an in-memory RGBA image into a bytes.Buffer cannot fail.
	_ = jpeg.Encode(&b, img, &jpeg.Options{Quality: 80})
	return b.Bytes()
}

// YUYV returns a w x h packed YUYV picture: luma ramps left to right
// (16..231), shifted by n%16; chroma neutral.
func YUYV(w, h, n int) []byte {
	b := make([]byte, w*h*2)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			i := (y*w + x) * 2
			b[i] = uint8(16 + x*200/w + n%16)
			b[i+1] = 128
		}
	}
	return b
}

// H264 returns an Annex B access unit: SPS+PPS+IDR every 10th, else a
// non-IDR slice. The slice bytes are placeholders, not decodable video.
func H264(n int) []byte {
	if n%10 == 1 {
		return []byte{0, 0, 0, 1, 0x67, 0x42, 0, 0x1f, 0, 0, 0, 1, 0x68, 0xce, 0x38, 0x80, 0, 0, 0, 1, 0x65, 0x88, byte(n)}
	}
	return []byte{0, 0, 0, 1, 0x41, 0x9a, byte(n)}
}

// Bus is a set of device nodes: an Opener that fails for a node with no
// device plugged in.
type Bus struct {
	mu    sync.Mutex
	nodes map[string]*Device
	opens int
}

// NewBus returns an empty bus.
func NewBus() *Bus { return &Bus{nodes: map[string]*Device{}} }

// Plug attaches d at path.
func (b *Bus) Plug(path string, d *Device) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.nodes[path] = d
}

// Unplug removes the device at path and makes it fail like a vanished one.
func (b *Bus) Unplug(path string) {
	b.mu.Lock()
	d := b.nodes[path]
	delete(b.nodes, path)
	b.mu.Unlock()
	if d != nil {
		d.Unplug()
	}
}

// Opens counts Open calls.
func (b *Bus) Opens() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.opens
}

// Open is a camera.Opener.
func (b *Bus) Open(path string) (camera.Device, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.opens++
	d, ok := b.nodes[path]
	if !ok {
		return nil, fmt.Errorf("open %s: %w", path, syscall.ENOENT)
	}
	return d, nil
}
