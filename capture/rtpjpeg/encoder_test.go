package rtpjpeg

import (
	"bytes"
	"image"
	"image/color"
	"math"
	"math/rand/v2"
)

// A small baseline JPEG encoder for the tests. Go's image/jpeg writes only
// 4:2:0 without restart markers; this one writes 4:2:0, 4:2:2 and 4:4:4,
// with or without DRI and RSTn markers, with or without DHT, and with any
// Huffman tables, so every variant the packetizer must accept or reject is
// a real, decodable JPEG (the tests decode each with image/jpeg first).

type encOpts struct {
	h, v    int // luma sampling factors: 2,2 (4:2:0), 2,1 (4:2:2), 1,1 (4:4:4)
	dri     int // restart interval in MCUs; 0 for none
	noDHT   bool
	quality int
	huff    *[4]huffTable // nil: the standard tables
	// progressive writes SOF2 and spectral selection: one interleaved DC
	// scan, then one AC scan per component (T.81 G.1.1). Needs sizes that
	// are multiples of the MCU; dri is ignored.
	progressive bool
}

// unzig[i] is the natural-order index of zigzag position i.
var unzig = [64]int{
	0, 1, 8, 16, 9, 2, 3, 10,
	17, 24, 32, 25, 18, 11, 4, 5,
	12, 19, 26, 33, 40, 48, 41, 34,
	27, 20, 13, 6, 7, 14, 21, 28,
	35, 42, 49, 56, 57, 50, 43, 36,
	29, 22, 15, 23, 30, 37, 44, 51,
	58, 59, 52, 45, 38, 31, 39, 46,
	53, 60, 61, 54, 47, 55, 62, 63,
}

// Annex K.1 tables, natural order.
var stdQuant = [2][64]int{{
	16, 11, 10, 16, 24, 40, 51, 61,
	12, 12, 14, 19, 26, 58, 60, 55,
	14, 13, 16, 24, 40, 57, 69, 56,
	14, 17, 22, 29, 51, 87, 80, 62,
	18, 22, 37, 56, 68, 109, 103, 77,
	24, 35, 55, 64, 81, 104, 113, 92,
	49, 64, 78, 87, 103, 121, 120, 101,
	72, 92, 95, 98, 112, 100, 103, 99,
}, {
	17, 18, 24, 47, 99, 99, 99, 99,
	18, 21, 26, 66, 99, 99, 99, 99,
	24, 26, 56, 99, 99, 99, 99, 99,
	47, 66, 99, 99, 99, 99, 99, 99,
	99, 99, 99, 99, 99, 99, 99, 99,
	99, 99, 99, 99, 99, 99, 99, 99,
	99, 99, 99, 99, 99, 99, 99, 99,
	99, 99, 99, 99, 99, 99, 99, 99,
}}

type huffCode struct {
	code [256]uint16
	size [256]uint8
}

func buildCodes(t *huffTable) *huffCode {
	var c huffCode
	code, k := uint16(0), 0
	for l := 1; l <= 16; l++ {
		for range int(t.bits[l-1]) {
			v := t.vals[k]
			c.code[v], c.size[v] = code, uint8(l)
			code++
			k++
		}
		code <<= 1
	}
	return &c
}

type bitWriter struct {
	out   bytes.Buffer
	acc   uint32
	nbits uint
}

func (w *bitWriter) put(bits uint32, n uint) {
	for i := int(n) - 1; i >= 0; i-- {
		w.acc = w.acc<<1 | (bits>>uint(i))&1
		w.nbits++
		if w.nbits == 8 {
			b := byte(w.acc)
			w.out.WriteByte(b)
			if b == 0xFF {
				w.out.WriteByte(0) // byte stuffing
			}
			w.acc, w.nbits = 0, 0
		}
	}
}

// flush pads the last byte with 1 bits (T.81 F.1.2.3).
func (w *bitWriter) flush() {
	for w.nbits != 0 {
		w.put(1, 1)
	}
}

