package rtpjpeg

// AppendHeaders appends the JFIF headers an RFC 2435 receiver rebuilds in
// front of the scan data (RFC 2435 appendix B, MakeHeaders): SOI, DQT with
// the two tables, DRI for types 64-127, SOF0, the standard DHT tables and
// SOS. lqt and cqt are the luminance and chrominance tables, 64 bytes each
// in zigzag order (or 128 bytes for 16-bit tables). typ&63 selects 4:2:2
// (0) or 4:2:0 (1). Appending the scan data and EOI gives a complete image.
func AppendHeaders(dst []byte, typ uint8, width, height int, lqt, cqt []byte, dri uint16) []byte {
	dst = append(dst, 0xFF, mSOI)
	dst = appendDQT(dst, 0, lqt)
	dst = appendDQT(dst, 1, cqt)
	if typ >= 64 {
		dst = append(dst, 0xFF, mDRI, 0, 4, byte(dri>>8), byte(dri))
	}
	ysamp := byte(0x21) // type 0: 4:2:2
	if typ&63 == 1 {
		ysamp = 0x22 // type 1: 4:2:0
	}
	dst = append(dst,
		0xFF, mSOF0, 0, 17, 8,
		byte(height>>8), byte(height), byte(width>>8), byte(width),
		3,
		1, ysamp, 0,
		2, 0x11, 1,
		3, 0x11, 1,
	)
	for k := range stdHuffman {
		t := &stdHuffman[k]
		l := 2 + 1 + 16 + len(t.vals)
		dst = append(dst, 0xFF, mDHT, byte(l>>8), byte(l), t.class<<4|t.id)
		dst = append(dst, t.bits[:]...)
		dst = append(dst, t.vals...)
	}
	return append(dst,
		0xFF, mSOS, 0, 12, 3,
		1, 0x00,
		2, 0x11,
		3, 0x11,
		0, 63, 0,
	)
}

func appendDQT(dst []byte, id byte, t []byte) []byte {
	pq := byte(0)
	if len(t) == 128 {
		pq = 1
	}
	l := 2 + 1 + len(t)
	dst = append(dst, 0xFF, mDQT, byte(l>>8), byte(l), pq<<4|id)
	return append(dst, t...)
}

// The example tables of T.81 Annex K.1 in zigzag order, which RFC 2435
// scales for Q 1-99.
var stdQTables = [2][64]byte{{
	16, 11, 12, 14, 12, 10, 16, 14, 13, 14, 18, 17, 16, 19, 24, 40,
	26, 24, 22, 22, 24, 49, 35, 37, 29, 40, 58, 51, 61, 60, 57, 51,
	56, 55, 64, 72, 92, 78, 64, 68, 87, 69, 55, 56, 80, 109, 81, 87,
	95, 98, 103, 104, 103, 62, 77, 113, 121, 112, 100, 120, 92, 101, 103, 99,
}, {
	17, 18, 18, 24, 21, 24, 47, 26, 26, 47, 99, 66, 56, 66, 99, 99,
	99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99,
	99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99,
	99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99,
}}

// AppendQTables appends the luminance and chrominance tables (zigzag
// order) that RFC 2435 defines for Q 1-99 (appendix A, MakeTables): the
// Annex K tables scaled like the IJG library's quality setting.
func AppendQTables(dst []byte, q int) []byte {
	q = max(1, min(99, q))
	s := 200 - 2*q
	if q < 50 {
		s = 5000 / q
	}
	for t := range stdQTables {
		for _, v := range stdQTables[t] {
			dst = append(dst, byte(max(1, min(255, (int(v)*s+50)/100))))
		}
	}
	return dst
}
