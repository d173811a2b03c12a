package box

import (
	"context"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/callbox/callbox/peer/proto"
)

func TestHubOverWebSocket(t *testing.T) {
	h := newTestHub(t)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	url := "ws" + strings.TrimPrefix(srv.URL, "http")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	dial := func(name string) *Client {
		c, err := Dial(ctx, ClientConfig{HubURL: url, Identity: mustIdentity(t), Name: name, DataDir: t.TempDir()})
		if err != nil {
			t.Fatalf("dial %s: %v", name, err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	a, b := dial("a"), dial("b")
	if len(a.ICEServers()) != 2 {
		t.Fatalf("ICE servers %+v", a.ICEServers())
	}
	// Unpaired: the hub refuses to forward and says why.
	if err := a.SendSignal(ctx, b.ID(), "x", proto.KindRing, ""); err != nil {
		t.Fatal(err)
	}
	code, _, err := a.RequestPairCode(ctx)
	if err != nil {
		t.Fatal(err)
	}
	waitA := make(chan proto.PeerInfo, 1)
	go func() {
		p, _ := a.WaitPaired(ctx)
		waitA <- p
	}()
	time.Sleep(50 * time.Millisecond) // let WaitPaired register before the join completes
	pb, err := b.JoinPairCode(ctx, code)
	if err != nil {
		t.Fatalf("join: %v", err)
	}
	if pb.ID != a.ID() {
		t.Fatalf("b paired with %s", pb.ID)
	}
	if p := <-waitA; p.ID != b.ID() {
		t.Fatalf("a paired with %q", p.ID)
	}
	if p, err := a.Resolve("b"); err != nil || p.ID != b.ID() {
		t.Fatalf("resolve b: %+v %v", p, err)
	}
	if !a.Online(b.ID()) || !b.Online(a.ID()) {
		t.Fatal("paired boxes do not see each other online")
	}
	if err := a.SendSignal(ctx, b.ID(), "call-1", proto.KindOffer, "v=0\r\n"); err != nil {
		t.Fatal(err)
	}
	select {
	case s := <-b.Signals():
		if s.From != a.ID() || s.Kind != proto.KindOffer || s.SDP != "v=0\r\n" || s.Call != "call-1" {
			t.Fatalf("signal %+v", s)
		}
	case <-ctx.Done():
		t.Fatal("signal not delivered")
	}
	// b leaves: the hub tells a, so a call to b waits instead of signalling
	// into the void.
	b.Close()
	wctx, wcancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer wcancel()
	for a.Online(b.ID()) && wctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
	}
	if a.Online(b.ID()) {
		t.Fatal("a still sees b online after b left")
	}
	if err := a.WaitOnline(wctx, b.ID()); !errors.Is(err, proto.ErrOffline) {
		t.Fatalf("WaitOnline for a box that left: %v", err)
	}
}

// A refused registration reaches the box with the hub's reason.
func TestHubRefusalReachesBox(t *testing.T) {
	h := newTestHub(t)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	skewed := func() time.Time { return time.Now().Add(-10 * time.Minute) } // a box with a wrong clock
	_, err := Dial(ctx, ClientConfig{HubURL: "ws" + strings.TrimPrefix(srv.URL, "http"), Identity: mustIdentity(t), Now: skewed})
	if !errors.Is(err, proto.ErrHub) || !strings.Contains(err.Error(), "stale") {
		t.Fatalf("err = %v, want the hub's refusal naming the stale timestamp", err)
	}
}
