package firmware

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// The page's way of presenting its token (issue 12, item 12): in the
// WebSocket's first message for a ?auth=message URL, and in an
// Authorization header for /api/state; never in a URL.
func TestTokenOutsideURL(t *testing.T) {
	f := startBoard(t, "", "--relay", "")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := f.a.relay.start(ctx); err != nil {
		t.Fatal(err)
	}
	defer f.a.relay.stop()
	res := f.pair(t)
	eventually(t, "the phone to wait", func() bool { return f.a.board.box.Status().Waiting == 1 })
	f.press(t, `{"button":"both","ms":200}`)
	tok := (<-res).body["token"]
	if tok == "" {
		t.Fatal("not paired")
	}

	ws := "ws" + strings.TrimPrefix(f.srv.URL, "http") + "/ws/video?auth=message"
	first := func(msg string) (string, error) {
		c, _, err := websocket.Dial(ctx, ws, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.CloseNow()
		if msg != "" {
			c.Write(ctx, websocket.MessageText, []byte(msg))
		}
		_, got, err := c.Read(ctx)
		return string(got), err
	}
	if got, err := first(`{"token":"` + tok + `"}`); !strings.Contains(got, `"kind":"video"`) {
		t.Errorf("token in the first message: %q %v", got, err)
	}
	for _, bad := range []string{`{"token":"forged"}`, `{"token":""}`, `not json`} {
		if got, err := first(bad); !strings.Contains(got, "unpaired") {
			t.Errorf("first message %q: %q %v, want unpaired", bad, got, err)
		}
	}
	// A first message beyond 1 KiB is cut by the WebSocket's read limit.
	if got, err := first(strings.Repeat("x", 4096)); err == nil {
		t.Errorf("a 4 KiB first message was read: %.40q", got)
	}

	req, _ := http.NewRequest(http.MethodGet, f.srv.URL+"/api/state", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if st := f.state(t, tok); !st.Paired {
		t.Error("?token= no longer works for scripts")
	}
	r, _ := http.NewRequest(http.MethodGet, "/", nil)
	r.Header.Set("Authorization", "Bearer "+tok)
	if requestToken(r) != tok {
		t.Error("requestToken ignores the Authorization header")
	}
}
