//go:build linux

package encoder

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/callbox/callbox/capture"
)

// Decoder is a V4L2 stateful M2M decoder for a stream of known size:
// compressed frames in on the OUTPUT queue, I420 pictures out on CAPTURE.
// Both formats are set before streaming, so a driver that checks the
// stream's size against the CAPTURE format (vicodec) decodes at once; one
// that insists on the source-change dance is not supported. callbox uses
// it to check the encoder's output in the HIL VM (vicodec), and it is the
// piece an MJPEG-to-H.264 path would use on a board's hardware JPEG
// decoder.
type Decoder struct {
	e *Encoder // same queues and buffers, roles swapped
}

// OpenDecoder opens the decoder at path from codec to I420 w x h.
func OpenDecoder(path string, codec uint32, w, h int) (*Decoder, error) {
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, wrap("open "+path, err)
	}
	e := &Encoder{cfg: Config{Codec: codec, Width: w, Height: h, Buffers: 2, Timeout: 2 * time.Second}, fd: fd}
	le := binary.LittleEndian
	if _, err := e.setFmt(bufTypeOutputMPlane, codec, w, h, 0); err != nil {
		e.release()
		return nil, err
	}
	cf, err := e.setFmt(bufTypeCaptureMPlane, FourccI420, w, h, 0)
	if err != nil {
		e.release()
		return nil, err
	}
	e.outBPL, e.outH = int(le.Uint32(cf.Fmt[24:])), int(le.Uint32(cf.Fmt[4:]))
	if e.out, err = e.allocate(bufTypeOutputMPlane); err == nil {
		e.cap, err = e.allocate(bufTypeCaptureMPlane)
	}
	if err != nil {
		e.release()
		return nil, err
	}
	for i := range e.cap {
		if err := e.queueCapture(i); err != nil {
			e.release()
			return nil, err
		}
	}
	for _, t := range []uint32{bufTypeOutputMPlane, bufTypeCaptureMPlane} {
		typ := t
		if err := ioctl(fd, vidiocStreamOn, unsafe.Pointer(&typ)); err != nil {
			e.release()
			return nil, wrap("VIDIOC_STREAMON", err)
		}
	}
	return &Decoder{e: e}, nil
}

// Decode decodes one compressed frame and appends the I420 picture
// (packed, no padding) to dst.
func (d *Decoder) Decode(dst, frame []byte) ([]byte, error) {
	e := d.e
	i, err := e.freeOutput()
	if err != nil {
		return dst, err
	}
	if len(frame) > len(e.out[i].mem) {
		return dst, fmt.Errorf("encoder: compressed frame of %d bytes exceeds the %d-byte buffer", len(frame), len(e.out[i].mem))
	}
	copy(e.out[i].mem, frame)
	if err := e.queue(bufTypeOutputMPlane, i, len(frame)); err != nil {
		return dst, err
	}
	e.out[i].queued = true
	ci, n, flags, err := e.dequeue(bufTypeCaptureMPlane)
	if err == nil && n == 0 && flags&bufFlagLast != 0 {
		// The source-change handshake: the driver read the stream's
		// header, found it differs from what it assumed (vicodec always
		// does on the first frame, as the size is set only by the
		// stream) and ended the CAPTURE queue with an empty LAST buffer.
		// The size is the one we set, so restarting CAPTURE with the
		// same buffers acknowledges it.
		if err := e.restartCapture("source change"); err != nil {
			return dst, err
		}
		ci, n, flags, err = e.dequeue(bufTypeCaptureMPlane)
	}
	if err != nil {
		return dst, err
	}
	mem := e.cap[ci].mem
	w, h := e.cfg.Width, e.cfg.Height
	bpl, cbpl := e.outBPL, e.outBPL/2
	uOff := bpl * e.outH
	vOff := uOff + cbpl*(e.outH/2)
	if flags&bufFlagError != 0 || n < vOff+cbpl*(h/2) {
		_ = e.queueCapture(ci)
		return dst, fmt.Errorf("encoder: decoder returned %d bytes (flags %#x)", n, flags)
	}
	start := len(dst)
	dst = append(dst, make([]byte, capture.I420Size(w, h))...)
	p := dst[start:]
	for r := range h {
		copy(p[r*w:(r+1)*w], mem[r*bpl:r*bpl+w])
	}
	ys, cs := w*h, (w/2)*(h/2)
	for r := range h / 2 {
		copy(p[ys+r*(w/2):ys+(r+1)*(w/2)], mem[uOff+r*cbpl:uOff+r*cbpl+w/2])
		copy(p[ys+cs+r*(w/2):ys+cs+(r+1)*(w/2)], mem[vOff+r*cbpl:vOff+r*cbpl+w/2])
	}
	if err := e.queueCapture(ci); err != nil && !errors.Is(err, ErrStopped) {
		return dst, err
	}
	return dst, nil
}

// Close releases the decoder.
func (d *Decoder) Close() error { return d.e.Close() }
