// Package synth provides callbox's synthetic camera and microphone: the
// sources a box uses when it has no hardware (the embedded default on a
// development machine) and that tests use as a known signal.
//
// The camera shows colour bars, a zone plate, a seven-segment frame counter
// and a ball that moves a few pixels every frame, so a person watching sees
// a freeze (the counter stops) or a drop (it skips) at once, and a program
// can read the counter back from a decoded picture (Camera.ReadCounter).
// Once a second, on the wall clock's second, the counter flashes (inverts)
// while the microphone clicks.
// Frames are baseline 4:2:0 JPEG with restart markers, spliced from tiles
// encoded once at start-up (see tiles.go), so a frame costs microseconds;
// or, for an encoder, the same picture as raw I420 (see raw.go).
//
// The microphone plays a tone (1 kHz by default, which survives 8 kHz PCMU)
// with a short click at each whole second of the wall clock, so gaps and
// latency are audible and measurable (FindClicks, ToneFrequency).
//
// Both are paced by a Clock; tests inject a VirtualClock.
package synth

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"image"
	"image/color"
	"image/draw"
	"image/jpeg"
	"math"
	"sync"
	"time"

	"github.com/callbox/callbox/capture"
)

// Camera defaults.
const (
	DefaultWidth   = 1280
	DefaultHeight  = 720
	DefaultFPS     = 30
	DefaultQuality = 80

	// QueueDepth is how many frames wait for a late reader before the
	// oldest are dropped: the buffer count V4L2 capture typically uses.
	QueueDepth = 4

	// FlashEvery is the period of the sync flash: the counter turns black
	// on white for the frame whose slot holds a whole multiple of
	// FlashEvery of wall-clock time (a whole second), the instant the
	// microphone clicks with its default period. By eye or by program, the
	// flash and the click show audio/video sync, and, given a clock shared
	// with the sender, absolute latency.
	FlashEvery = time.Second

	// CounterDigits is the number of digits of the frame counter; it shows
	// the frame number modulo 10^CounterDigits.
	CounterDigits = 6
)

// ErrClosed is returned by a source read after Close.
var ErrClosed = errors.New("synth: source closed")

// CameraConfig configures a Camera. Zero fields take the defaults.
type CameraConfig struct {
	Width, Height int   // pixels; multiples of 8 up to 2040 (what RFC 2435 can carry)
	FPS           int   // frames per second, 1..240
	Quality       int   // JPEG quality, 1..100
	Clock         Clock // paces the frames; SystemClock when nil
	// Format is what ReadFrame yields: capture.CodecJPEG (the default) or
	// capture.CodecI420, the same picture uncompressed, for an encoder.
	Format capture.Codec
	// Mark, if not empty, paints a block of a colour derived from it
	// (MarkColor) in the top-right corner: two synthetic boxes in a call
	// (marked with their names) then show pictures a test can tell apart.
	Mark string
	// Noise, for Format I420, adds pseudo-random noise of up to +-Noise
	// levels to every luma sample, different in every frame, as a
	// camera's sensor does: an encoder then spends its bitrate as on a
	// real room instead of coasting on a clean pattern (calls' congestion
	// tests). 0: none; at most 64.
	Noise int
}

// markPalette are the colours MarkColor picks from: saturated and far
// apart, so a JPEG round trip cannot turn one into another.
var markPalette = [...]color.RGBA{
	{230, 30, 30, 255}, {30, 200, 30, 255}, {30, 60, 230, 255}, {230, 30, 230, 255},
	{30, 210, 210, 255}, {230, 210, 30, 255}, {240, 130, 20, 255}, {140, 40, 220, 255},
}

// MarkColor is the colour CameraConfig.Mark paints for mark.
func MarkColor(mark string) color.RGBA {
	h := fnv.New32a()
	h.Write([]byte(mark))
	return markPalette[h.Sum32()%uint32(len(markPalette))]
}

