package viewer

import (
	"testing"
	"time"

	"github.com/callbox/callbox/capture"
	"github.com/callbox/callbox/relay/internal/gen"
)

func TestTrackerWholeFramesAndGaps(t *testing.T) {
	s := gen.Video(16000, 1200, 1)
	tr := NewTracker(capture.KindVideo, 0)
	t0 := time.Unix(1700000000, 0)
	var frames [][][]byte
	for i := 0; i < 6; i++ {
		b := s.Next(t0.Add(time.Duration(i) * 33 * time.Millisecond))
		var pkts [][]byte
		for _, p := range b.Packets {
			pkts = append(pkts, append([]byte(nil), p...))
		}
		frames = append(frames, pkts)
	}
	add := func(f int, pkts [][]byte) {
		for _, p := range pkts {
			tr.Add(p, t0.Add(time.Duration(f)*33*time.Millisecond+5*time.Millisecond), 0)
		}
	}
	add(0, frames[0])
	add(1, frames[1])
	// Frame 2 dropped whole (a flush): a gap, nothing incomplete.
	add(3, frames[3])
	if tr.Whole != 3 || tr.Incomplete != 0 || tr.Gaps != 1 || tr.LostPackets != uint64(len(frames[2])) {
		t.Fatalf("after a whole-frame drop: %+v", tr.Summary())
	}
	// Frame 4 without its first packet: incomplete, counted once.
	add(4, frames[4][1:])
	if tr.Incomplete != 1 || tr.Whole != 3 {
		t.Fatalf("headless frame: whole %d incomplete %d", tr.Whole, tr.Incomplete)
	}
	// Frame 5 without its last packet, then nothing: incomplete when the
	// next frame's packets show up is tested by the cut below.
	add(5, frames[5][:len(frames[5])-1])
	cut := gen.Video(16000, 1200, 2)
	b := cut.Next(t0.Add(time.Second))
	tr.Add(b.Packets[0], t0.Add(time.Second), 0) // a different stream's seq: a gap mid-frame
	if tr.Incomplete != 2 {
		t.Fatalf("cut frame: incomplete %d, want 2", tr.Incomplete)
	}
	sum := tr.Summary()
	if sum.LatencySamples != 3 || sum.LatencyP50Ms != 5 || sum.LatencyMaxMs != 5 {
		t.Fatalf("latencies %+v", sum)
	}
}

func TestTrackerAudio(t *testing.T) {
	s := gen.Audio(1)
	tr := NewTracker(capture.KindAudio, 0)
	t0 := time.Unix(1700000000, 0)
	for i := 0; i < 10; i++ {
		at := t0.Add(time.Duration(i) * 20 * time.Millisecond)
		b := s.Next(at)
		if i == 4 {
			continue
		}
		tr.Add(b.Packets[0], at.Add(2*time.Millisecond), 0)
	}
	sum := tr.Summary()
	if sum.Whole != 9 || sum.Incomplete != 0 || sum.Gaps != 1 || sum.LatencyP99Ms != 2 {
		t.Fatalf("audio %+v", sum)
	}
}

func FuzzTrackerAdd(f *testing.F) {
	s := gen.Video(3000, 1200, 1)
	for _, p := range s.Next(time.Unix(1700000000, 0)).Packets {
		f.Add(append([]byte(nil), p...))
	}
	f.Add([]byte{0x90, 26, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0xbe, 0xde, 0, 9})
	f.Fuzz(func(t *testing.T, pkt []byte) {
		tr := NewTracker(capture.KindVideo, 16)
		tr.Add(pkt, time.Now(), 0)
		tr.Add(pkt, time.Now(), 0)
		if tr.Whole+tr.Incomplete > 2 {
			t.Fatalf("two packets made %d units", tr.Whole+tr.Incomplete)
		}
	})
}
