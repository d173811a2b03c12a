//go:build linux

package encoder

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/callbox/callbox/capture"
	"github.com/callbox/callbox/capture/h264enc"
)

// V4L2 ABI (include/uapi/linux/videodev2.h, v4l2-controls.h).
const (
	bufTypeOutputMPlane  = 10 // V4L2_BUF_TYPE_VIDEO_OUTPUT_MPLANE
	bufTypeCaptureMPlane = 9  // V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE
	memoryMMAP           = 1
	fieldNone            = 1

	capM2MMPlane   = 0x00004000
	capStreaming   = 0x04000000
	capDeviceCaps  = 0x80000000
	fmtFlagCompr   = 0x0001
	bufFlagKey     = 0x00000008
	bufFlagLast    = 0x00100000
	bufFlagError   = 0x00000040
	encCmdStart    = 0
	encCmdStop     = 1
	cidCodecBase   = 0x00990000 | 0x900
	cidGOPSize     = cidCodecBase + 203
	cidBitrateMode = cidCodecBase + 206
	cidBitrate     = cidCodecBase + 207
	cidHeaderMode  = cidCodecBase + 216
	cidRepeatSeq   = cidCodecBase + 226
	cidForceKey    = cidCodecBase + 229
	cidH264IPeriod = cidCodecBase + 358
	cidH264Level   = cidCodecBase + 359
	cidH264Profile = cidCodecBase + 363
	cidPrependSPS  = cidCodecBase + 644

	bitrateModeVBR = 0
	bitrateModeCBR = 1
	headerJoined   = 1 // V4L2_MPEG_VIDEO_HEADER_MODE_JOINED_WITH_1ST_FRAME
	fwhtFlagIFrame = 1 << 10
)

// v4l2Plane is struct v4l2_plane.
type v4l2Plane struct {
	Bytesused  uint32
	Length     uint32
	M          uintptr // union: mem_offset (low 32 bits), userptr, fd
	DataOffset uint32
	Reserved   [11]uint32
}

// v4l2Timecode is struct v4l2_timecode.
type v4l2Timecode struct {
	Type, Flags                     uint32
	Frames, Seconds, Minutes, Hours uint8
	Userbits                        [4]uint8
}

// v4l2Buffer is struct v4l2_buffer (the layout of the running
// architecture: Go pads Timestamp and M as C does).
type v4l2Buffer struct {
	Index, Type, Bytesused, Flags, Field uint32
	Timestamp                            unix.Timeval
	Timecode                             v4l2Timecode
	Sequence, Memory                     uint32
	M                                    uintptr // union: offset, userptr, planes, fd
	Length                               uint32
	Reserved2                            uint32
	RequestFD                            int32
}

type v4l2RequestBuffers struct {
	Count, Type, Memory, Capabilities uint32
	Flags                             uint8
	Reserved                          [3]uint8
}

type v4l2Capability struct {
	Driver       [16]byte
	Card         [32]byte
	BusInfo      [32]byte
	Version      uint32
	Capabilities uint32
	DeviceCaps   uint32
	Reserved     [3]uint32
}

type v4l2FmtDesc struct {
	Index, Type, Flags uint32
	Description        [32]byte
	PixelFormat        uint32
	MbusCode           uint32
	Reserved           [3]uint32
}

// v4l2Format is struct v4l2_format: the union is 8-aligned on 64-bit
// (it holds pointers), 4-aligned on 32-bit.
type v4l2Format struct {
	Type uint32
	_    [unsafe.Sizeof(uintptr(0)) - 4]byte
	Fmt  [200]byte
}

type v4l2Control struct {
	ID    uint32
	Value int32
}

type v4l2EncoderCmd struct {
	Cmd, Flags uint32
	Data       [8]uint32
}

type v4l2StreamParm struct {
	Type uint32
	Parm [200]byte
}

func ioc(dir, nr, size uintptr) uintptr { return dir<<30 | size<<16 | 'V'<<8 | nr }

