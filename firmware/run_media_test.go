package firmware

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/callbox/callbox/capture"
	"github.com/callbox/callbox/capture/pcmu"
	"github.com/callbox/callbox/capture/rtpjpeg"
	"github.com/callbox/callbox/capture/synth"
)

var quietLog = slog.New(slog.NewTextHandler(io.Discard, nil))

// flakyCamera yields n frames as fast as they are read, then fails as an
// unplugged camera does.
type flakyCamera struct {
	jpeg   []byte
	n      int
	seq    uint64
	closed atomic.Bool
}

func (c *flakyCamera) ReadFrame(ctx context.Context) (capture.VideoFrame, error) {
	if err := ctx.Err(); err != nil {
		return capture.VideoFrame{}, err
	}
	if c.n == 0 {
		return capture.VideoFrame{}, capture.ErrDeviceGone
	}
	c.n--
	c.seq++
	return capture.VideoFrame{Codec: capture.CodecJPEG, Data: c.jpeg, Width: 320, Height: 240,
		Keyframe: true, CaptureTime: time.Now(), Seq: c.seq}, nil
}

func (c *flakyCamera) Close() error { c.closed.Store(true); return nil }

func testJPEG(t *testing.T) []byte {
	t.Helper()
	cam, err := synth.NewCamera(synth.CameraConfig{Width: 320, Height: 240})
	if err != nil {
		t.Fatal(err)
	}
	defer cam.Close()
	return cam.AppendFrame(nil, 7, false)
}

