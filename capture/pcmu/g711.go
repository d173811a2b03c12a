// Package pcmu is G.711 mu-law (PCMU, RTP payload type 0, RFC 3551) for
// callbox's audio: table-based encoding and decoding, a polyphase low-pass
// resampler from the microphone's rate (48000, 44100, 16000 Hz...) down to
// PCMU's 8000 Hz, an RTP packetizer (20 ms, 160 samples per packet, with
// abs-capture-time on every packet) and a depacketizer that decodes and
// reports gaps.
//
// PCMU is chosen because every receiver callbox targets decodes it (ffmpeg,
// GStreamer, browsers through WebRTC) and because it costs nothing on the
// box's CPU; the price is telephone bandwidth (300-3400 Hz).
package pcmu

// ITU-T G.711 mu-law. The encoder is a 64 Ki-entry table indexed by the
// 16-bit sample, so encoding is one load per sample; the table is computed
// once from the reference algorithm below.
const (
	bias = 0x84 // 132: shifts the segment boundaries to powers of two
	clip = 32635
)

// encodeRef is the reference G.711 mu-law encoder (the classic Sun
// g711.c formulation) used to build the table.
func encodeRef(s int16) byte {
	v := int32(s)
	var sign int32
	if v < 0 {
		v = -v
		sign = 0x80
	}
	if v > clip {
		v = clip
	}
	v += bias
	exp := int32(7)
	for mask := int32(0x4000); v&mask == 0 && exp > 0; mask >>= 1 {
		exp--
	}
	mant := (v >> (exp + 3)) & 0x0F
	return ^byte(sign | exp<<4 | mant)
}

// decodeRef is the reference G.711 mu-law decoder.
func decodeRef(u byte) int16 {
	u = ^u
	exp := int32(u>>4) & 0x07
	mant := int32(u & 0x0F)
	v := ((mant << 3) + bias) << exp
	v -= bias
	if u&0x80 != 0 {
		return int16(-v)
	}
	return int16(v)
}

var (
	encodeTable = buildEncodeTable()
	decodeTable = buildDecodeTable()
)

func buildEncodeTable() *[65536]byte {
	var t [65536]byte
	for i := range t {
		t[i] = encodeRef(int16(uint16(i)))
	}
	return &t
}

func buildDecodeTable() *[256]int16 {
	var t [256]int16
	for i := range t {
		t[i] = decodeRef(byte(i))
	}
	return &t
}

// EncodeSample returns the mu-law code of one linear sample.
func EncodeSample(s int16) byte { return encodeTable[uint16(s)] }

// DecodeSample returns the linear value of one mu-law code.
func DecodeSample(u byte) int16 { return decodeTable[u] }

// Encode writes the mu-law codes of src into dst, which must be at least
// len(src) long, and returns dst[:len(src)].
func Encode(dst []byte, src []int16) []byte {
	dst = dst[:len(src)]
	for i, s := range src {
		dst[i] = encodeTable[uint16(s)]
	}
	return dst
}

// Decode writes the linear samples of src into dst, which must be at least
// len(src) long, and returns dst[:len(src)].
func Decode(dst []int16, src []byte) []int16 {
	dst = dst[:len(src)]
	for i, u := range src {
		dst[i] = decodeTable[u]
	}
	return dst
}
