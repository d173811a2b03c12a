package pcmu

import (
	"encoding/binary"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/callbox/callbox/capture"
	"github.com/callbox/callbox/capture/rtpext"
	"github.com/pion/rtp"
)

func TestG711(t *testing.T) {
	// Fixed points of the 16-bit G.711 mu-law (Sun g711.c scaling, 4x the
	// 14-bit values of ITU-T G.711): zero, the largest magnitudes, -1.
	for _, c := range []struct {
		s int16
		u byte
	}{{0, 0xFF}, {32767, 0x80}, {-32768, 0x00}, {-1, 0x7F}, {31, 0xFB}} {
		if got := EncodeSample(c.s); got != c.u {
			t.Errorf("Encode(%d) = %#x, want %#x", c.s, got, c.u)
		}
	}
	// Decoding against the closed form of G.711 table 2b: a code with
	// segment e and step m stands for ((2m+33) << e) - 33 in 14 bits.
	for u := range 256 {
		n := ^byte(u)
		e, m := int(n>>4&7), int(n&15)
		want := 4 * (((2*m + 33) << e) - 33)
		if n&0x80 != 0 {
			want = -want
		}
		if got := DecodeSample(byte(u)); int(got) != want {
			t.Errorf("Decode(%#x) = %d, want %d", u, got, want)
		}
		// Every code decodes to a value that encodes back to it (0x7F,
		// negative zero, becomes 0xFF).
		back := byte(u)
		if back == 0x7F {
			back = 0xFF
		}
		if got := EncodeSample(DecodeSample(byte(u))); got != back {
			t.Errorf("code %#x -> %d -> %#x", u, DecodeSample(byte(u)), got)
		}
	}
	// Quantization error at most half the step of the code's segment.
	for s := -32000; s <= 32000; s += 7 {
		u := EncodeSample(int16(s))
		e := int(^u >> 4 & 7)
		d := int(DecodeSample(u)) - s
		if max(d, -d) > 4<<e {
			t.Fatalf("sample %d: error %d > %d", s, d, 4<<e)
		}
	}
	dst := make([]byte, 4)
	pcm := make([]int16, 4)
	if got := Decode(pcm, Encode(dst, []int16{0, 100, -100, 30000})); len(got) != 4 || got[0] != 0 || got[1] <= 90 || got[2] >= -90 {
		t.Fatalf("Encode/Decode slices: %v", got)
	}
}

func sine(rate int, freq, amp float64, n, offset int) []int16 {
	s := make([]int16, n)
	for i := range s {
		s[i] = int16(amp * math.Sin(2*math.Pi*freq*float64(i+offset)/float64(rate)))
	}
	return s
}

func rms(s []int16) float64 {
	var e float64
	for _, v := range s {
		e += float64(v) * float64(v)
	}
	return math.Sqrt(e / float64(len(s)))
}

// TestResampler checks the filter: passband tones keep their level, and
// tones above 4 kHz (which plain decimation folds into the voice band) are
// removed, for every rate a microphone is likely to deliver.
func TestResampler(t *testing.T) {
	for _, rate := range []int{48000, 44100, 32000, 16000, 8000} {
		for _, c := range []struct {
			freq   float64
			minDB  float64
			maxDB  float64
			passes bool
		}{
			{440, -0.5, 0.5, true},
			{1000, -0.5, 0.5, true},
			{3000, -1, 0.5, true},
			{5000, -200, -60, false},
			{7000, -200, -60, false},
		} {
			if c.freq >= float64(rate)/2 {
				continue
			}
			r, err := NewResampler(rate, 8000)
			if err != nil {
				t.Fatal(err)
			}
			chunk := rate / 50
			var out []int16
			for k := range 25 { // half a second in 20 ms chunks
				got := r.Process(sine(rate, c.freq, 10000, chunk, k*chunk))
				if len(got) != 160 {
					t.Fatalf("%d Hz: chunk %d gave %d samples", rate, k, len(got))
				}
				out = append(out, got...)
			}
			// Skip the filter's start-up transient.
			db := 20 * math.Log10(rms(out[800:])/(10000/math.Sqrt2))
			// A removed tone may round to silence (-Inf dB).
			if db > c.maxDB || (c.passes && db < c.minDB) {
				t.Errorf("%d Hz source, %.0f Hz tone: %.1f dB, want %.1f..%.1f", rate, c.freq, db, c.minDB, c.maxDB)
			}
		}
	}
	if _, err := NewResampler(0, 8000); !errors.Is(err, ErrRate) {
		t.Fatalf("rate 0: %v", err)
	}
	if _, err := NewResampler(44101, 8000); !errors.Is(err, ErrRate) {
		t.Fatalf("rate 44101: %v", err)
	}
}

func chunk(rate int, at time.Time, seq uint64, offset int) capture.AudioChunk {
	return capture.AudioChunk{Samples: sine(rate, 700, 8000, rate/50, offset), Rate: rate, CaptureTime: at, Seq: seq}
}

