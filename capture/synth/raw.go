package synth

import "image"

// The raw (I420) form of the pattern, for encoders: the same picture as the
// JPEG frames, composed the same way from parts rendered once at start-up
// (the background with the empty ball band, each counter digit plain and
// inverted, and the ball at each phase over a pair of tiles), so a frame
// costs a copy of the background and a few small blits, and no allocation.
//
// Every part's edges lie on 16-pixel boundaries, so the 2x2 chroma blocks of
// 4:2:0 never straddle two parts and the blits are exact.

// planes is an I420 picture of w x h pixels.
type planes struct {
	w, h int
	buf  []byte // Y, then U, then V
}

func (p *planes) y() []byte { return p.buf[:p.w*p.h] }
func (p *planes) u() []byte { return p.buf[p.w*p.h : p.w*p.h+(p.w/2)*(p.h/2)] }
func (p *planes) v() []byte { return p.buf[p.w*p.h+(p.w/2)*(p.h/2):] }

// rgbToI420 converts img (its whole bounds, even size) to I420 with BT.601
// limited-range coefficients, chroma averaged over each 2x2 block.
func rgbToI420(img *image.RGBA) planes {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	p := planes{w: w, h: h, buf: make([]byte, w*h+2*(w/2)*(h/2))}
	ys, us, vs := p.y(), p.u(), p.v()
	for y := range h {
		for x := range w {
			c := img.RGBAAt(b.Min.X+x, b.Min.Y+y)
			r, g, bb := int(c.R), int(c.G), int(c.B)
			ys[y*w+x] = uint8(((66*r + 129*g + 25*bb + 128) >> 8) + 16)
		}
	}
	for y := 0; y < h; y += 2 {
		for x := 0; x < w; x += 2 {
			var su, sv int
			for _, d := range [4][2]int{{0, 0}, {1, 0}, {0, 1}, {1, 1}} {
				c := img.RGBAAt(b.Min.X+x+d[0], b.Min.Y+y+d[1])
				r, g, bb := int(c.R), int(c.G), int(c.B)
				su += ((-38*r - 74*g + 112*bb + 128) >> 8) + 128
				sv += ((112*r - 94*g - 18*bb + 128) >> 8) + 128
			}
			us[(y/2)*(w/2)+x/2] = uint8((su + 2) / 4)
			vs[(y/2)*(w/2)+x/2] = uint8((sv + 2) / 4)
		}
	}
	return p
}

// blit copies src into dst with src's top-left corner at (x, y), clipped to
// dst. x and y are even.
func blit(dst *planes, src *planes, x, y int) {
	w := min(src.w, dst.w-x)
	h := min(src.h, dst.h-y)
	if w <= 0 || h <= 0 {
		return
	}
	dy, sy := dst.y(), src.y()
	for r := range h {
		copy(dy[(y+r)*dst.w+x:(y+r)*dst.w+x+w], sy[r*src.w:r*src.w+w])
	}
	du, su, dv, sv := dst.u(), src.u(), dst.v(), src.v()
	dw, sw := dst.w/2, src.w/2
	for r := range h / 2 {
		di, si := (y/2+r)*dw+x/2, r*sw
		copy(du[di:di+w/2], su[si:si+w/2])
		copy(dv[di:di+w/2], sv[si:si+w/2])
	}
}

// rawPattern holds the pattern's parts in I420.
type rawPattern struct {
	bg    planes        // background with the empty ball band
	digit [2][10]planes // [inverted][digit]: one counter cell
	ball  []planes      // [phase]: two tiles of the band, ball's left edge in the first
}

func buildRaw(l *layout) *rawPattern {
	bgImg := l.background()
	band := image.Rect(0, l.bandRow*16, l.width, (l.bandRow+l.bandRows)*16)
	for y := band.Min.Y; y < band.Max.Y; y++ {
		for x := band.Min.X; x < band.Max.X; x++ {
			bgImg.SetRGBA(x, y, bandColor)
		}
	}
	rp := &rawPattern{bg: rgbToI420(bgImg)}
	cell := image.NewRGBA(image.Rect(0, 0, l.tileW, 16*l.counterRows))
	for inv := range 2 {
		for d := range 10 {
			drawDigit(cell, d, inv == 1)
			rp.digit[inv][d] = rgbToI420(cell)
		}
	}
	pair := image.NewRGBA(image.Rect(0, 0, 2*l.tileW, 16*l.bandRows))
	rp.ball = make([]planes, l.phases)
	for p := range l.phases {
		drawBall(pair, p*l.step, l.tileW)
		rp.ball[p] = rgbToI420(pair)
	}
	return rp
}

// appendFrame appends the I420 picture of frame seq to dst.
func (rp *rawPattern) appendFrame(dst []byte, l *layout, seq uint64, flash bool) []byte {
	inv := 0
	if flash {
		inv = 1
	}
	n := len(dst)
	dst = append(dst, rp.bg.buf...)
	f := &planes{w: l.width, h: l.height, buf: dst[n:]}
	v := seq
	for i := CounterDigits - 1; i >= 0; i-- {
		c := l.counterCell(i)
		blit(f, &rp.digit[inv][v%10], c.Min.X, c.Min.Y)
		v /= 10
	}
	x := int(seq%uint64(l.positions)) * l.step
	ballCol, phase := x/l.tileW, (x%l.tileW)/l.step
	blit(f, &rp.ball[phase], ballCol*l.tileW, l.bandRow*16)
	return dst
}
