package hub

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callbox/callbox/internal/natstest"
	"github.com/callbox/callbox/peer/hub/store"
	"github.com/callbox/callbox/peer/proto"
)

// TestHubPhoneLimitsAcrossCluster: two instances on one store and NATS,
// the box on instance one. Offers through instance two reach the box and
// count against the same bound of 8 waiting offers as offers through
// instance one (the instance holding the box counts them all); the box's
// answers go back to each offer's own instance; an answer nobody waits for
// is dropped.
func TestHubPhoneLimitsAcrossCluster(t *testing.T) {
	nats := natstest.Start(t)
	db := filepath.Join(t.TempDir(), "hub.db")
	open := func(name string) *Hub {
		st, err := store.Open(context.Background(), "sqlite:"+db)
		if err != nil {
			t.Fatal(err)
		}
		h, err := New(Config{Store: st, Cluster: nats.URL, Instance: name, TURNSecret: "s3cret",
			TURNURLs: []string{"turn:198.51.100.10:3478?transport=udp"}, Now: time.Now})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { h.Close(); st.Close() })
		return h
	}
	one, two := open("one"), open("two")

	id := mustIdentity(t)
	offers := make(chan proto.Message, 32)
	var sess *Session
	sess = &Session{Close: func() {}, Send: func(m proto.Message) error {
		if m.Type == proto.TypePhoneOffer {
			offers <- m
		}
		return nil
	}}
	hello := proto.NewHello(id, "porch", time.Now().UnixMilli(), nonce(t))
	if _, err := one.Register(sess, &hello); err != nil {
		t.Fatal(err)
	}
	cred := proto.IssuePhoneCredential(id, strings.Repeat("ab", 32), time.Now().Add(time.Hour))
	post := func(h *Hub) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodPost, "/box/"+id.ID+"/whep", strings.NewReader("v=0 offer"))
		r.Header.Set("Content-Type", "application/sdp")
		r.Header.Set("Authorization", "Bearer "+cred)
		w := httptest.NewRecorder()
		h.PhoneHandler().ServeHTTP(w, r)
		return w
	}

	// Eight offers wait: five through instance two, three through one.
	var wg sync.WaitGroup
	codes := make(chan *httptest.ResponseRecorder, maxPhoneOffers)
	for i := 0; i < maxPhoneOffers; i++ {
		h := two
		if i >= 5 {
			h = one
		}
		wg.Add(1)
		go func() { defer wg.Done(); codes <- post(h) }()
	}
	var got []proto.Message
	for len(got) < maxPhoneOffers {
		select {
		case m := <-offers:
			got = append(got, m)
		case <-time.After(5 * time.Second):
			t.Fatalf("%d of %d offers reached the box", len(got), maxPhoneOffers)
		}
	}
	if len(got[0].ICE) == 0 || got[0].Token != cred {
		t.Errorf("forwarded offer: ICE %+v, token %q", got[0].ICE, got[0].Token)
	}
	// A ninth, through either instance: the box has too many waiting.
	for _, h := range []*Hub{one, two} {
		if w := post(h); w.Code != http.StatusServiceUnavailable || !strings.Contains(w.Body.String(), "too many") {
			t.Errorf("a ninth offer: %d %q, want 503 too many", w.Code, w.Body.String())
		}
	}
	// An answer for a request nobody made changes nothing.
	if err := one.Handle(sess, &proto.Message{Type: proto.TypePhoneAnswer, Call: "ph-nobody", SDP: "x"}); err != nil {
		t.Fatal(err)
	}
	// The box answers each; every phone gets its own answer.
	for _, m := range got {
		a := proto.Message{Type: proto.TypePhoneAnswer, Call: m.Call, SDP: "answer " + m.Call}
		if err := one.Handle(sess, &a); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	close(codes)
	for w := range codes {
		loc := w.Header().Get("Location")
		if w.Code != http.StatusCreated || !strings.HasPrefix(loc, "/box/"+id.ID+"/whep/") || w.Body.String() != "answer "+loc[strings.LastIndex(loc, "/")+1:] {
			t.Errorf("offer: %d %q (Location %q)", w.Code, w.Body.String(), loc)
		}
	}
	// All answered: room for more again.
	go func() {
		m := <-offers
		_ = one.Handle(sess, &proto.Message{Type: proto.TypePhoneAnswer, Call: m.Call, Error: "unpaired: the box no longer knows this phone"})
	}()
	if w := post(two); w.Code != http.StatusUnauthorized {
		t.Errorf("the box's refusal through instance two: %d %q, want 401", w.Code, w.Body.String())
	}
}