const (
	iocW  = 1
	iocR  = 2
	iocRW = 3
)

var (
	vidiocQueryCap   = ioc(iocR, 0, unsafe.Sizeof(v4l2Capability{}))
	vidiocEnumFmt    = ioc(iocRW, 2, unsafe.Sizeof(v4l2FmtDesc{}))
	vidiocGFmt       = ioc(iocRW, 4, unsafe.Sizeof(v4l2Format{}))
	vidiocSFmt       = ioc(iocRW, 5, unsafe.Sizeof(v4l2Format{}))
	vidiocReqBufs    = ioc(iocRW, 8, unsafe.Sizeof(v4l2RequestBuffers{}))
	vidiocQueryBuf   = ioc(iocRW, 9, unsafe.Sizeof(v4l2Buffer{}))
	vidiocQBuf       = ioc(iocRW, 15, unsafe.Sizeof(v4l2Buffer{}))
	vidiocDQBuf      = ioc(iocRW, 17, unsafe.Sizeof(v4l2Buffer{}))
	vidiocStreamOn   = ioc(iocW, 18, 4)
	vidiocStreamOff  = ioc(iocW, 19, 4)
	vidiocSParm      = ioc(iocRW, 22, unsafe.Sizeof(v4l2StreamParm{}))
	vidiocSCtrl      = ioc(iocRW, 28, unsafe.Sizeof(v4l2Control{}))
	vidiocEncoderCmd = ioc(iocRW, 77, unsafe.Sizeof(v4l2EncoderCmd{}))
)

func ioctl(fd int, req uintptr, arg unsafe.Pointer) error {
	for {
		_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), req, uintptr(arg))
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return e
		}
		return nil
	}
}

