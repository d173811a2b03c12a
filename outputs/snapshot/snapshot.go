// Package snapshot serves GET /snapshot.jpg: the camera's newest frame as
// a JPEG, behind the pairing token ("Authorization: Bearer T", or ?token=T
// for NVRs and Home Assistant's generic camera, which cannot set headers).
//
// Nothing is encoded when the camera delivers JPEG (a UVC camera's MJPEG,
// the synthetic camera): the handler takes a copy of the next frame from
// the media pipeline's tap and sends it as it is. An uncompressed camera
// (I420) costs one JPEG encode per frame served, shared by the requests
// of the same 100 ms. An H.264-only camera has no picture without a
// decoder on the box: 503.
package snapshot

import (
	"bytes"
	"context"
	"errors"
	"image"
	"image/jpeg"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/callbox/callbox/capture"
	"github.com/callbox/callbox/outputs/access"
)

// Source gives the camera's next frame (a copy the caller owns).
type Source interface {
	NextFrame(ctx context.Context) (capture.VideoFrame, error)
}

// SourceFunc adapts a function to Source.
type SourceFunc func(ctx context.Context) (capture.VideoFrame, error)

func (f SourceFunc) NextFrame(ctx context.Context) (capture.VideoFrame, error) { return f(ctx) }

// Path is where the handler is mounted.
const Path = "/snapshot.jpg"

// maxAge is how long one frame answers further requests: NVRs poll every
// second or so, several at once.
const maxAge = 100 * time.Millisecond

// frameTimeout bounds the wait for the camera's next frame.
const frameTimeout = 3 * time.Second

// ErrNoJPEG: the camera's frames cannot become a JPEG on the box.
var ErrNoJPEG = errors.New("snapshot: the camera delivers H.264 only; no JPEG without a decoder")

// Handler serves the snapshot.
type Handler struct {
	src  Source
	gate *access.Gate
	log  *slog.Logger

	mu      sync.Mutex
	jpeg    []byte
	at      time.Time // when jpeg was taken
	fetch   chan struct{}
	fetched error
}

// New returns the handler; gate nil or open serves everyone.
func New(src Source, gate *access.Gate, log *slog.Logger) *Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Handler{src: src, gate: gate, log: log}
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if err := h.gate.CheckHTTP(r); err != nil {
		w.Header().Set("WWW-Authenticate", `Bearer realm="callbox"`)
		http.Error(w, "unpaired: a pairing token is needed (Authorization: Bearer, or ?token=)", http.StatusUnauthorized)
		return
	}
	img, err := h.latest(r.Context())
	if err != nil {
		code := http.StatusServiceUnavailable
		if errors.Is(err, context.Canceled) {
			return
		}
		h.log.Info("snapshot: no picture", "err", err)
		http.Error(w, err.Error(), code)
		return
	}
	w.Header().Set("Content-Type", "image/jpeg")
	w.Header().Set("Content-Length", strconv.Itoa(len(img)))
	w.Header().Set("Cache-Control", "no-store")
	if r.Method == http.MethodHead {
		return
	}
	_, _ = w.Write(img)
}

// latest returns a JPEG of a frame at most maxAge old; one request fetches
// it and the requests that arrive meanwhile share it.
func (h *Handler) latest(ctx context.Context) ([]byte, error) {
	for {
		h.mu.Lock()
		if h.jpeg != nil && time.Since(h.at) < maxAge {
			img := h.jpeg
			h.mu.Unlock()
			return img, nil
		}
		if h.fetch != nil { // another request is fetching: wait for it
			ch := h.fetch
			h.mu.Unlock()
			select {
			case <-ch:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			h.mu.Lock()
			err := h.fetched
			h.mu.Unlock()
			if err != nil {
				return nil, err
			}
			continue
		}
		ch := make(chan struct{})
		h.fetch = ch
		h.mu.Unlock()

		fctx, cancel := context.WithTimeout(context.Background(), frameTimeout)
		img, err := h.take(fctx)
		cancel()
		h.mu.Lock()
		if err == nil {
			h.jpeg, h.at = img, time.Now()
		}
		h.fetched, h.fetch = err, nil
		h.mu.Unlock()
		close(ch)
		return img, err
	}
}

// take reads the next frame and makes it a JPEG.
func (h *Handler) take(ctx context.Context) ([]byte, error) {
	f, err := h.src.NextFrame(ctx)
	if err != nil {
		return nil, err
	}
	switch f.Codec {
	case capture.CodecJPEG:
		return f.Data, nil // the camera's own JPEG: no encode
	case capture.CodecI420:
		return EncodeI420(f)
	default:
		return nil, ErrNoJPEG
	}
}

// EncodeI420 encodes an uncompressed I420 frame (quality 85).
func EncodeI420(f capture.VideoFrame) ([]byte, error) {
	w, hh := f.Width, f.Height
	if w <= 0 || hh <= 0 || w%2 != 0 || hh%2 != 0 || len(f.Data) < capture.I420Size(w, hh) {
		return nil, errors.New("snapshot: malformed I420 frame")
	}
	ys := w * hh
	cs := (w / 2) * (hh / 2)
	img := &image.YCbCr{
		Y: f.Data[:ys], Cb: f.Data[ys : ys+cs], Cr: f.Data[ys+cs : ys+2*cs],
		YStride: w, CStride: w / 2, SubsampleRatio: image.YCbCrSubsampleRatio420,
		Rect: image.Rect(0, 0, w, hh),
	}
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, &jpeg.Options{Quality: 85}); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// JPEG returns the newest frame as a JPEG (for Home Assistant's MQTT
// camera), with the same sharing as requests.
func (h *Handler) JPEG(ctx context.Context) ([]byte, error) { return h.latest(ctx) }
