package natlab

import (
	"bytes"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/callbox/callbox/internal/testenv"
)

const coturnIP = "198.51.100.11"

// TestNATLabCoturn replaces the hub's relay with coturn, configured the way
// an operator would when one hub no longer carries the relayed traffic:
// use-auth-secret with the hub's TURN secret. The hub then only hands out
// TURN REST credentials (--turn-url); both boxes must obtain allocations
// from coturn with them, and the call (two cone NATs: direct) must connect.
//
// Relaying media through coturn between a cone and a symmetric NAT does
// not work in this lab: coturn grants allocations, permissions and channel
// bindings, but its kernel answers packets to the relay ports with ICMP
// port unreachable (nothing listens there); see docs/peer.md.
func TestNATLabCoturn(t *testing.T) {
	l := newLab(t, "ct")
	turnserver := testenv.LookPath(t, "turnserver")
	l.public()
	l.addNS("coturn")
	l.plugPublic("coturn", coturnIP)
	var logs bytes.Buffer
	cmd := exec.Command("ip", "netns", "exec", l.pfx+"coturn", turnserver, "-n",
		"--listening-ip="+coturnIP, "--relay-ip="+coturnIP, "--listening-port=3478",
		"--use-auth-secret", "--static-auth-secret=natlab-secret", "--realm=callbox",
		"--no-tls", "--no-dtls", "--no-cli", "--no-tcp-relay", "--log-file=stdout", "--simple-log", "--verbose",
		"--pidfile="+l.dir+"/coturn.pid")
	lw := &lockedWriter{w: &logs}
	cmd.Stdout, cmd.Stderr = lw, lw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	l.mu.Lock()
	l.procs = append(l.procs, cmd)
	l.mu.Unlock()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("coturn log:\n%s", tail(logs.String(), 4000))
		}
	})
	l.router("natA", "198.51.100.1", 1, false)
	l.router("natB", "198.51.100.2", 2, false)
	l.host("hA", "natA", 1, 2)
	l.host("hB", "natB", 2, 2)
	l.startHub("--turn-url", "turn:"+coturnIP+":3478?transport=udp")
	l.pair("hA", "hB")
	sa, sb := l.call("hA", "hB", 2*time.Second)
	for _, x := range []struct {
		name string
		s    summary
	}{{"hA", sa}, {"hB", sb}} {
		if x.s.Path == "" || x.s.FramesDecoded == 0 {
			t.Errorf("%s: path %q, %d frames", x.name, x.s.Path, x.s.FramesDecoded)
		}
		// coturn logs the TURN REST username, "expiry:boxid", of every
		// allocation it grants: the hub's credentials, checked by coturn.
		lw.mu.Lock()
		log := logs.String()
		lw.mu.Unlock()
		ok := false
		for _, line := range strings.Split(log, "\n") {
			if strings.Contains(line, ":"+x.s.Peer+">") && strings.Contains(line, "ALLOCATE processed, success") {
				ok = true
			}
		}
		// x.s.Peer is the other box; both boxes must have allocated.
		if !ok {
			t.Errorf("coturn granted no allocation to box %s with the hub's credentials", x.s.Peer)
		}
	}
	relayed, err := l.hubStats()
	if err != nil {
		t.Fatal(err)
	}
	if relayed != 0 {
		t.Errorf("the hub relayed %d bytes although coturn is the relay", relayed)
	}
}
