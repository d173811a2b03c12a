package hubcluster

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/callbox/callbox/internal/natstest"
	"github.com/callbox/callbox/internal/pgtest"
	"github.com/callbox/callbox/internal/testenv"
	"github.com/callbox/callbox/peer/box"
	"github.com/callbox/callbox/peer/proto"
)

func protoIdentity() (*proto.Identity, error) { return proto.NewIdentity() }

// waitFrames waits until call has decoded n video frames.
func waitFrames(t *testing.T, c *box.Call, n uint64, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for c.Summary().FramesDecoded < n {
		select {
		case <-c.Done():
			t.Fatalf("call ended: %+v", c.Summary())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d frames after %v: %+v", c.Summary().FramesDecoded, n, d, c.Summary())
		}
	}
}

// TestHubRestartKeepsPairs: a hub on SQLite is killed (SIGKILL, no clean
// shutdown) and started again on the same file and port; both boxes
// reconnect within their backoff, and their pairing is still there: the
// hub forwards the signalling of a call between them.
func TestHubRestartKeepsPairs(t *testing.T) {
	testenv.Short(t)
	dir := t.TempDir()
	db := "sqlite:" + filepath.Join(dir, "hub.db")
	h := startHub(t, "first", "127.0.0.1:0", "--store", db, "--data", dir)
	a := newBox(t, h.ws, "kitchen")
	b := newBox(t, h.ws, "attic")
	pair(t, a, b)
	if st := h.stats(t); st.Pairs != 1 || st.Boxes != 2 || st.BoxesOnline != 2 {
		t.Fatalf("before the restart: %+v", st)
	}
	addr := h.addr
	h.kill()
	h2 := startHub(t, "second", addr, "--store", db, "--data", dir)
	took := waitFor(t, 15*time.Second, "both boxes back", func() bool { return h2.stats(t).BoxesOnline == 2 })
	t.Logf("both boxes registered again %v after the new hub listened", took.Round(time.Millisecond))
	// The client's backoff doubles from 250 ms up to 10 s; the hub was away
	// for a few seconds at most, so the next attempt comes well within 10 s.
	if took > 10*time.Second {
		t.Errorf("boxes took %v to come back, longer than their 10 s maximum backoff", took)
	}
	if st := h2.stats(t); st.Pairs != 1 || st.Boxes != 2 {
		t.Fatalf("after the restart: %+v", st)
	}
	waitFor(t, 10*time.Second, "kitchen sees attic online", func() bool { return a.client.Online(b.client.ID()) })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := a.caller.Call(ctx, b.client.ID())
	if err != nil {
		t.Fatalf("call after the restart: %v", err)
	}
	waitFrames(t, c, 5, 20*time.Second)
}

