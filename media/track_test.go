package media

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/callbox/callbox/capture"
	"github.com/callbox/callbox/capture/rtpjpeg"
	"github.com/callbox/callbox/capture/synth"
)

var quietLog = slog.New(slog.NewTextHandler(io.Discard, nil))

// fastRetry keeps the tests short; the policy is the same.
var fastRetry = Retry{First: 10 * time.Millisecond, Max: 40 * time.Millisecond}

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

// A camera that goes away is closed and reopened with backoff, open
// failures are retried, the device's state is reported, and the track
// keeps publishing.
func TestTrackReopens(t *testing.T) {
	img := testJPEG(t)
	var mu sync.Mutex
	var opened []*flakyCamera
	var states []error
	openCalls := 0
	open := func() (Source[capture.VideoFrame], error) {
		mu.Lock()
		defer mu.Unlock()
		openCalls++
		if openCalls == 1 {
			return nil, errors.New("still unplugged")
		}
		c := &flakyCamera{jpeg: img, n: 5}
		opened = append(opened, c)
		return VideoSource(c), nil
	}
	first := &flakyCamera{jpeg: img, n: 5}
	pk, err := rtpjpeg.NewPacketizer(0, 1, capture.PayloadTypeJPEG)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var frames atomic.Int64
	var st Stats
	done := make(chan struct{})
	tr := &Track[capture.VideoFrame]{
		Name: "camera", Source: VideoSource(first), Open: open, Packetize: pk.Packetize,
		Publish: func(b capture.Burst) {
			if b.Kind != capture.KindVideo || len(b.Packets) == 0 {
				t.Errorf("bad burst %+v", b)
			}
			if frames.Add(1) == 15 {
				cancel()
			}
		},
		Stats: &st, Retry: fastRetry, Log: quietLog,
		OnDevice: func(err error) { mu.Lock(); states = append(states, err); mu.Unlock() },
	}
	go func() { defer close(done); tr.Run(ctx) }()
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
	if len(opened) < 2 || st.Reopens.Load() != uint64(len(opened)) {
		t.Errorf("%d cameras opened, %d reopens counted", len(opened), st.Reopens.Load())
	}
	// Two device losses and one failed reopen.
	if e := st.Errors.Load(); e < 3 {
		t.Errorf("%d errors counted, want at least 3", e)
	}
	if u := st.Units.Load(); u != uint64(frames.Load()) || st.Packets.Load() < u {
		t.Errorf("stats: %d frames, %d packets; published %d", u, st.Packets.Load(), frames.Load())
	}
	// Gone, back, gone, back: the board's fault follows the device.
	if len(states) < 4 || states[0] == nil || !errors.Is(states[0], capture.ErrDeviceGone) || states[1] != nil || states[2] == nil || states[3] != nil {
		t.Errorf("device states %v, want gone, ok, gone, ok", states)
	}
}

// A device missing at start (a real board whose "auto" found nothing) is
// opened under the same policy as soon as it appears, and OnDevice hears
// that it works.
func TestTrackWaitsForMissingDevice(t *testing.T) {
	img := testJPEG(t)
	var tries atomic.Int32
	ok := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	tr := &Track[capture.VideoFrame]{
		Name: "camera",
		Open: func() (Source[capture.VideoFrame], error) {
			if tries.Add(1) < 3 {
				return nil, errors.New("no camera")
			}
			return VideoSource(&flakyCamera{jpeg: img, n: 1 << 30}), nil
		},
		Packetize: func(f capture.VideoFrame) (capture.Burst, error) {
			return capture.Burst{Kind: capture.KindVideo, Packets: [][]byte{{1}}}, nil
		},
		Publish: func(capture.Burst) {},
		Retry:   fastRetry,
		Log:     quietLog,
		OnDevice: func(err error) {
			if err == nil {
				close(ok)
			}
		},
	}
	tr.markDown()
	done := make(chan struct{})
	go func() { defer close(done); tr.Run(ctx) }()
	select {
	case <-ok:
	case <-time.After(10 * time.Second):
		t.Fatalf("the device appeared after %d tries but was never reported working", tries.Load())
	}
	cancel()
	<-done
}

// A frame the packetizer rejects is counted and skipped.
func TestTrackSkipsBadFrames(t *testing.T) {
	cam := &flakyCamera{jpeg: []byte("not a jpeg"), n: 3}
	pk, err := rtpjpeg.NewPacketizer(0, 1, capture.PayloadTypeJPEG)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var st Stats
	tr := &Track[capture.VideoFrame]{
		Name: "camera", Source: VideoSource(cam), Packetize: pk.Packetize,
		Open: func() (Source[capture.VideoFrame], error) {
			cancel() // stop after the first source is used up
			return nil, errors.New("gone")
		},
		Publish: func(capture.Burst) { t.Error("published a rejected frame") },
		Stats:   &st, Retry: fastRetry, Log: quietLog,
	}
	tr.Run(ctx)
	if st.Errors.Load() < 3 || st.Units.Load() != 0 {
		t.Errorf("errors %d units %d, want >= 3 errors and no frames", st.Errors.Load(), st.Units.Load())
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

// The generic helpers see each kind's fields.
func TestUnitHelpers(t *testing.T) {
	f := capture.VideoFrame{Seq: 7, Data: []byte{1}}
	c := capture.AudioChunk{Seq: 9, Samples: []int16{1}}
	if unitSeq(f) != 7 || unitSeq(c) != 9 || kindOf[capture.VideoFrame]() != capture.KindVideo || kindOf[capture.AudioChunk]() != capture.KindAudio {
		t.Fatal("unitSeq/kindOf")
	}
	fc, cc := clone(f), clone(c)
	fc.Data[0], cc.Samples[0] = 2, 2
	if f.Data[0] != 1 || c.Samples[0] != 1 {
		t.Fatal("clone shares the payload")
	}
}
