package speaker

import (
	"sync"
	"time"
)

// farRing is how much of what was played the mixer keeps for the echo
// canceller: far more than any room's echo path plus the devices' buffers.
const farRing = 2 * Rate

// farEnd keeps the last farRing samples the mixer wrote, with when the
// newest of them leaves the speaker.
type farEnd struct {
	mu       sync.Mutex
	ring     []int16
	head     uint64    // samples written in all
	headTime time.Time // when sample head (the next one) leaves the speaker
}

func (f *farEnd) push(frame []int16, playAt time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ring == nil {
		f.ring = make([]int16, farRing)
	}
	for _, v := range frame {
		f.ring[f.head%farRing] = v
		f.head++
	}
	f.headTime = playAt.Add(time.Duration(len(frame)) * time.Second / Rate)
}

// FarEnd is a reader of what the mixer played: the echo canceller's
// reference. Read returns the samples that left the speaker at a given
// time, continuing sample-exactly from the previous Read: the timestamps
// only lock the alignment at the start and after the two sides drifted
// apart by more than Resync (a device restarted, a long stall).
type FarEnd struct {
	f      *farEnd
	next   uint64 // absolute index of the next sample to hand out
	locked bool
	// Resyncs counts how often the alignment was locked afresh.
	Resyncs int
}

// Resync is the misalignment (timestamps against the running sample
// count) past which a FarEnd locks afresh.
const Resync = 40 * time.Millisecond

// FarEnd returns a new reader of what the mixer plays.
func (m *Mixer) FarEnd() *FarEnd { return &FarEnd{f: &m.far} }

// Read fills dst (mono samples at Rate) with what left the speaker from
// time at on. Samples not played yet, or older than the ring, are silence.
// It reports whether the alignment was locked afresh (the caller's echo
// filter may need to readapt).
func (r *FarEnd) Read(dst []int16, at time.Time) (resynced bool) {
	f := r.f
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ring == nil {
		clear(dst)
		return false
	}
	// The sample index that left the speaker at time at.
	want := int64(f.head) - int64(f.headTime.Sub(at).Seconds()*Rate)
	if !r.locked || abs(want-int64(r.next)) > int64(Resync.Seconds()*Rate) {
		r.locked = true
		r.Resyncs++
		resynced = true
		r.next = uint64(max(want, 0))
	}
	for i := range dst {
		idx := r.next + uint64(i)
		if idx >= f.head || f.head-idx > farRing {
			dst[i] = 0
			continue
		}
		dst[i] = f.ring[idx%farRing]
	}
	r.next += uint64(len(dst))
	return resynced
}

func abs(v int64) int64 {
	if v < 0 {
		return -v
	}
	return v
}
