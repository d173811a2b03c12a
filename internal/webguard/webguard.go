// Package webguard keeps other web sites out of a server that browsers on
// the LAN talk to (the box's page and API, docs/security.md):
//
//   - DNS rebinding: a site whose name the attacker points at the box's LAN
//     address reaches the box from the victim's browser with its own name
//     in Host. Only IP literals, localhost and the box's own names are
//     accepted as Host; anything else is answered 421 Misdirected Request,
//     WebSocket upgrades included.
//   - Cross-site requests: a page elsewhere can make a browser POST a
//     text/plain or form body anywhere without asking (no CORS preflight).
//     Requests that change state (every method but GET, HEAD and OPTIONS)
//     must come from the same origin when the browser says where they come
//     from (Origin, Sec-Fetch-Site), and a POST must carry
//     application/json (or application/sdp: a WHEP offer; or
//     application/octet-stream: an update bundle), which a
//     cross-site page cannot send without a preflight the server never
//     grants.
//
// Clients that are not browsers (scripts, the project's tools) send no
// Origin and pass with an IP or name Host and a JSON body.
package webguard

import (
	"mime"
	"net"
	"net/http"
	"net/url"
	"strings"
)

// Guard wraps next with the Host, Origin and Content-Type checks. names
// returns the host names (without port) the server answers to besides IP
// literals and localhost, e.g. "kitchen.local"; it is asked on each request,
// so a name set after start counts.
func Guard(next http.Handler, names func() []string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !HostAllowed(r.Host, names) {
			http.Error(w, "misdirected request: this box answers to its IP address, localhost or its .local name", http.StatusMisdirectedRequest)
			return
		}
		switch r.Method {
		case http.MethodGet, http.MethodHead, http.MethodOptions:
			next.ServeHTTP(w, r)
			return
		}
		if !sameOrigin(r) {
			http.Error(w, "cross-origin request refused", http.StatusForbidden)
			return
		}
		if r.Method == http.MethodPost && !preflighted(r.Header.Get("Content-Type")) {
			http.Error(w, "a POST must be application/json (or application/sdp for WHEP)", http.StatusUnsupportedMediaType)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// HostAllowed reports whether host (a Host header: name or IP, with or
// without port) is one the server answers to.
func HostAllowed(host string, names func() []string) bool {
	h := host
	if hh, _, err := net.SplitHostPort(host); err == nil {
		h = hh
	}
	h = strings.TrimSuffix(strings.Trim(h, "[]"), ".")
	if h == "" {
		return false // HTTP/1.1 requires Host; an empty one is no name of ours
	}
	if net.ParseIP(h) != nil {
		return true
	}
	if i := strings.IndexByte(h, '%'); i > 0 && net.ParseIP(h[:i]) != nil {
		return true // IPv6 with a zone
	}
	if strings.EqualFold(h, "localhost") {
		return true
	}
	if names != nil {
		for _, n := range names() {
			if n != "" && strings.EqualFold(h, strings.TrimSuffix(n, ".")) {
				return true
			}
		}
	}
	return false
}

// sameOrigin: no browser evidence of another origin. Sec-Fetch-Site
// (sent by current browsers) must be same-origin or none (typed by the
// user); Origin, when present, must name this request's Host.
func sameOrigin(r *http.Request) bool {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "", "same-origin", "none":
	default:
		return false
	}
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	u, err := url.Parse(o)
	if err != nil || u.Host == "" || u.Scheme != "http" && u.Scheme != "https" {
		return false // including "null" (sandboxed frames, file: pages)
	}
	return strings.EqualFold(u.Host, r.Host)
}

// preflighted reports a content type a cross-site page cannot POST without
// a CORS preflight: JSON for the API, SDP for WHEP offers (RFC 9725).
func preflighted(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	// application/octet-stream: an update bundle (POST /api/update). Like
	// the other two it is not a CORS "simple" type, so a cross-site page
	// cannot send it without the preflight the box never grants.
	return err == nil && (mt == "application/json" || mt == "application/sdp" || mt == "application/octet-stream")
}
