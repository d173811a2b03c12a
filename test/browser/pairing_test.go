package browser

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/callbox/callbox/internal/testenv"
)

// TestPairingEndToEnd (board issue 6) runs pairing.spec.mjs in Chromium
// against a box with pairing on, on the simulated board: an unpaired page
// receives no media at all; the box's buttons (pressed through the
// simulated board) admit it and it goes live; a factory reset cuts it off
// and it receives nothing again.
func TestPairingEndToEnd(t *testing.T) {
	testenv.Short(t)
	node := needNode(t, true)
	testenv.LookPath(t, "chromium")
	addr := freeAddr(t)
	startBoxWith(t, addr, "--board", "sim")

	art, _ := filepath.Abs("artifacts")
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "pairing.spec.mjs", "--url", "http://"+addr+"/", "--artifacts", art)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()

	var result map[string]any
	var failures []string
	sc := bufio.NewScanner(&stdout)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		var ev map[string]any
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Logf("spec: %s", sc.Text())
			continue
		}
		switch ev["event"] {
		case "result":
			result = ev
		case "error":
			failures = append(failures, ev["error"].(string))
		default:
			t.Logf("spec event: %v", ev)
		}
	}
	if len(failures) > 0 || result == nil {
		t.Fatalf("pairing spec failed (%v): %s\nstderr:\n%s", runErr, strings.Join(failures, "\n"), stderr.String())
	}
	num := func(k string) float64 { v, _ := result[k].(float64); return v }
	t.Logf("unpaired: %v media bytes; live %.0f ms after the press; cut off %.0f ms after the factory reset; %v bytes after",
		result["unpairedBytes"], num("pairedMs"), num("cutOffMs"), result["afterResetBytes"])

	if num("unpairedBytes") != 0 || num("unpairedFrames") != 0 || num("unpairedAudio") != 0 {
		t.Errorf("an unpaired page received media: %v bytes, %v frames, %v audio chunks",
			result["unpairedBytes"], result["unpairedFrames"], result["unpairedAudio"])
	}
	if result["boxStateWhileWaiting"] != "pairing" {
		t.Errorf("box state while a phone waits = %v, want pairing", result["boxStateWhileWaiting"])
	}
	if result["pairedOnBox"] != true {
		t.Error("the box does not count the page's token as paired")
	}
	if result["resetLED"] != "reset" {
		t.Errorf("LED after the very long press = %v, want reset", result["resetLED"])
	}
	if num("afterResetBytes") != 0 || num("afterResetFrames") != 0 {
		t.Errorf("after the factory reset the page still received %v bytes, %v frames", result["afterResetBytes"], result["afterResetFrames"])
	}
	if result["revokedTokenPaired"] != false {
		t.Error("the token survived the factory reset")
	}
	// The page's "Paired phones": this phone, with its Unpair button.
	if l, _ := result["phonesListed"].([]any); len(l) != 1 || !strings.Contains(fmt.Sprint(l[0]), "(this phone)") || !strings.Contains(fmt.Sprint(l[0]), "Unpair") {
		t.Errorf("paired phones on the page: %v", result["phonesListed"])
	}
	t.Logf("unpaired from its own list: cut off %.0f ms after the tap", num("unpairCutOffMs"))
	if result["unpairedSelfPaired"] != false {
		t.Error("the phone that unpaired itself is still paired on the box")
	}
}
