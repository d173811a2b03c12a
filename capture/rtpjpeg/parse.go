// Package rtpjpeg carries baseline JPEG (the MJPEG that UVC cameras
// produce) over RTP as RFC 2435 specifies: a packetizer that strips the JFIF
// headers down to what the payload format's 8-byte header, restart marker
// header and in-band quantization tables convey, and a depacketizer that
// reassembles the scan and rebuilds a complete decodable JFIF image
// (RFC 2435 appendix A and B).
//
// RFC 2435 can only describe a subset of JPEG: 8-bit baseline sequential,
// three components with YCbCr 4:2:0 (type 1) or 4:2:2 (type 0) sampling,
// the standard Huffman tables of T.81 Annex K, and sizes in multiples of 8
// up to 2040. Restart intervals are types 64 and 65. ParseJPEG checks all of
// this and rejects the rest with the sentinel errors in errors.go, so a
// frame is refused at the sender instead of decoding into garbage at every
// receiver.
package rtpjpeg

import (
	"bytes"
	"encoding/binary"
	"fmt"
)

// JPEG markers (T.81 table B.1).
const (
	mSOF0 = 0xC0
	mSOF1 = 0xC1
	mSOF2 = 0xC2
	mDHT  = 0xC4
	mJPG  = 0xC8
	mDAC  = 0xCC
	mRST0 = 0xD0
	mRST7 = 0xD7
	mSOI  = 0xD8
	mEOI  = 0xD9
	mSOS  = 0xDA
	mDQT  = 0xDB
	mDNL  = 0xDC
	mDRI  = 0xDD
	mTEM  = 0x01
)

// MaxDimension is the largest width or height RFC 2435 can express (an
// 8-bit count of 8-pixel blocks).
const MaxDimension = 2040

// Image is what RFC 2435 carries of a baseline JPEG. Slices point into the
// parsed data.
type Image struct {
	// Type is the RFC 2435 type: 0 (4:2:2) or 1 (4:2:0), plus 64 when the
	// image uses restart markers.
	Type            uint8
	Width, Height   int
	RestartInterval uint16 // MCUs per restart interval; 0 without DRI
	// QTables are the luminance and chrominance quantization tables, 64
	// bytes each in zigzag order as in the DQT segment.
	QTables [2][]byte
	// Scan is the entropy-coded data between the SOS header and the EOI
	// marker, restart markers included.
	Scan []byte
}

type component struct {
	id, h, v, tq byte
}

// ParseJPEG parses a baseline JFIF/MJPEG image and checks that RFC 2435
// can carry it. It allocates nothing.
func ParseJPEG(data []byte) (Image, error) {
	var (
		im      Image
		qt      [4][]byte
		comps   [3]component
		haveSOF bool
	)
	if len(data) < 2 || data[0] != 0xFF || data[1] != mSOI {
		return im, ErrNotJPEG
	}
	i := 2
	for {
		// Markers may be preceded by any number of 0xFF fill bytes.
		if i >= len(data) {
			return im, fmt.Errorf("%w: no SOS", ErrTruncated)
		}
		if data[i] != 0xFF {
			return im, fmt.Errorf("%w: expected marker at byte %d", ErrMalformed, i)
		}
		for i < len(data) && data[i] == 0xFF {
			i++
		}
		if i >= len(data) {
			return im, fmt.Errorf("%w: no SOS", ErrTruncated)
		}
		m := data[i]
		i++
		switch {
		case m == mSOI || m == mEOI || m == mTEM || (m >= mRST0 && m <= mRST7) || m == 0:
			return im, fmt.Errorf("%w: unexpected marker 0x%02X before the scan", ErrMalformed, m)
		}
		if i+2 > len(data) {
			return im, fmt.Errorf("%w: segment 0x%02X", ErrTruncated, m)
		}
		l := int(binary.BigEndian.Uint16(data[i:]))
		if l < 2 {
			return im, fmt.Errorf("%w: segment 0x%02X length %d", ErrMalformed, m, l)
		}
		if i+l > len(data) {
			return im, fmt.Errorf("%w: segment 0x%02X", ErrTruncated, m)
		}
		seg := data[i+2 : i+l]
		i += l
		switch {
		case m == mDQT:
			if err := parseDQT(seg, &qt); err != nil {
				return im, err
			}
		case m == mDHT:
			if err := checkDHT(seg); err != nil {
				return im, err
			}
		case m == mDRI:
			if len(seg) != 2 {
				return im, fmt.Errorf("%w: DRI length", ErrMalformed)
			}
			im.RestartInterval = binary.BigEndian.Uint16(seg)
		case m >= mSOF0 && m <= 0xCF && m != mDHT && m != mJPG && m != mDAC:
			if haveSOF {
				return im, fmt.Errorf("%w: second SOF", ErrMalformed)
			}
			if err := parseSOF(m, seg, &im, &comps); err != nil {
				return im, err
			}
			haveSOF = true
		case m == mSOS:
			if !haveSOF {
				return im, fmt.Errorf("%w: SOS before SOF", ErrMalformed)
			}
			if err := checkSOS(seg, &comps); err != nil {
				return im, err
			}
			for k, c := range [2]component{comps[0], comps[1]} {
				if qt[c.tq] == nil {
					return im, fmt.Errorf("%w: quantization table %d not defined", ErrMalformed, c.tq)
				}
				im.QTables[k] = qt[c.tq]
			}
			return im, finishScan(data[i:], &im)
		case m == mDNL:
			return im, fmt.Errorf("%w: DNL", ErrNotBaseline)
		default:
			// APPn (JFIF, EXIF, AVI1), COM and the like: not carried.
		}
	}
}

