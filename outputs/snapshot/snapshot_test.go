package snapshot

import (
	"bytes"
	"context"
	"image/jpeg"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/callbox/callbox/capture"
	"github.com/callbox/callbox/capture/synth"
	"github.com/callbox/callbox/outputs/access"
)

const token = "snap-token"

func gate() *access.Gate {
	return access.New(func(t string) error {
		if t == token {
			return nil
		}
		return access.ErrUnpaired
	})
}

// camera is the synthetic camera (real JPEG frames) counting reads.
func camera(t *testing.T, w, h int) (Source, *atomic.Int32) {
	cam, err := synth.NewCamera(synth.CameraConfig{Width: w, Height: h, FPS: 30})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cam.Close() })
	var reads atomic.Int32
	return SourceFunc(func(ctx context.Context) (capture.VideoFrame, error) {
		reads.Add(1)
		f, err := cam.ReadFrame(ctx)
		f.Data = bytes.Clone(f.Data)
		return f, err
	}), &reads
}

func get(t *testing.T, h http.Handler, url string, hdr map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest("GET", url, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestSnapshotJPEG(t *testing.T) {
	src, reads := camera(t, 640, 480)
	h := New(src, gate(), nil)

	for _, c := range []struct {
		name string
		url  string
		hdr  map[string]string
		code int
	}{
		{"no token", "/snapshot.jpg", nil, 401},
		{"wrong token", "/snapshot.jpg?token=nope", nil, 401},
		{"wrong bearer", "/snapshot.jpg", map[string]string{"Authorization": "Bearer nope"}, 401},
		{"query token", "/snapshot.jpg?token=" + token, nil, 200},
		{"bearer", "/snapshot.jpg", map[string]string{"Authorization": "Bearer " + token}, 200},
	} {
		t.Run(c.name, func(t *testing.T) {
			rec := get(t, h, c.url, c.hdr)
			if rec.Code != c.code {
				t.Fatalf("status %d, want %d: %s", rec.Code, c.code, rec.Body.String())
			}
			if c.code != 200 {
				if rec.Header().Get("WWW-Authenticate") == "" {
					t.Error("401 without WWW-Authenticate")
				}
				return
			}
			if ct := rec.Header().Get("Content-Type"); ct != "image/jpeg" {
				t.Errorf("Content-Type %q", ct)
			}
			img, err := jpeg.Decode(rec.Body)
			if err != nil {
				t.Fatalf("not a JPEG: %v", err)
			}
			if b := img.Bounds(); b.Dx() != 640 || b.Dy() != 480 {
				t.Fatalf("snapshot %dx%d, want 640x480", b.Dx(), b.Dy())
			}
		})
	}
	if n := reads.Load(); n > 2 {
		t.Errorf("%d camera reads for 2 snapshots", n)
	}
}

// TestSnapshotI420 encodes an uncompressed camera's frame.
func TestSnapshotI420(t *testing.T) {
	const w, hh = 320, 240
	f := capture.VideoFrame{Codec: capture.CodecI420, Width: w, Height: hh, Data: make([]byte, capture.I420Size(w, hh))}
	for i := range f.Data[:w*hh] {
		f.Data[i] = byte(i)
	}
	for i := w * hh; i < len(f.Data); i++ {
		f.Data[i] = 128
	}
	h := New(SourceFunc(func(context.Context) (capture.VideoFrame, error) { return f, nil }), nil, nil)
	rec := get(t, h, "/snapshot.jpg", nil) // open gate
	if rec.Code != 200 {
		t.Fatalf("status %d", rec.Code)
	}
	cfg, err := jpeg.DecodeConfig(rec.Body)
	if err != nil || cfg.Width != w || cfg.Height != hh {
		t.Fatalf("I420 snapshot: %v %dx%d", err, cfg.Width, cfg.Height)
	}
}

// TestSnapshotH264Only: no decoder on the box: 503 with the reason.
func TestSnapshotH264Only(t *testing.T) {
	h := New(SourceFunc(func(context.Context) (capture.VideoFrame, error) {
		return capture.VideoFrame{Codec: capture.CodecH264, Data: []byte{0, 0, 0, 1, 0x65}}, nil
	}), nil, nil)
	rec := get(t, h, "/snapshot.jpg", nil)
	if rec.Code != 503 || !bytes.Contains(rec.Body.Bytes(), []byte("H.264")) {
		t.Fatalf("status %d: %s", rec.Code, rec.Body.String())
	}
}
