package browser

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	png_ "image/png"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/callbox/callbox/internal/testenv"
)

// TestRemotePageChromium (issue 17): `callbox hub` over HTTPS with a test
// CA, `callbox run --codec h264 --hub wss://...` (which trusts the CA), a
// phone paired with the simulated buttons takes its link from /api/remote,
// and headless Chromium opens it: the hub's page plays the box's H.264
// (signalling through the hub, media peer to peer on this machine); a
// profile without the credential is told to pair at home first.
func TestRemotePageChromium(t *testing.T) {
	testenv.Short(t)
	node := needNode(t, true)
	testenv.LookPath(t, "chromium")
	bin := callbox(t)
	dir := t.TempDir()
	ca := testenv.WriteTestCA(t, dir, "127.0.0.1")
	t.Setenv("SSL_CERT_FILE", ca.CAFile) // the box's hub connection trusts the test CA

	hubAddr := freeAddr(t)
	uc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	stunAddr := uc.LocalAddr().String()
	uc.Close()
	hub := exec.Command(bin, "hub", "--listen", hubAddr, "--stun-listen", stunAddr, "--public-ip", "127.0.0.1",
		"--data", filepath.Join(dir, "hub"), "--tls-cert", ca.CertFile, "--tls-key", ca.KeyFile)
	hub.Env = append(os.Environ(), "CALLBOX_TURN_SECRET=browser-test-secret")
	hubOut := &readyWriter{buf: new(bytes.Buffer), marker: []byte("signalling at"), ready: make(chan struct{}), changed: make(chan struct{})}
	hub.Stdout, hub.Stderr = hubOut, hubOut
	if err := hub.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		hub.Process.Kill()
		hub.Wait()
		if t.Failed() {
			t.Logf("hub log:\n%s", hubOut)
		}
	})
	select {
	case <-hubOut.ready:
	case <-time.After(30 * time.Second):
		t.Fatalf("hub not listening:\n%s", hubOut)
	}

	addr := freeAddr(t)
	b := startBoxWith(t, addr, "--board", "sim", "--codec", "h264", "--hub", "wss://"+hubAddr+"/v1/ws")
	base := "http://" + addr
	token := testenv.PairPhoneByButtons(t, http.DefaultClient, base)
	link := askRemoteLink(t, base, token)
	if !strings.HasPrefix(link, "https://"+hubAddr+"/box/") || !strings.Contains(link, "#c=") {
		t.Fatalf("remote link %q", link)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "remote.spec.mjs", "--url", link, "--spki", ca.SPKIHash, "--state", base+"/api/state", "--box", base, "--token="+token) // = : a token may start with "-"
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	var result map[string]any
	var failures []string
	sc := bufio.NewScanner(&stdout)
	for sc.Scan() {
		var ev map[string]any
		if json.Unmarshal(sc.Bytes(), &ev) != nil {
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
		t.Fatalf("remote spec failed (%v): %s\nstderr:\n%s\nbox log:\n%s", runErr, strings.Join(failures, "\n"), stderr.String(), b.log)
	}
	t.Logf("hub page in Chromium: first frame %v ms after opening the link, %vx%v, %v frames decoded (%v dropped), page says %q; without the credential: %q",
		result["firstFrameMs"], result["width"], result["height"], result["framesDecoded"], result["framesDropped"], result["message"], result["unpairedMessage"])
	if n, _ := result["framesDecoded"].(float64); n < 30 {
		t.Errorf("%v frames decoded, want >= 30", result["framesDecoded"])
	}
	if result["addressBarHasCredential"] != false {
		t.Error("the credential stayed in the address bar")
	}
	if m, _ := result["message"].(string); m != "live, direct" {
		t.Errorf("page says %q, want \"live, direct\" (one machine: host candidates)", m)
	}
	checkTalkBack(t, result)
	checkUnpaired(t, result)
}

