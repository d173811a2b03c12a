package hub

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/callbox/callbox/capture"
	"github.com/callbox/callbox/peer/box"
	"github.com/callbox/callbox/peer/proto"
)

// TestHubPhoneFanout: S7 for phones away from home, the hub's side. A box
// with a phone (no paired box) may publish; the phones learn from the long
// poll that the media moved to the hub's relay once it has video, and
// back when the box stops; the hub's WHEP admits only phones the box lists
// as paired, whatever their signature says.
func TestHubPhoneFanout(t *testing.T) {
	h := newTestHub(t, time.Now)
	fh := NewFanoutRelay(h, nil)
	t.Cleanup(fh.Close)
	mux := http.NewServeMux()
	mux.Handle("/v1/ws", h)
	mux.Handle("/v1/publish", fh)
	mux.Handle("/box/", h.PhoneHandler())
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	id := mustIdentity(t)
	var fs fakeSession
	register(t, h, id, &fs)
	paired, unpaired := strings.Repeat("ab", 32), strings.Repeat("cd", 32)
	good := proto.IssuePhoneCredential(id, paired, time.Now().Add(time.Hour))
	revoked := proto.IssuePhoneCredential(id, unpaired, time.Now().Add(time.Hour))

	poll := func(cred string, v uint64) (PhoneMedia, int) {
		r, _ := http.NewRequest(http.MethodGet, srv.URL+"/box/"+id.ID+"/media?v="+strconv.FormatUint(v, 10), nil)
		if cred != "" {
			r.Header.Set("Authorization", "Bearer "+cred)
		}
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m PhoneMedia
		_ = json.NewDecoder(resp.Body).Decode(&m)
		return m, resp.StatusCode
	}
	if _, code := poll("", 0); code != http.StatusUnauthorized {
		t.Errorf("poll without a credential: %d", code)
	}
	m, code := poll(good, 0)
	if code != 200 || m.Mode != proto.PhonesDirect || m.WHEP != "/box/"+id.ID+"/whep" {
		t.Fatalf("first poll: %d %+v", code, m)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	hubURL := "ws" + strings.TrimPrefix(srv.URL, "http") + "/v1/ws"
	pub, err := box.PublishToHub(ctx, hubURL, id, nil) // no paired box: its phone polled
	if err != nil {
		t.Fatal(err)
	}
	viewers := make(chan int, 8)
	go pub.ReadControl(ctx, func(c proto.FanoutControl) {
		if c.Viewers != nil {
			viewers <- *c.Viewers
		}
	})
	if err := pub.SendControl(ctx, proto.FanoutControl{Allowed: []string{paired}, AllowedSet: true}); err != nil {
		t.Fatal(err)
	}
	if err := pub.SendControl(ctx, proto.FanoutControl{Phones: proto.PhonesHub}); err != nil {
		t.Fatal(err)
	}
	// The phones are told once the hub's relay has video.
	moved := make(chan PhoneMedia, 1)
	go func() { m, _ := poll(good, m.V); moved <- m }()
	select {
	case m := <-moved:
		t.Fatalf("moved before any video: %+v", m)
	case <-time.After(300 * time.Millisecond):
	}
	pkt := make([]byte, 20)
	pkt[0], pkt[1] = 0x80, 0x80|capture.PayloadTypeH264
	if err := pub.Publish(ctx, capture.Burst{Kind: capture.KindVideo, Keyframe: true, Packets: [][]byte{pkt}, CaptureTime: time.Now()}); err != nil {
		t.Fatal(err)
	}
	select {
	case m = <-moved:
	case <-time.After(5 * time.Second):
		t.Fatal("the phone was not told of the move")
	}
	if m.Mode != proto.PhonesHub || m.WHEP != "/box/"+id.ID+"/hub/whep" {
		t.Fatalf("after the move: %+v", m)
	}
	select {
	case n := <-viewers:
		if n != 0 {
			t.Errorf("viewers %d, want 0", n)
		}
	case <-time.After(2 * time.Second):
		t.Error("the hub did not report its phones' sessions")
	}

	offer := func(cred string) int {
		r, _ := http.NewRequest(http.MethodPost, srv.URL+m.WHEP, strings.NewReader("not an offer"))
		r.Header.Set("Content-Type", "application/sdp")
		r.Header.Set("Authorization", "Bearer "+cred)
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := offer(revoked); code != http.StatusUnauthorized {
		t.Errorf("a phone the box does not list: %d, want 401", code)
	}
	if code := offer(good); code != http.StatusBadRequest {
		t.Errorf("a listed phone's bad offer: %d, want 400 from the WebRTC endpoint", code)
	}

	// The box stops publishing: the phones go back to it.
	go func() { m, _ := poll(good, m.V); moved <- m }()
	pub.Close()
	select {
	case m = <-moved:
	case <-time.After(5 * time.Second):
		t.Fatal("the phone was not told the media is back on the box")
	}
	if m.Mode != proto.PhonesDirect {
		t.Errorf("after the publication ended: %+v", m)
	}
}
