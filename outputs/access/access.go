// Package access checks pairing tokens for the box's outputs that people's
// own tools read: RTSP (outputs/rtsp) and the snapshot (outputs/snapshot).
//
// The box stores only hashes of pairing tokens (board/pairing), which is
// enough for every check that sees the token itself: HTTP Bearer, ?token=,
// RTSP Basic. RTSP Digest (what ffmpeg, VLC and most NVRs send) proves
// knowledge of the password without sending it, so checking it needs the
// token in clear. The Gate keeps, in memory only, the tokens it has seen
// pass a plain check since boot (a phone opening the page or a viewer
// connecting to the relay presents its token; so does the phone that
// pairs), and Digest is checked against those. Each remembered token is
// checked against the pairing registry again on every use, so a factory
// reset revokes them at once. After a reboot, a token works for Digest
// once any plain check has seen it; Basic works at any time.
package access

import (
	"errors"
	"net/http"
	"strings"
	"sync"
)

// ErrUnpaired is the answer to a missing or wrong token.
var ErrUnpaired = errors.New("unpaired")

// maxRemembered bounds the remembered tokens: a box has a handful of
// paired phones; the oldest is forgotten beyond this.
const maxRemembered = 64

// Gate checks tokens with the pairing registry's Authorize.
type Gate struct {
	authorize func(token string) error // nil: open (no pairing)

	mu    sync.Mutex
	known []string // tokens seen to pass, newest last
}

// New returns a gate; authorize nil means open mode (--open): everything
// passes.
func New(authorize func(token string) error) *Gate { return &Gate{authorize: authorize} }

// Open reports whether the gate lets everyone in.
func (g *Gate) Open() bool { return g == nil || g.authorize == nil }

// Check is the pairing registry's Authorize; a token that passes is
// remembered for Digest checks. It is meant to wrap the relay's Authorize
// too, so every token a viewer presents is learnt.
func (g *Gate) Check(token string) error {
	if g.Open() {
		return nil
	}
	if token == "" {
		return ErrUnpaired
	}
	if err := g.authorize(token); err != nil {
		return err
	}
	g.remember(token)
	return nil
}

func (g *Gate) remember(token string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for i, t := range g.known {
		if t == token {
			// Move to the end: the most recently used are kept longest.
			copy(g.known[i:], g.known[i+1:])
			g.known[len(g.known)-1] = token
			return
		}
	}
	if len(g.known) >= maxRemembered {
		copy(g.known, g.known[1:])
		g.known = g.known[:len(g.known)-1]
	}
	g.known = append(g.known, token)
}

// Known returns the remembered tokens that the registry still accepts,
// newest first, for checks that need the token in clear (RTSP Digest).
// Revoked ones are forgotten.
func (g *Gate) Known() []string {
	if g.Open() {
		return nil
	}
	g.mu.Lock()
	known := append([]string(nil), g.known...)
	g.mu.Unlock()
	out := make([]string, 0, len(known))
	var revoked []string
	for i := len(known) - 1; i >= 0; i-- {
		if g.authorize(known[i]) == nil {
			out = append(out, known[i])
		} else {
			revoked = append(revoked, known[i])
		}
	}
	if len(revoked) > 0 {
		g.mu.Lock()
		kept := g.known[:0]
		for _, t := range g.known {
			if !contains(revoked, t) {
				kept = append(kept, t)
			}
		}
		clear(g.known[len(kept):])
		g.known = kept
		g.mu.Unlock()
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// HTTPToken returns the token an HTTP request carries: "Authorization:
// Bearer T", or the query parameter token (for NVRs and Home Assistant's
// generic camera, which cannot set headers).
func HTTPToken(r *http.Request) string {
	if h := r.Header.Get("Authorization"); h != "" {
		if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
			return strings.TrimSpace(h[7:])
		}
	}
	return r.URL.Query().Get("token")
}

// CheckHTTP checks the request's token (see HTTPToken).
func (g *Gate) CheckHTTP(r *http.Request) error {
	if g.Open() {
		return nil
	}
	return g.Check(HTTPToken(r))
}
