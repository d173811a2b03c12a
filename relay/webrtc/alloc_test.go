package webrtc

import (
	"context"
	"testing"
	"time"

	"github.com/callbox/callbox/capture"
	"github.com/callbox/callbox/capture/rtph264"
	"github.com/callbox/callbox/relay"
	"github.com/pion/rtp"
)

// raceEnabled is set by race_test.go under -race.
var raceEnabled bool

// discardWriter stands for pion's SRTP writer: it marshals like it.
type discardWriter struct{ buf []byte }

func (d *discardWriter) WriteRTP(h *rtp.Header, payload []byte) (int, error) {
	n, err := rtp.MarshalPacketTo(d.buf, h, payload)
	return n, err
}
func (d *discardWriter) Write(b []byte) (int, error) { return len(b), nil }

func testUnit(t testing.TB) *relay.Unit {
	aus := testAUs(t)
	pk, err := rtph264.NewPacketizer(0, 1, capture.PayloadTypeH264)
	if err != nil {
		t.Fatal(err)
	}
	b, err := pk.Packetize(capture.VideoFrame{Codec: capture.CodecH264, Data: aus[1].Data, CaptureTime: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	u, err := relay.NewUnit(b)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func fakeSender(w *discardWriter) *sender {
	srv := &Server{}
	p := &peer{srv: srv, twAcked: 0xffff, done: make(chan struct{})}
	s := newSender(p, capture.KindVideo)
	s.bound, s.ws, s.ssrc, s.pt, s.twccID, s.absID = true, w, 1234, 102, 3, 4
	return s
}

// TestWriteUnitsAllocatesNothing: rewriting a frame's packets for a client
// (numbering, transport-wide sequence, abs-capture-time, the shared
// history) allocates nothing per packet.
func TestWriteUnitsAllocatesNothing(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool drop items: allocation counts mean nothing under it")
	}
	u := testUnit(t)
	defer u.Release()
	s := fakeSender(&discardWriter{buf: make([]byte, 1500)})
	units := []*relay.Unit{u}
	_ = s.WriteUnits(units)
	if a := testing.AllocsPerRun(200, func() { _ = s.WriteUnits(units) }); a != 0 {
		t.Fatalf("%v allocations per frame of %d packets", a, u.Packets())
	}
	s.p.srv.hist.clear()
}

// BenchmarkWriteUnits: one 720p frame rewritten for one client.
func BenchmarkWriteUnits(b *testing.B) {
	u := testUnit(b)
	defer u.Release()
	s := fakeSender(&discardWriter{buf: make([]byte, 1500)})
	units := []*relay.Unit{u}
	b.ReportAllocs()
	b.SetBytes(int64(u.Packets()))
	for b.Loop() {
		_ = s.WriteUnits(units)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(u.Packets()), "ns/packet")
	s.p.srv.hist.clear()
}

// BenchmarkWriteUnitsPion: the same through pion's SRTP to a connected
// client on loopback. The client runs in this process, so allocs/op counts
// its receiving side too; the box's side allocates nothing (go test
// -bench WriteUnitsPion -memprofile m.out; go tool pprof -focus
// 'sender..WriteUnits' shows no allocation).
func BenchmarkWriteUnitsPion(b *testing.B) {
	bx := newBox(b, Config{}, relay.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Dial(ctx, bx.url(), ClientOptions{Loopback: true})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	waitFor(b, 10*time.Second, "a frame", func() bool { return c.Stats().Video.Whole > 0 })
	bx.cancel() // stop the player: only the benchmark writes
	var p *peer
	bx.srv.mu.Lock()
	for _, x := range bx.srv.peers {
		p = x
	}
	bx.srv.mu.Unlock()
	u := testUnit(b)
	defer u.Release()
	units := []*relay.Unit{u}
	b.ReportAllocs()
	for b.Loop() {
		_ = p.video.WriteUnits(units)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(u.Packets()), "ns/packet")
}
