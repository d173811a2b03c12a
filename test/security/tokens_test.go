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

// TestTokensNeverLogged (issue 12, item 12): a paired phone's token, and a
// wrong one, used every way the box takes tokens (WebSocket query and
// first message, Authorization header and query on the API, refused and
// accepted), never appear in the box's log.
func TestTokensNeverLogged(t *testing.T) {
	b := startBox(t, nil)
	tok := b.pair(t)
	wrong := "Wr0ngTokenWr0ngTokenWr0ngTokenWr0ngToken123"
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, tk := range []string{tok, wrong} {
		// WebSocket, token in the query (scripts) and in the first message (the page).
		if c, err := viewer.Dial(ctx, "ws://"+b.addr, capture.KindVideo, viewer.Options{Token: tk}); err == nil {
			c.Next(ctx)
			c.Close()
		}
		if c, _, err := websocket.Dial(ctx, "ws://"+b.addr+"/ws/audio?auth=message", nil); err == nil {
			c.Write(ctx, websocket.MessageText, []byte(`{"token":"`+tk+`"}`))
			c.Read(ctx)
			c.CloseNow()
		}
		// The API: header and query, GET and POST.
		for _, u := range []string{"/api/state", "/api/state?token=" + tk, "/api/call", "/api/call?token=" + tk, "/metrics?token=" + tk} {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+b.addr+u, nil)
			req.Header.Set("Authorization", "Bearer "+tk)
			if r, err := http.DefaultClient.Do(req); err == nil {
				io.Copy(io.Discard, r.Body)
				r.Body.Close()
			}
		}
		if r, err := b.post(ctx, "/api/call?token="+tk, `{}`); err == nil {
			r.Body.Close()
		}
	}
	time.Sleep(200 * time.Millisecond) // let the last log lines land
	log := b.log.String()
	for _, tk := range []string{tok, wrong} {
		if strings.Contains(log, tk) {
			t.Errorf("the box logged a token:\n%s", log)
		}
	}
	if !strings.Contains(log, "refused") {
		t.Errorf("no refusal logged: the test did not reach the relay's refusal path\n%s", log)
	}
}
