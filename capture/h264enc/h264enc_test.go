package h264enc

import (
	"context"
	"errors"
	"fmt"
	"image"
	"testing"
	"time"

	"github.com/callbox/callbox/capture"
	"github.com/callbox/callbox/capture/rtph264"
	"github.com/callbox/callbox/capture/synth"
)

// seqSource yields the synthetic camera's I420 pictures as fast as they are
// read (no pacing), stamped one frame period apart.
type seqSource struct {
	cam    *synth.Camera
	w, h   int
	seq    uint64
	buf    []byte
	t0     time.Time
	closed bool
}

func newSeqSource(t testing.TB, w, h int) *seqSource {
	cam, err := synth.NewCamera(synth.CameraConfig{Width: w, Height: h, Format: capture.CodecI420})
	if err != nil {
		t.Fatal(err)
	}
	return &seqSource{cam: cam, w: w, h: h, t0: time.Unix(1_800_000_000, 0)}
}

func (s *seqSource) ReadFrame(ctx context.Context) (capture.VideoFrame, error) {
	if s.closed {
		return capture.VideoFrame{}, errors.New("closed")
	}
	s.buf = s.cam.AppendI420(s.buf[:0], s.seq, false)
	f := capture.VideoFrame{Codec: capture.CodecI420, Data: s.buf, Width: s.w, Height: s.h,
		CaptureTime: s.t0.Add(time.Duration(s.seq) * time.Second / 30), Seq: s.seq}
	s.seq++
	return f, nil
}

func (s *seqSource) Close() error { s.closed = true; return nil }

