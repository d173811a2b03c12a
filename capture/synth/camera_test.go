package synth

import (
	"bytes"
	"context"
	"errors"
	"image"
	"image/jpeg"
	"math"
	"testing"
	"time"

	"github.com/callbox/callbox/capture"
)

var epoch = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func newVirtualCamera(t testing.TB, cfg CameraConfig) (*Camera, *VirtualClock) {
	t.Helper()
	clk := NewVirtualClock(epoch)
	cfg.Clock = clk
	c, err := NewCamera(cfg)
	if err != nil {
		t.Fatalf("NewCamera(%+v): %v", cfg, err)
	}
	t.Cleanup(func() { c.Close() })
	return c, clk
}

func decode(t testing.TB, b []byte) image.Image {
	t.Helper()
	img, err := jpeg.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("decode frame: %v", err)
	}
	return img
}

// ballX returns the mean x of the ball's pixels in the band, or -1.
func ballX(c *Camera, img image.Image) float64 {
	y := (c.lay.bandRow*16 + c.lay.bandRows*8)
	var sum, n int
	for x := 0; x < c.cfg.Width; x++ {
		r, g, b, _ := img.At(x, y).RGBA()
		if r>>8 > 200 && g>>8 > 140 && b>>8 < 100 {
			sum += x
			n++
		}
	}
	if n == 0 {
		return -1
	}
	return float64(sum) / float64(n)
}

