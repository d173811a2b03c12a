package media

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/callbox/callbox/capture"
)

// Retry is the one retry policy for a source that fails or a device that
// is missing: wait First, then twice as long after each failed open, up to
// Max. Max bounds the time from a device coming back to its first unit
// (the appliance promises 2 s for a replugged camera) at the cost of one
// failed open per Max while it is away.
type Retry struct {
	First, Max time.Duration
}

// DefaultRetry is the policy of the appliance and `callbox send`.
var DefaultRetry = Retry{First: 100 * time.Millisecond, Max: time.Second}

// Stats counts one track; read while it runs.
type Stats struct {
	Units   atomic.Uint64 // frames or chunks packetized
	Packets atomic.Uint64
	Bytes   atomic.Uint64 // RTP bytes (headers included)
	Gaps    atomic.Uint64 // units the source skipped (Seq jumps)
	Errors  atomic.Uint64 // read, open, packetize and publish errors
	Reopens atomic.Uint64
}

func (s *Stats) count(b capture.Burst) {
	s.Units.Add(1)
	s.Packets.Add(uint64(len(b.Packets)))
	var n int
	for _, p := range b.Packets {
		n += len(p)
	}
	s.Bytes.Add(uint64(n))
}

// Snapshot is one reading of a Stats.
type Snapshot struct {
	Units, Packets, Bytes, Gaps, Errors, Reopens uint64
}

// Snapshot reads s.
func (s *Stats) Snapshot() Snapshot {
	return Snapshot{s.Units.Load(), s.Packets.Load(), s.Bytes.Load(), s.Gaps.Load(), s.Errors.Load(), s.Reopens.Load()}
}

// Track is one kind's pipeline loop: read a unit from Source, packetize it,
// publish the burst; when the source fails, close it and Open another
// under Retry. The packetizer, and so the RTP sequence, lives on across
// reopens.
type Track[U Unit] struct {
	Name      string                    // the device, for the log ("camera")
	Source    Source[U]                 // the first source; nil: Open one first
	Open      func() (Source[U], error) // a new source after a failure
	Packetize func(U) (capture.Burst, error)
	Publish   func(capture.Burst)
	Stats     *Stats
	Retry     Retry // zero: DefaultRetry
	Log       *slog.Logger
	// OnDevice hears the device's state: an error while it is missing or
	// failed, nil once it delivers again. May be nil.
	OnDevice func(error)

	down bool // the device is missing at start (OnDevice was told)
}

// markDown records that the device was missing at start, so that OnDevice
// hears nil when it appears.
func (t *Track[U]) markDown() { t.down = true }

// Run runs the track until ctx is done; it closes the last source.
func (t *Track[U]) Run(ctx context.Context) {
	retry := t.Retry
	if retry.First <= 0 {
		retry = DefaultRetry
	}
	st := t.Stats
	if st == nil {
		st = new(Stats)
	}
	el := errLogger{log: t.Log}
	unit := "audio chunk"
	if kindOf[U]() == capture.KindVideo {
		unit = "video frame"
	}
	backoff := retry.First
	var seq seqTracker
	src := t.Source
	down := t.down && t.OnDevice != nil // OnDevice was told of a failure
	for {
		for src != nil {
			u, err := src.Read(ctx)
			if err != nil {
				src.Close()
				src = nil
				if ctx.Err() != nil {
					return
				}
				st.Errors.Add(1)
				if errors.Is(err, capture.ErrDeviceGone) {
					t.Log.Warn(t.Name+" gone; reopening", "err", err)
				} else {
					t.Log.Warn(t.Name+" read failed; reopening", "err", err)
				}
				if t.OnDevice != nil {
					t.OnDevice(fmt.Errorf("%s: %w", t.Name, err))
					down = true
				}
				break
			}
			if down {
				t.OnDevice(nil)
				down = false
			}
			backoff = retry.First
			st.Gaps.Add(seq.gap(unitSeq(u)))
			b, err := t.Packetize(u)
			if err != nil {
				st.Errors.Add(1)
				el.log1(unit+" dropped", err)
				continue
			}
			st.count(b)
			t.Publish(b)
		}
		if !sleepCtx(ctx, backoff) {
			return
		}
		backoff = min(2*backoff, retry.Max)
		s, err := t.Open()
		if err != nil {
			st.Errors.Add(1)
			el.log1(t.Name+" open failed", err)
			continue
		}
		st.Reopens.Add(1)
		t.Log.Info(t.Name + " opened")
		src = s
		seq = seqTracker{}
	}
}

// seqTracker counts gaps in a source's Seq.
type seqTracker struct {
	next    uint64
	started bool
}

func (t *seqTracker) gap(seq uint64) uint64 {
	var g uint64
	if t.started && seq > t.next {
		g = seq - t.next
	}
	t.started, t.next = true, seq+1
	return g
}

// sleepCtx waits d or until ctx is done; it reports whether to go on.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// errLogger logs the first error of a run of the same kind and then at
// most once per interval, so a failing device cannot flood the log.
type errLogger struct {
	log   *slog.Logger
	last  time.Time
	quiet int
}

func (l *errLogger) log1(msg string, err error) {
	now := time.Now()
	if now.Sub(l.last) < 5*time.Second {
		l.quiet++
		return
	}
	l.log.Warn(msg, "err", err, "suppressed", l.quiet)
	l.last, l.quiet = now, 0
}

// LogStats logs the pipeline's rates every interval until ctx is done.
func LogStats(ctx context.Context, log *slog.Logger, every time.Duration, video, audio *Stats) {
	t := time.NewTicker(every)
	defer t.Stop()
	pv, pa := video.Snapshot(), audio.Snapshot()
	last := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			v, a := video.Snapshot(), audio.Snapshot()
			sec := now.Sub(last).Seconds()
			log.Info("media stats",
				"video_fps", fmt.Sprintf("%.1f", float64(v.Units-pv.Units)/sec),
				"video_kbps", fmt.Sprintf("%.0f", float64(v.Bytes-pv.Bytes)*8/sec/1000),
				"video_packets", v.Packets-pv.Packets,
				"video_dropped_frames", v.Gaps-pv.Gaps,
				"audio_kbps", fmt.Sprintf("%.1f", float64(a.Bytes-pa.Bytes)*8/sec/1000),
				"audio_packets", a.Packets-pa.Packets,
				"audio_lost_chunks", a.Gaps-pa.Gaps,
				"errors", (v.Errors-pv.Errors)+(a.Errors-pa.Errors))
			pv, pa, last = v, a, now
		}
	}
}

// LogEncodedStats logs the rates of the encoder's track beside the
// camera's (Config.EncodeAlongside) every interval until ctx is done:
// its dropped frames are the camera's frames the encoder had no time for.
func LogEncodedStats(ctx context.Context, log *slog.Logger, every time.Duration, encoded *Stats) {
	t := time.NewTicker(every)
	defer t.Stop()
	p := encoded.Snapshot()
	last := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			e := encoded.Snapshot()
			sec := now.Sub(last).Seconds()
			log.Info("media stats (encoder beside JPEG)",
				"h264_fps", fmt.Sprintf("%.1f", float64(e.Units-p.Units)/sec),
				"h264_kbps", fmt.Sprintf("%.0f", float64(e.Bytes-p.Bytes)*8/sec/1000),
				"h264_packets", e.Packets-p.Packets,
				"h264_dropped_frames", e.Gaps-p.Gaps,
				"errors", e.Errors-p.Errors)
			p, last = e, now
		}
	}
}
