package cluster

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callbox/callbox/internal/natstest"
)

// instance is a Cluster with a record of what was delivered to it.
type instance struct {
	*Cluster
	mu        sync.Mutex
	got       []string // "box kind"
	local     map[string]bool
	gone      chan string
	announced chan struct{}
}

func join(t testing.TB, url, name string, hb time.Duration) *instance {
	t.Helper()
	in := &instance{local: map[string]bool{}, gone: make(chan string, 16), announced: make(chan struct{}, 16)}
	c, err := Connect(Config{
		URL: url, Instance: name, Heartbeat: hb,
		Deliver: func(to string, m Msg) error {
			in.mu.Lock()
			defer in.mu.Unlock()
			in.got = append(in.got, to+" "+m.Kind+" "+string(m.Body))
			if m.Kind == KindKick {
				delete(in.local, to)
				return nil
			}
			if !in.local[to] {
				return fmt.Errorf("%s is not here", to)
			}
			return nil
		},
		Gone: func(box string) { in.gone <- box },
		Announce: func() {
			select {
			case in.announced <- struct{}{}:
			default:
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	in.Cluster = c
	t.Cleanup(func() { c.Close() })
	return in
}

func (in *instance) attach(t testing.TB, box string) {
	t.Helper()
	in.mu.Lock()
	in.local[box] = true
	in.mu.Unlock()
	if err := in.Attach(box); err != nil {
		t.Fatal(err)
	}
}

func (in *instance) received() []string {
	in.mu.Lock()
	defer in.mu.Unlock()
	return append([]string(nil), in.got...)
}

func TestSignalReachesTheInstanceHoldingTheBox(t *testing.T) {
	srv := natstest.Start(t)
	a := join(t, srv.URL, "a", time.Second)
	b := join(t, srv.URL, "b", time.Second)
	b.attach(t, "boxx")
	ctx := context.Background()
	inst, err := a.Request(ctx, "boxx", Msg{Kind: KindSignal, Body: []byte(`{"sdp":"v=0"}`)})
	if err != nil || inst != "b" {
		t.Fatalf("request = %q, %v", inst, err)
	}
	if got := b.received(); len(got) != 1 || got[0] != `boxx signal {"sdp":"v=0"}` {
		t.Fatalf("b received %q", got)
	}
	if _, err := a.Request(ctx, "nobody", Msg{Kind: KindSignal}); !errors.Is(err, ErrOffline) {
		t.Fatalf("request to an absent box: %v", err)
	}
	if w, err := a.Where(ctx, "boxx"); err != nil || w != "b" {
		t.Fatalf("where = %q, %v", w, err)
	}
	// The box registers again on a: b is told to drop it, and from then on
	// a alone answers for it.
	a.attach(t, "boxx")
	deadline := time.Now().Add(10 * time.Second)
	for b.Attached() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("b still holds the box after the kick")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if w, err := b.Where(ctx, "boxx"); err != nil || w != "a" {
		t.Fatalf("after moving: where = %q, %v", w, err)
	}
	// Order is kept: many signals arrive in the order sent.
	for i := 0; i < 50; i++ {
		if err := b.Notify("boxx", Msg{Kind: KindSignal, Body: []byte(fmt.Sprint(i))}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.Where(ctx, "boxx"); err != nil { // a round trip after the notices
		t.Fatal(err)
	}
	var sig []string
	for _, g := range a.received() {
		var box, kind, body string
		fmt.Sscan(g, &box, &kind, &body)
		if kind == KindSignal {
			sig = append(sig, body)
		}
	}
	for i, s := range sig {
		if s != fmt.Sprint(i) {
			t.Fatalf("signals out of order: %v", sig)
		}
	}
	if len(sig) != 50 {
		t.Fatalf("%d of 50 signals arrived", len(sig))
	}
}

func TestPresenceDiesWithItsInstance(t *testing.T) {
	srv := natstest.Start(t)
	hb := 100 * time.Millisecond
	a := join(t, srv.URL, "a", hb)
	b := join(t, srv.URL, "b", hb)
	c := join(t, srv.URL, "c", hb)
	a.Track("onb1", "b")
	a.Track("onb2", "b")
	a.Track("onc", "c")
	// A stale offline from an instance the box left does not untrack it.
	a.Track("moved", "c")
	if a.Untrack("moved", "b") {
		t.Fatal("stale offline untracked a box")
	}
	// b leaves cleanly: its boxes are gone at once (no waiting for heartbeats).
	start := time.Now()
	b.Close()
	var gone []string
	for len(gone) < 2 {
		select {
		case g := <-a.gone:
			gone = append(gone, g)
		case <-time.After(10 * time.Second):
			t.Fatalf("gone after b's goodbye: %v", gone)
		}
	}
	sort.Strings(gone)
	if fmt.Sprint(gone) != "[onb1 onb2]" {
		t.Fatalf("gone = %v", gone)
	}
	t.Logf("goodbye noticed in %v", time.Since(start))
	// c dies without a word (its connection just ends): its boxes are gone
	// once it has missed its heartbeats.
	start = time.Now()
	c.nc.Close()
	gone = nil
	for len(gone) < 2 {
		select {
		case g := <-a.gone:
			gone = append(gone, g)
		case <-time.After(10 * time.Second):
			t.Fatalf("gone after c died: %v", gone)
		}
	}
	sort.Strings(gone)
	if fmt.Sprint(gone) != "[moved onc]" {
		t.Fatalf("gone = %v", gone)
	}
	if d := time.Since(start); d < 2*hb {
		t.Fatalf("c declared dead after %v, before missing its heartbeats", d)
	}
}

// TestAnnounceAfterOutage: NATS goes away long enough for each instance to
// declare the other dead (its boxes gone); when NATS is back, each is asked
// to announce its boxes again, and a box is reachable again.
func TestAnnounceAfterOutage(t *testing.T) {
	srv := natstest.Start(t)
	hb := 100 * time.Millisecond
	a := join(t, srv.URL, "a", hb)
	b := join(t, srv.URL, "b", hb)
	b.attach(t, "boxb")
	a.Track("boxb", "b")
	// Both have heard each other (a heartbeat each): drain the announces
	// that first contact asked for.
	deadline := time.Now().Add(10 * time.Second)
	for {
		a.Cluster.mu.Lock()
		_, ok := a.lastBeat["b"]
		a.Cluster.mu.Unlock()
		if ok || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	for len(a.announced) > 0 {
		<-a.announced
	}
	srv.Stop()
	select {
	case g := <-a.gone:
		if g != "boxb" {
			t.Fatalf("gone %q", g)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("boxb not declared gone during the outage")
	}
	srv.Restart(t)
	select {
	case <-a.announced:
	case <-time.After(15 * time.Second):
		t.Fatal("a was not asked to announce its boxes after NATS came back")
	}
	select {
	case <-b.announced:
	case <-time.After(15 * time.Second):
		t.Fatal("b was not asked to announce its boxes after NATS came back")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		if w, err := a.Where(ctx, "boxb"); err == nil && w == "b" {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("boxb not reachable after the outage")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// BenchmarkSignalAcrossInstances: one signal from instance a to a box on
// instance b and its delivery answer, through a real nats-server. Reports
// the p99 round trip.
func BenchmarkSignalAcrossInstances(b *testing.B) {
	srv := natstest.Start(b)
	ia := join(b, srv.URL, "a", time.Second)
	ib := join(b, srv.URL, "b", time.Second)
	ib.local["boxx"] = true
	if err := ib.Attach("boxx"); err != nil {
		b.Fatal(err)
	}
	ib.Cluster.cfg.Deliver = func(string, Msg) error { return nil }
	ctx := context.Background()
	body := []byte(`{"type":"signal","kind":"offer","sdp":"v=0..."}`)
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		if _, err := ia.Request(ctx, "boxx", Msg{Kind: KindSignal, Body: body}); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
}

// TestTellReachesOneInstance: Tell delivers to the named instance only
// (a phone's answer goes back to the instance where the phone waits), with
// the box it is about; an instance name that is not a subject token is
// refused at Connect.
func TestTellReachesOneInstance(t *testing.T) {
	srv := natstest.Start(t)
	a := join(t, srv.URL, "a", time.Second)
	b := join(t, srv.URL, "b", time.Second)
	c := join(t, srv.URL, "c", time.Second)
	if err := a.Tell("b", Msg{Kind: KindPhoneAnswer, Box: "boxx", Body: []byte(`{"x":1}`)}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(b.received()) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := b.received(); len(got) != 1 || got[0] != `boxx phone_answer {"x":1}` {
		t.Fatalf("b got %q", got)
	}
	// c was not told (a round trip through c's own subject proves its
	// earlier messages are in).
	if err := a.Tell("c", Msg{Kind: KindPhoneAnswer, Box: "mark"}); err != nil {
		t.Fatal(err)
	}
	for len(c.received()) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := c.received(); len(got) != 1 || got[0] != "mark phone_answer " {
		t.Fatalf("c got %q", got)
	}
	if len(a.received()) != 0 {
		t.Fatalf("a got %q", a.received())
	}
	if err := a.Tell("", Msg{Kind: KindPhoneAnswer}); err == nil {
		t.Error("Tell to no instance succeeded")
	}
	for _, bad := range []string{"a.b", "a b", "x*", ">", "é", strings.Repeat("x", 65)} {
		if _, err := Connect(Config{URL: srv.URL, Instance: bad, Deliver: func(string, Msg) error { return nil }}); err == nil {
			t.Errorf("instance %q accepted", bad)
		}
	}
}