func encodeTestJPEG(img image.Image, o encOpts) []byte {
	b := img.Bounds()
	W, H := b.Dx(), b.Dy()
	// Full-resolution YCbCr planes (JFIF conversion).
	planes := [3][]float64{make([]float64, W*H), make([]float64, W*H), make([]float64, W*H)}
	for y := range H {
		for x := range W {
			r, g, bb, _ := img.At(b.Min.X+x, b.Min.Y+y).RGBA()
			yy, cb, cr := color.RGBToYCbCr(uint8(r>>8), uint8(g>>8), uint8(bb>>8))
			planes[0][y*W+x], planes[1][y*W+x], planes[2][y*W+x] = float64(yy), float64(cb), float64(cr)
		}
	}
	q := o.quality
	if q == 0 {
		q = 80
	}
	scale := 5000 / q
	if q >= 50 {
		scale = 200 - 2*q
	}
	var quant [2][64]int
	for t := range 2 {
		for i := range 64 {
			quant[t][i] = max(1, min(255, (stdQuant[t][i]*scale+50)/100))
		}
	}
	tables := &stdHuffman
	if o.huff != nil {
		tables = o.huff
	}
	codes := [4]*huffCode{}
	for k := range tables {
		codes[k] = buildCodes(&tables[k])
	}

	var out bytes.Buffer
	out.Write([]byte{0xFF, 0xD8})
	out.Write([]byte{0xFF, 0xE0, 0, 16, 'J', 'F', 'I', 'F', 0, 1, 1, 0, 0, 1, 0, 1, 0, 0}) // APP0
	for t := range 2 {
		out.Write([]byte{0xFF, 0xDB, 0, 67, byte(t)})
		for i := range 64 {
			out.WriteByte(byte(quant[t][unzig[i]]))
		}
	}
	sof := byte(0xC0)
	if o.progressive {
		sof = 0xC2
	}
	out.Write([]byte{0xFF, sof, 0, 17, 8, byte(H >> 8), byte(H), byte(W >> 8), byte(W), 3,
		1, byte(o.h<<4 | o.v), 0, 2, 0x11, 1, 3, 0x11, 1})
	if !o.noDHT {
		for k := range tables {
			t := &tables[k]
			l := 2 + 1 + 16 + len(t.vals)
			out.Write([]byte{0xFF, 0xC4, byte(l >> 8), byte(l), t.class<<4 | t.id})
			out.Write(t.bits[:])
			out.Write(t.vals)
		}
	}
	if o.dri > 0 && !o.progressive {
		out.Write([]byte{0xFF, 0xDD, 0, 4, byte(o.dri >> 8), byte(o.dri)})
	}

	// Quantized coefficients of every block, per component, in the block
	// grid of an interleaved scan (luma mcusX*h by mcusY*v blocks, chroma
	// one block per MCU).
	mcuW, mcuH := 8*o.h, 8*o.v
	mcusX, mcusY := (W+mcuW-1)/mcuW, (H+mcuH-1)/mcuH
	gridW := [3]int{mcusX * o.h, mcusX, mcusX}
	var coefs [3][][64]int
	for my := range mcusY {
		for by := range o.v {
			for mx := range mcusX {
				for bx := range o.h {
					blk := sampleBlock(planes[0], W, H, mx*mcuW+8*bx, my*mcuH+8*by, 1, 1)
					coefs[0] = append(coefs[0], fdctQuant(blk, &quant[0]))
				}
			}
		}
	}
	for c := 1; c < 3; c++ {
		for my := range mcusY {
			for mx := range mcusX {
				coefs[c] = append(coefs[c], fdctQuant(sampleBlock(planes[c], W, H, mx*mcuW, my*mcuH, o.h, o.v), &quant[1]))
			}
		}
	}
	dcCode := [3]*huffCode{codes[0], codes[2], codes[2]}
	acCode := [3]*huffCode{codes[1], codes[3], codes[3]}
	// mcuBlocks calls fn for each block of an MCU in interleaved order.
	mcuBlocks := func(mx, my int, fn func(c int, coef *[64]int)) {
		for by := range o.v {
			for bx := range o.h {
				fn(0, &coefs[0][(my*o.v+by)*gridW[0]+mx*o.h+bx])
			}
		}
		for c := 1; c < 3; c++ {
			fn(c, &coefs[c][my*gridW[c]+mx])
		}
	}
	w := &bitWriter{}
	var pred [3]int
	if !o.progressive {
		out.Write([]byte{0xFF, 0xDA, 0, 12, 3, 1, 0x00, 2, 0x11, 3, 0x11, 0, 63, 0})
		mcus, rst := 0, 0
		for my := range mcusY {
			for mx := range mcusX {
				if o.dri > 0 && mcus > 0 && mcus%o.dri == 0 {
					w.flush()
					w.out.Write([]byte{0xFF, byte(0xD0 + rst%8)})
					rst++
					pred = [3]int{}
				}
				mcus++
				mcuBlocks(mx, my, func(c int, coef *[64]int) {
					writeDC(w, coef[0]-pred[c], dcCode[c])
					pred[c] = coef[0]
					writeAC(w, coef, acCode[c])
				})
			}
		}
		w.flush()
		out.Write(w.out.Bytes())
	} else {
		// DC first scan, all components interleaved: Ss=0, Se=0, Ah=Al=0.
		out.Write([]byte{0xFF, 0xDA, 0, 12, 3, 1, 0x00, 2, 0x11, 3, 0x11, 0, 0, 0})
		for my := range mcusY {
			for mx := range mcusX {
				mcuBlocks(mx, my, func(c int, coef *[64]int) {
					writeDC(w, coef[0]-pred[c], dcCode[c])
					pred[c] = coef[0]
				})
			}
		}
		w.flush()
		out.Write(w.out.Bytes())
		// One AC scan per component (Ss=1, Se=63), blocks in raster order
		// of the component; an EOB symbol is EOBRUN 1, as in baseline.
		for c := range 3 {
			sel := byte(0x00)
			if c > 0 {
				sel = 0x11
			}
			out.Write([]byte{0xFF, 0xDA, 0, 8, 1, byte(c + 1), sel, 1, 63, 0})
			w = &bitWriter{}
			for i := range coefs[c] {
				writeAC(w, &coefs[c][i], acCode[c])
			}
			w.flush()
			out.Write(w.out.Bytes())
		}
	}
	out.Write([]byte{0xFF, 0xD9})
	return out.Bytes()
}

