package synth

import (
	"image"
	"image/color"
	"image/draw"
)

// The frame counter is drawn as seven-segment digits: trivially small to
// draw, readable at a glance, and readable by program (ReadCounter) from a
// decoded picture, which is how the interop test pairs a received frame with
// the frame that was sent.

// segments of a seven-segment digit, bit i = segment "abcdefg"[i].
var digitSegments = [10]uint8{
	0: 0b0111111, // abcdef
	1: 0b0000110, // bc
	2: 0b1011011, // abdeg
	3: 0b1001111, // abcdg
	4: 0b1100110, // bcfg
	5: 0b1101101, // acdfg
	6: 0b1111101, // acdefg
	7: 0b0000111, // abc
	8: 0b1111111, // abcdefg
	9: 0b1101111, // abcdfg
}

// segmentRects returns the rectangles of segments a..g of a digit drawn in
// a cell of w x h pixels at the origin.
func segmentRects(w, h int) [7]image.Rectangle {
	m := max(2, w/8) // margin around the glyph
	t := max(2, w/8) // stroke thickness
	x0, x1 := m, w-m
	y0, y1 := m, h-m
	ym := (y0 + y1) / 2
	return [7]image.Rectangle{
		image.Rect(x0, y0, x1, y0+t),         // a: top
		image.Rect(x1-t, y0, x1, ym),         // b: upper right
		image.Rect(x1-t, ym, x1, y1),         // c: lower right
		image.Rect(x0, y1-t, x1, y1),         // d: bottom
		image.Rect(x0, ym, x0+t, y1),         // e: lower left
		image.Rect(x0, y0, x0+t, ym),         // f: upper left
		image.Rect(x0, ym-t/2, x1, ym-t/2+t), // g: middle
	}
}

// segmentProbes returns one point inside each segment, away from the
// others, for reading a digit back.
func segmentProbes(w, h int) [7]image.Point {
	r := segmentRects(w, h)
	var p [7]image.Point
	for i, s := range r {
		c := image.Pt((s.Min.X+s.Max.X)/2, (s.Min.Y+s.Max.Y)/2)
		switch i {
		case 1, 2, 4, 5: // verticals: the middle of their half, away from a, d, g
			c.Y = (s.Min.Y + s.Max.Y) / 2
		}
		p[i] = c
	}
	return p
}

var (
	counterBackground = color.RGBA{0, 0, 0, 255}
	counterInk        = color.RGBA{255, 255, 255, 255}
)

// drawDigit draws digit d into dst (a cell; its bounds give the size),
// white on black, or black on white when inverted (the sync flash).
func drawDigit(dst *image.RGBA, d int, inverted bool) {
	bg, ink := counterBackground, counterInk
	if inverted {
		bg, ink = ink, bg
	}
	b := dst.Bounds()
	draw.Draw(dst, b, image.NewUniform(bg), image.Point{}, draw.Src)
	rects := segmentRects(b.Dx(), b.Dy())
	for i, r := range rects {
		if digitSegments[d]&(1<<i) != 0 {
			draw.Draw(dst, r.Add(b.Min), image.NewUniform(ink), image.Point{}, draw.Src)
		}
	}
}

// cellInverted reports whether the digit cell of img has a light
// background, read from its top-left margin.
func cellInverted(img image.Image, cell image.Rectangle) bool {
	return luma(img, cell.Min.Add(image.Pt(1, 1))) >= 128
}

// readDigit reads the digit drawn in cell of img, in either polarity; ok
// is false when the lit segments form no digit.
func readDigit(img image.Image, cell image.Rectangle) (d int, ok bool) {
	inverted := cellInverted(img, cell)
	probes := segmentProbes(cell.Dx(), cell.Dy())
	var bits uint8
	for i, p := range probes {
		if (luma(img, p.Add(cell.Min)) >= 128) != inverted {
			bits |= 1 << i
		}
	}
	for d, s := range digitSegments {
		if s == bits {
			return d, true
		}
	}
	return 0, false
}

// luma is the mean BT.601 luma of the 3x3 pixels around p, so one pixel of
// JPEG ringing cannot flip a segment.
func luma(img image.Image, p image.Point) int {
	var sum, n int
	for dy := -1; dy <= 1; dy++ {
		for dx := -1; dx <= 1; dx++ {
			q := p.Add(image.Pt(dx, dy))
			if !q.In(img.Bounds()) {
				continue
			}
			r, g, b, _ := img.At(q.X, q.Y).RGBA()
			sum += int(299*r+587*g+114*b) / 1000 >> 8
			n++
		}
	}
	if n == 0 {
		return 0
	}
	return sum / n
}
