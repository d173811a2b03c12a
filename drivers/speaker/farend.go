package speaker

import (
	"slices"
	"sync"
	"time"
)

// farRing is how much of what was played the mixer keeps for the echo
// canceller: far more than any room's echo path plus the devices' buffers.
const farRing = 2 * Rate

// farEnd keeps the last farRing samples played, and when the newest
// frame's first sample leaves the speaker.
type farEnd struct {
	mu         sync.Mutex
	ring       []int16
	head       uint64    // samples written in all
	anchorIdx  uint64    // this sample...
	anchorTime time.Time // ...leaves the speaker at this time
	// epoch counts discontinuities: a frame whose time is not where the
	// previous one's end was (the output restarted, a stall).
	epoch uint64
}

// push stores frame; playAt is when its first sample leaves the speaker.
func (f *farEnd) push(frame []int16, playAt time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ring == nil {
		f.ring = make([]int16, farRing)
	}
	if !f.anchorTime.IsZero() {
		expect := f.anchorTime.Add(time.Duration(f.head-f.anchorIdx) * time.Second / Rate)
		if d := playAt.Sub(expect); d > Resync || d < -Resync {
			f.epoch++
		}
	}
	f.anchorIdx, f.anchorTime = f.head, playAt
	for _, v := range frame {
		f.ring[f.head%farRing] = v
		f.head++
	}
}

// FarEnd is a reader of what the mixer played: the echo canceller's
// reference. Read returns the samples that left the speaker at a given
// time, continuing sample-exactly from the previous Read: the timestamps
// only lock the alignment at the start and after the two sides drifted
// apart by more than Resync in most of the last half second of reads (a
// device restarted, samples lost), by the median misalignment.
type FarEnd struct {
	f      *farEnd
	next   uint64 // absolute index of the next sample to hand out
	locked bool
	epoch  uint64 // the far end's discontinuities seen
	// The misalignments of the last reads (samples; timestamps against
	// the running count): one late timestamp (a reader that was
	// descheduled) must not move the alignment, only a majority.
	errs [resyncVotes]int64
	nerr int
	// Resyncs counts how often the alignment was locked afresh.
	Resyncs int
}

// Realign makes the next Read lock the alignment afresh from its
// timestamp: the reader's side lost samples (a microphone overflow).
func (r *FarEnd) Realign() { r.locked = false }

// Resync is the misalignment (timestamps against the running sample
// count) past which a FarEnd locks afresh, when most of the last
// resyncVotes reads agree. It is large: the sample count is what keeps
// the alignment (the timestamps of an emulated or busy machine drift and
// jump by tens of milliseconds; measured in the HIL VM); a discontinuity
// on either side (Realign, a restarted output) relocks at once.
const Resync = 200 * time.Millisecond

const resyncVotes = 50 // reads: a second of 20 ms chunks

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
	want := int64(f.anchorIdx) + int64(at.Sub(f.anchorTime).Seconds()*Rate)
	if !r.locked || r.epoch != f.epoch {
		r.locked, r.epoch, r.nerr = true, f.epoch, 0
		r.Resyncs++
		resynced = true
		r.next = uint64(max(want, 0))
	} else {
		r.errs[r.nerr%resyncVotes] = want - int64(r.next)
		r.nerr++
		if r.nerr >= resyncVotes {
			sorted := r.errs
			slices.Sort(sorted[:])
			if med := sorted[resyncVotes/2]; abs(med) > int64(Resync.Seconds()*Rate) {
				r.Resyncs++
				resynced = true
				r.next = uint64(max(int64(r.next)+med, 0))
				r.nerr = 0
			}
		}
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
