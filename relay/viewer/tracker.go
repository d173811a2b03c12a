package viewer

import (
	"encoding/binary"
	"slices"
	"time"

	"github.com/callbox/callbox/capture"
	"github.com/callbox/callbox/capture/rtpext"
)

// Tracker checks that media arrives in whole units and measures it. A video
// frame is whole when its packets have consecutive sequence numbers, its
// first packet is a frame start (it carries abs-capture-time, which the box
// puts on the first packet of every frame, and for JPEG its fragment offset
// is 0) and its last has the marker bit. A gap in sequence numbers is a
// flush (or drop) the relay made for this client.
type Tracker struct {
	Kind capture.Kind

	Packets, Bytes  uint64
	Whole           uint64 // video frames or audio chunks received whole
	Incomplete      uint64 // frames that started or ended wrong: must stay 0
	Gaps            uint64 // sequence gaps: flushes seen
	LostPackets     uint64 // sequence numbers skipped
	First, Last     time.Time
	latencies       []time.Duration
	maxSamples      int
	seen, inFrame   bool
	discarding      bool
	lastSeq         uint16
	frameTS         uint32
	frameCapture    time.Time
	frameHasCapture bool
}

// NewTracker returns a tracker that keeps up to maxSamples latency samples
// (0: 1<<20).
func NewTracker(kind capture.Kind, maxSamples int) *Tracker {
	if maxSamples <= 0 {
		maxSamples = 1 << 20
	}
	return &Tracker{Kind: kind, maxSamples: maxSamples, latencies: make([]time.Duration, 0, min(maxSamples, 4096))}
}

// Add accounts one RTP packet that arrived at arrival; offset is the box's
// clock minus ours (Client.Offset). It reports whether the packet completed
// a whole unit.
func (t *Tracker) Add(pkt []byte, arrival time.Time, offset time.Duration) bool {
	if len(pkt) < 12 || pkt[0]>>6 != 2 {
		t.Incomplete++
		return false
	}
	t.Packets++
	t.Bytes += uint64(len(pkt))
	if t.First.IsZero() {
		t.First = arrival
	}
	t.Last = arrival
	seq := binary.BigEndian.Uint16(pkt[2:])
	ts := binary.BigEndian.Uint32(pkt[4:])
	marker := pkt[1]&0x80 != 0
	if t.seen && seq != t.lastSeq+1 {
		t.Gaps++
		t.LostPackets += uint64(seq - t.lastSeq - 1)
		if t.inFrame {
			t.Incomplete++ // the relay cut a frame: must never happen
			t.inFrame = false
		}
	}
	t.seen, t.lastSeq = true, seq
	if t.inFrame && ts != t.frameTS {
		t.Incomplete++ // previous frame ended without its marker
		t.inFrame = false
	}
	if !t.inFrame {
		if t.discarding && ts == t.frameTS {
			t.discarding = !marker
			return false
		}
		t.discarding = false
		ct, err := rtpext.AbsCaptureTime(pkt)
		if t.Kind == capture.KindVideo && (err != nil || !isFrameStart(pkt)) {
			// Counted once; the rest of this frame is skipped.
			t.Incomplete++
			t.frameTS, t.discarding = ts, !marker
			return false
		}
		t.inFrame, t.frameTS, t.frameCapture, t.frameHasCapture = true, ts, ct, err == nil
	}
	if !marker && t.Kind == capture.KindVideo {
		return false
	}
	t.inFrame = false
	t.Whole++
	if t.frameHasCapture && len(t.latencies) < t.maxSamples {
		t.latencies = append(t.latencies, arrival.Sub(t.frameCapture.Add(-offset)))
	}
	return true
}

// isFrameStart checks the payload where the format says where a frame
// starts: for RFC 2435 JPEG, fragment offset 0.
func isFrameStart(pkt []byte) bool {
	if pkt[1]&0x7f != capture.PayloadTypeJPEG {
		return true
	}
	off := 12 + 4*int(pkt[0]&0x0f)
	if pkt[0]&0x10 != 0 {
		if len(pkt) < off+4 {
			return false
		}
		off += 4 + 4*int(binary.BigEndian.Uint16(pkt[off+2:]))
	}
	if len(pkt) < off+4 {
		return false
	}
	return pkt[off+1] == 0 && pkt[off+2] == 0 && pkt[off+3] == 0
}

// Summary is what a tracker measured.
type Summary struct {
	Kind            string  `json:"kind"`
	Whole           uint64  `json:"whole"`
	Incomplete      uint64  `json:"incomplete"`
	Packets         uint64  `json:"packets"`
	Bytes           uint64  `json:"bytes"`
	Gaps            uint64  `json:"flushes_seen"`
	LostPackets     uint64  `json:"packets_skipped"`
	Rate            float64 `json:"per_second"` // frames or chunks per second
	Kbps            float64 `json:"kbps"`
	LatencyP50Ms    float64 `json:"latency_p50_ms"`
	LatencyP99Ms    float64 `json:"latency_p99_ms"`
	LatencyMaxMs    float64 `json:"latency_max_ms"`
	LatencySamples  int     `json:"latency_samples"`
	DurationSeconds float64 `json:"duration_s"`
}

// Summary computes the rates over the time from the first to the last packet.
func (t *Tracker) Summary() Summary {
	s := Summary{Kind: t.Kind.String(), Whole: t.Whole, Incomplete: t.Incomplete, Packets: t.Packets,
		Bytes: t.Bytes, Gaps: t.Gaps, LostPackets: t.LostPackets, LatencySamples: len(t.latencies)}
	if d := t.Last.Sub(t.First).Seconds(); d > 0 {
		s.DurationSeconds = d
		s.Rate = float64(t.Whole) / d
		s.Kbps = float64(t.Bytes) * 8 / d / 1000
	}
	if len(t.latencies) > 0 {
		l := slices.Clone(t.latencies)
		slices.Sort(l)
		s.LatencyP50Ms = Quantile(l, 0.5)
		s.LatencyP99Ms = Quantile(l, 0.99)
		s.LatencyMaxMs = float64(l[len(l)-1]) / 1e6
	}
	return s
}

// Latencies returns the latency samples so far (not a copy).
func (t *Tracker) Latencies() []time.Duration { return t.latencies }

// Reset forgets everything measured but keeps frame state, so a warm-up
// period can be excluded.
func (t *Tracker) Reset() {
	t.Packets, t.Bytes, t.Whole, t.Incomplete, t.Gaps, t.LostPackets = 0, 0, 0, 0, 0, 0
	t.First, t.Last = time.Time{}, time.Time{}
	t.latencies = t.latencies[:0]
}

// Quantile of sorted durations, in milliseconds (nearest rank).
func Quantile(sorted []time.Duration, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.5) - 1
	i = max(0, min(i, len(sorted)-1))
	return float64(sorted[i]) / 1e6
}
