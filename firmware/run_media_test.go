package firmware

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/callbox/callbox/board"
	"github.com/callbox/callbox/capture"
	"github.com/callbox/callbox/capture/pcmu"
	"github.com/callbox/callbox/capture/rtpjpeg"
	"github.com/callbox/callbox/capture/synth"
	"github.com/callbox/callbox/media"
)

var quietLog = slog.New(slog.NewTextHandler(io.Discard, nil))

// The appliance's media part runs the synthetic sources into the
// publisher and stops cleanly, leaving no goroutine behind.
func TestMediaPartStartStop(t *testing.T) {
	before := runtime.NumGoroutine()
	mc := mediaConfig(newTestAppliance(t, "", "--size", "320x240", "--fps", "50", "--camera", "synthetic", "--mic", "auto").cfg)
	mc.SyntheticFallback, mc.Log = true, quietLog // a development machine
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
	mc.Publish = publish
	p, err := media.Start(context.Background(), mc)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-got:
	case <-time.After(10 * time.Second):
		t.Fatalf("published %d video and %d audio bursts in 10 s", video.Load(), audio.Load())
	}
	p.Stop()
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
		mc := mediaConfig(a.cfg)
		mc.SyntheticFallback, mc.Log = true, quietLog
		if p, err := media.Start(context.Background(), mc); err == nil {
			p.Stop()
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
		var vs, as media.Stats
		vsr := newSRStream(tx, 1, capture.VideoClockRate, 0)
		asr := newSRStream(tx, 2, capture.PCMUClockRate, 0)
		return testing.AllocsPerRun(1, func() {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			fail := func() (media.Source[capture.VideoFrame], error) { cancel(); return nil, errors.New("end") }
			vt := media.Track[capture.VideoFrame]{Name: "camera", Source: media.VideoSource(&stopAfter{cam, frames}), Open: fail,
				Packetize: vp.Packetize, Publish: observed(udpPublisher(tx, &vs), vsr), Stats: &vs, Log: quietLog}
			vt.Run(ctx)
			ctx2, cancel2 := context.WithCancel(context.Background())
			defer cancel2()
			failA := func() (media.Source[capture.AudioChunk], error) { cancel2(); return nil, errors.New("end") }
			at := media.Track[capture.AudioChunk]{Name: "microphone", Source: media.AudioSource(&stopAfterChunks{mic, frames}), Open: failA,
				Packetize: ap.Packetize, Publish: observed(udpPublisher(tx, &as), asr), Stats: &as, Log: quietLog}
			at.Run(ctx2)
		})
	}
	short, long := run(10), run(210)
	if perUnit := (long - short) / 200; perUnit > 0.05 {
		t.Fatalf("%.0f allocations for 10 frames + chunks, %.0f for 210: %.2f per frame+chunk, want 0", short, long, perUnit)
	}
	t.Logf("whole run: %.0f allocations for 10 frames and chunks, %.0f for 210", short, long)
}

// fakeMediaBoard records the faults the media part reports.
type fakeMediaBoard struct {
	mu     sync.Mutex
	faults map[board.Fault]error
}

func (b *fakeMediaBoard) muted() bool       { return false }
func (b *fakeMediaBoard) isSimulated() bool { return false }
func (b *fakeMediaBoard) fault(f board.Fault, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.faults[f] = err
}

type nullSink struct{}

func (nullSink) Publish(capture.Burst)        {}
func (nullSink) OnKeyframeRequest(func())     {}
func (nullSink) SetNativeVideo(capture.Codec) {}

// On a real board a missing camera or microphone is a fault with a
// message, never the test pattern or tone (on this machine, whichever of
// them it lacks).
func TestMediaPartMissingDevicesAreFaults(t *testing.T) {
	a := newTestAppliance(t, "", "--camera", "auto", "--mic", "auto", "--size", "320x240")
	fb := &fakeMediaBoard{faults: map[board.Fault]error{}}
	p := &mediaPart{cfg: mediaConfig(a.cfg), log: quietLog, sink: nullSink{}, board: fb}
	if err := p.start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer p.stop()
	cam, mic := p.pipe.Describe()
	fb.mu.Lock()
	defer fb.mu.Unlock()
	for _, d := range []struct {
		desc  string
		fault board.Fault
	}{{cam, board.FaultCamera}, {mic, board.FaultAudio}} {
		if strings.Contains(d.desc, "synthetic") {
			t.Errorf("a real board took %q", d.desc)
		}
		err, reported := fb.faults[d.fault]
		missing := strings.Contains(d.desc, "none yet")
		if missing && (err == nil || err.Error() == "") {
			t.Errorf("%s missing (%q) but fault %v", d.fault, d.desc, err)
		}
		if !missing && reported && err != nil {
			t.Errorf("%s present (%q) but fault %v", d.fault, d.desc, err)
		}
		t.Logf("%s: %s; fault %v", d.fault, d.desc, err)
	}
}
