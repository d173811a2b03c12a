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
// from coturn with them, and the call between a cone and a symmetric NAT
// must connect through coturn's relay, the hub relaying nothing.
//
// coturn is also told to refuse private peers (denied-peer-ip), as
// docs/peer.md asks of an operator and as the hub's own relay does. That is
// what made the relayed path work here: the boxes' host candidates are
// private (10.201.x), coturn's namespace has no route there, and coturn
// 4.6.1 closes an allocation when a send from its relay socket fails
// (ENETUNREACH, logged as "udp send: Network is unreachable"), so within a
// second of the first connectivity checks both allocations were gone and
// the kernel answered the relay ports with ICMP port unreachable. A server
// with a default route does not see the error (a default route in coturn's
// namespace instead of denied-peer-ip connects as well).
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
		"--denied-peer-ip=10.0.0.0-10.255.255.255", "--denied-peer-ip=172.16.0.0-172.31.255.255",
		"--denied-peer-ip=192.168.0.0-192.168.255.255", "--denied-peer-ip=127.0.0.0-127.255.255.255",
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
	l.router("natB", "198.51.100.2", 2, true) // symmetric: the call is relayed
	l.host("hA", "natA", 1, 2)
	l.host("hB", "natB", 2, 2)
	l.startHub("--turn-url", "turn:"+coturnIP+":3478?transport=udp")
	l.pair("hA", "hB")
	sa, sb := l.call("hA", "hB", 2*time.Second)
	for _, x := range []struct {
		name string
		s    summary
	}{{"hA", sa}, {"hB", sb}} {
		if x.s.Path != "relay" || x.s.FramesDecoded == 0 {
			t.Errorf("%s: path %q, %d frames (want relay, frames decoded)", x.name, x.s.Path, x.s.FramesDecoded)
		}
		if !strings.Contains(x.s.LocalCandidate+" "+x.s.RemoteCandidate, "relay "+coturnIP+":") {
			t.Errorf("%s: pair %s -> %s is not through coturn", x.name, x.s.LocalCandidate, x.s.RemoteCandidate)
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