func cstr(b []byte) string {
	if i := strings.IndexByte(string(b), 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// gone reports whether err means the device has disappeared.
func gone(err error) bool {
	return errors.Is(err, unix.ENODEV) || errors.Is(err, unix.ENXIO) || errors.Is(err, unix.ENOENT) ||
		errors.Is(err, unix.EIO) || errors.Is(err, unix.ESHUTDOWN)
}

func wrap(op string, err error) error {
	if gone(err) {
		return fmt.Errorf("encoder: %s: %w (%w)", op, capture.ErrDeviceGone, err)
	}
	return fmt.Errorf("encoder: %s: %w", op, err)
}

// formats lists the pixel formats a queue offers.
func formats(fd int, typ uint32) (raw, compressed []uint32) {
	for i := uint32(0); i < 64; i++ {
		d := v4l2FmtDesc{Index: i, Type: typ}
		if ioctl(fd, vidiocEnumFmt, unsafe.Pointer(&d)) != nil {
			break
		}
		if d.Flags&fmtFlagCompr != 0 {
			compressed = append(compressed, d.PixelFormat)
		} else {
			raw = append(raw, d.PixelFormat)
		}
	}
	return raw, compressed
}

// examine says whether the node at path is a multi-planar M2M encoder from
// I420 to codec.
func examine(path string, codec uint32) (Found, string) {
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return Found{}, err.Error()
	}
	defer unix.Close(fd)
	var c v4l2Capability
	if err := ioctl(fd, vidiocQueryCap, unsafe.Pointer(&c)); err != nil {
		return Found{}, "VIDIOC_QUERYCAP: " + err.Error()
	}
	caps := c.Capabilities
	if caps&capDeviceCaps != 0 {
		caps = c.DeviceCaps
	}
	f := Found{Path: path, Card: cstr(c.Card[:]), Driver: cstr(c.Driver[:])}
	if caps&capM2MMPlane == 0 || caps&capStreaming == 0 {
		return f, "not a multi-planar memory-to-memory device"
	}
	_, outCompressed := formats(fd, bufTypeOutputMPlane)
	capRaw, capCompressed := formats(fd, bufTypeCaptureMPlane)
	outRaw, _ := formats(fd, bufTypeOutputMPlane)
	if len(outCompressed) > 0 && len(capRaw) > 0 {
		return f, "a decoder (compressed in, raw out)"
	}
	hasCodec, hasI420 := false, false
	for _, p := range capCompressed {
		hasCodec = hasCodec || p == codec
	}
	for _, p := range outRaw {
		hasI420 = hasI420 || p == FourccI420
	}
	switch {
	case !hasCodec:
		return f, "does not encode " + FourccString(codec)
	case !hasI420:
		return f, "takes no I420 (YU12) input"
	}
	return f, ""
}

// Probe looks through /dev/video* for an encoder to codec (FourccH264 when
// 0). It returns the first one found, and why every other node is not one.
func Probe(codec uint32) (Found, []Rejected, error) {
	if codec == 0 {
		codec = FourccH264
	}
	nodes, _ := filepath.Glob("/dev/video*")
	sort.Slice(nodes, func(i, j int) bool {
		if len(nodes[i]) != len(nodes[j]) {
			return len(nodes[i]) < len(nodes[j])
		}
		return nodes[i] < nodes[j]
	})
	var rej []Rejected
	for _, n := range nodes {
		f, why := examine(n, codec)
		if why == "" {
			return f, rej, nil
		}
		rej = append(rej, Rejected{Path: n, Why: why})
	}
	return Found{}, rej, fmt.Errorf("%w (to %s among %d video nodes)", ErrNoDevice, FourccString(codec), len(nodes))
}

// mapped is one mmap'ed buffer (one plane).
type mapped struct {
	mem    []byte
	queued bool
}

// Encoder is an open M2M encoder session. It implements h264enc.Engine;
// its methods are for one goroutine at a time (h264enc.Stage serialises
// them), except Close.
type Encoder struct {
	cfg      Config
	found    Found
	fd       int
	out, cap []mapped
	outBPL   int // OUTPUT bytesperline of the Y plane
	outH     int // OUTPUT plane height the driver laid out
	bits     []byte
	forceCtl bool // the device has V4L2_CID_MPEG_VIDEO_FORCE_KEY_FRAME
	stopped  bool // drained; Start restarts
	lastKey  bool
	closeMu  sync.Mutex
	closed   bool
	name     string
}

var _ h264enc.Engine = (*Encoder)(nil)

// Open opens and starts the encoder.
func Open(cfg Config) (*Encoder, error) {
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	var found Found
	if cfg.Device == "" {
		f, _, err := Probe(cfg.Codec)
		if err != nil {
			return nil, err
		}
		found = f
	} else {
		f, why := examine(cfg.Device, cfg.Codec)
		if why != "" {
			if _, err := os.Stat(cfg.Device); err != nil {
				return nil, wrap("open "+cfg.Device, err)
			}
			return nil, fmt.Errorf("%w: %s: %s", ErrNoDevice, cfg.Device, why)
		}
		found = f
	}
	fd, err := unix.Open(found.Path, unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, wrap("open "+found.Path, err)
	}
	e := &Encoder{cfg: cfg, found: found, fd: fd,
		name: fmt.Sprintf("V4L2 M2M %s encoder %s (%s)", FourccString(cfg.Codec), found.Path, found.Card)}
	if err := e.setup(); err != nil {
		e.release()
		return nil, err
	}
	return e, nil
}

// Name says which encoder this is.
func (e *Encoder) Name() string { return e.name }

// Found returns the device the encoder runs on.
func (e *Encoder) Found() Found { return e.found }

// LastKeyframe reports whether the last Encode's output was a keyframe as
// the driver flagged it (or as the bitstream's header says).
func (e *Encoder) LastKeyframe() bool { return e.lastKey }

func (e *Encoder) setFmt(typ, pixfmt uint32, w, h, sizeimage int) (v4l2Format, error) {
	f := v4l2Format{Type: typ}
	le := binary.LittleEndian
	le.PutUint32(f.Fmt[0:], uint32(w))
	le.PutUint32(f.Fmt[4:], uint32(h))
	le.PutUint32(f.Fmt[8:], pixfmt)
	le.PutUint32(f.Fmt[12:], fieldNone)
	le.PutUint32(f.Fmt[20:], uint32(sizeimage)) // plane_fmt[0].sizeimage
	f.Fmt[180] = 1                              // num_planes
	if err := ioctl(e.fd, vidiocSFmt, unsafe.Pointer(&f)); err != nil {
		return f, wrap(fmt.Sprintf("VIDIOC_S_FMT %s %dx%d", FourccString(pixfmt), w, h), err)
	}
	if got := le.Uint32(f.Fmt[8:]); got != pixfmt {
		return f, fmt.Errorf("encoder: the device chose %s instead of %s", FourccString(got), FourccString(pixfmt))
	}
	return f, nil
}

// SetBitrate changes the target bitrate while encoding (a call's
// congestion controller follows its bandwidth estimate); a device without
// the control keeps its rate and says so.
func (e *Encoder) SetBitrate(bps int) error {
	ok, err := e.ctrl(cidBitrate, int32(bps))
	if err == nil && !ok {
		err = fmt.Errorf("encoder: %s has no bitrate control", e.name)
	}
	return err
}

// ctrl sets a control; ok is false when the device does not have it.
func (e *Encoder) ctrl(id uint32, v int32) (ok bool, err error) {
	c := v4l2Control{ID: id, Value: v}
	err = ioctl(e.fd, vidiocSCtrl, unsafe.Pointer(&c))
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOTTY) || errors.Is(err, unix.ERANGE) {
		return false, nil
	}
	if err != nil {
		return false, wrap(fmt.Sprintf("VIDIOC_S_CTRL %#x=%d", id, v), err)
	}
	return true, nil
}

