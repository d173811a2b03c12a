package natlab

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// natCase is one arrangement of the two boxes.
type natCase struct {
	name  string
	build func(l *lab) (a, b string) // builds the topology, returns the boxes' namespaces
	relay bool                       // a relayed path is expected (a symmetric NAT is involved)
}

var natCases = []natCase{
	{"cone-cone", func(l *lab) (string, string) {
		l.router("natA", "198.51.100.1", 1, false)
		l.router("natB", "198.51.100.2", 2, false)
		l.host("hA", "natA", 1, 2)
		l.host("hB", "natB", 2, 2)
		return "hA", "hB"
	}, false},
	{"cone-symmetric", func(l *lab) (string, string) {
		l.router("natA", "198.51.100.1", 1, false)
		l.router("natB", "198.51.100.2", 2, true)
		l.host("hA", "natA", 1, 2)
		l.host("hB", "natB", 2, 2)
		return "hA", "hB"
	}, true},
	{"symmetric-symmetric", func(l *lab) (string, string) {
		l.router("natA", "198.51.100.1", 1, true)
		l.router("natB", "198.51.100.2", 2, true)
		l.host("hA", "natA", 1, 2)
		l.host("hB", "natB", 2, 2)
		return "hA", "hB"
	}, true},
	{"same-nat", func(l *lab) (string, string) {
		l.router("natA", "198.51.100.1", 1, false)
		l.host("hA", "natA", 1, 2)
		l.host("hA2", "natA", 1, 3)
		return "hA", "hA2"
	}, false},
	{"cone-public", func(l *lab) (string, string) {
		l.router("natA", "198.51.100.1", 1, false)
		l.host("hA", "natA", 1, 2)
		l.addNS("pubbox")
		l.plugPublic("pubbox", "198.51.100.20")
		return "hA", "pubbox"
	}, false},
}

// callDuration is how long each call runs once connected.
const callDuration = 3 * time.Second

// TestNATLab calls between two boxes in every NAT arrangement and checks
// the path chosen, the time to first media, and that media flows both ways
// and decodes. The table it logs is the one in docs/peer.md.
func TestNATLab(t *testing.T) {
	var rows []string
	for _, tc := range natCases {
		t.Run(tc.name, func(t *testing.T) {
			l := newLab(t, fmt.Sprint(len(rows)))
			l.public()
			a, b := tc.build(l)
			l.startHub()
			l.pair(a, b)

			// The hub's relay counter, sampled while media flows steadily:
			// a direct call must not move it.
			marks := make(chan [2]uint64, 1)
			go func() {
				time.Sleep(1500 * time.Millisecond)
				r1, err1 := l.hubStats()
				time.Sleep(1500 * time.Millisecond)
				r2, err2 := l.hubStats()
				if err1 != nil || err2 != nil {
					t.Errorf("hub stats: %v %v", err1, err2)
				}
				marks <- [2]uint64{r1, r2}
			}()
			sa, sb := l.call(a, b, callDuration)
			m := <-marks
			steady := m[1] - m[0]
			total, err := l.hubStats()
			if err != nil {
				t.Errorf("hub stats: %v", err)
			}

			for _, x := range []struct {
				name string
				s    summary
			}{{a, sa}, {b, sb}} {
				s := x.s
				t.Logf("%s: path=%s local=%q remote=%q connect=%.0fms first_media=%.0fms first_frame=%.0fms frames_decoded=%d audio=%d relay_bytes=%d max_rtp=%d err=%q",
					x.name, s.Path, s.LocalCandidate, s.RemoteCandidate, s.ConnectMS, s.FirstMediaMS, s.FirstFrameMS, s.FramesDecoded, s.AudioReceived, s.BytesViaRelay, s.MaxRTPPacket, s.Error)
				if s.FramesDecoded == 0 || s.AudioReceived == 0 {
					t.Errorf("%s received %d decodable frames and %d audio packets", x.name, s.FramesDecoded, s.AudioReceived)
				}
				if tc.relay {
					if s.Path != "relay" {
						t.Errorf("%s: path %q, want relay", x.name, s.Path)
					}
					if s.ConnectMS > 3000 {
						t.Errorf("%s: relayed after %.0f ms, target 3 s", x.name, s.ConnectMS)
					}
				} else {
					if s.Path == "relay" || s.Path == "" {
						t.Errorf("%s: path %q, want a direct path", x.name, s.Path)
					}
					if s.FirstMediaMS > 1000 {
						t.Errorf("%s: first media after %.0f ms on a direct path, target 1 s", x.name, s.FirstMediaMS)
					}
				}
			}
			if tc.name == "same-nat" && (sa.Path != "host" || sb.Path != "host") {
				t.Errorf("same NAT: paths %s/%s, want host (private addresses, S5)", sa.Path, sb.Path)
			}
			if !tc.relay && steady != 0 {
				t.Errorf("direct call: the hub relayed %d bytes while media flowed", steady)
			}
			if tc.name == "cone-cone" {
				// Issue 15's acceptance, on this case's lab.
				shapedCall(t, l, a, b)
			}
			rows = append(rows, fmt.Sprintf("| %s | %s / %s | %s -> %s | %.0f / %.0f | %.0f / %.0f | %.0f / %.0f | %d / %d | %d / %d | %d | %d |",
				tc.name, sa.Path, sb.Path, sa.LocalCandidate, sa.RemoteCandidate,
				sa.ConnectMS, sb.ConnectMS, sa.FirstMediaMS, sb.FirstMediaMS, sa.FirstFrameMS, sb.FirstFrameMS,
				sa.FramesDecoded, sb.FramesDecoded, sa.AudioReceived, sb.AudioReceived, steady, total))
		})
	}
	host, _ := os.Hostname()
	t.Logf("NAT lab on %s (%s):\n| case | path A / B | A's pair (local -> remote) | connect ms A / B | first media ms A / B | first frame ms A / B | frames decoded A / B | audio pkts A / B | hub relay bytes in 1.5 s of steady media | hub relay bytes total |\n|---|---|---|---|---|---|---|---|---|---|\n%s",
		host, time.Now().UTC().Format(time.RFC3339), strings.Join(rows, "\n"))
}