// MarkRect is where the mark is painted in a w x h picture: the top-right
// eighth of the width and height, on whole 16-pixel blocks (over the last
// colour bar; the counter is top-left, the ball's band lower down).
func MarkRect(w, h int) image.Rectangle {
	mw, mh := max(16, w/8/16*16), max(16, h/8/16*16)
	return image.Rect(w/16*16-mw, 0, w/16*16, mh)
}

func (c *CameraConfig) fill() {
	if c.Width == 0 {
		c.Width = DefaultWidth
	}
	if c.Height == 0 {
		c.Height = DefaultHeight
	}
	if c.FPS == 0 {
		c.FPS = DefaultFPS
	}
	if c.Quality == 0 {
		c.Quality = DefaultQuality
	}
	if c.Clock == nil {
		c.Clock = SystemClock{}
	}
	if c.Format == 0 {
		c.Format = capture.CodecJPEG
	}
}

// layout places the pattern's parts on the tile grid.
type layout struct {
	width, height    int
	mcuCols, mcuRows int
	tileMCUs         int // MCUs per tile (= restart interval)
	tileW            int // pixels
	tileCols         int
	counterRow       int // first MCU row of the counter
	counterRows      int
	counterCol       int // tile column of the most significant digit
	bandRow          int // first MCU row of the ball's band
	bandRows         int
	step             int // pixels the ball moves per frame
	phases           int // ball positions within one tile
	positions        int // ball positions in one sweep
	mark             string
}

// background is the pattern's static part, with the mark if any.
func (l *layout) background() *image.RGBA {
	img := drawBackground(l.width, l.height)
	if l.mark != "" {
		c := MarkColor(l.mark)
		r := MarkRect(l.width, l.height)
		for y := r.Min.Y; y < r.Max.Y; y++ {
			for x := r.Min.X; x < r.Max.X; x++ {
				img.SetRGBA(x, y, c)
			}
		}
	}
	return img
}

func newLayout(w, h int) (layout, error) {
	l := layout{width: w, height: h, mcuCols: (w + 15) / 16, mcuRows: (h + 15) / 16}
	// The widest tile (at most 4 MCUs: fewer, larger tiles keep the RST
	// overhead small) that divides a row and leaves room for the counter
	// plus a margin tile on each side.
	for r := 4; r >= 1; r-- {
		counterRows := (3*r + 1) / 2
		bandRows := r
		if l.mcuCols%r != 0 || (CounterDigits+2)*r > l.mcuCols || 1+counterRows+1+bandRows+1 > l.mcuRows {
			continue
		}
		l.tileMCUs, l.tileW, l.tileCols = r, 16*r, l.mcuCols/r
		l.counterRow, l.counterRows, l.counterCol = 1, counterRows, 1
		l.bandRows = bandRows
		l.bandRow = l.mcuRows - bandRows - 1
		l.phases = 8
		l.step = l.tileW / l.phases
		l.positions = (l.tileCols-1)*l.phases + 1
		return l, nil
	}
	return layout{}, fmt.Errorf("synth: %dx%d is too small for the test pattern (at least 128x112)", w, h)
}

// counterCell is the pixel rectangle of digit i (0 = most significant).
func (l *layout) counterCell(i int) image.Rectangle {
	x := (l.counterCol + i) * l.tileW
	y := l.counterRow * 16
	return image.Rect(x, y, x+l.tileW, y+16*l.counterRows)
}

// tiles holds every tile the pattern can show, encoded.
type tiles struct {
	header    []byte
	bg        [][]byte        // [row*tileCols+col]
	digit     [2][10][][]byte // [inverted][digit][row within the counter]
	bandEmpty [][]byte        // [row within the band]
	ballL     [][][]byte      // [phase][row]: the tile holding the ball's left edge
	ballR     [][][]byte      // [phase][row]: the tile to its right (phase > 0)
	maxFrame  int
}

// Camera is the synthetic camera. It implements capture.VideoSource.
// ReadFrame is meant for one goroutine; Close may be called from any.
type Camera struct {
	cfg    CameraConfig
	lay    layout
	t      *tiles
	raw    *rawPattern // when cfg.Format is I420
	period time.Duration

	buf     []byte
	timer   Timer
	started bool
	start   time.Time
	next    uint64

	closeOnce sync.Once
	closed    chan struct{}
}

