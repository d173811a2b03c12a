package box

import (
	"context"
	"testing"
	"time"
)

// TestICERestartKeepsMedia restarts ICE in the middle of a call (what a
// network change triggers) and checks that media keeps flowing both ways.
func TestICERestartKeepsMedia(t *testing.T) {
	testenvShort(t)
	l := newVLab(t)
	a := l.box("a", "A", coneNAT, "10.201.1.2")
	b := l.box("b", "B", coneNAT, "10.201.2.2")
	pair(t, a, b)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ca, err := a.caller.Call(ctx, b.client.ID())
	if err != nil {
		t.Fatal(err)
	}
	waitFrames := func(c *Call, n uint64) {
		t.Helper()
		for c.Summary().FramesDecoded < n || c.Summary().AudioReceived < 3*n {
			select {
			case <-ctx.Done():
				t.Fatalf("stuck at %+v", c.Summary())
			case <-c.Done():
				t.Fatalf("call ended: %+v", c.Summary())
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	waitFrames(ca, 10)
	cb := b.caller.Current()
	offerer := ca
	if !ca.isOfferer() {
		offerer = cb
	}
	before := ca.Summary()
	offerer.offer(true)
	time.Sleep(300 * time.Millisecond)
	waitFrames(ca, before.FramesDecoded+20)
	waitFrames(cb, cb.Summary().FramesDecoded+20)
	sa := ca.Summary()
	t.Logf("after restart: %+v", sa)
	if offerer.Summary().Restarts != 1 {
		t.Errorf("restarts = %d", offerer.Summary().Restarts)
	}
	if lost := sa.AudioLost; lost > 25 { // half a second of audio; a restart on a loaded machine pauses briefly
		t.Errorf("%d audio packets lost across the restart", lost)
	}
}

// TestBothCallAtOnce: two boxes calling each other at the same moment (both
// buttons pressed) make one call: the smaller ID offers, the other rings.
func TestBothCallAtOnce(t *testing.T) {
	testenvShort(t)
	l := newVLab(t)
	a := l.box("a", "A", coneNAT, "10.201.1.2")
	b := l.box("b", "B", coneNAT, "10.201.2.2")
	pair(t, a, b)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	type res struct {
		c   *Call
		err error
	}
	ch := make(chan res, 2)
	go func() { c, err := a.caller.Call(ctx, b.client.ID()); ch <- res{c, err} }()
	go func() { c, err := b.caller.Call(ctx, a.client.ID()); ch <- res{c, err} }()
	var calls []*Call
	for i := 0; i < 2; i++ {
		r := <-ch
		if r.err != nil {
			t.Fatal(r.err)
		}
		calls = append(calls, r.c)
	}
	for _, c := range calls {
		for c.Summary().FramesDecoded < 5 {
			select {
			case <-ctx.Done():
				t.Fatalf("no media: %+v", c.Summary())
			case <-c.Done():
				t.Fatalf("call ended: %+v", c.Summary())
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	if calls[0].callID() != calls[1].callID() {
		t.Errorf("two calls: %s and %s", calls[0].callID(), calls[1].callID())
	}
	if calls[0].isOfferer() == calls[1].isOfferer() {
		t.Errorf("both boxes offerer=%v", calls[0].isOfferer())
	}
}
