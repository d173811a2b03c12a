package security

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/callbox/callbox/capture"
	"github.com/callbox/callbox/relay/viewer"
	"github.com/coder/websocket"
)

// TestRebindingRefused: issue 12's DNS-rebinding probe. A page on
// evil.example whose name now points at the box opens a WebSocket and reads
// the API with Host: evil.example: refused with 421, while the box's IP
// still works.
func TestRebindingRefused(t *testing.T) {
	b := startBox(t, nil, "--open")
	port := b.addr[strings.LastIndexByte(b.addr, ':'):]
	for _, path := range []string{"/ws/video", "/api/state", "/"} {
		req, _ := http.NewRequest(http.MethodGet, "http://"+b.addr+path, nil)
		req.Host = "evil.example" + port
		req.Header.Set("Origin", "http://evil.example"+port)
		if path == "/ws/video" {
			req.Header.Set("Connection", "Upgrade")
			req.Header.Set("Upgrade", "websocket")
			req.Header.Set("Sec-WebSocket-Version", "13")
			req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
		}
		r, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		io.Copy(io.Discard, r.Body)
		r.Body.Close()
		if r.StatusCode != http.StatusMisdirectedRequest {
			t.Errorf("GET %s with Host evil.example: %s, want 421", path, r.Status)
		}
	}
	// The same WebSocket by IP gets media (open box).
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := viewer.Dial(ctx, "ws://"+b.addr, capture.KindVideo, viewer.Options{})
	if err != nil {
		t.Fatalf("by IP: %v", err)
	}
	c.Close()
	// And a browser's WebSocket from another origin with the box's Host is
	// refused by the WebSocket library's own origin check.
	_, resp, err := websocket.Dial(ctx, "ws://"+b.addr+"/ws/video", &websocket.DialOptions{HTTPHeader: http.Header{"Origin": {"http://evil.example"}}})
	if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("cross-origin WebSocket: %v %v", resp, err)
	}
}

// TestCrossSitePostRefused: issue 12's cross-site probe. On the simulated
// board, a page elsewhere POSTs text/plain to press both buttons while its
// own pairing request waits: refused (403), and the request is not
// admitted. The page's own same-origin JSON press still works.
func TestCrossSitePostRefused(t *testing.T) {
	b := startBox(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res := b.requestPairing(ctx)
	time.Sleep(200 * time.Millisecond) // let the request be waiting (a press before it would admit nothing anyway)
	for _, h := range []http.Header{
		{"Content-Type": {"text/plain"}, "Origin": {"http://evil.example"}, "Sec-Fetch-Site": {"cross-site"}},
		{"Content-Type": {"text/plain"}}, // an old browser that sends no Origin
		{"Content-Type": {"application/json"}, "Origin": {"http://evil.example"}},
	} {
		req, _ := http.NewRequest(http.MethodPost, "http://"+b.addr+"/api/sim/button", strings.NewReader(`{"button":"both","ms":300}`))
		req.Header = h
		r, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, r.Body)
		r.Body.Close()
		if r.StatusCode != http.StatusForbidden && r.StatusCode != http.StatusUnsupportedMediaType {
			t.Errorf("cross-site press %v: %s, want 403 or 415", h, r.Status)
		}
	}
	select {
	case r := <-res:
		t.Fatalf("the cross-site press admitted a phone: %+v", r)
	case <-time.After(time.Second):
	}
	b.press(t, "both", 300)
	if r := <-res; r.code != 200 || r.token == "" {
		t.Fatalf("the box's own press: %+v", r)
	}
}
