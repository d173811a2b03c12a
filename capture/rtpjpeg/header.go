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