func TestPacketizer(t *testing.T) {
	for _, rate := range []int{48000, 16000, 8000} {
		p, err := NewPacketizer(0, 42, capture.PayloadTypePCMU)
		if err != nil {
			t.Fatal(err)
		}
		p.SetStart(65535, 1000)
		d := NewDepacketizer()
		at := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
		var heard []int16
		for k := range 50 {
			// Capture times jitter by up to 3 ms, as driver timestamps do.
			jitter := time.Duration((k*5)%7-3) * time.Millisecond
			ct := at.Add(time.Duration(k)*capture.ChunkDuration + jitter)
			b, err := p.Packetize(chunk(rate, ct, uint64(k), k*rate/50))
			if err != nil {
				t.Fatal(err)
			}
			if len(b.Packets) != 1 || b.Kind != capture.KindAudio {
				t.Fatalf("%d packets", len(b.Packets))
			}
			pkt := b.Packets[0]
			if len(pkt) != rtpext.HeaderSize+SamplesPerPacket {
				t.Fatalf("packet of %d bytes", len(pkt))
			}
			var rp rtp.Packet
			if err := rp.Unmarshal(pkt); err != nil {
				t.Fatal(err)
			}
			if rp.SequenceNumber != uint16(65535+k) || rp.Timestamp != uint32(1000+160*k) || rp.PayloadType != 0 || rp.SSRC != 42 {
				t.Fatalf("chunk %d: seq %d ts %d pt %d", k, rp.SequenceNumber, rp.Timestamp, rp.PayloadType)
			}
			if rp.Marker != (k == 0) {
				t.Fatalf("chunk %d: marker %v", k, rp.Marker)
			}
			// Exact at 8 kHz; a resampled chunk is stamped earlier by the
			// filter's delay (TestCaptureTimeAccuracy checks the value).
			got, err := rtpext.AbsCaptureTime(pkt)
			if err != nil || got.After(ct) || (rate == Rate && !got.Equal(ct)) || got.Before(ct.Add(-5*time.Millisecond)) {
				t.Fatalf("abs-capture-time %v %v, want %v", got, err, ct)
			}
			c, ok, err := d.Push(pkt)
			if err != nil || !ok || c.LostPackets != 0 || c.GapSamples != 0 || !c.CaptureTime.Equal(got) {
				t.Fatalf("depacketize: %+v %v %v", c, ok, err)
			}
			heard = append(heard, c.Samples...)
		}
		// The tone comes through at its level (mu-law and filter
		// within 1 dB).
		if db := 20 * math.Log10(rms(heard[800:])/(8000/math.Sqrt2)); math.Abs(db) > 1 {
			t.Fatalf("%d Hz: tone at %.2f dB", rate, db)
		}
		// A real gap (a lost chunk) shows in the timestamps, with the marker.
		b, err := p.Packetize(chunk(rate, at.Add(51*capture.ChunkDuration-3*time.Millisecond), 51, 0))
		if err != nil {
			t.Fatal(err)
		}
		var rp rtp.Packet
		_ = rp.Unmarshal(b.Packets[0])
		if rp.Timestamp != uint32(1000+160*51) || !rp.Marker {
			t.Fatalf("after a gap: ts %d marker %v", rp.Timestamp, rp.Marker)
		}
		c, ok, err := d.Push(b.Packets[0])
		if !ok || err != nil || c.GapSamples != 160 || c.LostPackets != 0 {
			t.Fatalf("gap: %+v %v %v", c, ok, err)
		}
	}
}

func TestSmallPackets(t *testing.T) {
	p, err := NewPacketizer(rtpext.HeaderSize+100, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	b, err := p.Packetize(chunk(8000, time.Now(), 0, 0))
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Packets) != 2 || len(b.Packets[0]) != rtpext.HeaderSize+100 || len(b.Packets[1]) != rtpext.HeaderSize+60 {
		t.Fatalf("%d packets", len(b.Packets))
	}
	if _, err := NewPacketizer(rtpext.HeaderSize, 1, 0); !errors.Is(err, capture.ErrPacketSize) {
		t.Fatalf("tiny: %v", err)
	}
	if _, err := p.Packetize(capture.AudioChunk{}); !errors.Is(err, ErrEmptyChunk) {
		t.Fatalf("empty: %v", err)
	}
	if _, err := p.Packetize(capture.AudioChunk{Samples: []int16{1}, Rate: 44101}); !errors.Is(err, ErrRate) {
		t.Fatalf("odd rate: %v", err)
	}
}