// sampleBlock returns the 8x8 block at (x0, y0) of plane, averaging sx*sy
// pixels per sample (chroma subsampling), edge pixels repeated.
func sampleBlock(plane []float64, W, H, x0, y0, sx, sy int) [64]float64 {
	var blk [64]float64
	for y := range 8 {
		for x := range 8 {
			var s float64
			for dy := range sy {
				for dx := range sx {
					px := min(x0+x*sx+dx, W-1)
					py := min(y0+y*sy+dy, H-1)
					s += plane[py*W+px]
				}
			}
			blk[y*8+x] = s/float64(sx*sy) - 128
		}
	}
	return blk
}

// cosTable[u][x] = cos((2x+1)u*pi/16), for the textbook FDCT (T.81 A.3.3).
var cosTable = func() (t [8][8]float64) {
	for u := range 8 {
		for x := range 8 {
			t[u][x] = math.Cos(float64(2*x+1) * float64(u) * math.Pi / 16)
		}
	}
	return t
}()

func fdctQuant(blk [64]float64, quant *[64]int) [64]int {
	var coef [64]int
	// Separable: rows first, then columns.
	var rows [64]float64 // rows[y*8+u]
	for y := range 8 {
		for u := range 8 {
			var s float64
			for x := range 8 {
				s += blk[y*8+x] * cosTable[u][x]
			}
			rows[y*8+u] = s
		}
	}
	for v := range 8 {
		for u := range 8 {
			var s float64
			for y := range 8 {
				s += rows[y*8+u] * cosTable[v][y]
			}
			cu, cv := 1.0, 1.0
			if u == 0 {
				cu = math.Sqrt2 / 2
			}
			if v == 0 {
				cv = math.Sqrt2 / 2
			}
			coef[v*8+u] = int(math.Round(s * cu * cv / 4 / float64(quant[v*8+u])))
		}
	}
	return coef
}

func writeDC(w *bitWriter, diff int, dc *huffCode) {
	s, bits := category(diff)
	w.put(uint32(dc.code[s]), uint(dc.size[s]))
	w.put(bits, uint(s))
}

func writeAC(w *bitWriter, coef *[64]int, ac *huffCode) {
	run := 0
	for i := 1; i < 64; i++ {
		c := coef[unzig[i]]
		if c == 0 {
			run++
			continue
		}
		for run > 15 {
			w.put(uint32(ac.code[0xF0]), uint(ac.size[0xF0]))
			run -= 16
		}
		s, bits := category(c)
		sym := byte(run<<4) | s
		w.put(uint32(ac.code[sym]), uint(ac.size[sym]))
		w.put(bits, uint(s))
		run = 0
	}
	if run > 0 {
		w.put(uint32(ac.code[0]), uint(ac.size[0]))
	}
}

// category returns the magnitude category of v and its additional bits.
func category(v int) (byte, uint32) {
	a := v
	if a < 0 {
		a = -a
	}
	s := byte(0)
	for a > 0 {
		s++
		a >>= 1
	}
	if v < 0 {
		v += (1 << s) - 1
	}
	return s, uint32(v) & (1<<s - 1)
}

// testPicture is a camera-like test image: gradients, edges and noise.
func testPicture(w, h int, seed uint64) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	rng := rand.New(rand.NewPCG(seed, 1))
	for y := range h {
		for x := range w {
			r := uint8(x * 255 / w)
			g := uint8(y * 255 / h)
			bl := uint8((x ^ y) & 0xFF)
			if (x/37+y/23)%2 == 0 {
				r, g = g, r
			}
			n := uint8(rng.IntN(24))
			img.Set(x, y, color.RGBA{r + n, g + n/2, bl, 255})
		}
	}
	return img
}
