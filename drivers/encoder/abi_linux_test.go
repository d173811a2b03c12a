package encoder

import (
	"testing"
	"unsafe"
)

// TestABISizes checks the ioctl structs against the kernel's sizes for the
// architecture the test runs on (scripts/cross.sh runs it for arm64 and
// armv7 too): a wrong size is a wrong ioctl number, and EINVAL/ENOTTY on
// every call.
func TestABISizes(t *testing.T) {
	is64 := unsafe.Sizeof(uintptr(0)) == 8
	pick := func(a, b uintptr) uintptr {
		if is64 {
			return a
		}
		return b
	}
	for _, c := range []struct {
		name      string
		got, want uintptr
	}{
		{"v4l2_capability", unsafe.Sizeof(v4l2Capability{}), 104},
		{"v4l2_fmtdesc", unsafe.Sizeof(v4l2FmtDesc{}), 64},
		{"v4l2_format", unsafe.Sizeof(v4l2Format{}), pick(208, 204)},
		{"v4l2_requestbuffers", unsafe.Sizeof(v4l2RequestBuffers{}), 20},
		{"v4l2_buffer", unsafe.Sizeof(v4l2Buffer{}), pick(88, 68)},
		{"v4l2_plane", unsafe.Sizeof(v4l2Plane{}), pick(64, 60)},
		{"v4l2_control", unsafe.Sizeof(v4l2Control{}), 8},
		{"v4l2_queryctrl", unsafe.Sizeof(v4l2QueryCtrl{}), 68},
		{"v4l2_encoder_cmd", unsafe.Sizeof(v4l2EncoderCmd{}), 40},
		{"v4l2_streamparm", unsafe.Sizeof(v4l2StreamParm{}), 204},
	} {
		if c.got != c.want {
			t.Errorf("%s: %d bytes, want %d", c.name, c.got, c.want)
		}
	}
	// Two ioctl numbers as videodev2.h computes them on x86_64.
	if is64 {
		if vidiocQBuf != 0xc058560f || vidiocSFmt != 0xc0d05605 {
			t.Errorf("VIDIOC_QBUF %#x, VIDIOC_S_FMT %#x", vidiocQBuf, vidiocSFmt)
		}
	}
}

// TestProbeFindsNoEncoderHere: on a machine without an M2M encoder, Probe
// says so with ErrNoDevice and explains every node it looked at.
func TestProbeReasons(t *testing.T) {
	f, rej, err := Probe(FourccH264)
	if err == nil {
		t.Logf("found an encoder: %v", f)
		return
	}
	for _, r := range rej {
		if r.Why == "" {
			t.Errorf("%s rejected without a reason", r.Path)
		}
	}
	if _, err := Open(Config{Device: "/dev/null", Width: 64, Height: 64}); err == nil {
		t.Fatal("/dev/null opened as an encoder")
	}
}