func TestCameraFrames(t *testing.T) {
	sizes := []image.Point{{1280, 720}, {640, 360}, {320, 240}, {136, 120}}
	if !testing.Short() { // -short runs under qemu-user too, where these take seconds
		sizes = append(sizes, image.Point{1920, 1080}, image.Point{2040, 2040})
	}
	for _, sz := range sizes {
		t.Run("", func(t *testing.T) {
			c, _ := newVirtualCamera(t, CameraConfig{Width: sz.X, Height: sz.Y})
			var prev []byte
			prevX := -1.0
			for i := range 4 {
				f, err := c.ReadFrame(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				if f.Seq != uint64(i) || f.Width != sz.X || f.Height != sz.Y || !f.Keyframe {
					t.Fatalf("frame %d: seq %d size %dx%d keyframe %v", i, f.Seq, f.Width, f.Height, f.Keyframe)
				}
				if !bytes.Contains(f.Data[:len(c.t.header)], []byte{0xFF, 0xDD, 0, 4}) {
					t.Fatalf("%v: no DRI marker in the header", sz)
				}
				img := decode(t, f.Data)
				if img.Bounds().Size() != sz {
					t.Fatalf("decoded size %v, want %v", img.Bounds().Size(), sz)
				}
				if n, ok := c.ReadCounter(img); !ok || n != f.Seq {
					t.Fatalf("%v frame %d: counter reads %d (ok %v)", sz, f.Seq, n, ok)
				}
				x := ballX(c, img)
				if x < 0 {
					t.Fatalf("%v frame %d: no ball in the band", sz, f.Seq)
				}
				if prev != nil {
					if bytes.Equal(prev, f.Data) {
						t.Fatalf("%v: frames %d and %d are identical", sz, i-1, i)
					}
					if d := x - prevX; d < float64(c.lay.step)/2 || d > float64(c.lay.step)*3/2 {
						t.Fatalf("%v: ball moved %.1f px, want about %d", sz, d, c.lay.step)
					}
				}
				prev = append(prev[:0], f.Data...)
				prevX = x
			}
		})
	}
}

// The counter must read back across every digit and the wrap of the
// ball's sweep.
func TestCameraCounterAllDigits(t *testing.T) {
	c, _ := newVirtualCamera(t, CameraConfig{Width: 320, Height: 240})
	for _, seq := range []uint64{0, 123456, 789012, 345678, 999999, 1000000 + 901, uint64(c.lay.positions) - 1, uint64(c.lay.positions)} {
		for _, flash := range []bool{false, true} {
			img := decode(t, c.AppendFrame(nil, seq, flash))
			if n, ok := c.ReadCounter(img); !ok || n != seq%1000000 {
				t.Fatalf("frame %d (flash %v): counter reads %d (ok %v)", seq, flash, n, ok)
			}
			if f := c.ReadFlash(img); f != flash {
				t.Fatalf("frame %d: flash reads %v, want %v", seq, f, flash)
			}
		}
	}
	// A picture of the wrong size or without digits does not read.
	if _, ok := c.ReadCounter(image.NewGray(image.Rect(0, 0, 320, 240))); ok {
		t.Fatal("black picture read as a counter")
	}
	if _, ok := c.ReadCounter(image.NewGray(image.Rect(0, 0, 32, 24))); ok {
		t.Fatal("wrong-size picture read as a counter")
	}
}

func TestCameraPacing(t *testing.T) {
	c, clk := newVirtualCamera(t, CameraConfig{Width: 320, Height: 240, FPS: 25})
	ctx := context.Background()
	period := 40 * time.Millisecond
	for i := range 10 {
		f, err := c.ReadFrame(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if want := epoch.Add(time.Duration(i) * period); !f.CaptureTime.Equal(want) || f.Seq != uint64(i) {
			t.Fatalf("frame %d: seq %d at %v, want at %v", i, f.Seq, f.CaptureTime.Sub(epoch), want.Sub(epoch))
		}
	}
	// A reader 3.5 periods late (the clock is at frame 9's slot): frames 10
	// to 12 are queued and come at once, stamped with their slots, then 13
	// on its slot.
	clk.Advance(3*period + period/2)
	next := func() (uint64, time.Duration) {
		t.Helper()
		f, err := c.ReadFrame(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return f.Seq, f.CaptureTime.Sub(epoch)
	}
	for want := uint64(10); want <= 12; want++ {
		late := clk.Now()
		if seq, at := next(); seq != want || at != time.Duration(want)*period || !clk.Now().Equal(late) {
			t.Fatalf("queued frame: seq %d at %v, want %d at %v without waiting", seq, at, want, time.Duration(want)*period)
		}
	}
	if seq, at := next(); seq != 13 || at != 13*period {
		t.Fatalf("after the queue: seq %d at %v, want 13 at %v", seq, at, 13*period)
	}
	// 10 periods late: only the newest QueueDepth frames are left.
	clk.Advance(10 * period) // at 23's slot
	for want := uint64(23 - QueueDepth + 1); want <= 24; want++ {
		if seq, at := next(); seq != want || at != time.Duration(want)*period {
			t.Fatalf("after an overflow: seq %d at %v, want %d at %v", seq, at, want, time.Duration(want)*period)
		}
	}
}

// With the real clock the frames come at the frame rate.
func TestCameraRealClock(t *testing.T) {
	c, err := NewCamera(CameraConfig{Width: 160, Height: 128, FPS: 100})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	start := time.Now()
	var last time.Time
	for range 11 {
		f, err := c.ReadFrame(ctx)
		if err != nil {
			t.Fatal(err)
		}
		last = f.CaptureTime
	}
	if el := last.Sub(start); el < 95*time.Millisecond || el > time.Second {
		t.Fatalf("11 frames at 100 fps took %v, want about 100ms", el)
	}
}

func TestCameraCloseAndCancel(t *testing.T) {
	c, err := NewCamera(CameraConfig{Width: 160, Height: 128, FPS: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.ReadFrame(context.Background()); err != nil { // frame 0 is immediate
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(20 * time.Millisecond); cancel() }()
	if _, err := c.ReadFrame(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled read: %v", err)
	}
	done := make(chan error)
	go func() {
		_, err := c.ReadFrame(context.Background())
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	c.Close()
	select {
	case err := <-done:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("read across Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not unblock ReadFrame")
	}
	if _, err := c.ReadFrame(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("read after Close: %v", err)
	}
}

// The flash marks the frame whose slot holds a whole second of the wall
// clock, whenever the camera started, and coincides with the click.
func TestCameraFlashOnTheSecond(t *testing.T) {
	for _, into := range []time.Duration{0, 500 * time.Millisecond, 990 * time.Millisecond} {
		clk := NewVirtualClock(epoch.Add(into))
		c, err := NewCamera(CameraConfig{Width: 160, Height: 128, FPS: 30, Clock: clk})
		if err != nil {
			t.Fatal(err)
		}
		mclk := NewVirtualClock(epoch.Add(into))
		m, err := NewMic(MicConfig{Clock: mclk})
		if err != nil {
			t.Fatal(err)
		}
		var flashes []time.Time
		for range 75 {
			f, err := c.ReadFrame(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			img := decode(t, f.Data)
			if c.ReadFlash(img) {
				flashes = append(flashes, f.CaptureTime)
			}
		}
		clicks := FindClicks(record(t, m, 2500*time.Millisecond), 48000)
		// Whole seconds in [start, start+2.5s).
		want := 0
		for s := epoch.Add(into).Truncate(time.Second); s.Before(epoch.Add(into + 2500*time.Millisecond)); s = s.Add(time.Second) {
			if !s.Before(epoch.Add(into)) {
				want++
			}
		}
		if len(flashes) != want || len(clicks) != want {
			t.Fatalf("started %v into a second: %d flashes and %d clicks in 2.5 s, want %d each", into, len(flashes), len(clicks), want)
		}
		for i, at := range flashes {
			click := epoch.Add(into).Add(time.Duration(clicks[i]) * time.Second / 48000)
			if click.Truncate(time.Second) != click {
				t.Errorf("started %v into a second: click at %v, not on a second", into, click)
			}
			// The flash frame's slot [at, at+period) holds the click.
			if d := click.Sub(at); d < 0 || d >= time.Second/30 {
				t.Errorf("started %v into a second: flash frame at %v, click at %v", into, at, click)
			}
		}
		c.Close()
		m.Close()
	}
}

func TestCameraBadConfig(t *testing.T) {
	for _, cfg := range []CameraConfig{
		{Width: 1281, Height: 720},
		{Width: 1280, Height: 724},
		{Width: 2048, Height: 720},
		{Width: -8, Height: 720},
		{Width: 64, Height: 64},
		{Width: 128, Height: 64},
		{FPS: -1},
		{FPS: 1000},
		{Quality: 101},
		{Quality: -5},
	} {
		if c, err := NewCamera(cfg); err == nil {
			c.Close()
			t.Errorf("NewCamera(%+v) accepted a bad configuration", cfg)
		}
	}
}

// Steady-state frames cost no allocation.
func TestCameraNoAllocs(t *testing.T) {
	c, _ := newVirtualCamera(t, CameraConfig{})
	ctx := context.Background()
	if _, err := c.ReadFrame(ctx); err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := c.ReadFrame(ctx); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("ReadFrame allocates %v times per frame", allocs)
	}
}

func BenchmarkCameraFrame(b *testing.B) {
	c, _ := newVirtualCamera(b, CameraConfig{})
	buf := c.AppendFrame(nil, 0, false)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		buf = c.AppendFrame(buf[:0], uint64(i), i%30 == 0)
	}
}

func BenchmarkNewCamera720p(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		c, err := NewCamera(CameraConfig{})
		if err != nil {
			b.Fatal(err)
		}
		c.Close()
	}
}

// The frame sizes the pattern gives, for the docs and for a sense of the
// bit rate per size.
func TestCameraFrameSizes(t *testing.T) {
	sizes := []image.Point{{640, 360}, {1280, 720}}
	if !testing.Short() {
		sizes = append(sizes, image.Point{1920, 1080})
	}
	for _, sz := range sizes {
		c, _ := newVirtualCamera(t, CameraConfig{Width: sz.X, Height: sz.Y})
		var total int
		for i := range 30 {
			total += len(c.AppendFrame(nil, uint64(i), i == 0))
		}
		avg := total / 30
		t.Logf("%dx%d: %d bytes per frame, %.1f Mbit/s at 30 fps", sz.X, sz.Y, avg, float64(avg)*8*30/1e6)
		// Bounds for a quality-80 picture of this much detail: more than
		// 0.1 and less than 2 bits per pixel.
		if bpp := float64(avg) * 8 / float64(sz.X*sz.Y); bpp < 0.1 || bpp > 2 {
			t.Errorf("%v: %.2f bits per pixel", sz, bpp)
		}
	}
}

// TestCameraI420: the raw camera shows the JPEG camera's picture: the frame
// counter reads back from its I420 output, the flash shows, and luma is
// close to the decoded JPEG's (which differs by its quantization only).
func TestCameraI420(t *testing.T) {
	const w, h = 640, 480
	cam, err := NewCamera(CameraConfig{Width: w, Height: h, Format: capture.CodecI420})
	if err != nil {
		t.Fatal(err)
	}
	defer cam.Close()
	f, err := cam.ReadFrame(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if f.Codec != capture.CodecI420 || len(f.Data) != capture.I420Size(w, h) || !f.Keyframe {
		t.Fatalf("frame: %v, %d bytes", f.Codec, len(f.Data))
	}
	yuv := func(b []byte) *image.YCbCr {
		return &image.YCbCr{Y: b[:w*h], Cb: b[w*h : w*h+w*h/4], Cr: b[w*h+w*h/4:], YStride: w, CStride: w / 2,
			SubsampleRatio: image.YCbCrSubsampleRatio420, Rect: image.Rect(0, 0, w, h)}
	}
	for _, seq := range []uint64{0, 7, 123456, 999999, 1234567} {
		for _, flash := range []bool{false, true} {
			img := yuv(cam.AppendI420(nil, seq, flash))
			n, ok := cam.ReadCounter(img)
			if !ok || n != seq%1000000 || cam.ReadFlash(img) != flash {
				t.Fatalf("seq %d flash %v: read %d %v flash %v", seq, flash, n, ok, cam.ReadFlash(img))
			}
			// Against the JPEG of the same frame, in RGB: the same
			// picture up to JPEG's loss and the range conversion.
			jp, err := jpeg.Decode(bytes.NewReader(cam.AppendFrame(nil, seq, flash)))
			if err != nil {
				t.Fatal(err)
			}
			var sum, cnt float64
			for y := 0; y < h; y += 3 {
				for x := 0; x < w; x += 3 {
					r1, g1, b1, _ := jp.At(x, y).RGBA()
					c := img.YCbCrAt(x, y)
					// limited range to full range luma
					l1 := (299*float64(r1>>8) + 587*float64(g1>>8) + 114*float64(b1>>8)) / 1000
					l2 := (float64(c.Y) - 16) * 255 / 219
					sum += math.Abs(l1 - l2)
					cnt++
				}
			}
			if mad := sum / cnt; mad > 6 {
				t.Fatalf("seq %d: raw and JPEG luma differ by %.1f on average", seq, mad)
			}
		}
	}
	if _, err := NewCamera(CameraConfig{Format: capture.CodecH264}); err == nil {
		t.Fatal("camera accepted format h264")
	}
}

// BenchmarkCameraI420 is the cost of one raw 720p picture.
func BenchmarkCameraI420(b *testing.B) {
	cam, err := NewCamera(CameraConfig{Format: capture.CodecI420})
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 0, capture.I420Size(DefaultWidth, DefaultHeight))
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		buf = cam.AppendI420(buf[:0], uint64(i), false)
	}
}