// TestHubImportsJSONState: a hub started on a data directory holding the
// JSON state file of older hubs imports its boxes and pairs into the
// store, record by record, and renames the file.
func TestHubImportsJSONState(t *testing.T) {
	dir := t.TempDir()
	ida, _ := proto.NewIdentity()
	idb, _ := proto.NewIdentity()
	type rec struct {
		Key      []byte    `json:"key"`
		Name     string    `json:"name"`
		LastSeen time.Time `json:"last_seen"`
	}
	st := map[string]any{
		"boxes": map[string]rec{ida.ID: {Key: ida.Pub, Name: "kitchen", LastSeen: time.Now()}, idb.ID: {Key: idb.Pub, Name: "attic", LastSeen: time.Now()}},
		"pairs": map[string][]string{ida.ID: {idb.ID}, idb.ID: {ida.ID}},
	}
	b, _ := json.Marshal(st)
	if err := os.WriteFile(filepath.Join(dir, "hub.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	h := startHub(t, "import", "127.0.0.1:0", "--data", dir)
	if s := h.stats(t); s.Boxes != 2 || s.Pairs != 1 {
		t.Fatalf("after import: %+v", s)
	}
	if _, err := os.Stat(filepath.Join(dir, "hub.json.imported")); err != nil {
		t.Fatalf("state file not renamed: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "hub.db")); err != nil {
		t.Fatalf("no SQLite store in the data dir: %v", err)
	}
}

// TestHubClusterFailover: two hub instances on one PostgreSQL and one
// NATS. Box kitchen (behind a load balancer) lands on instance one, attic
// on instance two, cellar on instance one with no way to another. Kitchen
// and attic pair across the instances and call. Instance one is killed:
// kitchen reconnects to instance two within 5 s while the call's media
// (peer to peer) goes on, and attic sees cellar go offline once instance
// one has missed its heartbeats.
func TestHubClusterFailover(t *testing.T) {
	testenv.Short(t)
	pg := pgtest.Start(t)
	nats := natstest.Start(t)
	one := startHub(t, "one", "127.0.0.1:0", "--store", pg, "--cluster", nats.URL, "--instance", "one", "--data", t.TempDir())
	two := startHub(t, "two", "127.0.0.1:0", "--store", pg, "--cluster", nats.URL, "--instance", "two", "--data", t.TempDir())
	lb := newFrontProxy(t, one.addr, two.addr)
	kitchen := newBox(t, lb.url(), "kitchen")
	attic := newBox(t, two.ws, "attic")
	cellar := newBox(t, one.ws, "cellar")
	if s1, s2 := one.stats(t), two.stats(t); s1.BoxesOnline != 2 || s2.BoxesOnline != 1 {
		t.Fatalf("boxes online: one %d, two %d; want 2 and 1", s1.BoxesOnline, s2.BoxesOnline)
	}
	pair(t, kitchen, attic) // code asked on one, entered on two
	pair(t, cellar, attic)
	waitFor(t, 10*time.Second, "kitchen and attic see each other online", func() bool {
		return kitchen.client.Online(attic.client.ID()) && attic.client.Online(kitchen.client.ID())
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	call, err := kitchen.caller.Call(ctx, attic.client.ID())
	if err != nil {
		t.Fatalf("call across instances: %v", err)
	}
	waitFrames(t, call, 10, 20*time.Second)
	var callee *box.Call
	waitFor(t, 10*time.Second, "attic in the call", func() bool { callee = attic.caller.Current(); return callee != nil })
	waitFrames(t, callee, 10, 20*time.Second)

	killed := time.Now()
	one.kill()
	moved := waitFor(t, 10*time.Second, "kitchen on instance two", func() bool { return two.stats(t).BoxesOnline == 2 })
	t.Logf("kitchen registered on instance two %v after instance one died", moved.Round(time.Millisecond))
	if moved > 5*time.Second {
		t.Errorf("kitchen took %v to reconnect to instance two; want under 5 s", moved)
	}
	// The call never went through the hub: its media goes on, both ways.
	before, beforeCallee := call.Summary().FramesDecoded, callee.Summary().FramesDecoded
	waitFrames(t, call, before+15, 10*time.Second)
	waitFrames(t, callee, beforeCallee+15, 10*time.Second)
	// Cellar had nowhere to go: instance two declares it offline once
	// instance one has been silent for 3 s, and tells attic.
	waitFor(t, 15*time.Second, "attic sees cellar offline", func() bool { return !attic.client.Online(cellar.client.ID()) })
	t.Logf("attic saw cellar offline %v after instance one died", time.Since(killed).Round(time.Millisecond))
	// Signalling still works after the move: hang up and call again.
	kitchen.caller.HangUp()
	waitFor(t, 10*time.Second, "the call ends", func() bool { return attic.caller.Current() == nil })
	call2, err := kitchen.caller.Call(ctx, attic.client.ID())
	if err != nil {
		t.Fatalf("call after the failover: %v", err)
	}
	waitFrames(t, call2, 5, 20*time.Second)

	// A graceful drain: instance three joins, instance two gets SIGTERM.
	// Its /readyz turns 503 (the load balancer stops choosing it) and it
	// tells its boxes to reconnect: kitchen, behind the load balancer,
	// lands on three.
	// Instance three takes its store and cluster from its config file.
	conf := filepath.Join(t.TempDir(), "hub.toml")
	if err := os.WriteFile(conf, []byte("[hub]\nstore = \""+pg+"\"\ncluster = \""+nats.URL+"\"\ninstance = \"three\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	three := startHub(t, "three", "127.0.0.1:0", "--config", conf, "--data", t.TempDir())
	lb.add(three.addr)
	term := time.Now()
	two.term()
	drained := waitFor(t, 15*time.Second, "kitchen on instance three", func() bool { return three.stats(t).BoxesOnline == 1 })
	t.Logf("kitchen moved to instance three %v after instance two was told to stop", drained.Round(time.Millisecond))
	select {
	case <-two.done:
	case <-time.After(15 * time.Second):
		t.Fatalf("instance two still running %v after SIGTERM", time.Since(term))
	}
	if !strings.Contains(two.output(), "draining") {
		t.Errorf("instance two did not drain: %s", two.output())
	}
	// Kitchen's call media never depended on any of it.
	n := call2.Summary().FramesDecoded
	waitFrames(t, call2, n+15, 10*time.Second)
}
