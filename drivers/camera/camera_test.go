package camera_test

import (
	"bytes"
	"context"
	"errors"
	"image/jpeg"
	"sync"
	"testing"
	"time"

	"github.com/callbox/callbox/capture"
	"github.com/callbox/callbox/drivers/camera"
	"github.com/callbox/callbox/drivers/camera/cameratest"
)

func open(t *testing.T, bus *cameratest.Bus, cfg camera.Config) *camera.Camera {
	t.Helper()
	cfg.Open = bus.Open
	if cfg.Nodes == nil {
		cfg.Nodes = []string{"/dev/video0", "/dev/video1", "/dev/video2"}
	}
	c, err := camera.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func read(t *testing.T, src capture.VideoSource) capture.VideoFrame {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	fr, err := src.ReadFrame(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return fr
}

func TestAutoPrefersMJPEGAndCopiesFrames(t *testing.T) {
	bus := cameratest.NewBus()
	// video0 is a codec-like node with no capture format; video1 YUYV only;
	// video2 MJPEG+YUYV. Auto takes the first usable node: video1.
	bus.Plug("/dev/video0", cameratest.NewDevice())
	bus.Plug("/dev/video1", cameratest.NewDevice(camera.FourccYUYV))
	mj := cameratest.NewDevice(camera.FourccYUYV, camera.FourccMJPEG)
	mj.Trailer = bytes.Repeat([]byte{0x55}, 1000)
	bus.Plug("/dev/video2", mj)

	c := open(t, bus, camera.Config{})
	if got := c.Info(); got.Path != "/dev/video1" || got.Fourcc != camera.FourccYUYV {
		t.Fatalf("auto chose %v", got)
	}
	c.Close()

	c = open(t, bus, camera.Config{Device: "/dev/video2", Width: 320, Height: 240, FPS: 30})
	info := c.Info()
	if info.Fourcc != camera.FourccMJPEG || info.Codec != capture.CodecJPEG || info.Width != 320 || info.FPS != 30 {
		t.Fatalf("info %v", info)
	}
	if mj.Framerate() != 30 {
		t.Fatalf("frame rate not requested: %v", mj.Framerate())
	}
	var prev uint64
	for i := 0; i < 5; i++ {
		fr := read(t, c)
		if fr.Seq != prev+1 || !fr.Keyframe || fr.CaptureTime.IsZero() {
			t.Fatalf("frame %d: seq %d keyframe %v time %v", i, fr.Seq, fr.Keyframe, fr.CaptureTime)
		}
		prev = fr.Seq
		// The fake overwrote the V4L2 buffer at ReleaseFrame: the frame
		// must be our copy, trimmed at EOI.
		want := cameratest.JPEG(320, 240, i+1)
		if !bytes.Equal(fr.Data, want) {
			t.Fatalf("frame %d: %d bytes, want the %d-byte JPEG (trailer trimmed, not aliased)", i, len(fr.Data), len(want))
		}
		img, err := jpeg.Decode(bytes.NewReader(fr.Data))
		if err != nil || img.Bounds().Dx() != 320 {
			t.Fatalf("frame %d does not decode: %v", i, err)
		}
	}
	if produced, released, _ := mj.Stats(); produced != released {
		t.Fatalf("%d buffers dequeued, %d queued back", produced, released)
	}
}

func TestH264BeforeYUYV(t *testing.T) {
	bus := cameratest.NewBus()
	bus.Plug("/dev/video0", cameratest.NewDevice(camera.FourccYUYV, camera.FourccH264))
	c := open(t, bus, camera.Config{})
	if c.Info().Codec != capture.CodecH264 {
		t.Fatalf("chose %v", c.Info())
	}
	for i := 1; i <= 12; i++ {
		fr := read(t, c)
		if want := i%10 == 1; fr.Keyframe != want {
			t.Fatalf("frame %d keyframe=%v", i, fr.Keyframe)
		}
		if !bytes.Equal(fr.Data, cameratest.H264(i)) {
			t.Fatalf("frame %d data %x", i, fr.Data)
		}
	}
}

func TestYUYVEncodedAndCapped(t *testing.T) {
	bus := cameratest.NewBus()
	dev := cameratest.NewDevice(camera.FourccYUYV)
	bus.Plug("/dev/video0", dev)
	// A clock that advances 5 ms per reading: the fake device then runs
	// at 100-200 fps, well above the YUYV cap.
	var mu sync.Mutex
	now := time.Unix(1000, 0)
	clock := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		now = now.Add(5 * time.Millisecond)
		return now
	}
	c := open(t, bus, camera.Config{Width: 1920, Height: 1080, FPS: 30, Now: clock})
	info := c.Info()
	if info.Width != camera.YUYVMaxWidth || info.Height != camera.YUYVMaxHeight || info.FPS != camera.YUYVMaxFPS {
		t.Fatalf("YUYV not capped: %v", info)
	}
	var last time.Time
	for i := 0; i < 5; i++ {
		fr := read(t, c)
		if fr.Codec != capture.CodecJPEG {
			t.Fatalf("codec %v", fr.Codec)
		}
		img, err := jpeg.Decode(bytes.NewReader(fr.Data))
		if err != nil {
			t.Fatal(err)
		}
		if b := img.Bounds(); b.Dx() != 640 || b.Dy() != 480 {
			t.Fatalf("bounds %v", b)
		}
		// The luma ramp survives encoding: dark on the left, bright on the right.
		l, _, _, _ := img.At(5, 240).RGBA()
		r, _, _, _ := img.At(630, 240).RGBA()
		if l >= r {
			t.Fatalf("luma ramp lost: left %d right %d", l>>8, r>>8)
		}
		if !last.IsZero() && fr.CaptureTime.Sub(last) < time.Second/camera.YUYVMaxFPS*8/10 {
			t.Fatalf("frames %v apart: rate cap not applied", fr.CaptureTime.Sub(last))
		}
		last = fr.CaptureTime
	}
	if produced, _, _ := dev.Stats(); produced < 10 {
		t.Fatalf("device produced %d frames for 5 delivered: no frames skipped", produced)
	}
}

func TestUnplugIsDeviceGone(t *testing.T) {
	bus := cameratest.NewBus()
	dev := cameratest.NewDevice(camera.FourccMJPEG)
	bus.Plug("/dev/video0", dev)
	c := open(t, bus, camera.Config{Width: 64, Height: 48})
	read(t, c)
	bus.Unplug("/dev/video0")
	for i := 0; i < 2; i++ {
		if _, err := c.ReadFrame(context.Background()); !errors.Is(err, capture.ErrDeviceGone) {
			t.Fatalf("read %d after unplug: %v", i, err)
		}
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ReadFrame(context.Background()); !errors.Is(err, camera.ErrClosed) {
		t.Fatalf("read after Close: %v", err)
	}
	if _, _, closed := dev.Stats(); !closed {
		t.Fatal("device not closed")
	}
}

func TestReopeningResumesWithin2s(t *testing.T) {
	bus := cameratest.NewBus()
	bus.Plug("/dev/video0", cameratest.NewDevice(camera.FourccMJPEG))
	cfg := camera.Config{Device: "auto", Width: 64, Height: 48, Open: bus.Open, Nodes: []string{"/dev/video0"}}
	r, err := camera.NewReopening(nil, func() (capture.VideoSource, error) { return camera.Open(cfg) }, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var last uint64
	for i := 0; i < 3; i++ {
		last = read(t, r).Seq
	}
	bus.Unplug("/dev/video0")
	ctx := context.Background()
	gone := 0
	for i := 0; i < 3; i++ {
		_, err := r.ReadFrame(ctx)
		if !errors.Is(err, capture.ErrDeviceGone) {
			t.Fatalf("while unplugged: %v", err)
		}
		gone++
	}
	if !r.Gone() {
		t.Fatal("Gone() false while unplugged")
	}
	plugged := time.Now()
	bus.Plug("/dev/video0", cameratest.NewDevice(camera.FourccMJPEG))
	var fr capture.VideoFrame
	for {
		fr, err = r.ReadFrame(ctx)
		if err == nil {
			break
		}
		if !errors.Is(err, capture.ErrDeviceGone) {
			t.Fatal(err)
		}
		if time.Since(plugged) > 2*time.Second {
			t.Fatal("no frame 2 s after the camera came back")
		}
	}
	t.Logf("resumed %v after replug", time.Since(plugged))
	if time.Since(plugged) > 2*time.Second {
		t.Fatalf("resumed after %v, promised 2 s", time.Since(plugged))
	}
	if fr.Seq <= last+1 {
		t.Fatalf("seq %d after %d: no gap marks the outage", fr.Seq, last)
	}
	if r.Gone() {
		t.Fatal("Gone() true after resume")
	}
}

func TestBadConfig(t *testing.T) {
	bus := cameratest.NewBus()
	bus.Plug("/dev/video0", cameratest.NewDevice(camera.FourccYUYV))
	for _, cfg := range []camera.Config{
		{Width: -1, Height: 480},
		{FPS: -5},
		{Format: "vp8"},
		{JPEGQuality: 101},
		{Format: "mjpeg"}, // not offered
	} {
		cfg.Open = bus.Open
		cfg.Nodes = []string{"/dev/video0"}
		if c, err := camera.Open(cfg); err == nil {
			c.Close()
			t.Errorf("config %+v accepted", cfg)
		}
	}
	_, err := camera.Open(camera.Config{Open: bus.Open, Nodes: []string{"/dev/video7"}})
	if !errors.Is(err, camera.ErrNoCamera) {
		t.Fatalf("no devices: %v", err)
	}
	_, err = camera.Open(camera.Config{Open: bus.Open, Device: "/dev/video3"})
	if !errors.Is(err, capture.ErrDeviceGone) {
		t.Fatalf("missing node: %v", err)
	}
}

func TestMJPEGReadFrameDoesNotAllocate(t *testing.T) {
	bus := cameratest.NewBus()
	dev := cameratest.NewDevice(camera.FourccMJPEG)
	dev.Fixed = cameratest.JPEG(320, 240, 1)
	bus.Plug("/dev/video0", dev)
	c := open(t, bus, camera.Config{Width: 320, Height: 240})
	ctx := context.Background()
	read(t, c) // sizes the buffers
	if a := testing.AllocsPerRun(100, func() {
		if _, err := c.ReadFrame(ctx); err != nil {
			t.Fatal(err)
		}
	}); a != 0 {
		t.Fatalf("%v allocations per frame", a)
	}
}

func TestStalledCamera(t *testing.T) {
	bus := cameratest.NewBus()
	dev := cameratest.NewDevice(camera.FourccMJPEG)
	bus.Plug("/dev/video0", dev)
	c := open(t, bus, camera.Config{Width: 64, Height: 48, FrameTimeout: 600 * time.Millisecond})
	read(t, c)
	dev.Stall(true)
	t0 := time.Now()
	_, err := c.ReadFrame(context.Background())
	if !errors.Is(err, capture.ErrDeviceGone) {
		t.Fatalf("stalled camera: %v, want ErrDeviceGone", err)
	}
	if el := time.Since(t0); el < 600*time.Millisecond || el > 3*time.Second {
		t.Fatalf("stall reported after %v, FrameTimeout 600ms", el)
	}

	// Close interrupts a ReadFrame waiting on a stalled device.
	c2 := open(t, bus, camera.Config{Width: 64, Height: 48})
	errc := make(chan error, 1)
	go func() { _, err := c2.ReadFrame(context.Background()); errc <- err }()
	time.Sleep(100 * time.Millisecond)
	t0 = time.Now()
	if err := c2.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; !errors.Is(err, camera.ErrClosed) {
		t.Fatalf("ReadFrame during Close: %v", err)
	}
	if el := time.Since(t0); el > 2*time.Second {
		t.Fatalf("Close took %v", el)
	}

	// A cancelled context ends the wait too.
	dev.Stall(true)
	c3 := open(t, bus, camera.Config{Width: 64, Height: 48})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := c3.ReadFrame(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("ReadFrame with expiring ctx: %v", err)
	}
}

// TestYUYVRaw: with Raw a YUYV camera yields I420 for an encoder, at the
// size and rate asked for (no JPEG, so no caps), luma as the camera sent
// it and chroma averaged over row pairs; the steady state allocates
// nothing.
func TestYUYVRaw(t *testing.T) {
	bus := cameratest.NewBus()
	dev := cameratest.NewDevice(camera.FourccYUYV)
	bus.Plug("/dev/video0", dev)
	c := open(t, bus, camera.Config{Width: 1280, Height: 720, FPS: 30, Raw: true})
	info := c.Info()
	if info.Width != 1280 || info.Height != 720 || info.Codec != capture.CodecI420 {
		t.Fatalf("raw YUYV: %v", info)
	}
	fr := read(t, c)
	w, h := info.Width, info.Height
	if fr.Codec != capture.CodecI420 || len(fr.Data) != capture.I420Size(w, h) || !fr.Keyframe {
		t.Fatalf("frame: %v, %d bytes", fr.Codec, len(fr.Data))
	}
	// cameratest.YUYV: luma 16 + x*200/w + a per-frame shift, chroma 128.
	shift := int(fr.Data[7*w]) - 16
	for _, x := range []int{0, 1, 640, 1279} {
		if got, want := int(fr.Data[7*w+x]), 16+x*200/w+shift; got != want {
			t.Fatalf("luma at %d: %d, want %d", x, got, want)
		}
	}
	if u, v := fr.Data[w*h+100], fr.Data[w*h+w*h/4+100]; u != 128 || v != 128 {
		t.Fatalf("chroma %d %d, want 128", u, v)
	}
	if l, r := fr.Data[360*w+5], fr.Data[360*w+1270]; l >= r {
		t.Fatalf("luma ramp lost: left %d right %d", l, r)
	}
	// The same picture every time, so only the driver's work is counted
	// (the fake generates a fresh one otherwise).
	dev.Fixed = cameratest.YUYV(w, h, 3)
	ctx := context.Background()
	read(t, c)
	if a := testing.AllocsPerRun(20, func() {
		if _, err := c.ReadFrame(ctx); err != nil {
			t.Fatal(err)
		}
	}); a != 0 {
		t.Fatalf("%v allocations per raw frame", a)
	}
}
