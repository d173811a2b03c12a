package browser

import (
	"bytes"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/callbox/callbox/internal/testenv"
)

// TestPageCall: the boxes pair from their pages (a code on A's page,
// entered on B's, the same confirmation on both, confirmed on both), then
// the page's Call button calls the paired box and hangs up, and the page
// says whether the call is direct or relayed (call.spec.mjs). Two `callbox
// run` boxes and a `callbox hub` on this machine. The call's ICE uses the machine's own
// (non-loopback) addresses, so it stays on this machine.
func TestPageCall(t *testing.T) {
	testenv.Short(t)
	testenv.LookPath(t, "chromium")
	if !hasNonLoopbackIPv4() {
		testenv.Unavailable(t, "no non-loopback IPv4 address for the boxes' ICE host candidates")
	}
	bin := callbox(t)
	hubAddr := freeAddr(t)
	hub := exec.Command(bin, "hub", "--listen", hubAddr, "--stun-listen", "", "--public-ip", "127.0.0.1", "--data", t.TempDir())
	hub.Env = append(os.Environ(), "CALLBOX_TURN_SECRET=browser-test")
	var hubLog bytes.Buffer
	hub.Stdout, hub.Stderr = &hubLog, &hubLog
	if err := hub.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hub.Process.Kill(); hub.Wait() })
	hubURL := "ws://" + hubAddr + "/v1/ws"
	// --auto-answer: the called box takes the call (the default refuses it).
	a := startBoxWith(t, freeAddr(t), "--open", "--board", "sim", "--hub", hubURL, "--auto-answer")
	b := startBoxWith(t, freeAddr(t), "--open", "--board", "sim", "--hub", hubURL, "--auto-answer")

	// The pages pair the boxes once both are registered with the hub
	// (their logs say so).
	for _, x := range []*box{a, b} {
		if err := x.waitLog("registered with the hub", 60*time.Second); err != nil {
			t.Fatalf("%v\n%s", err, hubLog.String())
		}
	}
	r := nodeScript(t, "call", nil, "call.spec.mjs", "--url", "http://"+a.addr+"/", "--other", "http://"+b.addr+"/")
	t.Logf("paired from the pages in %.0f ms: %q, then %q, then %q", r.num("pairMs"), r["codeText"], r["compareText"], r["pairedText"])
	if sa, _ := r["sasA"].(string); len(sa) != 6 || r["sasA"] != r["sasB"] {
		t.Errorf("the pages show the confirmations %v and %v, want the same 6 digits", r["sasA"], r["sasB"])
	}
	if p, _ := r["pairedText"].(string); !strings.HasPrefix(p, "Paired with") {
		t.Errorf("box A's page after both confirmed: %q", p)
	}
	t.Logf("button after %.0f ms; in a call %.0f ms after the tap: %q", r.num("buttonMs"), r.num("inCallMs"), r["boxstateInCall"])
	if r["labelIdle"] != "Call" || r["labelInCall"] != "Hang up" {
		t.Errorf("button labels %v / %v, want Call / Hang up", r["labelIdle"], r["labelInCall"])
	}
	if s, _ := r["boxstateInCall"].(string); !strings.Contains(s, "(direct)") {
		t.Errorf("page's box state in the call: %q, want it to say direct", s)
	}
	if r["otherInCall"] != "direct" || r["otherAfter"] != "idle" {
		t.Errorf("box B's call: %v in the call, %v after the hang-up; want direct, idle", r["otherInCall"], r["otherAfter"])
	}
	if r["callError"] != "" {
		t.Errorf("page's call error: %v", r["callError"])
	}
}

func hasNonLoopbackIPv4() bool {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return false
	}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil && !ipn.IP.IsLoopback() {
			return true
		}
	}
	return false
}
