package echo

import (
	"context"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/callbox/callbox/capture"
)

// resampler converts mono S16 between two fixed rates, chunk by chunk.
type resampler interface {
	Process(src []int16) []int16
	// Offset is where the last call's first output sample lies in time
	// relative to its first input sample.
	Offset() time.Duration
	Close()
}

// Reference is the far end: what the speaker played, by time
// (drivers/speaker's *FarEnd).
type Reference interface {
	// Read fills dst with the samples that left the speaker from at on,
	// continuing from the previous Read; resynced reports a new alignment.
	Read(dst []int16, at time.Time) (resynced bool)
	// Realign makes the next Read align by its time afresh: the
	// microphone lost samples.
	Realign()
}

// DefaultLead is how far ahead of the microphone chunk's capture time the
// reference is read. It keeps the reference ahead of its echo (causal)
// even when the speaker's own latency figure is that much too high; the
// filter's tail absorbs it as extra delay. (The reader never reads past
// what was played: a lead beyond the speaker's buffer is clamped.)
const DefaultLead = 20 * time.Millisecond

// StageConfig sets up a Stage.
type StageConfig struct {
	Canceller *Canceller
	Far       Reference
	// Rate is the microphone's and the reference's sample rate (default
	// 48000); both are resampled to the canceller's and the result back.
	// Microphone chunks of another rate pass through uncancelled (and
	// are counted).
	Rate int
	Lead time.Duration // 0: DefaultLead
}

// Stage cancels the speaker's echo in a microphone's chunks: Wrap gives
// the source the microphone's track reads instead of the microphone. The
// canceller's state outlives a source (a replugged microphone is wrapped
// again): the room stays the same. One wrapped source reads at a time.
type Stage struct {
	cfg     StageConfig
	lastSeq uint64
	out     []int16
	frame   int // samples per chunk at cfg.Rate
	ref     []int16
	micDn   resampler // cfg.Rate to the canceller's, and back
	refDn   resampler
	outUp   resampler
	lowOut  []int16

	mu    sync.Mutex
	stats StageStats
	// Energy in and out of the last farWindow chunks the far end played.
	eIn, eOut [farWindow]float64
	ei        int
}

// StageStats are a Stage's figures.
type StageStats struct {
	Chunks      uint64 `json:"chunks"`
	Passthrough uint64 `json:"passthrough"` // chunks of a rate the canceller does not take
	Resyncs     int    `json:"resyncs"`     // reference alignments after the first
	// ReductionDB is how much quieter the microphone came out than in
	// over the last chunks the far end played (about 2 s of them): the
	// echo's reduction while the room is quiet; near-end speech lowers
	// it. 0 when the far end has not played.
	ReductionDB float64 `json:"reduction_db"`
	// DelayMS is the echo's delay behind the reference as the filter
	// found it (the room plus what the alignment missed).
	DelayMS float64 `json:"delay_ms"`
}

// NewStage returns a stage cancelling cfg.Far's echo.
func NewStage(cfg StageConfig) (*Stage, error) {
	if cfg.Canceller == nil || cfg.Far == nil {
		return nil, fmt.Errorf("echo: stage needs a canceller and a reference")
	}
	if cfg.Lead == 0 {
		cfg.Lead = DefaultLead
	}
	if cfg.Rate == 0 {
		cfg.Rate = 48000
	}
	s := &Stage{cfg: cfg, frame: cfg.Rate / 50}
	if cr := cfg.Canceller.Config().Rate; cr != cfg.Rate {
		var err error
		if s.micDn, err = newResampler(cfg.Rate, cr); err != nil {
			return nil, fmt.Errorf("echo: %w", err)
		}
		s.refDn, _ = newResampler(cfg.Rate, cr)
		if s.outUp, err = newResampler(cr, cfg.Rate); err != nil {
			return nil, fmt.Errorf("echo: %w", err)
		}
		s.lowOut = make([]int16, cr/50)
	}
	if f := cfg.Canceller.Config().FrameSamples(); (cfg.Canceller.Config().Rate/50)%f != 0 {
		return nil, fmt.Errorf("echo: the canceller's frame (%d samples) does not divide a 20 ms chunk", f)
	}
	return s, nil
}

