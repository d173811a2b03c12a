package security

import (
	"context"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"testing"
	"time"

	peerbox "github.com/callbox/callbox/peer/box"
	"github.com/callbox/callbox/peer/proto"
)

// startHub runs `callbox hub` on a free loopback port (no STUN/TURN
// listener) and returns it as a box (for memory) with its WebSocket URL.
func startHub(t *testing.T) (*box, string) {
	t.Helper()
	h := &box{addr: freeAddr(t), log: &syncBuffer{}, done: make(chan struct{})}
	h.cmd = exec.Command(callbox(t), "hub", "--listen", h.addr, "--stun-listen", "", "--public-ip", "127.0.0.1", "--data", t.TempDir())
	h.cmd.Env = append(os.Environ(), "CALLBOX_TURN_SECRET=security-test")
	h.cmd.Stdout, h.cmd.Stderr = h.log, h.log
	if err := h.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { h.cmd.Wait(); close(h.done) }()
	t.Cleanup(func() {
		h.cmd.Process.Kill()
		<-h.done
		if t.Failed() {
			t.Logf("hub log:\n%s", h.log)
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		if r, err := http.Get("http://" + h.addr + "/v1/stats"); err == nil {
			r.Body.Close()
			return h, "ws://" + h.addr + "/v1/ws"
		}
		select {
		case <-h.done:
			t.Fatalf("callbox hub exited early:\n%s", h.log)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("callbox hub not serving after 20 s:\n%s", h.log)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func dialBox(t *testing.T, ctx context.Context, url, name string) *peerbox.Client {
	t.Helper()
	id, err := proto.NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	c, err := peerbox.Dial(ctx, peerbox.ClientConfig{HubURL: url, Identity: id, Name: name, DataDir: t.TempDir(), Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestHubHeaderFlood is issue 12's flood against the hub (794 MB of RSS
// before): 300 connections from ten addresses each send an unterminated
// 1 MB header. The hub's peak RSS stays under floodPeakMB, and boxes keep
// working: two paired boxes signal each other and a new box registers
// while the flood is on.
func TestHubHeaderFlood(t *testing.T) {
	h, url := startHub(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	a, b := dialBox(t, ctx, url, "a"), dialBox(t, ctx, url, "b")
	code, _, err := a.RequestPairCode(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.JoinPairCode(ctx, code); err != nil {
		t.Fatal(err)
	}
	if _, err := a.WaitPairStage(ctx, peerbox.PairCompare); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*peerbox.Client{a, b} {
		if err := c.ConfirmPairing(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []*peerbox.Client{a, b} {
		if _, err := c.WaitPaired(ctx); err != nil {
			t.Fatal(err)
		}
	}
	rss0, _ := h.memory(t)

	flood := startHeaderFlood(h.addr, "/v1/ws")
	// During the flood: a signal between the paired boxes, a new box.
	if err := a.SendSignal(ctx, b.ID(), "c1", proto.KindRing, ""); err != nil {
		t.Fatal(err)
	}
	select {
	case s := <-b.Signals():
		if s.From != a.ID() {
			t.Fatalf("signal from %s", s.From)
		}
	case <-ctx.Done():
		t.Fatal("a signal between paired boxes did not arrive during the flood")
	}
	dialBox(t, ctx, url, "newcomer")
	conns, sent := flood.wait()
	rss1, peak := h.memory(t)
	flood.close()
	t.Logf("hub header flood: %d connections, %.0f MB sent; hub RSS %d MB before, %d MB after, peak %d MB (bound %d MB)",
		conns, float64(sent)/(1<<20), rss0>>10, rss1>>10, peak>>10, floodPeakMB)
	if peak>>10 > floodPeakMB {
		t.Fatalf("hub peak RSS %d MB under the header flood, want under %d MB", peak>>10, floodPeakMB)
	}
}
