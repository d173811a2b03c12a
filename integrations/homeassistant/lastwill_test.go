package homeassistant

import (
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/callbox/callbox/internal/testenv"
)

// helperEnv makes the test binary a box that only runs the integration,
// until it is killed (TestLastWill).
const helperEnv = "CALLBOX_HA_HELPER_BROKER"

func TestMain(m *testing.M) {
	if addr := os.Getenv(helperEnv); addr != "" {
		_, err := Start(Config{Broker: "mqtt://" + addr, NodeID: "callbox_dead", Name: "Dies",
			State: func() State { return State{State: "ready"} }})
		if err != nil {
			os.Exit(3)
		}
		select {}
	}
	os.Exit(m.Run())
}

// TestLastWill: a box that dies without a goodbye (SIGKILL) shows as
// unavailable: the broker publishes its last will, "offline", retained.
func TestLastWill(t *testing.T) {
	testenv.Short(t)
	b := startBroker(t)
	argv := testenv.Self("-test.run=^$")
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), helperEnv+"="+b.addr())
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	w := watch(t, b.addr(), "ha-lastwill")
	avail := "callbox/callbox_dead/availability"
	_, i := w.wait(t, avail, 0, payloadIs("online"))
	killed := time.Now()
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	m, _ := w.wait(t, avail, i+1, payloadIs("offline"))
	t.Logf("offline %v after SIGKILL", time.Since(killed).Round(time.Millisecond))
	_ = m
	// Home Assistant starting later still learns the box is offline.
	late := watch(t, b.addr(), "ha-lastwill-late")
	if m, _ := late.wait(t, avail, 0, nil); string(m.Payload()) != "offline" || !m.Retained() {
		t.Fatalf("a late subscriber got %q retained %v", m.Payload(), m.Retained())
	}
}