var _ capture.VideoSource = (*Camera)(nil)

// NewCamera validates cfg and encodes the pattern's tiles (tens of
// milliseconds at 1280x720).
func NewCamera(cfg CameraConfig) (*Camera, error) {
	cfg.fill()
	if cfg.Width < 0 || cfg.Height < 0 || cfg.Width%8 != 0 || cfg.Height%8 != 0 || cfg.Width > 2040 || cfg.Height > 2040 {
		return nil, fmt.Errorf("synth: size %dx%d: width and height must be multiples of 8 up to 2040", cfg.Width, cfg.Height)
	}
	if cfg.FPS < 1 || cfg.FPS > 240 {
		return nil, fmt.Errorf("synth: fps %d out of range 1..240", cfg.FPS)
	}
	if cfg.Quality < 1 || cfg.Quality > 100 {
		return nil, fmt.Errorf("synth: JPEG quality %d out of range 1..100", cfg.Quality)
	}
	if cfg.Noise < 0 || cfg.Noise > 64 {
		return nil, fmt.Errorf("synth: noise %d out of range 0..64", cfg.Noise)
	}
	if cfg.Format != capture.CodecJPEG && cfg.Format != capture.CodecI420 {
		return nil, fmt.Errorf("synth: format %v: the camera yields jpeg or i420", cfg.Format)
	}
	lay, err := newLayout(cfg.Width, cfg.Height)
	if err != nil {
		return nil, err
	}
	lay.mark = cfg.Mark
	// The JPEG tiles are built in both formats: AppendFrame gives the JPEG
	// of any frame, and a raw camera's pictures are the same pattern.
	t, err := buildTiles(&lay, cfg.Quality)
	if err != nil {
		return nil, err
	}
	c := &Camera{
		cfg:    cfg,
		lay:    lay,
		t:      t,
		period: time.Second / time.Duration(cfg.FPS),
		buf:    make([]byte, 0, t.maxFrame),
		closed: make(chan struct{}),
	}
	if cfg.Format == capture.CodecI420 {
		c.raw = buildRaw(&lay)
		c.buf = make([]byte, 0, capture.I420Size(cfg.Width, cfg.Height))
	}
	return c, nil
}

// Size returns the frame size in pixels.
func (c *Camera) Size() (width, height int) { return c.cfg.Width, c.cfg.Height }

// FPS returns the frame rate.
func (c *Camera) FPS() int { return c.cfg.FPS }

// ReadFrame waits for the next frame slot and returns that frame, stamped
// with the wall clock of its slot. Like a sensor behind a capture driver,
// the camera runs whether or not it is read: a late reader first gets the
// frames queued meanwhile, at once; when more than QueueDepth have piled up
// the oldest are lost, which shows as a gap in Seq.
func (c *Camera) ReadFrame(ctx context.Context) (capture.VideoFrame, error) {
	select {
	case <-c.closed:
		return capture.VideoFrame{}, ErrClosed
	default:
	}
	now := c.cfg.Clock.Now()
	if !c.started {
		c.started, c.start = true, now
	}
	due := c.start.Add(time.Duration(c.next) * c.period)
	if wait := due.Sub(now); wait > 0 {
		if c.timer == nil {
			c.timer = c.cfg.Clock.NewTimer(wait)
		} else {
			c.timer.Reset(wait)
		}
		select {
		case <-c.timer.C():
		case <-ctx.Done():
			c.timer.Stop()
			return capture.VideoFrame{}, fmt.Errorf("synth camera: %w", ctx.Err())
		case <-c.closed:
			c.timer.Stop()
			return capture.VideoFrame{}, ErrClosed
		}
		now = c.cfg.Clock.Now()
	}
	seq := c.next
	if late := now.Sub(due); late >= c.period {
		// Frames have queued up, as in a capture driver's buffers; the
		// newest QueueDepth are kept.
		newest := c.next + uint64(late/c.period)
		if newest-seq >= QueueDepth {
			seq = newest - (QueueDepth - 1)
		}
	}
	// The frame was captured when its slot came, not when the reader (or
	// a late timer) got to it: like a driver's buffer timestamp, and so
	// the RTP timestamps are as regular as the sensor. Counted back from
	// now, it stays right even if the wall clock was stepped since start.
	capturedAt := now.Add(-now.Sub(c.start.Add(time.Duration(seq) * c.period)))
	c.next = seq + 1
	if c.raw != nil {
		c.buf = c.raw.appendFrame(c.buf[:0], &c.lay, seq, c.flashAt(seq))
		if c.cfg.Noise > 0 {
			addNoise(c.buf[:c.cfg.Width*c.cfg.Height], c.cfg.Noise, seq)
		}
	} else {
		c.buf = c.t.appendFrame(c.buf[:0], &c.lay, seq, c.flashAt(seq))
	}
	return capture.VideoFrame{
		Codec:       c.cfg.Format,
		Data:        c.buf,
		Width:       c.cfg.Width,
		Height:      c.cfg.Height,
		Keyframe:    true,
		CaptureTime: capturedAt,
		Seq:         seq,
	}, nil
}