func (e *Encoder) setup() error {
	c := e.cfg
	le := binary.LittleEndian
	// The spec's order: the coded format on CAPTURE first, then the raw
	// format on OUTPUT.
	if _, err := e.setFmt(bufTypeCaptureMPlane, c.Codec, c.Width, c.Height, 0); err != nil {
		return err
	}
	of, err := e.setFmt(bufTypeOutputMPlane, FourccI420, c.Width, c.Height, 0)
	if err != nil {
		return err
	}
	w, h := int(le.Uint32(of.Fmt[0:])), int(le.Uint32(of.Fmt[4:]))
	if w < c.Width || h < c.Height {
		return fmt.Errorf("encoder: the device takes %dx%d, not %dx%d", w, h, c.Width, c.Height)
	}
	e.outBPL = int(le.Uint32(of.Fmt[24:])) // plane_fmt[0].bytesperline
	e.outH = h
	if e.outBPL < c.Width {
		e.outBPL = w
	}
	// Frame rate (rate control needs it); not every device takes it.
	var sp v4l2StreamParm
	sp.Type = bufTypeOutputMPlane
	le.PutUint32(sp.Parm[8:], 1)              // timeperframe.numerator
	le.PutUint32(sp.Parm[12:], uint32(c.FPS)) // timeperframe.denominator
	_ = ioctl(e.fd, vidiocSParm, unsafe.Pointer(&sp))

	// Controls. Each is optional: a device without it keeps its default
	// (vicodec has only the GOP size).
	if c.Codec == FourccH264 {
		prof := map[h264enc.Profile]int32{h264enc.ProfileConstrainedBaseline: 1, h264enc.ProfileMain: 2, h264enc.ProfileHigh: 4}[c.Profile]
		if ok, err := e.ctrl(cidH264Profile, prof); err != nil {
			return err
		} else if !ok && c.Profile == h264enc.ProfileConstrainedBaseline {
			// Some drivers list only baseline (0).
			if _, err := e.ctrl(cidH264Profile, 0); err != nil {
				return err
			}
		}
		for _, s := range []struct {
			id uint32
			v  int32
		}{
			{cidH264Level, 11}, // 4.0: 1080p30, enough for 720p60
			{cidBitrateMode, bitrateModeCBR},
			{cidBitrate, int32(c.Bitrate)},
			{cidH264IPeriod, int32(c.GOP)},
			{cidHeaderMode, headerJoined},
			{cidRepeatSeq, 1},  // bcm2835-codec: SPS/PPS with every IDR
			{cidPrependSPS, 1}, // the newer, generic name for the same
		} {
			if _, err := e.ctrl(s.id, s.v); err != nil {
				return err
			}
		}
	}
	if _, err := e.ctrl(cidGOPSize, int32(c.GOP)); err != nil {
		return err
	}
	// Does the device force keyframes? Setting the button control to 0 is
	// refused (it is a button), so probe with the real request later; the
	// control's presence is enough.
	e.forceCtl = e.hasControl(cidForceKey)

	var err2 error
	if e.out, err2 = e.allocate(bufTypeOutputMPlane); err2 != nil {
		return err2
	}
	if e.cap, err2 = e.allocate(bufTypeCaptureMPlane); err2 != nil {
		return err2
	}
	for i := range e.cap {
		if err := e.queueCapture(i); err != nil {
			return err
		}
	}
	for _, t := range []uint32{bufTypeOutputMPlane, bufTypeCaptureMPlane} {
		typ := t
		if err := ioctl(e.fd, vidiocStreamOn, unsafe.Pointer(&typ)); err != nil {
			return wrap("VIDIOC_STREAMON", err)
		}
	}
	return nil
}