// A camera that goes away is closed and reopened with backoff, reopen
// failures are retried, and the pipeline keeps publishing.
func TestRunVideoReopens(t *testing.T) {
	img := testJPEG(t)
	var mu sync.Mutex
	var opened []*flakyCamera
	reopenCalls := 0
	reopen := func() (capture.VideoSource, error) {
		mu.Lock()
		defer mu.Unlock()
		reopenCalls++
		if reopenCalls == 1 {
			return nil, errors.New("still unplugged")
		}
		c := &flakyCamera{jpeg: img, n: 5}
		opened = append(opened, c)
		return c, nil
	}
	first := &flakyCamera{jpeg: img, n: 5}
	pk, err := rtpjpeg.NewPacketizer(0, 1, capture.PayloadTypeJPEG)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var frames atomic.Int64
	var st kindStats
	done := make(chan struct{})
	go func() {
		defer close(done)
		runVideo(ctx, first, reopen, pk, func(b capture.Burst) {
			if b.Kind != capture.KindVideo || len(b.Packets) == 0 {
				t.Errorf("bad burst %+v", b)
			}
			if frames.Add(1) == 15 {
				cancel()
			}
		}, &st, quietLog)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("pipeline did not get 15 frames through two reopens")
	}
	if !first.closed.Load() {
		t.Error("the failed camera was not closed")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(opened) < 2 || st.reopens.Load() != uint64(len(opened)) {
		t.Errorf("%d cameras opened, %d reopens counted", len(opened), st.reopens.Load())
	}
	// Two device losses and one failed reopen.
	if e := st.errors.Load(); e < 3 {
		t.Errorf("%d errors counted, want at least 3", e)
	}
	if u := st.units.Load(); u != uint64(frames.Load()) || st.packets.Load() < u {
		t.Errorf("stats: %d frames, %d packets; published %d", u, st.packets.Load(), frames.Load())
	}
}

// A frame the packetizer rejects is counted and skipped.
func TestRunVideoSkipsBadFrames(t *testing.T) {
	cam := &flakyCamera{jpeg: []byte("not a jpeg"), n: 3}
	pk, err := rtpjpeg.NewPacketizer(0, 1, capture.PayloadTypeJPEG)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var st kindStats
	reopen := func() (capture.VideoSource, error) {
		cancel() // stop after the first source is used up
		return nil, errors.New("gone")
	}
	runVideo(ctx, cam, reopen, pk, func(capture.Burst) { t.Error("published a rejected frame") }, &st, quietLog)
	if st.errors.Load() < 3 || st.units.Load() != 0 {
		t.Errorf("errors %d units %d, want >= 3 errors and no frames", st.errors.Load(), st.units.Load())
	}
}

func TestSeqTracker(t *testing.T) {
	var s seqTracker
	for _, c := range []struct{ seq, gap uint64 }{{5, 0}, {6, 0}, {9, 2}, {10, 0}, {10, 0}, {3, 0}, {4, 0}} {
		if g := s.gap(c.seq); g != c.gap {
			t.Errorf("seq %d: gap %d, want %d", c.seq, g, c.gap)
		}
	}
}

func TestFrameSizeFlag(t *testing.T) {
	var s frameSize
	if err := s.Set("640x480"); err != nil || s.w != 640 || s.h != 480 || s.String() != "640x480" {
		t.Errorf("640x480: %v %+v", err, s)
	}
	for _, bad := range []string{"", "640", "x480", "640x", "-640x480", "640x0", "axb", "640x480x2"} {
		if err := s.Set(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// The appliance's media part runs the synthetic sources into the
// publisher and stops cleanly, leaving no goroutine behind.
func TestMediaPartStartStop(t *testing.T) {
	before := runtime.NumGoroutine()
	var p mediaPart
	p.opts = mediaOptionsOf(newTestAppliance(t, "", "--size", "320x240", "--fps", "50", "--camera", "synthetic", "--mic", "auto").cfg)
	var video, audio atomic.Int64
	got := make(chan struct{})
	var once sync.Once
	publish := func(b capture.Burst) {
		switch b.Kind {
		case capture.KindVideo:
			video.Add(1)
		case capture.KindAudio:
			audio.Add(1)
		}
		if video.Load() >= 5 && audio.Load() >= 5 {
			once.Do(func() { close(got) })
		}
	}
	if err := p.launch(context.Background(), publish, quietLog); err != nil {
		t.Fatal(err)
	}
	select {
	case <-got:
	case <-time.After(10 * time.Second):
		t.Fatalf("published %d video and %d audio bursts in 10 s", video.Load(), audio.Load())
	}
	p.stop()
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Errorf("%d goroutines after stop, %d before", n, before)
	}
}

func TestMediaPartBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--fps", "0"},
		{"--packet-size", "100"},
		{"--camera", "/dev/video9"},
		{"--mic", "hw:7"},
		{"--size", "1281x720"},
	} {
		// A value out of range fails the command line; a device that
		// cannot be opened fails the start.
		a, err := parseTestAppliance(t, "", args...)
		if err != nil {
			continue
		}
		var p mediaPart
		p.opts = mediaOptionsOf(a.cfg)
		if err := p.launch(context.Background(), func(capture.Burst) {}, quietLog); err == nil {
			p.stop()
			t.Errorf("%v: started", args)
		}
	}
}

// stopAfter wraps a source and fails it after n frames.
type stopAfter struct {
	capture.VideoSource
	n int
}

func (s *stopAfter) ReadFrame(ctx context.Context) (capture.VideoFrame, error) {
	if s.n == 0 {
		return capture.VideoFrame{}, errors.New("done")
	}
	s.n--
	return s.VideoSource.ReadFrame(ctx)
}

// stopAfterChunks is stopAfter for audio.
type stopAfterChunks struct {
	capture.AudioSource
	n int
}

func (s *stopAfterChunks) ReadChunk(ctx context.Context) (capture.AudioChunk, error) {
	if s.n == 0 {
		return capture.AudioChunk{}, errors.New("done")
	}
	s.n--
	return s.AudioSource.ReadChunk(ctx)
}

// The steady-state pipeline of callbox send (read, packetize, count, send
// each packet as a datagram, account for the sender reports) allocates nothing per frame or chunk: the
// whole run allocates a small constant, whatever its length.
func TestPipelineNoAllocsPerUnit(t *testing.T) {
	rx, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer rx.Close()
	go func() { // drain, so the sends never fail
		buf := make([]byte, 2048)
		for {
			if _, err := rx.Read(buf); err != nil {
				return
			}
		}
	}()
	tx, err := net.DialUDP("udp4", nil, rx.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Close()

	run := func(frames int) float64 {
		cam, err := synth.NewCamera(synth.CameraConfig{Width: 640, Height: 360, Clock: synth.NewVirtualClock(time.Unix(1e9, 0))})
		if err != nil {
			t.Fatal(err)
		}
		mic, err := synth.NewMic(synth.MicConfig{Clock: synth.NewVirtualClock(time.Unix(1e9, 0))})
		if err != nil {
			t.Fatal(err)
		}
		vp, err := rtpjpeg.NewPacketizer(0, 1, capture.PayloadTypeJPEG)
		if err != nil {
			t.Fatal(err)
		}
		ap, err := pcmu.NewPacketizer(0, 2, capture.PayloadTypePCMU)
		if err != nil {
			t.Fatal(err)
		}
		// Warm up: first-use buffers of the packetizers and the sources.
		for range 3 {
			f, _ := cam.ReadFrame(context.Background())
			vp.Packetize(f)
			c, _ := mic.ReadChunk(context.Background())
			ap.Packetize(c)
		}
		var vs, as kindStats
		vsr := newSRStream(tx, 1, capture.VideoClockRate, 0)
		asr := newSRStream(tx, 2, capture.PCMUClockRate, 0)
		return testing.AllocsPerRun(1, func() {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			fail := func() (capture.VideoSource, error) { cancel(); return nil, errors.New("end") }
			runVideo(ctx, &stopAfter{cam, frames}, fail, vp, observed(udpPublisher(tx, &vs), vsr), &vs, quietLog)
			ctx2, cancel2 := context.WithCancel(context.Background())
			defer cancel2()
			failA := func() (capture.AudioSource, error) { cancel2(); return nil, errors.New("end") }
			runAudio(ctx2, &stopAfterChunks{mic, frames}, failA, ap, observed(udpPublisher(tx, &as), asr), &as, quietLog)
		})
	}
	short, long := run(10), run(210)
	if perUnit := (long - short) / 200; perUnit > 0.05 {
		t.Fatalf("%.0f allocations for 10 frames + chunks, %.0f for 210: %.2f per frame+chunk, want 0", short, long, perUnit)
	}
	t.Logf("whole run: %.0f allocations for 10 frames and chunks, %.0f for 210", short, long)
}

// The appliance packetizes each frame by its codec: JPEG as PT 26, H.264
// as PT 96, anything else is refused.
func TestCodecPacketizer(t *testing.T) {
	p, err := newCodecPacketizer(1200)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	b, err := p.Packetize(capture.VideoFrame{Codec: capture.CodecJPEG, Data: testJPEG(t), Width: 320, Height: 240, Keyframe: true, CaptureTime: now})
	if err != nil || len(b.Packets) == 0 || b.Packets[0][1]&0x7f != capture.PayloadTypeJPEG {
		t.Fatalf("JPEG frame: %v, %d packets", err, len(b.Packets))
	}
	// An IDR access unit: SPS, PPS and an IDR slice, Annex B.
	au := []byte{
		0, 0, 0, 1, 0x67, 0x42, 0xc0, 0x1e, 0xd9, 0x00, 0xa0, 0x47, 0xfe, 0xc8,
		0, 0, 0, 1, 0x68, 0xce, 0x3c, 0x80,
		0, 0, 0, 1, 0x65, 0x88, 0x84, 0x00, 0x33, 0xff,
	}
	b, err = p.Packetize(capture.VideoFrame{Codec: capture.CodecH264, Data: au, Width: 320, Height: 240, Keyframe: true, CaptureTime: now})
	if err != nil || len(b.Packets) == 0 {
		t.Fatalf("H.264 frame: %v, %d packets", err, len(b.Packets))
	}
	for _, pkt := range b.Packets {
		if pkt[1]&0x7f != capture.PayloadTypeH264 {
			t.Fatalf("H.264 packet with PT %d", pkt[1]&0x7f)
		}
	}
	if _, err := p.Packetize(capture.VideoFrame{Codec: capture.Codec(99), Data: au}); err == nil {
		t.Fatal("an unknown codec was packetized")
	}
}
