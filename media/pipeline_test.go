package media

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/callbox/callbox/capture"
)

// The appliance packetizes each frame by its codec: JPEG as PT 26, H.264
// as PT 96, anything else is refused.
func TestCodecPacketizer(t *testing.T) {
	p, err := NewCodecPacketizer(1200)
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

// TestTap: subscribers get copies at their frame rate, only of their
// codec, no audio while muted, and nothing after Close.
func TestTap(t *testing.T) {
	var vtap Tap[capture.VideoFrame]
	var atap Tap[capture.AudioChunk]
	muted := false
	v := vtap.Subscribe(2, VideoFilter(capture.CodecJPEG, 100*time.Millisecond))
	au := atap.Subscribe(10, func(capture.AudioChunk) bool { return !muted })
	t0 := time.Now()
	data := []byte{1, 2, 3}
	for i := range 10 { // 30 fps for a third of a second, every other frame H.264
		codec := capture.CodecJPEG
		if i%5 == 4 {
			codec = capture.CodecH264
		}
		vtap.offer(capture.VideoFrame{Codec: codec, Data: data, CaptureTime: t0.Add(time.Duration(i) * time.Second / 30), Seq: uint64(i)})
	}
	data[0] = 9 // the source reuses its buffer
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	var seqs []uint64
	for len(v.ch) > 0 {
		f, err := v.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if f.Data[0] != 1 {
			t.Errorf("frame %d shares the source's buffer", f.Seq)
		}
		seqs = append(seqs, f.Seq)
	}
	// 100 ms at 30 fps: frames 0 and 3 (the channel holds two; later ones drop).
	if len(seqs) != 2 || seqs[0] != 0 || seqs[1] != 3 || v.Dropped() == 0 {
		t.Errorf("frames %v, dropped %d; want [0 3] and drops", seqs, v.Dropped())
	}
	atap.offer(capture.AudioChunk{Samples: []int16{1}, Rate: 8000})
	muted = true
	atap.offer(capture.AudioChunk{Samples: []int16{2}, Rate: 8000})
	if len(au.ch) != 1 {
		t.Errorf("%d chunks queued, want 1 (none while muted)", len(au.ch))
	}
	v.Close()
	au.Close()
	if _, err := v.Read(ctx); err == nil {
		t.Error("read after Close succeeded")
	}
	if vtap.Subscribers()+atap.Subscribers() != 0 || len(vtap.subs) != 0 || len(atap.subs) != 0 {
		t.Errorf("subscribers left after Close: %d", vtap.Subscribers()+atap.Subscribers())
	}
}

// The pipeline runs the synthetic sources into the sink; while muted no
// audio reaches the sink or a tap subscriber, video keeps flowing.
func TestPipelineMute(t *testing.T) {
	var muted atomic.Bool
	var checks atomic.Int64 // Muted calls: the audio goroutine's progress
	var video, audio atomic.Int64
	p, err := Start(context.Background(), Config{
		Camera: "synthetic", Mic: "synthetic", Video: VideoConfig{Width: 320, Height: 240, FPS: 50}, PacketSize: 1200,
		Muted: func() bool { checks.Add(1); return muted.Load() },
		Publish: func(b capture.Burst) {
			if b.Kind == capture.KindVideo {
				video.Add(1)
			} else {
				audio.Add(1)
			}
		},
		Log: quietLog,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop()
	sub := p.SubscribeAudio()
	defer sub.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := sub.ReadChunk(ctx); err != nil {
		t.Fatalf("tap before mute: %v", err)
	}
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		for !ok() {
			if ctx.Err() != nil {
				t.Fatalf("%s: not within 10 s", what)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitFor("audio published", func() bool { return audio.Load() > 0 })
	muted.Store(true)
	// Let a chunk in flight through (each chunk is checked twice, tap and
	// sink, in one goroutine), then nothing more may pass.
	c0 := checks.Load()
	waitFor("the audio goroutine", func() bool { return checks.Load() >= c0+4 })
	a0 := audio.Load()
	for len(sub.ch) > 0 {
		sub.ReadChunk(ctx)
	}
	v1 := video.Load()
	waitFor("more video while muted", func() bool { return video.Load() > v1+5 })
	if a := audio.Load(); a != a0 {
		t.Errorf("%d audio bursts published while muted", a-a0)
	}
	if n := len(sub.ch); n != 0 {
		t.Errorf("%d chunks tapped while muted", n)
	}
	muted.Store(false)
	waitFor("audio after unmute", func() bool { return audio.Load() > a0 })
}