func newStage(t testing.TB, w, h int, cfg Config) *Stage {
	t.Helper()
	if !SoftwareAvailable() {
		t.Skip("no software encoder in this build (cgo off or noh264)")
	}
	cfg.Width, cfg.Height = w, h
	eng, err := NewSoftware(cfg)
	if err != nil {
		t.Fatal(err)
	}
	st, err := NewStage(newSeqSource(t, w, h), eng, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// nalTypes lists the NAL unit types of an Annex B access unit.
func nalTypes(t testing.TB, au []byte) []byte {
	nals, err := rtph264.SplitAnnexB(nil, au)
	if err != nil {
		t.Fatal(err)
	}
	var ty []byte
	for _, n := range nals {
		ty = append(ty, n[0]&0x1f)
	}
	return ty
}

func TestConfig(t *testing.T) {
	for _, c := range []Config{
		{Width: 641, Height: 480},
		{Width: 640, Height: 480, Bitrate: 10},
		{Width: 640, Height: 480, GOP: -1},
		{Width: 640, Height: 480, FPS: 1000},
		{Width: 640, Height: 480, Profile: "extended"},
	} {
		if err := c.Fill(); err == nil {
			t.Errorf("%+v: no error", c)
		}
	}
	c := Config{Width: 1280, Height: 720}
	if err := c.Fill(); err != nil || c.Bitrate != DefaultBitrate || c.GOP != DefaultGOP || c.Profile != ProfileConstrainedBaseline {
		t.Fatalf("defaults: %+v %v", c, err)
	}
	if p, err := ParseProfile(" High "); err != nil || p != ProfileHigh {
		t.Fatalf("ParseProfile: %v %v", p, err)
	}
	if SoftwareAvailable() {
		if _, err := NewSoftware(Config{Width: 320, Height: 240, Profile: ProfileHigh}); err == nil {
			t.Fatal("openh264 accepted the high profile")
		}
	}
}

// TestGOPAndParameterSets: the first access unit is SPS, PPS, IDR; IDRs
// come every GOP frames, each with SPS and PPS before it; the frames keep
// the source's capture time and sequence number.
func TestGOPAndParameterSets(t *testing.T) {
	st := newStage(t, 320, 240, Config{GOP: 10})
	ctx := context.Background()
	for i := range 25 {
		f, err := st.ReadFrame(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if f.Codec != capture.CodecH264 || f.Seq != uint64(i) || f.Width != 320 || f.Height != 240 {
			t.Fatalf("frame %d: %v seq %d %dx%d", i, f.Codec, f.Seq, f.Width, f.Height)
		}
		if want := time.Unix(1_800_000_000, 0).Add(time.Duration(i) * time.Second / 30); !f.CaptureTime.Equal(want) {
			t.Fatalf("frame %d: capture time %v, want %v", i, f.CaptureTime, want)
		}
		ty := nalTypes(t, f.Data)
		wantKey := i%10 == 0
		if f.Keyframe != wantKey {
			t.Fatalf("frame %d: keyframe %v (NAL types %v)", i, f.Keyframe, ty)
		}
		if wantKey && (len(ty) < 3 || ty[0] != 7 || ty[1] != 8 || ty[len(ty)-1] != 5) {
			t.Fatalf("frame %d: IDR access unit has NAL types %v, want SPS PPS ... IDR", i, ty)
		}
	}
	if s := st.Stats(); s.Frames != 25 || s.Keyframes != 3 || s.ForcedKeyframes != 0 {
		t.Fatalf("stats %+v", s)
	}
}

// TestKeyframeOnDemand: a request makes the very next frame an IDR; a
// burst of requests within MinKeyframeInterval makes exactly one more, at
// the end of the interval.
func TestKeyframeOnDemand(t *testing.T) {
	st := newStage(t, 320, 240, Config{GOP: 1000, MinKeyframeInterval: 500 * time.Millisecond})
	now := time.Unix(1_800_000_000, 0)
	st.now = func() time.Time { return now }
	ctx := context.Background()
	read := func() capture.VideoFrame {
		t.Helper()
		f, err := st.ReadFrame(ctx)
		if err != nil {
			t.Fatal(err)
		}
		now = now.Add(time.Second / 30)
		return f
	}
	if f := read(); !f.Keyframe {
		t.Fatal("first frame is not an IDR")
	}
	// Past the interval of the first IDR.
	for range 20 {
		if f := read(); f.Keyframe {
			t.Fatalf("frame %d: unrequested IDR", f.Seq)
		}
	}
	st.RequestKeyframe()
	if f := read(); !f.Keyframe {
		t.Fatalf("frame %d after the request is not an IDR", f.Seq)
	}
	// 10 requests over the next 10 frames (333 ms): one IDR, at the first
	// frame 500 ms or more after the last one (16 frames of 33.33 ms).
	var keys []uint64
	for i := range 30 {
		if i < 10 {
			st.RequestKeyframe()
		}
		if f := read(); f.Keyframe {
			keys = append(keys, f.Seq)
		}
	}
	if len(keys) != 1 || keys[0] != 21+16 {
		t.Fatalf("IDRs after a burst of 10 requests at frames %v, want one at frame %d", keys, 21+16)
	}
	s := st.Stats()
	if s.KeyframeRequests != 11 || s.ForcedKeyframes != 2 || s.Keyframes != 3 {
		t.Fatalf("stats %+v", s)
	}
}

func TestWrongInput(t *testing.T) {
	st := newStage(t, 320, 240, Config{})
	st.src = newSeqSource(t, 640, 480)
	if _, err := st.ReadFrame(context.Background()); !errors.Is(err, ErrFormat) {
		t.Fatalf("640x480 into a 320x240 encoder: %v", err)
	}
	st.Close()
	if _, err := st.ReadFrame(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
}

// TestPacketizerAllocs: the RTP packetizer that follows the encoder
// allocates nothing per frame, IDR or not.
func TestPacketizerAllocs(t *testing.T) {
	st := newStage(t, 1280, 720, Config{GOP: 5})
	var aus []capture.VideoFrame
	for range 10 {
		f, err := st.ReadFrame(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		f.Data = append([]byte(nil), f.Data...)
		aus = append(aus, f)
	}
	p, err := rtph264.NewPacketizer(0, 1, capture.PayloadTypeH264)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range aus { // warm the buffers up
		if _, err := p.Packetize(f); err != nil {
			t.Fatal(err)
		}
	}
	i := 0
	allocs := testing.AllocsPerRun(50, func() {
		f := aus[i%len(aus)]
		f.CaptureTime = f.CaptureTime.Add(time.Duration(i) * time.Second)
		if _, err := p.Packetize(f); err != nil {
			t.Fatal(err)
		}
		i++
	})
	if allocs != 0 {
		t.Fatalf("Packetize allocates %.1f times per frame", allocs)
	}
}

// TestIsKeyframe checks the IDR scan on hand-made access units.
func TestIsKeyframe(t *testing.T) {
	for _, c := range []struct {
		au   []byte
		want bool
	}{
		{[]byte{0, 0, 0, 1, 0x67, 1, 0, 0, 1, 0x68, 2, 0, 0, 1, 0x65, 3}, true},
		{[]byte{0, 0, 0, 1, 0x41, 9}, false},
		{[]byte{0, 0, 1}, false},
		{nil, false},
	} {
		if got := IsKeyframe(c.au); got != c.want {
			t.Errorf("%x: %v", c.au, got)
		}
	}
}

func ycbcr(pic []byte, w, h int) *image.YCbCr {
	ys, cs := w*h, (w/2)*(h/2)
	return &image.YCbCr{Y: pic[:ys], Cb: pic[ys : ys+cs], Cr: pic[ys+cs : ys+2*cs], YStride: w, CStride: w / 2,
		SubsampleRatio: image.YCbCrSubsampleRatio420, Rect: image.Rect(0, 0, w, h)}
}

// jpegSource yields the synthetic camera's JPEG frames unpaced.
type jpegSource struct {
	cam *synth.Camera
	seq uint64
	buf []byte
}

func (s *jpegSource) ReadFrame(ctx context.Context) (capture.VideoFrame, error) {
	s.buf = s.cam.AppendFrame(s.buf[:0], s.seq, false)
	f := capture.VideoFrame{Codec: capture.CodecJPEG, Data: s.buf, Width: 320, Height: 240, Keyframe: true, Seq: s.seq}
	s.seq++
	return f, nil
}

func (s *jpegSource) Close() error { return nil }

// TestJPEGInput: a camera that gives only JPEG is decoded and encoded; the
// result decodes (ffmpeg is not needed: the counter is checked on the
// decoded I420 by comparing with the raw pattern).
func TestJPEGInput(t *testing.T) {
	if !SoftwareAvailable() {
		t.Skip("no software encoder in this build")
	}
	cam, err := synth.NewCamera(synth.CameraConfig{Width: 320, Height: 240})
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Width: 320, Height: 240}
	eng, err := NewSoftware(cfg)
	if err != nil {
		t.Fatal(err)
	}
	st, err := NewStage(&jpegSource{cam: cam}, eng, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for i := range 3 {
		f, err := st.ReadFrame(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if f.Codec != capture.CodecH264 || (i == 0) != f.Keyframe {
			t.Fatalf("frame %d: %v keyframe %v", i, f.Codec, f.Keyframe)
		}
	}
	// The conversion itself: JPEG of frame 5 against the raw frame 5.
	pic, err := jpegToI420(nil, cam.AppendFrame(nil, 5, false), 320, 240)
	if err != nil {
		t.Fatal(err)
	}
	if p := psnr(cam.AppendI420(nil, 5, false)[:320*240], pic[:320*240]); p < 30 {
		t.Fatalf("JPEG-to-I420 luma PSNR %.1f dB against the raw pattern", p)
	}
	if _, err := jpegToI420(nil, []byte("not a jpeg"), 320, 240); !errors.Is(err, ErrFormat) {
		t.Fatalf("garbage: %v", err)
	}
}

// sizedSource gives 3 pictures of the first size, then of the second.
type sizedSource struct {
	a, b *seqSource
	n    int
}

func (s *sizedSource) ReadFrame(ctx context.Context) (capture.VideoFrame, error) {
	s.n++
	if s.n <= 3 {
		return s.a.ReadFrame(ctx)
	}
	return s.b.ReadFrame(ctx)
}

func (s *sizedSource) Close() error { return nil }

// TestStageOpenFollowsTheSource: NewStageOpen opens the engine at the
// size the camera actually delivers, and again (from a keyframe) when it
// changes.
func TestStageOpenFollowsTheSource(t *testing.T) {
	if !SoftwareAvailable() {
		t.Skip("no software encoder in this build")
	}
	var opened []string
	open := func(c Config) (Engine, error) {
		opened = append(opened, fmt.Sprintf("%dx%d", c.Width, c.Height))
		return NewSoftware(c)
	}
	st, err := NewStageOpen(&sizedSource{a: newSeqSource(t, 320, 240), b: newSeqSource(t, 640, 480)}, open,
		Config{Width: 1280, Height: 720})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for i := range 6 {
		f, err := st.ReadFrame(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if want := i == 0 || i == 3; f.Keyframe != want || (i < 3) != (f.Width == 320) {
			t.Fatalf("frame %d: %dx%d keyframe %v", i, f.Width, f.Height, f.Keyframe)
		}
	}
	if fmt.Sprint(opened) != "[320x240 640x480]" {
		t.Fatalf("engines opened for %v", opened)
	}
}