// checkUnpaired judges the unpairing part of remote.spec.mjs: unpaired on
// the box, the phone's remote session ends at once (its picture stops)
// and its credential no longer works (the reloaded page says to pair).
func checkUnpaired(t *testing.T, r map[string]any) {
	t.Helper()
	if e, ok := r["unpairError"]; ok {
		t.Fatalf("unpairing: %v", e)
	}
	ans, _ := r["unpairAnswer"].(map[string]any)
	stop, _ := r["unpairedFramesStopMs"].(float64)
	t.Logf("unpaired on the box: %v; the hub page's last frame %.0f ms after; reloaded: %q", ans, stop, r["unpairedReloadMessage"])
	if ans["status"] != float64(200) {
		t.Fatalf("DELETE /api/phones/<id>: %v", ans)
	}
	if n, _ := ans["sessions_ended"].(float64); n < 1 {
		t.Errorf("unpairing ended %v sessions; want the remote page's", ans["sessions_ended"])
	}
	if stop > 2000 {
		t.Errorf("the page's picture went on for %.0f ms after the unpairing", stop)
	}
	if m, _ := r["unpairedReloadMessage"].(string); !strings.Contains(m, "Pair at home first") {
		t.Errorf("reloaded after the unpairing, the page says %q", m)
	}
	if r["unpairedTalkHidden"] != true {
		t.Error("the push-to-talk button is shown to an unpaired phone")
	}
}

// checkTalkBack judges the push-to-talk part of remote.spec.mjs: the
// button is there on the hub's HTTPS page; held, the box's talk-back
// hears the phone (Chromium's fake microphone, Opus) and its simulated
// speaker plays it; released, the box stops within about half a second
// and hears nothing more.
func checkTalkBack(t *testing.T, r map[string]any) {
	t.Helper()
	if r["talkButtonShown"] != true {
		t.Fatalf("the hub page (HTTPS, a secure context) shows no push-to-talk button")
	}
	if e, _ := r["micError"].(string); e != "" {
		t.Fatalf("the page could not open the microphone: %s", e)
	}
	num := func(k string) float64 { v, _ := r[k].(float64); return v }
	held, _ := r["held"].(map[string]any)
	tb, _ := held["talkback"].(map[string]any)
	t.Logf("push-to-talk: the box played the phone %.0f ms after the press; held 1.5 s more: %.0f packets, %.0f speaker frames, level %v dBFS, sources %v; released: quiet after %.0f ms, %.0f packets after; talk-back %v; page %v",
		num("pressToBoxPlayingMs"), num("heldPacketsGained"), num("heldFramesGained"), held["speakerLevelDBFS"], held["sources"],
		num("releaseToBoxQuietMs"), num("packetsAfterRelease"), r["after"], r["pageCounts"])
	if c, _ := tb["codec"].(string); !strings.EqualFold(c, "audio/opus") {
		t.Errorf("the phone's microphone came as %q, want Opus", c)
	}
	if talking, _ := tb["talking"].([]any); len(talking) != 1 {
		t.Errorf("while held, the box says %v talk", tb["talking"])
	}
	// 1.5 s held (and the time to start): at least 1 s of 20 ms packets.
	if num("heldPacketsGained") < 50 || num("heldFramesGained") < 50 {
		t.Errorf("while held: %.0f packets, %.0f speaker frames; want the phone's voice on the speaker", num("heldPacketsGained"), num("heldFramesGained"))
	}
	if s, _ := held["sources"].([]any); len(s) != 1 {
		t.Errorf("speaker sources while held: %v", held["sources"])
	}
	if num("releaseToBoxQuietMs") > 1500 {
		t.Errorf("the box played on for %.0f ms after the release; want about 0.5 s", num("releaseToBoxQuietMs"))
	}
	if num("packetsAfterRelease") != 0 {
		t.Errorf("%.0f packets reached the box after the release", num("packetsAfterRelease"))
	}
}

// askRemoteLink waits until the box has registered with its hub and
// returns the phone's link.
func askRemoteLink(t *testing.T, base, token string) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		req, _ := http.NewRequest(http.MethodGet, base+"/api/remote", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		r, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var b struct{ URL, QR, Error string }
		json.NewDecoder(r.Body).Decode(&b)
		r.Body.Close()
		if r.StatusCode == 200 {
			png, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(b.QR, "data:image/png;base64,"))
			if err != nil {
				t.Fatalf("QR: %v", err)
			}
			if cfg, err := png_.DecodeConfig(bytes.NewReader(png)); err != nil || cfg.Width != 256 {
				t.Errorf("QR code: %v, %+v", err, cfg)
			}
			return b.URL
		}
		if r.StatusCode != http.StatusServiceUnavailable || time.Now().After(deadline) {
			t.Fatalf("/api/remote: %d %s", r.StatusCode, b.Error)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