// finishScan finds the end of the entropy-coded segment: the first marker
// that is not a stuffed 0xFF00 or a restart marker. It must be EOI: a second
// scan means a multi-scan (non-interleaved or progressive) image.
func finishScan(d []byte, im *Image) error {
	sawRST := false
	for i := 0; ; {
		j := bytes.IndexByte(d[i:], 0xFF)
		if j < 0 {
			return fmt.Errorf("%w: no EOI after the scan", ErrTruncated)
		}
		end := i + j
		k := end + 1
		for k < len(d) && d[k] == 0xFF {
			k++
		}
		if k >= len(d) {
			return fmt.Errorf("%w: no EOI after the scan", ErrTruncated)
		}
		switch m := d[k]; {
		case m == 0:
			i = k + 1
			continue
		case m >= mRST0 && m <= mRST7:
			sawRST = true
			i = k + 1
			continue
		case m == mEOI:
			if sawRST && im.RestartInterval == 0 {
				return fmt.Errorf("%w: restart markers without DRI", ErrMalformed)
			}
			if end == 0 {
				return fmt.Errorf("%w: empty scan", ErrMalformed)
			}
			if end >= 1<<24 {
				return fmt.Errorf("%w: %d bytes of scan data exceed the 24-bit fragment offset", ErrSize, end)
			}
			im.Scan = d[:end]
			if im.RestartInterval > 0 {
				im.Type |= 64
			}
			return nil
		default:
			return fmt.Errorf("%w: marker 0x%02X after the first scan (multi-scan image)", ErrNotBaseline, m)
		}
	}
}

func parseDQT(seg []byte, qt *[4][]byte) error {
	for len(seg) > 0 {
		pq, tq := seg[0]>>4, seg[0]&0x0F
		if tq > 3 {
			return fmt.Errorf("%w: DQT table %d", ErrMalformed, tq)
		}
		if pq != 0 {
			// T.81 B.2.4.1: Pq shall be 0 for 8-bit sample precision.
			return fmt.Errorf("%w: 16-bit quantization table", ErrPrecision)
		}
		if len(seg) < 65 {
			return fmt.Errorf("%w: DQT", ErrTruncated)
		}
		qt[tq] = seg[1:65]
		seg = seg[65:]
	}
	return nil
}

// checkDHT accepts a DHT segment only if each table in it is byte for byte
// the standard table for its class and slot.
func checkDHT(seg []byte) error {
	for len(seg) > 0 {
		if len(seg) < 17 {
			return fmt.Errorf("%w: DHT", ErrTruncated)
		}
		tc, th := seg[0]>>4, seg[0]&0x0F
		if tc > 1 || th > 3 {
			return fmt.Errorf("%w: DHT class %d slot %d", ErrMalformed, tc, th)
		}
		n := 0
		for _, b := range seg[1:17] {
			n += int(b)
		}
		if len(seg) < 17+n {
			return fmt.Errorf("%w: DHT", ErrTruncated)
		}
		if th > 1 {
			return fmt.Errorf("%w: table in slot %d", ErrHuffman, th)
		}
		std := &stdHuffman[2*th+tc]
		if !bytes.Equal(seg[1:17], std.bits[:]) || !bytes.Equal(seg[17:17+n], std.vals) {
			return fmt.Errorf("%w: %s table %d differs", ErrHuffman, [2]string{"DC", "AC"}[tc], th)
		}
		seg = seg[17+n:]
	}
	return nil
}