func TestDepacketizerLoss(t *testing.T) {
	p, _ := NewPacketizer(0, 1, 0)
	var pkts [][]byte
	at := time.Now()
	for k := range 10 {
		b, err := p.Packetize(chunk(8000, at.Add(time.Duration(k)*capture.ChunkDuration), uint64(k), 0))
		if err != nil {
			t.Fatal(err)
		}
		pkts = append(pkts, append([]byte{}, b.Packets[0]...))
	}
	d := NewDepacketizer()
	var lost, gap int
	for i, pkt := range pkts {
		if i == 3 || i == 4 {
			continue
		}
		c, ok, err := d.Push(pkt)
		if !ok {
			t.Fatalf("packet %d: not emitted (%v)", i, err)
		}
		if err != nil {
			if !errors.Is(err, capture.ErrMediaLost) {
				t.Fatal(err)
			}
			lost += c.LostPackets
			gap += c.GapSamples
		}
		if i == 6 {
			if _, ok, _ := d.Push(pkt); ok { // duplicate
				t.Fatal("duplicate emitted")
			}
			if _, ok, _ := d.Push(pkts[2]); ok { // late
				t.Fatal("late packet emitted")
			}
		}
	}
	if s := d.Stats(); lost != 2 || gap != 320 || s.LostPackets != 2 || s.Late != 2 || s.Packets != 8 {
		t.Fatalf("lost %d gap %d stats %+v", lost, gap, s)
	}
	if _, _, err := d.Push([]byte{0x80}); !errors.Is(err, capture.ErrBadPacket) {
		t.Fatalf("short packet: %v", err)
	}
}

func TestAllocs(t *testing.T) {
	for _, rate := range []int{48000, 8000} {
		p, _ := NewPacketizer(0, 1, 0)
		d := NewDepacketizer()
		c := chunk(rate, time.Now(), 0, 0)
		run := func() {
			c.CaptureTime = c.CaptureTime.Add(capture.ChunkDuration)
			b, err := p.Packetize(c)
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := d.Push(b.Packets[0]); err != nil {
				t.Fatal(err)
			}
		}
		run()
		if n := testing.AllocsPerRun(100, run); n != 0 {
			t.Fatalf("%d Hz: %v allocs per chunk", rate, n)
		}
	}
}

func benchPacketize(b *testing.B, rate int) {
	p, _ := NewPacketizer(0, 1, 0)
	c := chunk(rate, time.Now(), 0, 0)
	b.ReportAllocs()
	for b.Loop() {
		c.CaptureTime = c.CaptureTime.Add(capture.ChunkDuration)
		if _, err := p.Packetize(c); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkPacketize48k(b *testing.B) { benchPacketize(b, 48000) }
func BenchmarkPacketize16k(b *testing.B) { benchPacketize(b, 16000) }
func BenchmarkPacketize8k(b *testing.B)  { benchPacketize(b, 8000) }

func BenchmarkDepacketize(b *testing.B) {
	p, _ := NewPacketizer(0, 1, 0)
	bu, _ := p.Packetize(chunk(8000, time.Now(), 0, 0))
	pkt := append([]byte{}, bu.Packets[0]...)
	d := NewDepacketizer()
	b.ReportAllocs()
	seq := binary.BigEndian.Uint16(pkt[2:])
	for b.Loop() {
		seq++
		binary.BigEndian.PutUint16(pkt[2:], seq)
		if _, _, err := d.Push(pkt); err != nil {
			b.Fatal(err)
		}
	}
}

func TestSenderRestart(t *testing.T) {
	d := NewDepacketizer()
	for _, start := range []uint16{5000, 100} { // same SSRC, numbering restarted far behind
		p, _ := NewPacketizer(0, 9, 0)
		p.SetStart(start, 0)
		for k := range 3 {
			b, err := p.Packetize(chunk(8000, time.Unix(int64(k), 0), uint64(k), 0))
			if err != nil {
				t.Fatal(err)
			}
			if _, ok, err := d.Push(b.Packets[0]); !ok || err != nil {
				t.Fatalf("start %d chunk %d: %v %v", start, k, ok, err)
			}
		}
	}
}

// TestCaptureTimeAccuracy: a click at a known instant comes out of the
// resampler at the sample whose abs-capture-time is that instant, within
// one 8 kHz sample (125 us): the filter's delay is accounted for, so audio
// lines up with video by capture time.
func TestCaptureTimeAccuracy(t *testing.T) {
	for _, rate := range []int{48000, 44100, 16000, 8000} {
		p, _ := NewPacketizer(0, 1, 0)
		d := NewDepacketizer()
		t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		n := rate / 50
		click := t0.Add(130 * time.Millisecond) // inside chunk 6
		var peakAt time.Time
		var peak int
		for k := range 12 {
			ct := t0.Add(time.Duration(k) * capture.ChunkDuration)
			s := make([]int16, n)
			for i := range s {
				at := ct.Add(time.Duration(i) * time.Second / time.Duration(rate))
				if d := at.Sub(click); d >= 0 && d < time.Second/time.Duration(rate) {
					s[i] = 30000
				}
			}
			b, err := p.Packetize(capture.AudioChunk{Samples: s, Rate: rate, CaptureTime: ct, Seq: uint64(k)})
			if err != nil {
				t.Fatal(err)
			}
			c, ok, err := d.Push(b.Packets[0])
			if !ok || err != nil {
				t.Fatal(err)
			}
			for j, v := range c.Samples {
				if int(v) > peak {
					peak = int(v)
					peakAt = c.CaptureTime.Add(time.Duration(j) * time.Second / Rate)
				}
			}
		}
		if off := peakAt.Sub(click); off.Abs() > time.Second/Rate {
			t.Errorf("%d Hz: click stamped %v off", rate, off)
		}
	}
}