// Close stops the camera; a blocked ReadFrame returns ErrClosed.
func (c *Camera) Close() error {
	c.closeOnce.Do(func() { close(c.closed) })
	return nil
}

// AppendFrame appends the JPEG of frame seq, with or without the sync
// flash, to dst: the exact bytes ReadFrame returned for that Seq, for
// checking what a receiver decoded (ReadCounter and ReadFlash tell seq and
// flash from the decoded picture).
func (c *Camera) AppendFrame(dst []byte, seq uint64, flash bool) []byte {
	return c.t.appendFrame(dst, &c.lay, seq, flash)
}

// AppendI420 appends the I420 picture of frame seq, with or without the
// sync flash, to dst: what a camera with Format capture.CodecI420 returns
// for that Seq, for comparing an encoder's decoded output with its input.
// It builds the raw pattern on first use when the camera yields JPEG.
func (c *Camera) AppendI420(dst []byte, seq uint64, flash bool) []byte {
	if c.raw == nil {
		c.raw = buildRaw(&c.lay)
	}
	return c.raw.appendFrame(dst, &c.lay, seq, flash)
}

// FlashAt reports whether ReadFrame shows frame seq with the sync flash.
func (c *Camera) FlashAt(seq uint64) bool { return c.flashAt(seq) }

// flashAt reports whether frame seq's slot holds a FlashEvery boundary of
// the wall clock.
func (c *Camera) flashAt(seq uint64) bool {
	slot := c.start.UnixNano() + int64(seq)*int64(c.period)
	r := slot % int64(FlashEvery)
	if r < 0 {
		r += int64(FlashEvery)
	}
	return r == 0 || r > int64(FlashEvery-c.period)
}

// ReadFlash reports whether a decoded picture of this camera shows the
// sync flash (the counter inverted).
func (c *Camera) ReadFlash(img image.Image) bool {
	return cellInverted(img, c.lay.counterCell(0).Add(img.Bounds().Min))
}

// ReadCounter reads the frame counter from a decoded picture of this
// camera's size. It returns the frame number modulo 10^CounterDigits, and
// ok false when a digit cannot be read (e.g. a corrupt picture).
func (c *Camera) ReadCounter(img image.Image) (n uint64, ok bool) {
	if img.Bounds().Dx() != c.cfg.Width || img.Bounds().Dy() != c.cfg.Height {
		return 0, false
	}
	for i := range CounterDigits {
		d, ok := readDigit(img, c.lay.counterCell(i).Add(img.Bounds().Min))
		if !ok {
			return 0, false
		}
		n = n*10 + uint64(d)
	}
	return n, true
}

