package webrtc

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/callbox/callbox/relay"
	"github.com/callbox/callbox/relay/webrtc/testsrc"
	pion "github.com/pion/webrtc/v4"
)

// offerSDP makes a browser-like recvonly offer with pion (PCMU audio).
func offerSDP(t *testing.T) string { return offerSDPWith(t, false) }

// offerSDPWith is offerSDP; opus offers opus/48000/2 first, as browsers do.
func offerSDPWith(t *testing.T, opus bool) string {
	t.Helper()
	m, err := mediaEngine(true, opus)
	if err != nil {
		t.Fatal(err)
	}
	pc, err := pion.NewAPI(pion.WithMediaEngine(m)).NewPeerConnection(pion.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	for _, k := range []pion.RTPCodecType{pion.RTPCodecTypeVideo, pion.RTPCodecTypeAudio} {
		if _, err := pc.AddTransceiverFromKind(k, pion.RTPTransceiverInit{Direction: pion.RTPTransceiverDirectionRecvonly}); err != nil {
			t.Fatal(err)
		}
	}
	o, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	return o.SDP
}

func post(t *testing.T, url, ctype, token, body string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

func do(t *testing.T, method, url, token string) int {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestWHEPConformance checks RFC 9725's answers: 201 with an SDP answer
// and a Location, DELETE on it, 401 without the pairing token, 400 on a
// bad offer, 415 on a wrong content type, 405 on PATCH (no trickle ICE).
func TestWHEPConformance(t *testing.T) {
	auth := func(tok string) error {
		if tok != "good" {
			return errors.New("unknown token")
		}
		return nil
	}
	b := newBox(t, Config{Authorize: auth}, relay.Config{})
	offer := offerSDP(t)

	if resp, _ := post(t, b.url(), "application/sdp", "", offer); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("no token: %d, want 401", resp.StatusCode)
	} else if !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
		t.Errorf("401 without WWW-Authenticate: Bearer")
	}
	if resp, _ := post(t, b.url(), "application/sdp", "bad", offer); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("bad token: %d, want 401", resp.StatusCode)
	}
	if resp, _ := post(t, b.url(), "application/json", "good", offer); resp.StatusCode != http.StatusUnsupportedMediaType {
		t.Errorf("wrong content type: %d, want 415", resp.StatusCode)
	}
	if resp, _ := post(t, b.url(), "", "good", offer); resp.StatusCode != http.StatusUnsupportedMediaType {
		t.Errorf("no content type: %d, want 415", resp.StatusCode)
	}
	for name, bad := range map[string]string{
		"garbage":  "hello",
		"empty":    "",
		"no video": strings.Split(offer, "m=video")[0],
		"no h264":  strings.ReplaceAll(offer, "H264", "VP8"),
	} {
		if resp, body := post(t, b.url(), "application/sdp", "good", bad); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s offer: %d %s, want 400", name, resp.StatusCode, body)
		}
	}
	if b.srv.Peers() != 0 {
		t.Errorf("%d sessions left by refused offers", b.srv.Peers())
	}

	resp, answer := post(t, b.url(), "application/sdp; charset=utf-8", "good", offer)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("good offer: %d %s", resp.StatusCode, answer)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/sdp" {
		t.Errorf("answer content type %q", ct)
	}
	loc, err := resp.Location()
	if err != nil {
		t.Fatalf("no Location: %v", err)
	}
	for _, want := range []string{"a=fmtp:", "profile-level-id=42e01f", "packetization-mode=1", "PCMU", "transport-wide-cc", "abs-capture-time", "typ host"} {
		if !strings.Contains(answer, want) {
			t.Errorf("answer lacks %q", want)
		}
	}
	if strings.Contains(answer, "typ srflx") || strings.Contains(answer, "typ relay") {
		t.Error("answer has non-host candidates")
	}
	if b.srv.Peers() != 1 {
		t.Fatalf("%d sessions, want 1", b.srv.Peers())
	}
	if c := do(t, http.MethodPatch, loc.String(), "good"); c != http.StatusMethodNotAllowed {
		t.Errorf("PATCH: %d, want 405", c)
	}
	if c := do(t, http.MethodDelete, loc.String(), ""); c != http.StatusUnauthorized {
		t.Errorf("DELETE without token: %d, want 401", c)
	}
	if c := do(t, http.MethodDelete, loc.String(), "good"); c != http.StatusOK {
		t.Errorf("DELETE: %d, want 200", c)
	}
	if c := do(t, http.MethodDelete, loc.String(), "good"); c != http.StatusNotFound {
		t.Errorf("second DELETE: %d, want 404", c)
	}
	if b.srv.Peers() != 0 {
		t.Errorf("%d sessions after DELETE", b.srv.Peers())
	}
	if c := do(t, http.MethodGet, b.url(), "good"); c != http.StatusMethodNotAllowed {
		t.Errorf("GET: %d, want 405", c)
	}
}

// TestWHEPOpen: without Authorize (--open) no token is needed.
func TestWHEPOpen(t *testing.T) {
	b := newBox(t, Config{}, relay.Config{})
	resp, body := post(t, b.url(), "application/sdp", "", offerSDP(t))
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
}

