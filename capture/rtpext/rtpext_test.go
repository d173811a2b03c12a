package rtpext

import (
	"errors"
	"testing"
	"time"

	"github.com/pion/rtp"
)

func TestNTPRoundTrip(t *testing.T) {
	for _, tm := range []time.Time{
		time.Unix(0, 0),
		time.Date(2026, 11, 24, 17, 0, 0, 1, time.UTC),
		time.Date(2026, 11, 24, 17, 0, 0, 999999999, time.UTC),
		time.Date(2036, 2, 7, 6, 28, 15, 500000000, time.UTC), // last second of NTP era 0
	} {
		if got := Time(NTP(tm)); !got.Equal(tm) {
			t.Errorf("%v -> %#x -> %v", tm, NTP(tm), got)
		}
	}
	// RFC 5905: 1970-01-01 is NTP second 2208988800; half a second is 1<<31.
	if got := NTP(time.Unix(1, 500000000)); got != (2208988801<<32 | 1<<31) {
		t.Fatalf("NTP(1.5 s after the Unix epoch) = %#x", got)
	}
}

// TestAgainstPion checks our writer against pion's parser and pion's
// AbsCaptureTimeExtension against our reader.
func TestAgainstPion(t *testing.T) {
	at := time.Date(2026, 11, 24, 12, 34, 56, 789000000, time.UTC)
	h := rtp.Header{Version: 2, PayloadType: 26, SequenceNumber: 9, Timestamp: 99, SSRC: 5}
	var buf [AbsCaptureTimeSize]byte
	if err := SetAbsCaptureTime(&h, &buf, at); err != nil {
		t.Fatal(err)
	}
	b, err := (&rtp.Packet{Header: h, Payload: []byte{1, 2, 3}}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != HeaderSize+3 {
		t.Fatalf("header size %d, want %d", len(b)-3, HeaderSize)
	}
	var p rtp.Packet
	if err := p.Unmarshal(b); err != nil {
		t.Fatal(err)
	}
	var ext rtp.AbsCaptureTimeExtension
	if err := ext.Unmarshal(p.GetExtension(AbsCaptureTimeID)); err != nil {
		t.Fatal(err)
	}
	if !ext.CaptureTime().Round(time.Microsecond).Equal(at) || p.ExtensionProfile != 0xBEDE {
		t.Fatalf("pion reads %v profile %#x", ext.CaptureTime(), p.ExtensionProfile)
	}
	got, err := AbsCaptureTime(b)
	if err != nil || !got.Equal(at) {
		t.Fatalf("AbsCaptureTime = %v, %v", got, err)
	}
	if got, ok := HeaderAbsCaptureTime(&p.Header); !ok || !got.Equal(at) {
		t.Fatalf("HeaderAbsCaptureTime = %v, %v", got, ok)
	}

	// pion writing, with the optional clock offset (16 bytes) and another
	// extension in front.
	q := rtp.Packet{Header: rtp.Header{Version: 2, CSRC: []uint32{7}}, Payload: []byte{0}}
	if err := q.SetExtension(3, []byte{0xAA}); err != nil {
		t.Fatal(err)
	}
	pe, _ := rtp.NewAbsCaptureTimeExtensionWithCaptureClockOffset(at, time.Second).Marshal()
	if err := q.SetExtension(AbsCaptureTimeID, pe); err != nil {
		t.Fatal(err)
	}
	qb, err := q.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if got, err := AbsCaptureTime(qb); err != nil || got.Sub(at).Abs() > time.Microsecond {
		t.Fatalf("pion-written: %v, %v", got, err)
	}
}

func TestAbsCaptureTimeErrors(t *testing.T) {
	plain, _ := (&rtp.Packet{Header: rtp.Header{Version: 2}, Payload: []byte{1}}).Marshal()
	if _, err := AbsCaptureTime(plain); !errors.Is(err, ErrNoExtension) {
		t.Fatalf("no extension: %v", err)
	}
	other := rtp.Packet{Header: rtp.Header{Version: 2}, Payload: []byte{1}}
	if err := other.SetExtension(2, []byte{1, 2, 3, 4, 5, 6, 7, 8}); err != nil {
		t.Fatal(err)
	}
	ob, _ := other.Marshal()
	if _, err := AbsCaptureTime(ob); !errors.Is(err, ErrNoExtension) {
		t.Fatalf("other ID: %v", err)
	}
	h := rtp.Header{Version: 2}
	var buf [8]byte
	if err := SetAbsCaptureTime(&h, &buf, time.Now()); err != nil {
		t.Fatal(err)
	}
	good, _ := (&rtp.Packet{Header: h}).Marshal()
	for n := range len(good) {
		if _, err := AbsCaptureTime(good[:n]); err == nil {
			t.Fatalf("truncated to %d bytes: no error", n)
		}
	}
}

func TestZeroAlloc(t *testing.T) {
	h := rtp.Header{Version: 2, Extensions: make([]rtp.Extension, 0, 1)}
	var ext [8]byte
	buf := make([]byte, 64)
	at := time.Now()
	n := testing.AllocsPerRun(100, func() {
		if err := SetAbsCaptureTime(&h, &ext, at); err != nil {
			t.Fatal(err)
		}
		m, err := h.MarshalTo(buf)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := AbsCaptureTime(buf[:m]); err != nil {
			t.Fatal(err)
		}
		h.ClearExtensions()
	})
	if n != 0 {
		t.Fatalf("%v allocs", n)
	}
}

func TestClock(t *testing.T) {
	c := NewClockAt(90000, 0xFFFFFF00)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if ts := c.Timestamp(t0); ts != 0xFFFFFF00 {
		t.Fatalf("start %#x", ts)
	}
	if ts := c.Timestamp(t0.Add(100 * time.Millisecond)); ts != 9000-0x100 {
		t.Fatalf("100 ms later %#x", ts) // wraps modulo 2^32
	}
	// A month of uptime must not overflow.
	month := 30 * 24 * time.Hour
	if ts, want := c.Timestamp(t0.Add(month)), uint32(0xFFFFFF00+uint64(month.Seconds())*90000); ts != want {
		t.Fatalf("after a month %#x, want %#x", ts, want)
	}
	if NewClock(8000).Rate() != 8000 {
		t.Fatal("rate")
	}
}