// v4l2QueryCtrl is struct v4l2_queryctrl.
type v4l2QueryCtrl struct {
	ID, Type                             uint32
	Name                                 [32]byte
	Minimum, Maximum, Step, DefaultValue int32
	Flags                                uint32
	Reserved                             [2]uint32
}

var vidiocQueryCtrl = ioc(iocRW, 36, unsafe.Sizeof(v4l2QueryCtrl{}))

func (e *Encoder) hasControl(id uint32) bool {
	q := v4l2QueryCtrl{ID: id}
	return ioctl(e.fd, vidiocQueryCtrl, unsafe.Pointer(&q)) == nil && q.Flags&0x0001 == 0 // not DISABLED
}

func (e *Encoder) allocate(typ uint32) ([]mapped, error) {
	rb := v4l2RequestBuffers{Count: uint32(e.cfg.Buffers), Type: typ, Memory: memoryMMAP}
	if err := ioctl(e.fd, vidiocReqBufs, unsafe.Pointer(&rb)); err != nil {
		return nil, wrap("VIDIOC_REQBUFS", err)
	}
	if rb.Count == 0 {
		return nil, fmt.Errorf("encoder: the device gave no buffers")
	}
	bufs := make([]mapped, rb.Count)
	for i := range bufs {
		var pl v4l2Plane
		b := v4l2Buffer{Index: uint32(i), Type: typ, Memory: memoryMMAP, M: uintptr(unsafe.Pointer(&pl)), Length: 1}
		if err := ioctl(e.fd, vidiocQueryBuf, unsafe.Pointer(&b)); err != nil {
			return bufs, wrap("VIDIOC_QUERYBUF", err)
		}
		mem, err := unix.Mmap(e.fd, int64(uint32(pl.M)), int(pl.Length), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
		if err != nil {
			return bufs, wrap("mmap", err)
		}
		bufs[i].mem = mem
	}
	return bufs, nil
}

func (e *Encoder) queue(typ uint32, i int, bytesused int) error {
	pl := v4l2Plane{Bytesused: uint32(bytesused)}
	if typ == bufTypeOutputMPlane {
		pl.Length = uint32(len(e.out[i].mem))
	} else {
		pl.Length = uint32(len(e.cap[i].mem))
	}
	b := v4l2Buffer{Index: uint32(i), Type: typ, Memory: memoryMMAP, Field: fieldNone, M: uintptr(unsafe.Pointer(&pl)), Length: 1}
	if typ == bufTypeOutputMPlane {
		now := time.Now()
		b.Timestamp = unix.NsecToTimeval(now.UnixNano())
	}
	if err := ioctl(e.fd, vidiocQBuf, unsafe.Pointer(&b)); err != nil {
		return wrap("VIDIOC_QBUF", err)
	}
	return nil
}

func (e *Encoder) queueCapture(i int) error {
	if err := e.queue(bufTypeCaptureMPlane, i, 0); err != nil {
		return err
	}
	e.cap[i].queued = true
	return nil
}

// dequeue takes one done buffer of typ, waiting up to the timeout.
func (e *Encoder) dequeue(typ uint32) (idx int, bytesused int, flags uint32, err error) {
	deadline := time.Now().Add(e.cfg.Timeout)
	for {
		var pl v4l2Plane
		b := v4l2Buffer{Type: typ, Memory: memoryMMAP, M: uintptr(unsafe.Pointer(&pl)), Length: 1}
		err := ioctl(e.fd, vidiocDQBuf, unsafe.Pointer(&b))
		if err == nil {
			return int(b.Index), int(pl.Bytesused), b.Flags, nil
		}
		if errors.Is(err, unix.EPIPE) {
			return -1, 0, bufFlagLast, ErrStopped
		}
		if !errors.Is(err, unix.EAGAIN) {
			return -1, 0, 0, wrap("VIDIOC_DQBUF", err)
		}
		left := time.Until(deadline)
		if left <= 0 {
			return -1, 0, 0, ErrTimeout
		}
		ev := int16(unix.POLLIN)
		if typ == bufTypeOutputMPlane {
			ev = unix.POLLOUT
		}
		fds := []unix.PollFd{{Fd: int32(e.fd), Events: ev}}
		n, perr := unix.Poll(fds, int(left/time.Millisecond)+1)
		if perr != nil && !errors.Is(perr, unix.EINTR) {
			return -1, 0, 0, wrap("poll", perr)
		}
		if n > 0 && fds[0].Revents&(unix.POLLERR|unix.POLLHUP|unix.POLLNVAL) != 0 && fds[0].Revents&ev == 0 {
			// POLLERR without data: the queue is not streaming or the
			// device is going away; DQBUF says which on the next turn.
			var pl2 v4l2Plane
			b2 := v4l2Buffer{Type: typ, Memory: memoryMMAP, M: uintptr(unsafe.Pointer(&pl2)), Length: 1}
			if err := ioctl(e.fd, vidiocDQBuf, unsafe.Pointer(&b2)); err == nil {
				return int(b2.Index), int(pl2.Bytesused), b2.Flags, nil
			} else if !errors.Is(err, unix.EAGAIN) {
				if errors.Is(err, unix.EPIPE) {
					return -1, 0, bufFlagLast, ErrStopped
				}
				return -1, 0, 0, wrap("VIDIOC_DQBUF", err)
			}
			return -1, 0, 0, fmt.Errorf("encoder: poll: %w (revents %#x)", capture.ErrDeviceGone, fds[0].Revents)
		}
	}
}

// reclaimOutputs takes back every OUTPUT buffer the driver has finished
// with, without waiting.
func (e *Encoder) reclaimOutputs() error {
	for {
		var pl v4l2Plane
		b := v4l2Buffer{Type: bufTypeOutputMPlane, Memory: memoryMMAP, M: uintptr(unsafe.Pointer(&pl)), Length: 1}
		err := ioctl(e.fd, vidiocDQBuf, unsafe.Pointer(&b))
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EPIPE) {
			return nil
		}
		if err != nil {
			return wrap("VIDIOC_DQBUF", err)
		}
		if int(b.Index) < len(e.out) {
			e.out[b.Index].queued = false
		}
	}
}

