package firmware

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/pion/sdp/v3"
)

func TestSendSDP(t *testing.T) {
	for _, tc := range []struct {
		addr, family string
	}{
		{"127.0.0.1", "IP4"},
		{"192.168.1.20", "IP4"},
		{"::ffff:10.0.0.1", "IP4"}, // a v4-mapped address is IPv4 on the wire
		{"::1", "IP6"},
		{"fe80::1", "IP6"},
	} {
		addr := netip.MustParseAddr(tc.addr)
		text, err := sendSDP{Addr: addr, VideoPort: 5004, AudioPort: 5006, FPS: 30, SessionID: 42, Version: "v1.2"}.marshal()
		if err != nil {
			t.Fatal(err)
		}
		s := string(text)
		if !strings.HasSuffix(s, "\r\n") || strings.Count(s, "\n") != strings.Count(s, "\r\n") {
			t.Errorf("%s: lines must end in CRLF:\n%q", tc.addr, s)
		}
		// An independent parser reads back what receivers need.
		var d sdp.SessionDescription
		if err := d.UnmarshalString(s); err != nil {
			t.Fatalf("%s: pion/sdp cannot parse it: %v\n%s", tc.addr, err, s)
		}
		c := d.ConnectionInformation
		if c == nil || c.NetworkType != "IN" || c.AddressType != tc.family || c.Address == nil || c.Address.Address != addr.Unmap().String() {
			t.Errorf("%s: c= line %+v", tc.addr, c)
		}
		if len(d.MediaDescriptions) != 2 {
			t.Fatalf("%s: %d media sections, want 2", tc.addr, len(d.MediaDescriptions))
		}
		want := []struct {
			media  string
			port   int
			format string
			rtpmap string
		}{
			{"video", 5004, "26", "26 JPEG/90000"},
			{"audio", 5006, "0", "0 PCMU/8000"},
		}
		for i, m := range d.MediaDescriptions {
			w := want[i]
			n := m.MediaName
			if n.Media != w.media || n.Port.Value != w.port || strings.Join(n.Protos, "/") != "RTP/AVP" || len(n.Formats) != 1 || n.Formats[0] != w.format {
				t.Errorf("%s: m= line %+v, want %s %d RTP/AVP %s", tc.addr, n, w.media, w.port, w.format)
			}
			if v, ok := m.Attribute("rtpmap"); !ok || v != w.rtpmap {
				t.Errorf("%s: %s rtpmap %q, want %q", tc.addr, w.media, v, w.rtpmap)
			}
			if v, ok := m.Attribute("extmap"); !ok || v != "1 "+absCaptureTimeURI {
				t.Errorf("%s: %s extmap %q", tc.addr, w.media, v)
			}
		}
		if v, ok := d.MediaDescriptions[1].Attribute("ptime"); !ok || v != "20" {
			t.Errorf("ptime %q", v)
		}
		if v, ok := d.MediaDescriptions[0].Attribute("framerate"); !ok || v != "30" {
			t.Errorf("framerate %q", v)
		}
	}
}

func TestSendSDPErrors(t *testing.T) {
	for _, s := range []sendSDP{
		{VideoPort: 5004, AudioPort: 5006},
		{Addr: netip.MustParseAddr("127.0.0.1"), VideoPort: 0, AudioPort: 5006},
		{Addr: netip.MustParseAddr("127.0.0.1"), VideoPort: 5004, AudioPort: 70000},
	} {
		if _, err := s.marshal(); err == nil {
			t.Errorf("%+v: no error", s)
		}
	}
}

// A version string with line breaks must not add SDP lines.
func TestSendSDPToken(t *testing.T) {
	text, err := sendSDP{Addr: netip.MustParseAddr("127.0.0.1"), VideoPort: 5004, AudioPort: 5006,
		Version: "1.0\r\nm=video 9 RTP/AVP 96"}.marshal()
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(text), "\nm="); n != 2 {
		t.Fatalf("%d m= lines, want 2:\n%s", n, text)
	}
}
