package speaker

import (
	"math"
	"sync"
	"time"
)

// Sim is the simulated speaker (`speaker.device = "synthetic"`, and "auto"
// on a development machine): it keeps time like a device (one frame per
// FrameDuration of wall clock) and keeps what it was given, so tests and
// /api/state can tell what would have been heard.
type Sim struct {
	pace pacer

	mu      sync.Mutex
	written uint64 // frames
	sound   uint64 // frames with any non-zero sample
	peak    int16
	rec     []int16 // the last simKeep samples, oldest first once full
	recHead int
	closed  bool
}

// simKeep is how much audio a Sim keeps: the last 10 s.
const simKeep = 10 * Rate

// NewSim returns a simulated speaker.
func NewSim() *Sim { return &Sim{} }

// Write implements Output: it records frame, then waits for the frame's
// time to pass.
func (s *Sim) Write(frame []int16) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	s.written++
	loud := false
	for _, v := range frame {
		if v != 0 {
			loud = true
		}
		if a := absInt16(v); a > s.peak {
			s.peak = a
		}
	}
	if loud {
		s.sound++
	}
	if s.rec == nil {
		s.rec = make([]int16, 0, simKeep)
	}
	for _, v := range frame {
		if len(s.rec) < simKeep {
			s.rec = append(s.rec, v)
		} else {
			s.rec[s.recHead] = v
			s.recHead = (s.recHead + 1) % simKeep
		}
	}
	s.mu.Unlock()
	s.pace.wait()
	return nil
}

func absInt16(v int16) int16 {
	if v == math.MinInt16 {
		return math.MaxInt16
	}
	if v < 0 {
		return -v
	}
	return v
}

// Latency implements Output: the simulated speaker plays at once.
func (s *Sim) Latency() time.Duration { return 0 }

// Close implements Output.
func (s *Sim) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	return nil
}

// SimCounts are what a Sim was given.
type SimCounts struct {
	Frames      uint64 // written
	SoundFrames uint64 // with any non-zero sample
	Peak        int16
}

// Counts returns what the Sim was given so far.
func (s *Sim) Counts() SimCounts {
	s.mu.Lock()
	defer s.mu.Unlock()
	return SimCounts{Frames: s.written, SoundFrames: s.sound, Peak: s.peak}
}

// Recorded returns a copy of the last d of audio written (at most 10 s),
// oldest first.
func (s *Sim) Recorded(d time.Duration) []int16 {
	s.mu.Lock()
	defer s.mu.Unlock()
	all := make([]int16, 0, len(s.rec))
	all = append(all, s.rec[s.recHead:]...)
	all = append(all, s.rec[:s.recHead]...)
	n := min(int(d.Seconds()*Rate), len(all))
	return all[len(all)-n:]
}