// TestWHEPUnpairedGetsNoMedia: a refused client never gets a session.
func TestWHEPUnpairedGetsNoMedia(t *testing.T) {
	b := newBox(t, Config{Authorize: func(string) error { return errors.New("no") }}, relay.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := Dial(ctx, b.url(), ClientOptions{Loopback: true, Token: "x"})
	var se *StatusError
	if !errors.As(err, &se) || se.Code != http.StatusUnauthorized {
		t.Fatalf("dial: %v, want a 401", err)
	}
	if b.r.Viewers() != 0 || b.srv.Peers() != 0 {
		t.Fatalf("viewers %d, peers %d after a refusal", b.r.Viewers(), b.srv.Peers())
	}
}

// TestWHEPMountedElsewhere: a server mounted at another path (the call's
// relay at /whep/call) takes offers there and keeps its sessions under
// it; OPTIONS says what the relay carries now (Callbox-Video-Live); with
// OpusFirst a phone offering Opus gets Opus although no audio flows yet.
func TestWHEPMountedElsewhere(t *testing.T) {
	r := relay.New(relay.Config{}, nil)
	defer r.Close()
	srv, err := New(r, Config{Path: "/whep/call/", OpusFirst: true, Loopback: true})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	mux := http.NewServeMux()
	mux.Handle("/whep/call", srv)
	mux.Handle("/whep/call/", srv)
	hs := httptest.NewServer(mux)
	defer hs.Close()
	live := func() string {
		req, _ := http.NewRequest(http.MethodOptions, hs.URL+"/whep/call", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.Header.Get(VideoLiveHeader)
	}
	if l := live(); l != "none" {
		t.Errorf("nothing published: %s %q, want none", VideoLiveHeader, l)
	}
	aus := testAUs(t)
	pl := &testsrc.Player{AUs: aus, FPS: 30, Publish: r.Publish}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); pl.Run(ctx) }()
	defer func() { cancel(); <-done }()
	waitFor(t, 5*time.Second, "H.264 to be published", func() bool { return live() == "h264" })

	resp, answer := post(t, hs.URL+"/whep/call", "application/sdp", "", offerSDPWith(t, true))
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("offer at /whep/call: %d %s", resp.StatusCode, answer)
	}
	loc := resp.Header.Get("Location")
	if !strings.HasPrefix(loc, "/whep/call/") {
		t.Errorf("Location %q, want under /whep/call/", loc)
	}
	if !strings.Contains(strings.ToLower(answer), "opus/48000/2") {
		t.Error("OpusFirst: the answer has no Opus for an offer with Opus, no audio published yet")
	}
	if c := do(t, http.MethodDelete, hs.URL+"/whep/callx", ""); c != http.StatusNotFound {
		t.Errorf("DELETE /whep/callx: %d, want 404", c)
	}
	if c := do(t, http.MethodDelete, hs.URL+loc, ""); c != http.StatusOK {
		t.Errorf("DELETE %s: %d, want 200", loc, c)
	}
	if srv.Peers() != 0 {
		t.Errorf("%d sessions after DELETE", srv.Peers())
	}
}

// TestCloseOwner: a session belongs to its token's phone (Config.Owner on
// the LAN, RemoteOptions.Owner for a phone away from home); CloseOwner
// ends that phone's sessions, LAN and remote, connected or not, and no
// other phone's.
func TestCloseOwner(t *testing.T) {
	auth := func(tok string) error {
		if tok != "alice" && tok != "bob" {
			return errors.New("no")
		}
		return nil
	}
	b := newBox(t, Config{Authorize: auth, Owner: func(tok string) string { return "id-" + tok }}, relay.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	alice, err := Dial(ctx, b.url(), ClientOptions{Loopback: true, Token: "alice", TimeProbes: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer alice.Close()
	bob, err := Dial(ctx, b.url(), ClientOptions{Loopback: true, Token: "bob", TimeProbes: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer bob.Close()
	// Alice away from home: a remote session that never connects.
	if _, _, err := b.srv.AnswerRemoteWith(ctx, "remote alice", offerSDP(t), nil, RemoteOptions{Owner: "id-alice"}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for b.r.Viewers() < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("%d viewers connected", b.r.Viewers())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n := b.srv.CloseOwner("id-alice", "revoked"); n != 2 {
		t.Fatalf("CloseOwner ended %d sessions, want alice's 2", n)
	}
	for b.srv.Peers() != 1 || b.r.Viewers() != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("%d sessions, %d viewers after revoking alice; want bob's 1", b.srv.Peers(), b.r.Viewers())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n := b.srv.CloseOwner("", "revoked"); n != 0 {
		t.Fatalf("the empty owner closed %d", n)
	}
	// Bob's media goes on.
	before := bob.Stats().Decodable
	for bob.Stats().Decodable < before+5 {
		if time.Now().After(deadline) {
			t.Fatalf("bob stalled at %d frames", bob.Stats().Decodable)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
