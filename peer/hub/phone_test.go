package hub

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/callbox/callbox/peer/proto"
)

// TestHubPhoneSignalling runs a phone's offer through the hub to a
// registered box and back: the hub admits only credentials the box signed,
// unexpired; it forwards the offer with TURN credentials for the box and
// returns the box's answer; the box's refusal and a box that is offline
// reach the phone as such.
func TestHubPhoneSignalling(t *testing.T) {
	h := newTestHub(t, time.Now)
	id := mustIdentity(t)
	var got proto.Message
	s := &Session{Close: func() {}}
	var sess *Session
	byes := make(chan proto.Message, 4)
	s.Send = func(m proto.Message) error {
		if m.Type == proto.TypePhoneBye {
			byes <- m
			return nil
		}
		if m.Type != proto.TypePhoneOffer {
			return nil
		}
		got = m
		// The box checks the credential itself and answers on its connection.
		a := proto.Message{Type: proto.TypePhoneAnswer, Call: m.Call}
		if _, err := proto.VerifyPhoneCredential(id.ID, id.Pub, m.Token, time.Now()); err != nil {
			a.Error = "unpaired: " + err.Error()
		} else if strings.Contains(m.SDP, "refuse") {
			a.Error = "unpaired: the box no longer knows this phone"
		} else {
			a.SDP = "answer to " + m.SDP
		}
		go func() {
			if err := a.Validate(); err != nil {
				t.Error(err)
			}
			_ = h.Handle(sess, &a)
		}()
		return nil
	}
	sess = s
	hello := proto.NewHello(id, "kitchen", time.Now().UnixMilli(), nonce(t))
	if _, err := h.Register(s, &hello); err != nil {
		t.Fatal(err)
	}
	tokID := strings.Repeat("ab", 32)
	good := proto.IssuePhoneCredential(id, tokID, time.Now().Add(time.Hour))
	other := mustIdentity(t)
	forged := proto.IssuePhoneCredential(other, tokID, time.Now().Add(time.Hour))
	expired := proto.IssuePhoneCredential(id, tokID, time.Now().Add(-time.Second))

	post := func(box, cred, offer string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodPost, "/box/"+box+"/whep", strings.NewReader(offer))
		r.Header.Set("Content-Type", "application/sdp")
		if cred != "" {
			r.Header.Set("Authorization", "Bearer "+cred)
		}
		w := httptest.NewRecorder()
		h.PhoneHandler().ServeHTTP(w, r)
		return w
	}
	w := post(id.ID, good, "v=0 offer")
	if w.Code != http.StatusCreated || w.Body.String() != "answer to v=0 offer" {
		t.Fatalf("good credential: %d %q", w.Code, w.Body.String())
	}
	if !strings.HasPrefix(w.Header().Get("Location"), "/box/"+id.ID+"/whep/") {
		t.Errorf("Location %q", w.Header().Get("Location"))
	}
	if got.Token != good || len(got.ICE) != 2 || got.ICE[1].Username == "" {
		t.Errorf("forwarded offer: token %q, ICE %+v (want STUN and TURN with credentials)", got.Token, got.ICE)
	}
	for name, c := range map[string]struct {
		box, cred string
		code      int
	}{
		"no credential":   {id.ID, "", http.StatusUnauthorized},
		"forged":          {id.ID, forged, http.StatusUnauthorized},
		"expired":         {id.ID, expired, http.StatusUnauthorized},
		"another box's":   {other.ID, forged, http.StatusUnauthorized}, // never registered
		"garbage":         {id.ID, "x.y.z", http.StatusUnauthorized},
		"the box says no": {id.ID, good, http.StatusUnauthorized},
	} {
		offer := "v=0"
		if name == "the box says no" {
			offer = "refuse"
		}
		if w := post(c.box, c.cred, offer); w.Code != c.code {
			t.Errorf("%s: %d %q, want %d", name, w.Code, w.Body.String(), c.code)
		}
	}
	// The page: served to anyone; it holds no credential itself.
	pw := httptest.NewRecorder()
	h.PhoneHandler().ServeHTTP(pw, httptest.NewRequest(http.MethodGet, "/box/"+id.ID, nil))
	if pw.Code != 200 || !strings.Contains(pw.Body.String(), "Pair at home first") || !strings.Contains(pw.Body.String(), id.ID) {
		t.Errorf("page: %d", pw.Code)
	}
	// OPTIONS names the hub's STUN server for the phone's own candidates.
	ow := httptest.NewRecorder()
	h.PhoneHandler().ServeHTTP(ow, httptest.NewRequest(http.MethodOptions, "/box/"+id.ID+"/whep", nil))
	if l := ow.Header().Get("Link"); l != `<stun:198.51.100.10:3478>; rel="ice-server"` {
		t.Errorf("OPTIONS Link %q", l)
	}
	// DELETE: forwarded to the box with the credential, never without one.
	del := func(cred string) int {
		r := httptest.NewRequest(http.MethodDelete, w.Header().Get("Location"), nil)
		if cred != "" {
			r.Header.Set("Authorization", "Bearer "+cred)
		}
		dw := httptest.NewRecorder()
		h.PhoneHandler().ServeHTTP(dw, r)
		return dw.Code
	}
	if c := del(""); c != http.StatusUnauthorized {
		t.Errorf("DELETE without a credential: %d", c)
	}
	if c := del(forged); c != http.StatusUnauthorized {
		t.Errorf("DELETE with a forged credential: %d", c)
	}
	if c := del(good); c != http.StatusOK {
		t.Errorf("DELETE: %d", c)
	}
	select {
	case b := <-byes:
		if !strings.HasSuffix(w.Header().Get("Location"), "/"+b.Call) || b.Token != good {
			t.Errorf("phone_bye %+v", b)
		}
	default:
		t.Error("DELETE not forwarded to the box")
	}
	if len(byes) != 0 {
		t.Error("a refused DELETE reached the box")
	}
	// Offline: 503.
	h.Unregister(s)
	if w := post(id.ID, good, "v=0"); w.Code != http.StatusServiceUnavailable {
		t.Errorf("offline box: %d", w.Code)
	}
}

func FuzzPhoneCredential(f *testing.F) {
	id, _ := proto.NewIdentity()
	f.Add(proto.IssuePhoneCredential(id, strings.Repeat("0f", 32), time.Unix(2e9, 0)))
	f.Add("a.b.c")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := proto.VerifyPhoneCredential(id.ID, id.Pub, s, time.Unix(1e9, 0))
		if err == nil && (c.Box != id.ID || len(c.TokenID) != proto.PhoneTokenIDLen) {
			t.Fatalf("accepted %q as %+v", s, c)
		}
	})
}