// restartCapture stops and restarts the CAPTURE queue with all its buffers
// queued again: the interface's reset (a new GOP for an encoder; for a
// decoder, the acknowledgement of a source change).
func (e *Encoder) restartCapture(op string) error {
	typ := uint32(bufTypeCaptureMPlane)
	if err := ioctl(e.fd, vidiocStreamOff, unsafe.Pointer(&typ)); err != nil {
		return wrap("VIDIOC_STREAMOFF ("+op+")", err)
	}
	for i := range e.cap {
		e.cap[i].queued = false
		if err := e.queueCapture(i); err != nil {
			return err
		}
	}
	if err := ioctl(e.fd, vidiocStreamOn, unsafe.Pointer(&typ)); err != nil {
		return wrap("VIDIOC_STREAMON ("+op+")", err)
	}
	e.stopped = false
	return nil
}

// freeOutput returns an OUTPUT buffer not held by the driver, reclaiming
// finished ones.
func (e *Encoder) freeOutput() (int, error) {
	if err := e.reclaimOutputs(); err != nil {
		return -1, err
	}
	for i := range e.out {
		if !e.out[i].queued {
			return i, nil
		}
	}
	i, _, _, err := e.dequeue(bufTypeOutputMPlane)
	if err != nil {
		return -1, err
	}
	e.out[i].queued = false
	return i, nil
}

