package rtpjpeg

import "errors"

// Errors for JPEG images RFC 2435 cannot carry, or that are not JPEG at all.
// Each is wrapped with detail; test with errors.Is.
var (
	ErrNotJPEG     = errors.New("rtpjpeg: not a JPEG image")
	ErrTruncated   = errors.New("rtpjpeg: truncated JPEG")
	ErrMalformed   = errors.New("rtpjpeg: malformed JPEG")
	ErrProgressive = errors.New("rtpjpeg: progressive JPEG is not supported by RFC 2435")
	ErrNotBaseline = errors.New("rtpjpeg: only baseline sequential JPEG is supported by RFC 2435")
	ErrPrecision   = errors.New("rtpjpeg: only 8-bit samples and 8-bit quantization tables are supported")
	ErrSampling    = errors.New("rtpjpeg: only YCbCr 4:2:0 and 4:2:2 are supported by RFC 2435")
	ErrHuffman     = errors.New("rtpjpeg: Huffman tables other than the standard ones (T.81 Annex K) cannot be carried by RFC 2435")
	ErrSize        = errors.New("rtpjpeg: image size not representable in RFC 2435 (multiple of 8, at most 2040)")
	ErrCodec       = errors.New("rtpjpeg: frame is not JPEG")
)
