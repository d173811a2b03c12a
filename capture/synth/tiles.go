package synth

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	"image/jpeg"
)

// How frames are prepared ahead.
//
// A baseline JPEG with a restart interval of R MCUs is a header followed by
// independent entropy-coded segments, one per R MCUs, separated by RST
// markers: every segment starts with the DC predictors at zero. So a segment
// depends only on the pixels of its own R MCUs (a "tile", 16R x 16 pixels in
// 4:2:0), and a frame can be spliced together from tiles encoded earlier.
//
// The camera encodes every tile the pattern can show once, at start-up, with
// image/jpeg (each tile is a tiny image of its own, whose scan data is exactly
// that segment: same standard Huffman tables, same quantization tables, DC
// predictors from zero). A frame then costs one pass of copying a few hundred
// short byte runs, with no encoding and no allocation.

// tileEncoder encodes tiles and checks that they splice.
type tileEncoder struct {
	opt    jpeg.Options
	buf    bytes.Buffer
	dqt    []byte // DQT segment(s) of the first tile, marker included
	dht    []byte // DHT segment(s)
	sof    []byte // SOF0 segment
	sos    []byte // SOS segment (header only)
	tables []byte // dqt+dht of the first tile, to check that all tiles agree
}

var errSplice = errors.New("synth: image/jpeg output cannot be spliced")

// encode encodes the sub-image r of img and returns its entropy-coded
// segment (a fresh slice).
func (e *tileEncoder) encode(img *image.RGBA, r image.Rectangle) ([]byte, error) {
	e.buf.Reset()
	if err := jpeg.Encode(&e.buf, img.SubImage(r), &e.opt); err != nil {
		return nil, fmt.Errorf("synth: encode tile %v: %w", r, err)
	}
	b := e.buf.Bytes()
	if len(b) < 4 || b[0] != 0xFF || b[1] != 0xD8 || b[len(b)-2] != 0xFF || b[len(b)-1] != 0xD9 {
		return nil, fmt.Errorf("%w: no SOI/EOI", errSplice)
	}
	var dqt, dht, sof, sos []byte
	i := 2
	for {
		if i+4 > len(b) || b[i] != 0xFF {
			return nil, fmt.Errorf("%w: bad marker at %d", errSplice, i)
		}
		m := b[i+1]
		n := int(binary.BigEndian.Uint16(b[i+2:]))
		if n < 2 || i+2+n > len(b) {
			return nil, fmt.Errorf("%w: bad segment length at %d", errSplice, i)
		}
		seg := b[i : i+2+n]
		i += 2 + n
		switch m {
		case 0xDB:
			dqt = append(dqt, seg...)
		case 0xC4:
			dht = append(dht, seg...)
		case 0xC0:
			sof = seg
		case 0xDA:
			sos = seg
		default:
			return nil, fmt.Errorf("%w: unexpected marker %#x", errSplice, m)
		}
		if m == 0xDA {
			break
		}
	}
	// 4:2:0 (Y 2x2, Cb and Cr 1x1) is what the pattern and the tile
	// geometry assume; image/jpeg writes it for every colour image.
	if len(sof) != 19 || sof[9] != 3 || sof[11] != 0x22 || sof[14] != 0x11 || sof[17] != 0x11 {
		return nil, fmt.Errorf("%w: not a 3-component 4:2:0 frame", errSplice)
	}
	tables := append(append([]byte(nil), dqt...), dht...)
	if e.tables == nil {
		e.tables, e.dqt, e.dht = tables, dqt, dht
		e.sof = append([]byte(nil), sof...)
		e.sos = append([]byte(nil), sos...)
	} else if !bytes.Equal(tables, e.tables) || !bytes.Equal(sos, e.sos) {
		return nil, fmt.Errorf("%w: tables differ between tiles", errSplice)
	}
	return append([]byte(nil), b[i:len(b)-2]...), nil
}

// header returns SOI, DQT, SOF0 (for the whole frame), DHT, DRI and SOS.
func (e *tileEncoder) header(width, height, restartInterval int) []byte {
	h := []byte{0xFF, 0xD8}
	h = append(h, e.dqt...)
	sof := append([]byte(nil), e.sof...)
	binary.BigEndian.PutUint16(sof[5:], uint16(height))
	binary.BigEndian.PutUint16(sof[7:], uint16(width))
	h = append(h, sof...)
	h = append(h, e.dht...)
	h = append(h, 0xFF, 0xDD, 0, 4, byte(restartInterval>>8), byte(restartInterval))
	return append(h, e.sos...)
}