// appendFrame splices frame seq from the tiles: header, then one segment per
// tile in raster order with RSTn markers between them, then EOI.
func (t *tiles) appendFrame(dst []byte, l *layout, seq uint64, flash bool) []byte {
	inv := 0
	if flash {
		inv = 1
	}
	dst = append(dst, t.header...)
	var digits [CounterDigits]uint8
	v := seq
	for i := CounterDigits - 1; i >= 0; i-- {
		digits[i] = uint8(v % 10)
		v /= 10
	}
	x := int(seq%uint64(l.positions)) * l.step
	ballCol, phase := x/l.tileW, (x%l.tileW)/l.step
	n := 0
	for row := 0; row < l.mcuRows; row++ {
		for col := 0; col < l.tileCols; col++ {
			var seg []byte
			switch {
			case row >= l.counterRow && row < l.counterRow+l.counterRows &&
				col >= l.counterCol && col < l.counterCol+CounterDigits:
				seg = t.digit[inv][digits[col-l.counterCol]][row-l.counterRow]
			case row >= l.bandRow && row < l.bandRow+l.bandRows:
				r := row - l.bandRow
				switch {
				case col == ballCol:
					seg = t.ballL[phase][r]
				case col == ballCol+1 && phase > 0:
					seg = t.ballR[phase][r]
				default:
					seg = t.bandEmpty[r]
				}
			default:
				seg = t.bg[row*l.tileCols+col]
			}
			if n > 0 {
				dst = append(dst, 0xFF, 0xD0+byte((n-1)%8))
			}
			dst = append(dst, seg...)
			n++
		}
	}
	return append(dst, 0xFF, 0xD9)
}

var (
	bandColor = color.RGBA{40, 40, 48, 255}
	ballColor = color.RGBA{255, 190, 20, 255}
)

// buildTiles draws the pattern and encodes every tile it can show.
func buildTiles(l *layout, quality int) (*tiles, error) {
	enc := &tileEncoder{opt: jpeg.Options{Quality: quality}}
	t := &tiles{}
	frame := image.Rect(0, 0, l.width, l.height)
	tileRect := func(row, col int) image.Rectangle {
		return image.Rect(col*l.tileW, row*16, (col+1)*l.tileW, (row+1)*16).Intersect(frame)
	}

	bg := l.background()
	t.bg = make([][]byte, l.mcuRows*l.tileCols)
	for row := 0; row < l.mcuRows; row++ {
		for col := 0; col < l.tileCols; col++ {
			seg, err := enc.encode(bg, tileRect(row, col))
			if err != nil {
				return nil, err
			}
			t.bg[row*l.tileCols+col] = seg
		}
	}

	cell := image.NewRGBA(image.Rect(0, 0, l.tileW, 16*l.counterRows))
	maxDigit := make([]int, l.counterRows)
	for inv := range 2 {
		for d := range 10 {
			drawDigit(cell, d, inv == 1)
			t.digit[inv][d] = make([][]byte, l.counterRows)
			for r := range l.counterRows {
				seg, err := enc.encode(cell, image.Rect(0, 16*r, l.tileW, 16*(r+1)))
				if err != nil {
					return nil, err
				}
				t.digit[inv][d][r] = seg
				maxDigit[r] = max(maxDigit[r], len(seg))
			}
		}
	}

	// The ball lives in a band of its own colour, so a tile of the band
	// depends only on where the ball is relative to that tile.
	pair := image.NewRGBA(image.Rect(0, 0, 2*l.tileW, 16*l.bandRows))
	t.bandEmpty = make([][]byte, l.bandRows)
	t.ballL = make([][][]byte, l.phases)
	t.ballR = make([][][]byte, l.phases)
	maxBand := make([]int, l.bandRows)
	for p := range l.phases {
		drawBall(pair, p*l.step, l.tileW)
		t.ballL[p] = make([][]byte, l.bandRows)
		t.ballR[p] = make([][]byte, l.bandRows)
		for r := range l.bandRows {
			left, err := enc.encode(pair, image.Rect(0, 16*r, l.tileW, 16*(r+1)))
			if err != nil {
				return nil, err
			}
			right, err := enc.encode(pair, image.Rect(l.tileW, 16*r, 2*l.tileW, 16*(r+1)))
			if err != nil {
				return nil, err
			}
			t.ballL[p][r], t.ballR[p][r] = left, right
			if p == 0 {
				t.bandEmpty[r] = right // the ball fills the left tile exactly
			}
			maxBand[r] = max(maxBand[r], len(left), len(right))
		}
	}

	t.header = enc.header(l.width, l.height, l.tileMCUs)
	// The largest frame: every tile at its largest variant, plus markers.
	size := len(t.header) + 2*(l.mcuRows*l.tileCols) + 2
	for row := 0; row < l.mcuRows; row++ {
		for col := 0; col < l.tileCols; col++ {
			s := len(t.bg[row*l.tileCols+col])
			if row >= l.counterRow && row < l.counterRow+l.counterRows {
				s = max(s, maxDigit[row-l.counterRow])
			}
			if row >= l.bandRow && row < l.bandRow+l.bandRows {
				s = max(s, maxBand[row-l.bandRow])
			}
			size += s
		}
	}
	t.maxFrame = size
	return t, nil
}