func parseSOF(m byte, seg []byte, im *Image, comps *[3]component) error {
	if len(seg) < 6 {
		return fmt.Errorf("%w: SOF", ErrTruncated)
	}
	switch m {
	case 0xC2, 0xC6, 0xCA, 0xCE:
		return fmt.Errorf("%w (SOF%d)", ErrProgressive, m-mSOF0)
	}
	if seg[0] != 8 {
		return fmt.Errorf("%w: %d-bit samples", ErrPrecision, seg[0])
	}
	if m != mSOF0 && m != mSOF1 {
		// SOF3/5/7 lossless and hierarchical, SOF9.. arithmetic coding.
		return fmt.Errorf("%w (SOF%d)", ErrNotBaseline, m-mSOF0)
	}
	// SOF1 with 8-bit samples and the standard Huffman tables is the same
	// bitstream as baseline; the receiver rebuilds it as SOF0.
	im.Height = int(binary.BigEndian.Uint16(seg[1:]))
	im.Width = int(binary.BigEndian.Uint16(seg[3:]))
	nf := int(seg[5])
	if len(seg) < 6+3*nf {
		return fmt.Errorf("%w: SOF", ErrTruncated)
	}
	if nf != 3 {
		return fmt.Errorf("%w: %d components", ErrSampling, nf)
	}
	for k := range 3 {
		c := seg[6+3*k:]
		comps[k] = component{id: c[0], h: c[1] >> 4, v: c[1] & 0x0F, tq: c[2]}
		if comps[k].tq > 3 {
			return fmt.Errorf("%w: quantization selector %d", ErrMalformed, comps[k].tq)
		}
	}
	y, cb, cr := comps[0], comps[1], comps[2]
	if cb.h != 1 || cb.v != 1 || cr.h != 1 || cr.v != 1 {
		return fmt.Errorf("%w: chroma sampling %dx%d, %dx%d", ErrSampling, cb.h, cb.v, cr.h, cr.v)
	}
	switch {
	case y.h == 2 && y.v == 1:
		im.Type = 0
	case y.h == 2 && y.v == 2:
		im.Type = 1
	default:
		return fmt.Errorf("%w: luma sampling %dx%d", ErrSampling, y.h, y.v)
	}
	if cb.tq != cr.tq {
		// The rebuilt header gives Cb and Cr one table.
		return fmt.Errorf("%w: Cb and Cr use different quantization tables", ErrNotBaseline)
	}
	if im.Width == 0 || im.Height == 0 {
		return fmt.Errorf("%w: %dx%d (DNL is not supported)", ErrSize, im.Width, im.Height)
	}
	if im.Width > MaxDimension || im.Height > MaxDimension || im.Width%8 != 0 || im.Height%8 != 0 {
		return fmt.Errorf("%w: %dx%d", ErrSize, im.Width, im.Height)
	}
	return nil
}

// checkSOS requires one interleaved scan of all three components in SOF
// order, Y with Huffman tables 0/0 and chroma with 1/1 (the assignment the
// RFC 2435 receiver rebuilds), and full spectral selection.
func checkSOS(seg []byte, comps *[3]component) error {
	if len(seg) < 1 {
		return fmt.Errorf("%w: SOS", ErrTruncated)
	}
	ns := int(seg[0])
	if len(seg) != 1+2*ns+3 {
		return fmt.Errorf("%w: SOS length", ErrMalformed)
	}
	if ns != 3 {
		return fmt.Errorf("%w: scan of %d components (non-interleaved)", ErrNotBaseline, ns)
	}
	for k := range 3 {
		id, sel := seg[1+2*k], seg[2+2*k]
		if id != comps[k].id {
			return fmt.Errorf("%w: scan component order", ErrNotBaseline)
		}
		want := byte(0x00)
		if k > 0 {
			want = 0x11
		}
		if sel != want {
			return fmt.Errorf("%w: component %d uses Huffman tables %d/%d", ErrHuffman, k, sel>>4, sel&0x0F)
		}
	}
	ss, se, a := seg[1+2*ns], seg[2+2*ns], seg[3+2*ns]
	if ss != 0 || se != 63 || a != 0 {
		return fmt.Errorf("%w: spectral selection %d-%d, approximation %02x", ErrNotBaseline, ss, se, a)
	}
	return nil
}
