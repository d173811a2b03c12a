package natlab

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/callbox/callbox/internal/testenv"
)

// Phones away from home (docs/peer.md): a `callbox run` box registered
// with a TLS hub, a phone paired on the box's LAN that took its remote
// link, and `callbox view --webrtc` (pion's WHEP client) as the phone,
// signalling through the hub's HTTPS page API (a test CA both trust).

// phoneCase places the phone relative to the box (behind natA, cone).
type phoneCase struct {
	name  string
	build func(l *lab) string // builds the phone's side, returns its namespace
	want  string              // the phone's remote candidate type: host, direct (srflx/prflx) or relay
	first float64             // first whole frame target, ms from the phone's start
	// s7: then three phones behind the same NAT pass the box's uplink
	// (S7 in the appliance, s7_test.go).
	s7 bool
}

var phoneCases = []phoneCase{
	{"phone-lan", func(l *lab) string { l.host("hP", "natA", 1, 3); return "hP" }, "host", 1000, false},
	{"phone-cone", func(l *lab) string {
		l.router("natB", "198.51.100.2", 2, false)
		l.host("hP", "natB", 2, 2)
		return "hP"
	}, "direct", 1000, true},
	{"phone-symmetric", func(l *lab) string {
		l.router("natB", "198.51.100.2", 2, true)
		l.host("hP", "natB", 2, 2)
		return "hP"
	}, "relay", 3000, false},
}

// TestNATLabRemotePhone: per case, the phone's path, its first whole
// frame, and the bytes through the hub's TURN relay. The table it logs is
// the one in docs/peer.md.
func TestNATLabRemotePhone(t *testing.T) {
	var rows []string
	for i, tc := range phoneCases {
		t.Run(tc.name, func(t *testing.T) {
			l := newLab(t, fmt.Sprint("p", i))
			ca := testenv.WriteTestCA(t, l.dir, hubIP)
			l.env = []string{"SSL_CERT_FILE=" + ca.CAFile}
			l.public()
			l.router("natA", "198.51.100.1", 1, false)
			l.host("hA", "natA", 1, 2)
			phone := tc.build(l)
			l.startHub("--tls-cert", ca.CertFile, "--tls-key", ca.KeyFile)

			const boxHTTP = "10.201.1.2:8080"
			boxCmd := l.start("hA", io.Discard, "run", "--http", boxHTTP, "--mdns-name", "", "--relay", "",
				"--data", filepath.Join(l.dir, "box"), "--camera", "synthetic", "--mic", "synthetic", "--board", "sim",
				"--codec", "h264", "--hub", "wss://"+hubIP+":8443/v1/ws",
				// S7 (s7_test.go): a 4 Mbit/s uplink, a stream of about
				// 1.15 Mbit/s: three copies pass 80% of it, two fit under
				// the hysteresis band's lower edge (64%).
				"--uplink-kbps", "4000", "--bitrate", s7Bitrate, "--gop", s7GOP, "--fps", s7FPS, "--size", s7Size)
			lan := &http.Client{Timeout: 40 * time.Second, Transport: &http.Transport{
				DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
					return dialInNetns(l.pfx+"hA", network, addr)
				}}}
			token := testenv.PairPhoneByButtons(t, lan, "http://"+boxHTTP)
			link := remoteLink(t, lan, "http://"+boxHTTP, token)
			u, cred, ok := strings.Cut(link, "#c=")
			if !ok || !strings.HasPrefix(u, "https://"+hubIP+":8443/box/") {
				t.Fatalf("remote link %q", link)
			}
			// An unpaired phone: the page says so; the signalling refuses it.
			hubHTTP := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
				TLSClientConfig: &tls.Config{RootCAs: ca.Pool},
				DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
					return dialInNetns(l.pfx+"hub", network, addr)
				}}}
			checkUnpaired(t, hubHTTP, u)

			before := hubRelayed(t, hubHTTP)
			marks := make(chan [2]uint64, 1)
			go func() {
				time.Sleep(2500 * time.Millisecond)
				r1 := hubRelayed(t, hubHTTP)
				time.Sleep(2 * time.Second)
				marks <- [2]uint64{r1, hubRelayed(t, hubHTTP)}
			}()
			var out bytes.Buffer
			p := l.start(phone, &lockedWriter{w: &out}, "view", "--webrtc", "--json", "--duration", "5s", "--token", cred, u+"/whep")
			if err := p.Wait(); err != nil {
				t.Fatalf("phone: %v: %s", err, out.String())
			}
			m := <-marks
			total := hubRelayed(t, hubHTTP) - before
			// The session ends at the box when the phone leaves: by its
			// DELETE (through the hub), or by DTLS close_notify when that
			// arrives first; never by an ICE timeout.
			ended := time.Now().Add(5 * time.Second)
			why := ""
			for why == "" {
				for _, ln := range strings.Split(l.stderrOf(boxCmd), "\n") {
					if strings.Contains(ln, "peer closed") && strings.Contains(ln, "remote phone") {
						_, why, _ = strings.Cut(ln, "why=")
						why, _, _ = strings.Cut(why, " feedbacks=")
					}
				}
				if why == "" && time.Now().After(ended) {
					t.Error("the box did not end the session when the phone left")
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			t.Logf("box ended the session: %s", why)
			var s struct {
				Path         string  `json:"path"`
				SetupMs      float64 `json:"setup_ms"`
				FirstFrameMs float64 `json:"first_frame_ms"`
				Whole        uint64  `json:"frames_whole"`
				Incomplete   uint64  `json:"frames_incomplete"`
				Decodable    uint64  `json:"h264_decodable"`
				Audio        struct {
					Packets uint64 `json:"packets"`
				} `json:"audio"`
			}
			if err := json.Unmarshal(out.Bytes(), &s); err != nil {
				t.Fatalf("phone summary: %v: %q", err, out.String())
			}
			steady := m[1] - m[0]
			_, remote, _ := strings.Cut(s.Path, " -> ")
			switch tc.want {
			case "host":
				if remote != "host" || steady != 0 {
					t.Errorf("path %q, %d bytes through the hub while media flowed: want host, 0", s.Path, steady)
				}
			case "direct":
				if remote == "relay" || strings.HasPrefix(s.Path, "relay") || remote == "" || steady != 0 {
					t.Errorf("path %q, %d bytes through the hub while media flowed: want a direct path, 0", s.Path, steady)
				}
			case "relay":
				if remote != "relay" || steady == 0 {
					t.Errorf("path %q, %d bytes through the hub: want the box's relayed candidate", s.Path, steady)
				}
			}
			if s.Decodable == 0 || s.FirstFrameMs <= 0 {
				t.Errorf("no decodable H.264 reached the phone: %+v", s)
			} else if s.FirstFrameMs > tc.first {
				// The target is judged on a machine that is not busy with
				// other work; beyond three times it fails regardless.
				if busy, load := testenv.Overloaded(); busy && s.FirstFrameMs <= 3*tc.first {
					t.Logf("first whole frame after %.0f ms, target %.0f ms: missed at load average %.1f, not judged", s.FirstFrameMs, tc.first, load)
				} else {
					t.Errorf("first whole frame after %.0f ms, target %.0f ms (load average %.1f)", s.FirstFrameMs, tc.first, load)
				}
			}
			rows = append(rows, fmt.Sprintf("| %s | %s | %.0f | %.0f | %d / %d | %d | %d | %d |",
				tc.name, s.Path, s.SetupMs, s.FirstFrameMs, s.Whole, s.Incomplete, s.Audio.Packets, steady, total))
			if tc.s7 {
				testS7(t, l, lan, "http://"+boxHTTP, token, u+"/whep", cred)
			}
		})
	}
	host, _ := os.Hostname()
	t.Logf("remote phones on %s (%s):\n| case | phone's pair (local -> remote) | WHEP answer ms | first whole frame ms | frames whole / incomplete | audio packets | hub relay bytes in 2 s of steady media | hub relay bytes, whole session |\n|---|---|---|---|---|---|---|---|\n%s",
		host, time.Now().UTC().Format(time.RFC3339), strings.Join(rows, "\n"))
}