// drawBall paints the band colour over dst and a ball of diameter d with its
// left edge at x.
func drawBall(dst *image.RGBA, x, d int) {
	b := dst.Bounds()
	draw.Draw(dst, b, image.NewUniform(bandColor), image.Point{}, draw.Src)
	rad := float64(d) / 2
	cx, cy := float64(x)+rad, float64(b.Dy())/2
	for py := b.Min.Y; py < b.Max.Y; py++ {
		for px := b.Min.X; px < b.Max.X; px++ {
			dx, dy := float64(px)+0.5-cx, float64(py)+0.5-cy
			if dx*dx+dy*dy <= (rad-1)*(rad-1) {
				dst.SetRGBA(px, py, ballColor)
			}
		}
	}
}

// drawBackground paints 75% colour bars over the top 60% of the frame and
// a luma ramp and a zone plate below: flat areas, hard edges and fine detail,
// so a frame costs roughly what a real scene of that size does.
func drawBackground(w, h int) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	bars := [...]color.RGBA{
		{191, 191, 191, 255}, {191, 191, 0, 255}, {0, 191, 191, 255}, {0, 191, 0, 255},
		{191, 0, 191, 255}, {191, 0, 0, 255}, {0, 0, 191, 255},
	}
	split := h * 6 / 10
	for y := range split {
		for x := range w {
			img.SetRGBA(x, y, bars[x*len(bars)/w])
		}
	}
	// Zone plate: rings whose spatial frequency grows with the radius up to
	// 0.2 cycles/pixel at the edge of its region.
	zx0 := w / 2
	cx, cy := float64(zx0+w)/2, float64(split+h)/2
	rmax := math.Hypot(float64(w-zx0)/2, float64(h-split)/2)
	k := 0.2 * math.Pi / rmax
	for y := split; y < h; y++ {
		for x := range w {
			var v float64
			if x < zx0 {
				v = 16 + 219*float64(x)/float64(zx0)
			} else {
				dx, dy := float64(x)-cx, float64(y)-cy
				v = 128 + 100*math.Cos(k*(dx*dx+dy*dy))
			}
			g := uint8(v)
			img.SetRGBA(x, y, color.RGBA{g, g, g, 255})
		}
	}
	return img
}

// addNoise adds noise of up to +-amp to the samples (xorshift64, seeded
// by the frame number: the same frame always gets the same noise).
func addNoise(y []byte, amp int, seq uint64) {
	x := seq*0x9E3779B97F4A7C15 | 1
	span := uint64(2*amp + 1)
	for i := 0; i < len(y); i += 8 {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		r := x
		for j := i; j < min(i+8, len(y)); j++ {
			v := int(y[j]) + int((r&0xff)%span) - amp
			y[j] = byte(max(16, min(235, v)))
			r >>= 8
		}
	}
}
