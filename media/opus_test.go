//go:build cgo && !noopus

package media

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/callbox/callbox/capture"
)

// TestPipelineOpusAlongside: with OpusAlongside the microphone is
// published twice, PCMU and Opus (own SSRC), one packet per 20 ms each;
// muting stops both.
func TestPipelineOpusAlongside(t *testing.T) {
	var muted atomic.Bool
	var pcmuN, opusN atomic.Int64
	var opusSSRC, pcmuSSRC atomic.Uint32
	p, err := Start(context.Background(), Config{
		Camera: "synthetic", Mic: "synthetic", Video: VideoConfig{Width: 160, Height: 120, FPS: 10}, PacketSize: 1200,
		OpusAlongside: true, Muted: muted.Load, Log: quietLog,
		Publish: func(b capture.Burst) {
			if b.Kind != capture.KindAudio || len(b.Packets) == 0 {
				return
			}
			pkt := b.Packets[0]
			ssrc := uint32(pkt[8])<<24 | uint32(pkt[9])<<16 | uint32(pkt[10])<<8 | uint32(pkt[11])
			switch pkt[1] & 0x7f {
			case capture.PayloadTypeOpus:
				opusN.Add(int64(len(b.Packets)))
				opusSSRC.Store(ssrc)
			case capture.PayloadTypePCMU:
				pcmuN.Add(int64(len(b.Packets)))
				pcmuSSRC.Store(ssrc)
			default:
				t.Errorf("audio payload type %d", pkt[1]&0x7f)
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop()
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 10 s (PCMU %d, Opus %d)", what, pcmuN.Load(), opusN.Load())
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitFor("25 Opus and PCMU packets", func() bool { return opusN.Load() >= 25 && pcmuN.Load() >= 25 })
	if p.OpusStats() == nil {
		t.Fatal("no Opus track stats")
	}
	if opusSSRC.Load() == pcmuSSRC.Load() {
		t.Error("Opus and PCMU share an SSRC")
	}
	if d := opusN.Load() - pcmuN.Load(); d > 3 || d < -3 {
		t.Errorf("Opus %d packets, PCMU %d: not one each per chunk", opusN.Load(), pcmuN.Load())
	}
	muted.Store(true)
	time.Sleep(100 * time.Millisecond) // a chunk in flight may land first
	o0 := opusN.Load()
	p0 := pcmuN.Load()
	time.Sleep(200 * time.Millisecond)
	if opusN.Load() != o0 || pcmuN.Load() != p0 {
		t.Errorf("published while muted: Opus %d, PCMU %d", opusN.Load()-o0, pcmuN.Load()-p0)
	}
}