// Wrap returns src with the echo cancelled.
func (s *Stage) Wrap(src capture.AudioSource) capture.AudioSource {
	return &stageSource{s, src}
}

type stageSource struct {
	s   *Stage
	src capture.AudioSource
}

func (w *stageSource) ReadChunk(ctx context.Context) (capture.AudioChunk, error) {
	return w.s.process(ctx, w.src)
}

// Close closes the source (not the canceller: the stage lives on).
func (w *stageSource) Close() error { return w.src.Close() }

// farWindow is how many far-end chunks ReductionDB averages.
const farWindow = 100

// delayEvery is how often (in chunks) the filter's delay is looked up.
const delayEvery = 50

func (s *Stage) process(ctx context.Context, src capture.AudioSource) (capture.AudioChunk, error) {
	c, err := src.ReadChunk(ctx)
	if err != nil {
		return c, err
	}
	n := len(c.Samples)
	if c.Rate != s.cfg.Rate || n != s.frame {
		s.mu.Lock()
		s.stats.Passthrough++
		s.mu.Unlock()
		return c, nil
	}
	if s.ref == nil {
		s.ref = make([]int16, n)
		s.out = make([]int16, n)
	}
	ref, out := s.ref, s.out
	if s.lastSeq != 0 && c.Seq != s.lastSeq+1 {
		s.cfg.Far.Realign() // the microphone lost chunks: the count is off
	}
	s.lastSeq = c.Seq
	resynced := s.cfg.Far.Read(ref, c.CaptureTime.Add(s.cfg.Lead))
	if s.micDn == nil {
		if err := s.cfg.Canceller.Process(c.Samples, ref, out); err != nil {
			return c, fmt.Errorf("echo: %w", err)
		}
	} else {
		// A 20 ms chunk of a rate that is a multiple of 50 Hz resamples
		// to exactly 20 ms: the three stay in step.
		lowMic := s.micDn.Process(c.Samples)
		lowRef := s.refDn.Process(ref)
		if err := s.cfg.Canceller.Process(lowMic, lowRef, s.lowOut); err != nil {
			return c, fmt.Errorf("echo: %w", err)
		}
		copy(out, s.outUp.Process(s.lowOut))
		// The two filters delay the microphone's sound.
		c.CaptureTime = c.CaptureTime.Add(s.micDn.Offset() + s.outUp.Offset())
	}
	s.account(c.Samples, ref, out, resynced)
	if s.stats.Chunks%delayEvery == 0 {
		d := s.cfg.Canceller.EchoDelay()
		s.mu.Lock()
		s.stats.DelayMS = float64(d.Microseconds()) / 1000
		s.mu.Unlock()
	}
	c.Samples = out
	return c, nil
}

func (s *Stage) account(in, ref, out []int16, resynced bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats.Chunks++
	if resynced && s.stats.Chunks > 1 {
		s.stats.Resyncs++
	}
	farOn := false
	for _, v := range ref {
		if v > 64 || v < -64 {
			farOn = true
			break
		}
	}
	if !farOn {
		return
	}
	var ein, eout float64
	for i := range in {
		a, b := float64(in[i]), float64(out[i])
		ein += a * a
		eout += b * b
	}
	s.eIn[s.ei], s.eOut[s.ei] = ein, eout
	s.ei = (s.ei + 1) % farWindow
}

// Close frees the stage's resamplers (not the canceller, which has its
// own Close). No wrapped source may read after it.
func (s *Stage) Close() {
	for _, r := range []resampler{s.micDn, s.refDn, s.outUp} {
		if r != nil {
			r.Close()
		}
	}
	s.micDn, s.refDn, s.outUp = nil, nil, nil
}

// Stats returns the stage's figures.
func (s *Stage) Stats() StageStats {
	s.mu.Lock()
	st := s.stats
	var ein, eout float64
	for i := range s.eIn {
		ein += s.eIn[i]
		eout += s.eOut[i]
	}
	if ein > 0 {
		st.ReductionDB = math.Round(10*math.Log10(ein/max(eout, 1))*10) / 10
	}
	s.mu.Unlock()
	return st
}
