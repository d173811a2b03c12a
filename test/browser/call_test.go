package browser

import (
	"bytes"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/callbox/callbox/internal/testenv"
)

// TestPageCall: the page's Call button calls the paired box and hangs up,
// and the page says whether the call is direct or relayed (call.spec.mjs).
// Two `callbox run` boxes and a `callbox hub` on this machine; the boxes
// pair through /api/call/pair. The call's ICE uses the machine's own
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

	post := func(x *box, path, body string, v any) int {
		t.Helper()
		r, err := http.Post("http://"+x.addr+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer r.Body.Close()
		json.NewDecoder(r.Body).Decode(v)
		return r.StatusCode
	}
	// Pair the boxes once both are registered with the hub (their logs
	// say so).
	for _, x := range []*box{a, b} {
		if err := x.waitLog("registered with the hub", 60*time.Second); err != nil {
			t.Fatalf("%v\n%s", err, hubLog.String())
		}
	}
	var code struct{ Code string }
	if c := post(a, "/api/call/pair", "", &code); c != 200 {
		t.Fatalf("box A's pairing code: %d\n%s\n%s", c, a.log, hubLog.String())
	}
	var joined map[string]any
	if c := post(b, "/api/call/pair", `{"code":"`+code.Code+`"}`, &joined); c != 200 {
		t.Fatalf("box B could not join: %d %v\n%s", c, joined, b.log)
	}
	deadline := time.Now().Add(30 * time.Second)
	// Both owners confirm the code both boxes show (the test trusts its
	// own hub; TestAppliancePairByAPI checks the codes agree). A reaches
	// the confirmation a moment after B's join returns.
	for _, x := range []*box{b, a} {
		var confirmed map[string]any
		for post(x, "/api/call/pair/confirm", "", &confirmed) != 200 {
			if time.Now().After(deadline) {
				t.Fatalf("pairing not confirmed: %v\n%s", confirmed, x.log)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	for {
		var st struct{ Peers []struct{ ID string } }
		if r, err := http.Get("http://" + a.addr + "/api/call"); err == nil {
			json.NewDecoder(r.Body).Decode(&st)
			r.Body.Close()
		}
		if len(st.Peers) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("box A never pinned box B:\n%s", a.log)
		}
		time.Sleep(50 * time.Millisecond)
	}

	r := nodeScript(t, "call", nil, "call.spec.mjs", "--url", "http://"+a.addr+"/", "--other", "http://"+b.addr+"/")
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