// Encode encodes one I420 picture and returns its bitstream (owned by the
// Encoder until the next call).
func (e *Encoder) Encode(pic []byte, forceIDR bool) ([]byte, error) {
	if e.closed {
		return nil, ErrClosed
	}
	if e.stopped {
		return nil, ErrStopped
	}
	w, h := e.cfg.Width, e.cfg.Height
	if len(pic) != capture.I420Size(w, h) {
		return nil, h264enc.ErrFormat
	}
	if forceIDR {
		if err := e.forceKeyframe(); err != nil {
			return nil, err
		}
	}
	i, err := e.freeOutput()
	if err != nil {
		return nil, err
	}
	// Copy the three planes at the driver's strides: Y at bytesperline,
	// then U and V at half of it, each plane outH (or outH/2) rows tall.
	dst := e.out[i].mem
	bpl, cbpl := e.outBPL, e.outBPL/2
	ys, cs := w*h, (w/2)*(h/2)
	uOff := bpl * e.outH
	vOff := uOff + cbpl*(e.outH/2)
	if vOff+cbpl*(h/2) > len(dst) {
		return nil, fmt.Errorf("encoder: OUTPUT buffer of %d bytes is too small for %dx%d at stride %d", len(dst), w, h, bpl)
	}
	for r := range h {
		copy(dst[r*bpl:r*bpl+w], pic[r*w:(r+1)*w])
	}
	for r := range h / 2 {
		copy(dst[uOff+r*cbpl:uOff+r*cbpl+w/2], pic[ys+r*(w/2):ys+(r+1)*(w/2)])
		copy(dst[vOff+r*cbpl:vOff+r*cbpl+w/2], pic[ys+cs+r*(w/2):ys+cs+(r+1)*(w/2)])
	}
	if err := e.queue(bufTypeOutputMPlane, i, vOff+cbpl*(e.outH/2)); err != nil {
		return nil, err
	}
	e.out[i].queued = true
	return e.collect()
}

// collect waits for the next CAPTURE buffer and copies its bitstream out.
func (e *Encoder) collect() ([]byte, error) {
	for {
		ci, n, flags, err := e.dequeue(bufTypeCaptureMPlane)
		if err != nil {
			if errors.Is(err, ErrStopped) {
				e.stopped = true
			}
			return nil, err
		}
		e.cap[ci].queued = false
		e.bits = append(e.bits[:0], e.cap[ci].mem[:min(n, len(e.cap[ci].mem))]...)
		last := flags&bufFlagLast != 0
		if err := e.queueCapture(ci); err != nil {
			return nil, err
		}
		if last {
			e.stopped = true
		}
		if flags&bufFlagError != 0 {
			return nil, fmt.Errorf("encoder: the device flagged the bitstream buffer as an error")
		}
		if n == 0 && !last {
			continue // an empty buffer (some drivers send one after a header)
		}
		e.lastKey = flags&bufFlagKey != 0 || e.keyFromBitstream(e.bits)
		return e.bits, nil
	}
}

