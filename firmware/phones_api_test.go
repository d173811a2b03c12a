package firmware

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/callbox/callbox/board/pairing"
)

// TestPhonesRevokeOne: a paired phone lists the box's phones and unpairs
// one; that phone's token and remote credential hash stop working at once
// and its live stream ends, while the other phone's stays.
func TestPhonesRevokeOne(t *testing.T) {
	f := startBoard(t, "", "--relay", "")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := f.a.relay.start(ctx); err != nil {
		t.Fatal(err)
	}
	defer f.a.relay.stop()

	ra, rb := f.pair(t), f.pair(t)
	eventually(t, "two phones to wait", func() bool { return f.state(t, "").Waiting == 2 })
	f.press(t, `{"button":"both","ms":200}`)
	a, b := (<-ra).body["token"], (<-rb).body["token"]
	if a == "" || b == "" {
		t.Fatal("pairing failed")
	}

	api := func(method, path, tok string) (int, map[string]any) {
		req, _ := http.NewRequest(method, f.srv.URL+path, nil)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]any
		b, _ := io.ReadAll(resp.Body)
		_ = json.Unmarshal(b, &body)
		return resp.StatusCode, body
	}
	if code, _ := api("GET", "/api/phones", ""); code != http.StatusUnauthorized {
		t.Errorf("a stranger lists the phones: %d", code)
	}
	if code, _ := api("GET", "/api/phones", "nonsense"); code != http.StatusUnauthorized {
		t.Errorf("a wrong token lists the phones: %d", code)
	}
	code, body := api("GET", "/api/phones", a)
	phones, _ := body["phones"].([]any)
	if code != 200 || len(phones) != 2 {
		t.Fatalf("GET /api/phones: %d %v", code, body)
	}
	var aID string
	for _, p := range phones {
		m := p.(map[string]any)
		id, _ := m["id"].(string)
		if len(id) != phoneIDLen || !strings.HasPrefix(pairing.Hash(a), id) && !strings.HasPrefix(pairing.Hash(b), id) {
			t.Errorf("phone id %q", id)
		}
		if m["this"] == true {
			aID = id
		}
	}
	if !strings.HasPrefix(pairing.Hash(a), aID) || aID == "" {
		t.Fatalf("the asking phone is not marked: %v", phones)
	}

	ws := "ws" + strings.TrimPrefix(f.srv.URL, "http") + "/ws/video?token="
	ca, msg := wsFirst(t, ctx, ws+a)
	defer ca.CloseNow()
	cb, msgb := wsFirst(t, ctx, ws+b)
	defer cb.CloseNow()
	if strings.Contains(msg, "error") || strings.Contains(msgb, "error") {
		t.Fatalf("paired viewers refused: %q %q", msg, msgb)
	}
	eventually(t, "two viewers", func() bool { return f.state(t, "").Viewers == 2 })

	for _, bad := range []string{"/api/phones/0123456789abcdef", "/api/phones/short", "/api/phones/" + strings.Repeat("z", 16)} {
		if code, _ := api("DELETE", bad, b); code != http.StatusNotFound {
			t.Errorf("DELETE %s: %d, want 404", bad, code)
		}
	}
	if code, _ := api("DELETE", "/api/phones/"+aID, ""); code != http.StatusUnauthorized {
		t.Errorf("a stranger unpairs: %d", code)
	}
	// Phone B unpairs phone A.
	code, body = api("DELETE", "/api/phones/"+aID, b)
	if code != 200 || body["sessions_ended"] != float64(1) {
		t.Fatalf("DELETE: %d %v (want A's one session ended)", code, body)
	}
	rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
	defer rcancel()
	for {
		if _, _, err := ca.Read(rctx); err != nil {
			if rctx.Err() != nil {
				t.Fatal("A's stream still open 5 s after it was unpaired")
			}
			break
		}
	}
	if f.a.board.Authorize(a) == nil || f.a.board.authorizeHash(pairing.Hash(a)) == nil {
		t.Error("A's token or its remote credential's hash still admitted")
	}
	if code, _ := api("GET", "/api/phones", a); code != http.StatusUnauthorized {
		t.Errorf("the unpaired phone lists the phones: %d", code)
	}
	c2, msg := wsFirst(t, ctx, ws+a)
	c2.CloseNow()
	if !strings.Contains(msg, "unpaired") {
		t.Errorf("A reconnects and gets %q", msg)
	}
	// B stays: paired, streaming.
	if f.a.board.Authorize(b) != nil {
		t.Error("B lost its pairing")
	}
	eventually(t, "B's stream alone", func() bool { return f.state(t, "").Viewers == 1 })
	code, body = api("GET", "/api/phones", b)
	if phones, _ := body["phones"].([]any); code != 200 || len(phones) != 1 {
		t.Errorf("after unpairing A: %d %v", code, body)
	}
}
