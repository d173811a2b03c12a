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
	// Unpaired boxes get STUN only: the TURN relay is for paired boxes.
	if len(a.ICEServers()) != 1 || a.ICEServers()[0].Username != "" {
		t.Fatalf("ICE servers of an unpaired box %+v", a.ICEServers())
	}
	// Unpaired: the hub refuses to forward and says why.
	if err := a.SendSignal(ctx, b.ID(), "x", proto.KindRing, ""); err != nil {
		t.Fatal(err)
	}
	pairClients(t, ctx, a, b)
	if len(a.ICEServers()) != 2 || len(b.ICEServers()) != 2 {
		t.Fatalf("ICE servers after pairing: a %+v b %+v", a.ICEServers(), b.ICEServers())
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

// pairClients pairs a and b by code as two owners would: a shows a code, b
// enters it, both owners compare the SAS and confirm.
func pairClients(t *testing.T, ctx context.Context, a, b *Client) {
	t.Helper()
	code, _, err := a.RequestPairCode(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pb, err := b.JoinPairCode(ctx, code)
	if err != nil {
		t.Fatalf("join: %v", err)
	}
	pa, err := a.WaitPairStage(ctx, PairCompare)
	if err != nil {
		t.Fatal(err)
	}
	if pa.SAS == "" || pa.SAS != pb.SAS || pa.PeerID != b.ID() || pb.PeerID != a.ID() {
		t.Fatalf("the boxes show different pairings: a %+v, b %+v", pa, pb)
	}
	if _, err := a.Resolve(b.ID()); err == nil {
		t.Fatal("a pinned b before its owner confirmed")
	}
	if err := a.ConfirmPairing(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.ConfirmPairing(ctx); err != nil {
		t.Fatal(err)
	}
	for _, x := range [][2]*Client{{a, b}, {b, a}} {
		p, err := x[0].WaitPaired(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if p.ID != x[1].ID() {
			t.Fatalf("%s paired with %s, want %s", x[0].ID(), p.ID, x[1].ID())
		}
	}
}
