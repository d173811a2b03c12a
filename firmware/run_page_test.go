package firmware

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/callbox/callbox/internal/testenv"
	"github.com/pion/mdns/v2"
	"golang.org/x/net/ipv4"
)

func TestMDNSHostName(t *testing.T) {
	for in, want := range map[string]string{
		"callbox":        "callbox.local",
		"Kitchen":        "kitchen.local",
		"callbox.local":  "callbox.local",
		"callbox.local.": "callbox.local",
		"box-2":          "box-2.local",
	} {
		got, err := mdnsHostName(in)
		if err != nil || got != want {
			t.Errorf("mdnsHostName(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", ".local", "-box", "box-", "my box", "a.b", "caf\u00e9", strings.Repeat("x", 64)} {
		if got, err := mdnsHostName(bad); !errors.Is(err, errBadName) {
			t.Errorf("mdnsHostName(%q) = %q, %v; want errBadName", bad, got, err)
		}
	}
}

func TestHostLabel(t *testing.T) {
	for in, want := range map[string]string{
		"callbox":                "callbox",
		"Kitchen box":            "kitchen-box",
		"  Oma's  Box #2 ":       "oma-s-box-2",
		"Café":                   "caf",
		"***":                    "callbox",
		strings.Repeat("ab", 40): strings.Repeat("ab", 31) + "a",
	} {
		got := hostLabel(in)
		if got != want {
			t.Errorf("hostLabel(%q) = %q, want %q", in, got, want)
		}
		if _, err := mdnsHostName(got); err != nil {
			t.Errorf("hostLabel(%q) = %q is no valid mDNS name: %v", in, got, err)
		}
	}
}

// TestPageHandler checks the embedded page: every asset index.html loads
// is there with a type browsers accept for it, and nothing but GET/HEAD.
func TestPageHandler(t *testing.T) {
	h, err := pageHandler()
	if err != nil {
		t.Fatal(err)
	}
	get := func(method, path string) *http.Response {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
		return rec.Result()
	}
	r := get("GET", "/")
	body, _ := io.ReadAll(r.Body)
	if r.StatusCode != 200 || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET / = %d %q", r.StatusCode, r.Header.Get("Content-Type"))
	}
	refs := regexp.MustCompile(`(?:src|href)="([a-z0-9.-]+\.(?:js|css))"`).FindAllStringSubmatch(string(body), -1)
	if len(refs) < 2 {
		t.Fatalf("index.html references %d assets, want the script and the style sheet", len(refs))
	}
	// Modules import further modules; the worklet is loaded by URL.
	js, _ := fs.Glob(webFS, "web/*.js")
	if len(js) < 5 {
		t.Fatalf("embedded %v, want the page's modules", js)
	}
	for _, ref := range refs {
		r := get("GET", "/"+ref[1])
		if r.StatusCode != 200 {
			t.Errorf("GET /%s = %d", ref[1], r.StatusCode)
		}
	}
	for _, f := range js {
		r := get("GET", "/"+strings.TrimPrefix(f, "web/"))
		if ct := r.Header.Get("Content-Type"); r.StatusCode != 200 || !strings.HasPrefix(ct, "text/javascript") {
			t.Errorf("GET /%s = %d %q, want 200 text/javascript (module scripts need it)", f, r.StatusCode, ct)
		}
		if r.Header.Get("Cache-Control") != "no-cache" {
			t.Errorf("GET /%s: Cache-Control %q, want no-cache", f, r.Header.Get("Cache-Control"))
		}
	}
	if r := get("POST", "/"); r.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST / = %d, want 405", r.StatusCode)
	}
	if r := get("GET", "/api/nothing"); r.StatusCode != http.StatusNotFound {
		t.Errorf("GET /api/nothing = %d, want 404 (the page treats a missing API as absent)", r.StatusCode)
	}
}

// TestMDNSAnswers resolves the box's name over real multicast DNS. It runs
// itself again inside a private network namespace whose loopback carries
// multicast, so no packet reaches a real network.
func TestMDNSAnswers(t *testing.T) {
	if os.Getenv("CALLBOX_MDNS_NETNS") == "" {
		// Real multicast through a namespace: end to end, not a unit test.
		testenv.Short(t)
		testenv.RequireRoot(t)
		unshare := testenv.LookPath(t, "unshare")
		testenv.LookPath(t, "ip")
		script := `ip link set lo up && ip link set lo multicast on && ip route add 224.0.0.0/4 dev lo && exec "$@"`
		cmd := exec.Command(unshare, append([]string{"--net", "sh", "-c", script, "sh"},
			testenv.Self("-test.run=^TestMDNSAnswers$", "-test.v")...)...)
		cmd.Env = append(os.Environ(), "CALLBOX_MDNS_NETNS=1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("in a network namespace: %v\n%s", err, out)
		}
		if !strings.Contains(string(out), "--- PASS: TestMDNSAnswers") {
			t.Fatalf("the test did not run in the namespace:\n%s", out)
		}
		t.Logf("in a network namespace:\n%s", out)
		return
	}
	srv, err := startMDNS("callbox-test.local", mdns.WithIncludeLoopback(true))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()

	addr, err := net.ResolveUDPAddr("udp4", mdns.DefaultAddressIPv4)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.ListenUDP("udp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	client, err := mdns.NewServer(ipv4.NewPacketConn(l), nil, mdns.WithIncludeLoopback(true))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, ip, err := client.QueryAddr(ctx, "callbox-test.local")
	if err != nil {
		t.Fatalf("query callbox-test.local: %v", err)
	}
	if !ip.IsLoopback() {
		t.Errorf("callbox-test.local resolved to %v, want the loopback address it was asked on", ip)
	}
	t.Logf("callbox-test.local is %v", ip)
}
