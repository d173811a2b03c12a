//go:build cgo && !noh264

package h264dec

/*
#include <stdlib.h>
#include <string.h>

// The parts of OpenH264's codec_api.h (2.1, the library pion/mediadevices
// carries) the decoder uses; the library itself is linked through
// mediadevices' openh264 package (imported below), so the symbols resolve
// at the final link.
typedef struct {
	unsigned int size;
	int eVideoBsType; // VIDEO_BITSTREAM_AVC = 0
} SVideoProperty;

typedef struct {
	char* pFileNameRestructed;
	unsigned int uiCpuLoad;
	unsigned char uiTargetDqLayer;
	int eEcActiveIdc; // ERROR_CON_DISABLE = 0: report errors, conceal nothing
	_Bool bParseOnly;
	SVideoProperty sVideoProperty;
} SDecodingParam;

typedef struct {
	int iWidth;
	int iHeight;
	int iFormat;
	int iStride[2];
} SSysMEMBuffer;

typedef struct {
	int iBufferStatus;
	unsigned long long uiInBsTimeStamp;
	unsigned long long uiOutYuvTimeStamp;
	union { SSysMEMBuffer sSystemBuffer; } UsrData;
	unsigned char* pDst[3];
} SBufferInfo;

typedef struct ISVCDecoderVtbl ISVCDecoderVtbl;
typedef const ISVCDecoderVtbl* ISVCDecoder;
struct ISVCDecoderVtbl {
	long (*Initialize)(ISVCDecoder*, const SDecodingParam*);
	long (*Uninitialize)(ISVCDecoder*);
	int (*DecodeFrame)(ISVCDecoder*, const unsigned char*, const int, unsigned char**, int*, int*, int*);
	int (*DecodeFrameNoDelay)(ISVCDecoder*, const unsigned char*, const int, unsigned char**, SBufferInfo*);
	// More entries follow; none is used.
};

extern long WelsCreateDecoder(ISVCDecoder** ppDecoder);
extern void WelsDestroyDecoder(ISVCDecoder* pDecoder);

static ISVCDecoder* dec_open(long* rv) {
	ISVCDecoder* d = NULL;
	*rv = WelsCreateDecoder(&d);
	if (*rv != 0 || d == NULL) return NULL;
	SDecodingParam p;
	memset(&p, 0, sizeof p);
	p.sVideoProperty.size = sizeof p.sVideoProperty;
	p.sVideoProperty.eVideoBsType = 0;
	p.eEcActiveIdc = 0;
	*rv = (*d)->Initialize(d, &p);
	if (*rv != 0) { WelsDestroyDecoder(d); return NULL; }
	return d;
}

// dec_decode decodes one access unit; on a picture, the planes and the
// layout are in out (status 1).
static int dec_decode(ISVCDecoder* d, const unsigned char* src, int n, SBufferInfo* out) {
	unsigned char* dst[3] = {0, 0, 0};
	memset(out, 0, sizeof *out);
	int st = (*d)->DecodeFrameNoDelay(d, src, n, dst, out);
	out->pDst[0] = dst[0]; out->pDst[1] = dst[1]; out->pDst[2] = dst[2];
	return st;
}

static void dec_close(ISVCDecoder* d) {
	(*d)->Uninitialize(d);
	WelsDestroyDecoder(d);
}
*/
import "C"

import (
	"fmt"
	"unsafe"

	_ "github.com/pion/mediadevices/pkg/codec/openh264" // links libopenh264
)

// Available reports whether this build has the decoder.
const Available = true

// Decoder decodes one H.264 stream. Not safe for concurrent use.
type Decoder struct {
	d   *C.ISVCDecoder
	pic []byte
	out C.SBufferInfo
}

// NewDecoder opens a decoder. Close frees it.
func NewDecoder() (*Decoder, error) {
	var rv C.long
	d := C.dec_open(&rv)
	if d == nil {
		return nil, fmt.Errorf("h264dec: openh264 decoder: error %d", int(rv))
	}
	return &Decoder{d: d}, nil
}

// Decode decodes one access unit (Annex B, as capture.CodecH264 frames
// carry it) and returns its picture as packed I420 of w x h, owned by the
// decoder until the next call; nil when the unit made no picture (SPS and
// PPS alone). A unit that does not decode (a reference missing, a damaged
// slice) gives an error wrapping ErrDecode; the decoder then needs an IDR.
func (d *Decoder) Decode(au []byte) (pic []byte, w, h int, err error) {
	if d.d == nil {
		return nil, 0, 0, ErrClosed
	}
	if len(au) == 0 {
		return nil, 0, 0, nil
	}
	src := C.CBytes(au) // the library reads past nothing, but must not hold Go memory
	defer C.free(src)
	st := C.dec_decode(d.d, (*C.uchar)(src), C.int(len(au)), &d.out)
	if st != 0 {
		return nil, 0, 0, fmt.Errorf("%w: state %#x", ErrDecode, int(st))
	}
	if d.out.iBufferStatus != 1 {
		return nil, 0, 0, nil
	}
	sb := (*C.SSysMEMBuffer)(unsafe.Pointer(&d.out.UsrData))
	w, h = int(sb.iWidth), int(sb.iHeight)
	ys, cs := int(sb.iStride[0]), int(sb.iStride[1])
	if w <= 0 || h <= 0 || ys < w || cs < w/2 {
		return nil, 0, 0, fmt.Errorf("%w: picture %dx%d strides %d/%d", ErrDecode, w, h, ys, cs)
	}
	need := w*h + 2*(w/2)*(h/2)
	if cap(d.pic) < need {
		d.pic = make([]byte, need)
	}
	d.pic = d.pic[:need]
	copyPlane := func(dst []byte, p *C.uchar, stride, pw, ph int) {
		src := unsafe.Slice((*byte)(unsafe.Pointer(p)), stride*(ph-1)+pw)
		for r := range ph {
			copy(dst[r*pw:(r+1)*pw], src[r*stride:r*stride+pw])
		}
	}
	copyPlane(d.pic[:w*h], d.out.pDst[0], ys, w, h)
	cw, ch := w/2, h/2
	copyPlane(d.pic[w*h:w*h+cw*ch], d.out.pDst[1], cs, cw, ch)
	copyPlane(d.pic[w*h+cw*ch:], d.out.pDst[2], cs, cw, ch)
	return d.pic, w, h, nil
}

// Close frees the decoder.
func (d *Decoder) Close() error {
	if d.d != nil {
		C.dec_close(d.d)
		d.d = nil
	}
	return nil
}
