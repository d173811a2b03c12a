//go:build linux

package relay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/callbox/callbox/capture"
	"github.com/callbox/callbox/internal/testenv"
	"github.com/callbox/callbox/relay/viewer"
)

const helperEnv = "CALLBOX_RELAY_VIEWER_HELPER"

// TestHelperViewer is not a test: TestSlowLinkTBF runs the test binary with
// it inside a network namespace as the slow client's process.
func TestHelperViewer(t *testing.T) {
	spec := os.Getenv(helperEnv)
	if spec == "" {
		t.Skip("helper process for TestSlowLinkTBF")
	}
	addr, ds, _ := strings.Cut(spec, " ")
	d, err := time.ParseDuration(ds)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	s, err := view(ctx, addr, capture.KindVideo, viewer.Options{})
	if err != nil {
		t.Fatal(err)
	}
	json.NewEncoder(os.Stdout).Encode(s)
}

// TestSlowLinkTBF puts one client behind a real slow link: a veth pair into
// a network namespace this test creates, shaped by tc tbf to 1 Mbit/s (a
// quarter of the stream). Fast clients on loopback must not notice; the
// slow one must get whole frames with a bounded delay.
func TestSlowLinkTBF(t *testing.T) {
	// A shaped link and a second process: end to end, not a unit test.
	testenv.Short(t)
	testenv.RequireRoot(t)
	ipCmd := testenv.LookPath(t, "ip")
	tcCmd := testenv.LookPath(t, "tc")
	pid := os.Getpid()
	ns := fmt.Sprintf("cbrelay%d", pid)
	host, peer := fmt.Sprintf("cbr%dh", pid%1000000), fmt.Sprintf("cbr%dn", pid%1000000)
	sub := fmt.Sprintf("10.213.%d", pid%250)
	run := func(name string, args ...string) {
		t.Helper()
		if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
			t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
		}
	}
	run(ipCmd, "netns", "add", ns)
	t.Cleanup(func() {
		// Deleting the namespace deletes the veth pair with it.
		if out, err := exec.Command(ipCmd, "netns", "del", ns).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", ns, err, out)
		}
		exec.Command(ipCmd, "link", "del", host).Run() // in case the move failed
	})
	run(ipCmd, "link", "add", host, "type", "veth", "peer", "name", peer)
	run(ipCmd, "link", "set", peer, "netns", ns)
	run(ipCmd, "addr", "add", sub+".1/30", "dev", host)
	run(ipCmd, "link", "set", host, "up")
	run(ipCmd, "netns", "exec", ns, "ip", "addr", "add", sub+".2/30", "dev", peer)
	run(ipCmd, "netns", "exec", ns, "ip", "link", "set", peer, "up")
	run(ipCmd, "netns", "exec", ns, "ip", "link", "set", "lo", "up")
	// The relay -> client direction is the host side's egress.
	run(tcCmd, "qdisc", "add", "dev", host, "root", "tbf", "rate", "1mbit", "burst", "16kb", "latency", "50ms")

	r, fastAddr := startRelay(t, Config{})
	ln, err := net.Listen("tcp", sub+".1:0")
	if err != nil {
		t.Fatal(err)
	}
	go r.ServeTCP(ln)
	const d = 5 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), d+5*time.Second)
	defer cancel()
	helper := exec.CommandContext(ctx, ipCmd, append([]string{"netns", "exec", ns},
		testenv.Self("-test.run=^TestHelperViewer$", "-test.count=1")...)...)
	helper.Env = append(os.Environ(), helperEnv+"="+ln.Addr().String()+" "+d.String())
	helper.Stderr = os.Stderr
	out := make(chan []byte, 1)
	go func() {
		b, err := helper.Output()
		if err != nil && !errors.Is(ctx.Err(), context.Canceled) {
			t.Errorf("slow client process: %v", err)
		}
		out <- b
	}()
	fs, _ := slowBesideFast(t, r, fastAddr, "", viewer.Options{}, 3, d)
	b := <-out
	var slow viewer.Summary
	line := b[strings.LastIndexByte(strings.TrimRight(string(b), "\n"), '\n')+1:]
	if i := strings.IndexByte(string(b), '{'); i >= 0 {
		line = b[i:]
		if j := strings.IndexByte(string(line), '\n'); j >= 0 {
			line = line[:j]
		}
	}
	if err := json.Unmarshal(line, &slow); err != nil {
		t.Fatalf("slow client's summary %q: %v", b, err)
	}
	checkSlowBesideFast(t, fs, slow, 120)
	tcOut, _ := exec.Command(tcCmd, "-s", "qdisc", "show", "dev", host).CombinedOutput()
	t.Logf("tbf on %s: %s", host, strings.Join(strings.Fields(string(tcOut)), " "))
}
