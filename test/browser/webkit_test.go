package browser

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/callbox/callbox/internal/testenv"
)

// TestPageWebKit plays the page in WebKit, the engine of iOS Safari
// (Debian's WebKitGTK MiniBrowser under WebKitWebDriver, on a private Xvfb
// display). WebKit has no ImageDecoder, so this covers the page's
// createImageBitmap path; Chromium covers Android Chrome's.
func TestPageWebKit(t *testing.T) {
	testenv.Short(t)
	node := needNode(t, false)
	xvfb := testenv.LookPath(t, "Xvfb")
	driver := testenv.LookPath(t, "WebKitWebDriver")
	const mini = "/usr/lib/x86_64-linux-gnu/webkit2gtk-4.1/MiniBrowser"
	if _, err := os.Stat(mini); err != nil {
		testenv.Unavailable(t, "WebKitGTK MiniBrowser: %v", err)
	}
	addr := freeAddr(t)
	startBox(t, addr)

	display := startXvfb(t, xvfb)
	driverAddr := freeAddr(t)
	_, port, _ := strings.Cut(driverAddr, ":")
	drv := exec.Command(driver, "--port="+port)
	drv.Env = append(os.Environ(), "DISPLAY="+display)
	// Its own process group, so the browser it starts goes with it.
	drv.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := drv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		syscall.Kill(-drv.Process.Pid, syscall.SIGTERM)
		done := make(chan struct{})
		go func() { drv.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			syscall.Kill(-drv.Process.Pid, syscall.SIGKILL)
			<-done
		}
	})

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	art, _ := filepath.Abs("artifacts")
	out, err := exec.CommandContext(ctx, node, "webkit.mjs", "--driver", "http://"+driverAddr,
		"--url", "http://"+addr+"/", "--artifacts", art, "--browser", mini).Output()
	var r event
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		var ev event
		if json.Unmarshal([]byte(l), &ev) == nil && (ev["event"] == "result" || ev["event"] == "error") {
			r = ev
		}
	}
	if r == nil || r["event"] != "result" {
		t.Fatalf("webkit.mjs: %v: %v\n%s", err, r, out)
	}
	t.Logf("WebKit (%v): %.1f fps, %v incomplete, decoded at %v px wide, latency p50 %.1f ms p99 %.1f ms, ImageDecoder %v, createImageBitmap %v, AudioWorkletNode %v, sound running %v",
		r["userAgent"], r.num("fps"), r["framesIncomplete"], r["decodedWidth"], r.num("latencyP50"), r.num("latencyP99"),
		r["imageDecoder"], r["createImageBitmap"], r["audioWorklet"], r["audioRunning"])
	if r["state"] != "live" || r.num("fps") < 5 {
		t.Errorf("WebKit page %v at %.1f fps, want live at >= 5 fps (a compatibility check: Xvfb and software rendering are slow)", r["state"], r.num("fps"))
	}
	if r.num("framesIncomplete") != 0 || r.num("decodeErrors") != 0 {
		t.Errorf("WebKit: %v incomplete frames, %v decode errors; want 0", r["framesIncomplete"], r["decodeErrors"])
	}
	if r.num("healthChecksSent") <= 0 {
		t.Errorf("WebKit page sent no Health Checks")
	}
}

// startXvfb starts a virtual X display for the test and returns its name.
func startXvfb(t *testing.T, xvfb string) string {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	// -displayfd: Xvfb picks a free display and writes its number to fd 3.
	cmd := exec.Command(xvfb, "-displayfd", "3", "-screen", "0", "1024x768x24", "-nolisten", "tcp")
	cmd.ExtraFiles = []*os.File{w}
	if err := cmd.Start(); err != nil {
		w.Close()
		t.Fatal(err)
	}
	w.Close()
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(r).ReadString('\n')
		line <- strings.TrimSpace(s)
	}()
	select {
	case n := <-line:
		if n == "" {
			t.Fatal("Xvfb did not report a display")
		}
		return fmt.Sprintf(":%s", n)
	case <-time.After(10 * time.Second):
		t.Fatal("Xvfb did not start within 10 s")
	}
	return ""
}
