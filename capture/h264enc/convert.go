package h264enc

import (
	"bytes"
	"fmt"
	"image"
	"image/jpeg"
)

// JPEG (JFIF) is full-range YCbCr; H.264 from callbox is limited range
// (BT.601 studio swing, what decoders assume when the stream does not say
// otherwise), like the synthetic camera's raw pictures.
var lumaLimited, chromaLimited [256]uint8

func init() {
	for i := range 256 {
		lumaLimited[i] = uint8(16 + (i*219+127)/255)
		chromaLimited[i] = uint8(128 + ((i-128)*224+127*sign(i-128))/255)
	}
}

func sign(x int) int {
	if x < 0 {
		return -1
	}
	return 1
}

// jpegToI420 decodes a JPEG frame (a camera's MJPEG, or the JPEG drivers/
// camera makes of a YUYV camera's pictures) into dst as packed I420,
// limited range. The
// decode allocates (image/jpeg has no reusable decoder) and costs about as
// much as the H.264 encode itself: a camera or a hardware path that gives
// raw pictures is better where there is one.
func jpegToI420(dst, data []byte, w, h int) ([]byte, error) {
	img, err := jpeg.Decode(bytes.NewReader(data))
	if err != nil {
		return dst, fmt.Errorf("%w: JPEG: %w", ErrFormat, err)
	}
	yc, ok := img.(*image.YCbCr)
	if !ok || yc.Rect.Dx() != w || yc.Rect.Dy() != h {
		return dst, fmt.Errorf("%w: JPEG %T %v, want YCbCr %dx%d", ErrFormat, img, img.Bounds(), w, h)
	}
	ys, cs, cw := w*h, (w/2)*(h/2), w/2
	dst = append(dst[:0], make([]byte, ys+2*cs)...)
	for r := range h {
		row, src := dst[r*w:(r+1)*w], yc.Y[r*yc.YStride:r*yc.YStride+w]
		for i, y := range src {
			row[i] = lumaLimited[y]
		}
	}
	u, v := dst[ys:ys+cs], dst[ys+cs:]
	for r := range h / 2 {
		for c := range cw {
			var su, sv int
			switch yc.SubsampleRatio {
			case image.YCbCrSubsampleRatio420:
				i := r*yc.CStride + c
				su, sv = 4*int(yc.Cb[i]), 4*int(yc.Cr[i])
			case image.YCbCrSubsampleRatio422:
				i0, i1 := 2*r*yc.CStride+c, (2*r+1)*yc.CStride+c
				su, sv = 2*(int(yc.Cb[i0])+int(yc.Cb[i1])), 2*(int(yc.Cr[i0])+int(yc.Cr[i1]))
			case image.YCbCrSubsampleRatio444:
				for _, d := range [4][2]int{{0, 0}, {1, 0}, {0, 1}, {1, 1}} {
					i := (2*r+d[1])*yc.CStride + 2*c + d[0]
					su += int(yc.Cb[i])
					sv += int(yc.Cr[i])
				}
			default:
				return dst, fmt.Errorf("%w: JPEG chroma subsampling %v", ErrFormat, yc.SubsampleRatio)
			}
			u[r*cw+c], v[r*cw+c] = chromaLimited[(su+2)/4], chromaLimited[(sv+2)/4]
		}
	}
	return dst, nil
}

// JPEGToI420 decodes a w x h JPEG frame into dst as packed I420, limited
// range (what the encoders take): a call scales and encodes a JPEG
// camera's frames itself.
func JPEGToI420(dst, data []byte, w, h int) ([]byte, error) { return jpegToI420(dst, data, w, h) }