func (e *Encoder) keyFromBitstream(b []byte) bool {
	switch e.cfg.Codec {
	case FourccH264:
		return h264enc.IsKeyframe(b)
	case FourccFWHT:
		// struct fwht_cframe_hdr: magic1, magic2, version, width,
		// height, flags (big-endian) ...
		return len(b) >= 24 && binary.BigEndian.Uint32(b[20:])&fwhtFlagIFrame != 0
	}
	return false
}

// forceKeyframe makes the next picture a keyframe: with the device's
// FORCE_KEY_FRAME control, or, on a device without it (vicodec), by
// restarting the CAPTURE queue, which the stateful encoder interface
// defines as a reset: the next picture starts a new GOP.
func (e *Encoder) forceKeyframe() error {
	if e.forceCtl {
		if ok, err := e.ctrl(cidForceKey, 1); err != nil || ok {
			return err
		}
	}
	return e.restartCapture("keyframe")
}

// Drain finishes the pictures already queued (V4L2_ENC_CMD_STOP) and
// returns their bitstreams, up to the buffer the driver flags LAST. The
// encoder then encodes nothing until Start.
func (e *Encoder) Drain() ([][]byte, error) {
	if e.closed {
		return nil, ErrClosed
	}
	cmd := v4l2EncoderCmd{Cmd: encCmdStop}
	if err := ioctl(e.fd, vidiocEncoderCmd, unsafe.Pointer(&cmd)); err != nil {
		return nil, wrap("VIDIOC_ENCODER_CMD stop", err)
	}
	var outs [][]byte
	for !e.stopped {
		b, err := e.collect()
		if errors.Is(err, ErrStopped) {
			break
		}
		if err != nil {
			return outs, err
		}
		if len(b) > 0 {
			outs = append(outs, append([]byte(nil), b...))
		}
	}
	e.stopped = true
	return outs, e.reclaimOutputs()
}

// Start resumes encoding after Drain: V4L2_ENC_CMD_START, then a restart
// of the CAPTURE queue, the interface's other way to resume, because
// drivers differ in whether the command alone re-arms a CAPTURE queue that
// has returned its LAST buffer (vicodec in Linux 6.1 does not: DQBUF keeps
// failing with EPIPE). The next picture starts a new GOP.
func (e *Encoder) Start() error {
	if e.closed {
		return ErrClosed
	}
	cmd := v4l2EncoderCmd{Cmd: encCmdStart}
	if err := ioctl(e.fd, vidiocEncoderCmd, unsafe.Pointer(&cmd)); err != nil {
		return wrap("VIDIOC_ENCODER_CMD start", err)
	}
	if err := e.restartCapture("start"); err != nil {
		return err
	}
	// Buffers the driver finished during the stop are ours again.
	return e.reclaimOutputs()
}

// Close stops streaming and releases the buffers and the device.
func (e *Encoder) Close() error {
	e.closeMu.Lock()
	defer e.closeMu.Unlock()
	if e.closed {
		return nil
	}
	e.closed = true
	e.release()
	return nil
}

func (e *Encoder) release() {
	for _, t := range []uint32{bufTypeOutputMPlane, bufTypeCaptureMPlane} {
		typ := t
		_ = ioctl(e.fd, vidiocStreamOff, unsafe.Pointer(&typ))
	}
	for _, bs := range [][]mapped{e.out, e.cap} {
		for _, b := range bs {
			if b.mem != nil {
				_ = unix.Munmap(b.mem)
			}
		}
	}
	e.out, e.cap = nil, nil
	unix.Close(e.fd)
}