// remoteLink asks the box for the phone's remote link, once the box has
// registered with the hub.
func remoteLink(t *testing.T, c *http.Client, base, token string) string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		req, _ := http.NewRequest(http.MethodGet, base+"/api/remote", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		r, err := c.Do(req)
		if err == nil {
			var b struct{ URL, Error string }
			json.NewDecoder(r.Body).Decode(&b)
			r.Body.Close()
			if r.StatusCode == 200 {
				return b.URL
			}
			if r.StatusCode != http.StatusServiceUnavailable || time.Now().After(deadline) {
				t.Fatalf("/api/remote: %d %s", r.StatusCode, b.Error)
			}
		} else if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// checkUnpaired: the page tells a phone without a credential to pair at
// home, and the signalling refuses an offer without one.
func checkUnpaired(t *testing.T, c *http.Client, page string) {
	t.Helper()
	r, err := c.Get(page)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(r.Body)
	r.Body.Close()
	if r.StatusCode != 200 || !strings.Contains(string(b), "Pair at home first") {
		t.Errorf("page: %d", r.StatusCode)
	}
	req, _ := http.NewRequest(http.MethodPost, page+"/whep", strings.NewReader("v=0\r\n"))
	req.Header.Set("Content-Type", "application/sdp")
	r, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != http.StatusUnauthorized {
		t.Errorf("offer without a credential: %d, want 401", r.StatusCode)
	}
}

// hubRelayed is the hub's TURN relay byte counter (/v1/stats over HTTPS).
func hubRelayed(t *testing.T, c *http.Client) uint64 {
	r, err := c.Get("https://" + hubIP + ":8443/v1/stats")
	if err != nil {
		t.Errorf("hub stats: %v", err)
		return 0
	}
	defer r.Body.Close()
	var st struct {
		RelayedBytes uint64 `json:"relayed_bytes"`
	}
	if err := json.NewDecoder(r.Body).Decode(&st); err != nil {
		t.Errorf("hub stats: %v", err)
	}
	return st.RelayedBytes
}
