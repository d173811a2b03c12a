package wire

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/callbox/callbox/capture"
)

func TestFrameRoundTrip(t *testing.T) {
	var stream []byte
	for _, body := range []string{"a", "hello", string(make([]byte, 1500))} {
		var err error
		if stream, err = AppendFrame(stream, []byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	r := bytes.NewReader(stream)
	buf := make([]byte, 2000)
	for _, want := range []int{1, 5, 1500} {
		b, err := ReadFrame(r, buf)
		if err != nil || len(b) != want {
			t.Fatalf("frame of %d: %d, %v", want, len(b), err)
		}
	}
	if _, err := ReadFrame(r, buf); err != io.EOF {
		t.Fatalf("at the end: %v, want io.EOF", err)
	}
	if _, err := ReadFrame(bytes.NewReader([]byte{0, 9, 1}), buf); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("truncated body: %v", err)
	}
	if _, err := ReadFrame(bytes.NewReader([]byte{0, 0}), buf); !errors.Is(err, ErrMalformed) {
		t.Fatalf("empty frame: %v", err)
	}
	if _, err := ReadFrame(bytes.NewReader([]byte{8, 0}), buf[:100]); !errors.Is(err, ErrMalformed) {
		t.Fatalf("frame over the limit: %v", err)
	}
	if _, err := AppendFrame(nil, make([]byte, MaxFrame+1)); err == nil {
		t.Fatal("framed more than 65535 bytes")
	}
}

func TestHelloAndAccept(t *testing.T) {
	h := Hello{Kind: capture.KindAudio, Token: "abc123", Session: "kitchen"}
	got, err := ParseHello(h.Append(nil))
	if err != nil || got != h {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	if got, err := ParseHello([]byte("CALLBOX/1 video future=1")); err != nil || got.Kind != capture.KindVideo {
		t.Fatalf("unknown field: %+v, %v", got, err)
	}
	for _, bad := range []string{"", "CALLBOX/2 video", "CALLBOX/1", "CALLBOX/1 text", "CALLBOX/1 video token", "CALLBOX/1 video =x", "CALLBOX/1 video token=\x01"} {
		if _, err := ParseHello([]byte(bad)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%q: %v", bad, err)
		}
	}
	a := AcceptFor(capture.KindVideo, capture.CodecH264, 8)
	if s := string(a.Append(nil)); s != "OK hc=8 pt=96 clock=90000 codec=h264" {
		t.Fatalf("accept %q", s)
	}
	if s := string(AcceptFor(capture.KindAudio, 0, 5).AppendJSON(nil)); s != `{"kind":"audio","codec":"pcmu","pt":0,"clock":8000,"hc":5}` {
		t.Fatalf("json %s", s)
	}
	back, err := ParseAccept(a.Append(nil), capture.KindVideo)
	if err != nil || back != a {
		t.Fatalf("parse accept %+v, %v", back, err)
	}
	var ref *RefusedError
	if _, err := ParseAccept([]byte("ERR unpaired"), capture.KindVideo); !errors.As(err, &ref) || ref.Reason != "unpaired" {
		t.Fatalf("refusal: %v", err)
	}
	if _, err := ParseAccept([]byte("OK pt=26"), capture.KindVideo); !errors.Is(err, ErrMalformed) {
		t.Fatalf("answer without hc: %v", err)
	}
}

func TestControlRoundTrip(t *testing.T) {
	var b []byte
	b = AppendHealthCheck(b, 8, 800)
	b = AppendTimeQuery(b, 1<<40)
	b = AppendTimeReply(b, 7, 9)
	b = AppendPLI(b, 1, 2)
	want := []Control{
		{Type: ControlHealthCheck, Count: 8, Total: 800},
		{Type: ControlTimeQuery, ClientTime: 1 << 40},
		{Type: ControlTimeReply, ClientTime: 7, BoxTime: 9},
		{Type: ControlPLI, MediaSSRC: 2},
	}
	for i, w := range want {
		c, rest, err := ParseControl(b)
		if err != nil || c != w {
			t.Fatalf("packet %d: %+v, %v; want %+v", i, c, err, w)
		}
		b = rest
	}
	if len(b) != 0 {
		t.Fatalf("%d bytes left", len(b))
	}
	// A receiver report is valid RTCP the relay ignores.
	rr := []byte{0x80, 201, 0, 1, 0, 0, 0, 1}
	if c, rest, err := ParseControl(rr); err != nil || c.Type != ControlOther || len(rest) != 0 {
		t.Fatalf("RR: %+v %v", c, err)
	}
	for _, bad := range [][]byte{{0x80}, {0x40, 204, 0, 0}, {0x80, 204, 0, 9}, {0x80, 204, 0, 2, 0, 0, 0, 0, 'C', 'B', 'H', 'C'}, {0xa0, 201, 0, 0}} {
		if _, _, err := ParseControl(bad); !errors.Is(err, ErrMalformed) {
			t.Errorf("% x: %v", bad, err)
		}
	}
	hc := AppendHealthCheck(nil, 1, 2)
	allocs := testing.AllocsPerRun(100, func() {
		if _, _, err := ParseControl(hc); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("%.1f allocations per parse", allocs)
	}
}

func TestNTP(t *testing.T) {
	at := time.Date(2026, 11, 24, 17, 0, 0, 123456789, time.UTC)
	if d := FromNTP(NTP(at)).Sub(at); d < -time.Nanosecond || d > time.Nanosecond {
		t.Fatalf("round trip off by %v", d)
	}
}

func FuzzReadFrame(f *testing.F) {
	f.Add([]byte{0, 3, 'a', 'b', 'c', 0, 1, 'x'})
	f.Add([]byte{0, 0})
	f.Add([]byte{0xff, 0xff, 1})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		buf := make([]byte, 512)
		for {
			b, err := ReadFrame(r, buf)
			if err != nil {
				return
			}
			if len(b) == 0 || len(b) > len(buf) {
				t.Fatalf("frame of %d bytes", len(b))
			}
		}
	})
}

func FuzzParseHello(f *testing.F) {
	f.Add([]byte("CALLBOX/1 video"))
	f.Add([]byte("CALLBOX/1 audio token=abc session=x"))
	f.Add([]byte("CALLBOX/1  video  token="))
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := ParseHello(data)
		if err != nil {
			return
		}
		// What parses re-encodes to something that parses the same.
		h2, err := ParseHello(h.Append(nil))
		if err != nil || h2 != h {
			t.Fatalf("%q: re-encoded %+v, %v", data, h2, err)
		}
	})
}

func FuzzParseAccept(f *testing.F) {
	f.Add([]byte("OK hc=8 pt=26 clock=90000 codec=jpeg"))
	f.Add([]byte("ERR unpaired"))
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := ParseAccept(data, capture.KindVideo)
		if err == nil && (a.HealthEvery < 1 || a.HealthEvery > 1<<16) {
			t.Fatalf("accepted hc %d", a.HealthEvery)
		}
	})
}

func FuzzParseControl(f *testing.F) {
	f.Add(AppendHealthCheck(nil, 8, 16))
	f.Add(AppendTimeReply(AppendTimeQuery(nil, 1), 2, 3))
	f.Add(AppendPLI(nil, 1, 2))
	f.Add([]byte{0xa0, 204, 0, 3, 0, 0, 0, 0, 'C', 'B', 'H', 'C', 0, 0, 0, 4})
	f.Fuzz(func(t *testing.T, data []byte) {
		for n := 0; len(data) > 0; n++ {
			_, rest, err := ParseControl(data)
			if err != nil {
				return
			}
			if len(rest) >= len(data) {
				t.Fatalf("no progress at packet %d", n)
			}
			data = rest
		}
	})
}
