package box

import "time"

// Step is one rung of the call's video ladder: a picture size and a frame
// rate, and the least video bitrate the step is kept at.
type Step struct {
	Width, Height int // for a 16:9 camera; other shapes keep the height
	FPS           int
	MinBitrate    int // bit/s of video below which the call steps down
}

// DefaultLadder is what a call sends as the path allows: 720p30 when the
// estimate has room for it, then smaller pictures, then fewer of them.
// The thresholds are OpenH264 constrained baseline at a quality where a
// room with people moving stays sharp (docs/calls.md).
var DefaultLadder = []Step{
	{1280, 720, 30, 1_000_000},
	{960, 540, 30, 550_000},
	{640, 360, 30, 280_000},
	{640, 360, 15, 0},
}

// Ladder moves between steps with hysteresis: down at once when the video
// bitrate falls below the step's minimum (a congested path must be
// relieved now), up only after the bitrate has stayed UpFactor above the
// next step's minimum for UpAfter, and never within HoldAfterDown of the
// last step down (so that an estimate oscillating around a threshold does
// not make the picture size flap).
type Ladder struct {
	Steps         []Step
	UpFactor      float64
	UpAfter       time.Duration
	HoldAfterDown time.Duration

	cur      int
	aboveAt  time.Time // since when the bitrate allows the next step up (zero: it does not)
	downAt   time.Time
	Changes  int // steps taken, both ways
	Downs    int
	Ups      int
	Lowest   int // the lowest step index reached
	capIndex int // the first step the camera is big enough for
}

// NewLadder starts at the highest step a camera of srcW x srcH can fill
// (no step scales up) that bitrate allows.
func NewLadder(steps []Step, srcW, srcH, bitrate int) *Ladder {
	l := &Ladder{Steps: steps, UpFactor: 1.3, UpAfter: 3 * time.Second, HoldAfterDown: 5 * time.Second}
	// The first step the camera fills; a camera smaller than every step
	// starts at the first step of the smallest size (its full frame rate),
	// sent at the camera's own size.
	l.capIndex = -1
	for i, s := range steps {
		if s.Height <= srcH {
			l.capIndex = i
			break
		}
	}
	if l.capIndex < 0 {
		l.capIndex = len(steps) - 1
		for l.capIndex > 0 && steps[l.capIndex-1].Height == steps[len(steps)-1].Height {
			l.capIndex--
		}
	}
	l.cur = l.capIndex
	for l.cur < len(steps)-1 && bitrate < steps[l.cur].MinBitrate {
		l.cur++
	}
	l.Lowest = l.cur
	return l
}

// Current is the step in use.
func (l *Ladder) Current() Step { return l.Steps[l.cur] }

// Index is the current step's index (0: the best).
func (l *Ladder) Index() int { return l.cur }

// Update takes the video bitrate available now and reports whether the
// step changed.
func (l *Ladder) Update(now time.Time, bitrate int) bool {
	if l.cur < len(l.Steps)-1 && bitrate < l.Steps[l.cur].MinBitrate {
		for l.cur < len(l.Steps)-1 && bitrate < l.Steps[l.cur].MinBitrate {
			l.cur++
		}
		l.downAt, l.aboveAt = now, time.Time{}
		l.Changes++
		l.Downs++
		l.Lowest = max(l.Lowest, l.cur)
		return true
	}
	if l.cur == l.capIndex {
		return false
	}
	up := l.Steps[l.cur-1]
	if float64(bitrate) < l.UpFactor*float64(up.MinBitrate) {
		l.aboveAt = time.Time{}
		return false
	}
	if l.aboveAt.IsZero() {
		l.aboveAt = now
	}
	if now.Sub(l.aboveAt) < l.UpAfter || (!l.downAt.IsZero() && now.Sub(l.downAt) < l.HoldAfterDown) {
		return false
	}
	l.cur--
	l.aboveAt = time.Time{}
	l.Changes++
	l.Ups++
	return true
}

// stepSize is the picture size of step s for a camera of srcW x srcH:
// the step's height, the camera's shape, even sizes, never larger than
// the camera.
func stepSize(s Step, srcW, srcH int) (w, h int) {
	if srcH <= s.Height {
		return srcW &^ 1, srcH &^ 1
	}
	h = s.Height
	w = (srcW*h/srcH + 1) &^ 1
	return w, h &^ 1
}
