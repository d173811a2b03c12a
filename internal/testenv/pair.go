package testenv

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// PairPhoneByButtons pairs a phone with the box at base as a person would:
// it asks to pair (/api/pair/request) and presses A+B on the simulated
// board (/api/sim/button) until the box approves, then returns the phone's
// token. It first waits for the box to serve its page. c carries the
// requests (a network namespace's dialer in the NAT lab).
func PairPhoneByButtons(t testing.TB, c *http.Client, base string) string {
	t.Helper()
	post := func(path, body string) (*http.Response, error) {
		req, _ := http.NewRequest(http.MethodPost, base+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Origin", base)
		return c.Do(req)
	}
	deadline := time.Now().Add(30 * time.Second)
	for { // the box starts serving
		r, err := c.Get(base + "/")
		if err == nil {
			r.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("box not serving: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	res := make(chan string, 1)
	go func() {
		r, err := post("/api/pair/request", `{"name":"phone"}`)
		if err != nil {
			res <- ""
			return
		}
		defer r.Body.Close()
		var b struct{ Token string }
		json.NewDecoder(r.Body).Decode(&b)
		res <- b.Token
	}()
	for {
		select {
		case tok := <-res:
			if tok == "" {
				t.Fatal("pairing failed")
			}
			return tok
		case <-time.After(300 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("pairing not approved")
		}
		if r, err := post("/api/sim/button", `{"button":"both","ms":300}`); err == nil {
			io.Copy(io.Discard, r.Body)
			r.Body.Close()
		}
	}
}
