//go:build cgo

package mic

import (
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/callbox/callbox/internal/testenv"
)

const quietHelperEnv = "CALLBOX_MIC_QUIET_HELPER"

// TestQuietProbe probes PortAudio (the device list and the default input)
// in a separate process, whose stderr is the C libraries' stderr, and
// checks that ALSA and JACK wrote nothing there: on this project's
// machines (no sound card, no JACK server) an unsilenced probe writes
// dozens of lines.
func TestQuietProbe(t *testing.T) {
	if os.Getenv(quietHelperEnv) != "" {
		// The helper: probe, then say what was silenced.
		devs, err := Devices()
		fmt.Printf("devices %q err %v\n", devs, err)
		// Past the no-card shortcut, so that the probe really runs.
		f, err := os.CreateTemp("", "asound-cards")
		if err != nil {
			t.Fatal(err)
		}
		defer os.Remove(f.Name())
		f.WriteString(" 0 [Dummy          ]: Dummy - Dummy\n")
		f.Close()
		asoundCards = f.Name()
		st, err := portAudio{}.Open("", 48000, 960)
		fmt.Printf("open default: %v\n", err)
		if err == nil {
			st.Close()
		}
		fmt.Printf("quiet mask %d\n", quietMask)
		return
	}
	argv := testenv.Self("-test.run=^TestQuietProbe$", "-test.count=1")
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), quietHelperEnv+"=1", "CALLBOX_AUDIO_DEBUG=")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	t.Logf("probe:\n%s", out)
	if err != nil {
		t.Fatalf("probe process: %v\n%s", err, stderr.String())
	}
	m := regexp.MustCompile(`quiet mask (\d+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("the probe did not run:\n%s", out)
	}
	// libportaudio links libasound, so ALSA's handler is always there
	// to install (bit 1); JACK's depend on how PortAudio was built.
	if mask, _ := strconv.Atoi(string(m[1])); mask&1 == 0 {
		t.Errorf("ALSA's error handler was not installed (mask %d)", mask)
	}
	for _, line := range strings.Split(stderr.String(), "\n") {
		if strings.HasPrefix(line, "ALSA lib") || strings.Contains(strings.ToLower(line), "jack") {
			t.Errorf("the probe wrote to stderr: %q", line)
		}
	}
}
