package webguard

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestHostAllowed(t *testing.T) {
	names := func() []string { return []string{"kitchen.local"} }
	for host, want := range map[string]bool{
		"192.168.1.20":        true,
		"192.168.1.20:8080":   true,
		"[fe80::1]:8080":      true,
		"[fe80::1%25eth0]:80": true, // an IP literal with a zone
		"[2001:db8::1]":       true,
		"localhost:8080":      true,
		"LOCALHOST":           true,
		"kitchen.local":       true,
		"Kitchen.Local.:8080": true,
		"evil.example":        false,
		"evil.example:8080":   false,
		"kitchen.local.evil":  false,
		"192.168.1.20.nip.io": false,
		"":                    false,
	} {
		if got := HostAllowed(host, names); got != want {
			t.Errorf("HostAllowed(%q) = %v, want %v", host, got, want)
		}
	}
}

func TestGuard(t *testing.T) {
	reached := 0
	h := Guard(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached++
		io.WriteString(w, "ok")
	}), func() []string { return []string{"callbox.local"} })
	for _, tc := range []struct {
		name, method, host, origin, site, ct string
		want                                 int
	}{
		{"page by IP", "GET", "192.168.1.20:8080", "", "", "", 200},
		{"page by name", "GET", "callbox.local", "", "", "", 200},
		{"rebound name", "GET", "evil.example:8080", "", "", "", 421},
		{"rebound WebSocket", "GET", "evil.example:8080", "http://evil.example:8080", "", "", 421},
		{"same-origin JSON POST", "POST", "192.168.1.20:8080", "http://192.168.1.20:8080", "same-origin", "application/json", 200},
		{"JSON POST with charset", "POST", "callbox.local", "http://callbox.local", "", "application/json; charset=utf-8", 200},
		{"script without Origin", "POST", "127.0.0.1:8080", "", "", "application/json", 200},
		{"same-origin WHEP offer", "POST", "192.168.1.20:8080", "http://192.168.1.20:8080", "same-origin", "application/sdp", 200},
		{"cross-site WHEP offer", "POST", "192.168.1.20:8080", "http://evil.example", "cross-site", "application/sdp", 403},
		{"cross-site text/plain", "POST", "192.168.1.20:8080", "http://evil.example", "cross-site", "text/plain", 403},
		{"cross-site, no Sec-Fetch", "POST", "192.168.1.20:8080", "http://evil.example", "", "text/plain", 403},
		{"cross-site JSON (no preflight got through)", "POST", "192.168.1.20:8080", "http://evil.example", "", "application/json", 403},
		{"same-site other port", "POST", "192.168.1.20:8080", "http://192.168.1.20:9999", "same-site", "application/json", 403},
		{"null origin", "POST", "192.168.1.20:8080", "null", "", "application/json", 403},
		{"form POST without Origin", "POST", "192.168.1.20:8080", "", "", "application/x-www-form-urlencoded", 415},
		{"no content type", "POST", "192.168.1.20:8080", "", "", "", 415},
		{"cross-site DELETE", "DELETE", "192.168.1.20:8080", "http://evil.example", "cross-site", "", 403},
		{"same-origin DELETE", "DELETE", "192.168.1.20:8080", "http://192.168.1.20:8080", "same-origin", "", 200},
	} {
		req := httptest.NewRequest(tc.method, "http://x/api/sim/button", strings.NewReader(`{"button":"both"}`))
		req.Host = tc.host
		if tc.origin != "" {
			req.Header.Set("Origin", tc.origin)
		}
		if tc.site != "" {
			req.Header.Set("Sec-Fetch-Site", tc.site)
		}
		if tc.ct != "" {
			req.Header.Set("Content-Type", tc.ct)
		}
		before := reached
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, rec.Code, tc.want)
		}
		if got := reached > before; got != (tc.want == 200) {
			t.Errorf("%s: handler reached %v", tc.name, got)
		}
	}
}
