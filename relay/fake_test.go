package relay

import (
	"io"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/callbox/callbox/capture"
	"github.com/callbox/callbox/relay/wire"
)

// fakeConn is a transport in memory: it records what the session writes
// and lets the test play the client's RTCP.
type fakeConn struct {
	packets, units, writes atomic.Int64
	partial                atomic.Int64 // writes that carried part of a unit: must stay 0
	in                     chan []byte
	closed                 chan struct{}
	closeOnce              sync.Once
	aborted                atomic.Bool
	stall                  chan struct{} // when set, writes block until it closes
	mu                     sync.Mutex
	ctrl                   [][]byte
	pendU                  []*unit
	pendC                  []byte
}

func newFake() *fakeConn {
	return &fakeConn{in: make(chan []byte, 16), closed: make(chan struct{})}
}

func (f *fakeConn) write(units []*unit, ctrl []byte) error {
	if f.stall != nil {
		select {
		case <-f.stall:
		case <-f.closed:
			return io.ErrClosedPipe
		}
	}
	f.writes.Add(1)
	if len(ctrl) > 0 {
		f.mu.Lock()
		f.ctrl = append(f.ctrl, append([]byte(nil), ctrl...))
		f.mu.Unlock()
	}
	for _, u := range units {
		// A unit's framed bytes must hold exactly its packets, the last
		// with the marker bit for video: whole frames only.
		n, off := 0, 0
		for off < len(u.framed) {
			l := int(u.framed[off])<<8 | int(u.framed[off+1])
			off += 2 + l
			n++
		}
		if n != u.msgs || off != len(u.framed) || (u.kind == capture.KindVideo && u.packet(n - 1)[1]&0x80 == 0) {
			f.partial.Add(1)
		}
		f.packets.Add(int64(u.msgs))
		f.units.Add(1)
	}
	return nil
}

// tryWrite completes at once, unless the fake stalls: then finish waits.
func (f *fakeConn) tryWrite(units []*unit, ctrl []byte) (bool, error) {
	if f.stall != nil {
		f.pendU, f.pendC = units, ctrl
		return false, nil
	}
	return true, f.write(units, ctrl)
}

func (f *fakeConn) finish() error { return f.write(f.pendU, f.pendC) }

func (f *fakeConn) read(buf []byte) ([]byte, error) {
	select {
	case m := <-f.in:
		return buf[:copy(buf, m)], nil
	case <-f.closed:
		return nil, io.EOF
	}
}

func (f *fakeConn) abort() {
	f.aborted.Store(true)
	f.closeOnce.Do(func() { close(f.closed) })
}

func (f *fakeConn) remote() string { return "fake" }

// healthCheck plays the client acknowledging count messages.
func (f *fakeConn) healthCheck(count uint32) { f.in <- wire.AppendHealthCheck(nil, count, 0) }

// attach connects a fake client of kind to r.
func attach(t testing.TB, r *Relay, kind capture.Kind) (*session, *fakeConn) {
	t.Helper()
	f := newFake()
	s := r.newSession(kind, f)
	if err := r.add(s); err != nil {
		t.Fatal(err)
	}
	r.activate(s)
	go s.run()
	return s, f
}

// fakeClock is a settable clock.
type fakeClock struct{ ns atomic.Int64 }

func (c *fakeClock) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) advance(d time.Duration) { c.ns.Add(int64(d)) }
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestRelayPacesByHealthChecks(t *testing.T) {
	clk := &fakeClock{}
	clk.ns.Store(int64(time.Hour))
	cfg := testConfig()
	cfg.Now = clk.now
	cfg.CheckEvery = time.Hour // the test calls check itself
	r := New(cfg, nil)
	defer r.Close()
	s, f := attach(t, r, capture.KindVideo)
	// Idle limit 10, 3-packet frames: frames 1-4 go out (idle 12), the
	// 5th waits in the Buffer.
	for i := 0; i < 5; i++ {
		b := mkBurst(capture.KindVideo, 3, 100, int64(i)*33, true)
		if err := r.self.Publish(b); err != nil {
			t.Fatal(err)
		}
		clk.advance(33 * time.Millisecond)
	}
	waitFor(t, "12 packets", func() bool { return f.packets.Load() == 12 })
	time.Sleep(20 * time.Millisecond)
	if f.packets.Load() != 12 {
		t.Fatalf("sent %d packets past the idle limit", f.packets.Load())
	}
	s.mu.Lock()
	idle, queued := s.pol.idle, s.pol.n
	s.mu.Unlock()
	if idle != 12 || queued != 1 {
		t.Fatalf("idle %d queued %d; want 12 and 1", idle, queued)
	}
	f.healthCheck(4)
	waitFor(t, "the buffered frame", func() bool { return f.packets.Load() == 15 })
	// Silence past the timeout ejects, with the socket aborted.
	clk.advance(cfg.HealthTimeout + time.Millisecond)
	r.check(r.snapshot(nil), ns(clk.now()))
	waitFor(t, "the ejection", func() bool { return f.aborted.Load() && r.Viewers() == 0 })
	if f.partial.Load() != 0 {
		t.Fatalf("%d writes with part of a frame", f.partial.Load())
	}
	r.Close()
	r.tot.mu.Lock()
	defer r.tot.mu.Unlock()
	if r.tot.disconnects["health check timeout"] != 1 {
		t.Fatalf("disconnects %v", r.tot.disconnects)
	}
}

func TestRelayAllMe(t *testing.T) {
	r := New(testConfig(), nil)
	defer r.Close()
	phone, err := r.NewPublisher("phone")
	if err != nil {
		t.Fatal(err)
	}
	sPhone, fPhone := attach(t, r, capture.KindAudio)
	sPhone.origin = phone.idx // this session is the phone's own connection
	_, fOther := attach(t, r, capture.KindAudio)
	if err := phone.Publish(mkBurst(capture.KindAudio, 1, 172, 0, true)); err != nil {
		t.Fatal(err)
	}
	r.Publish(mkBurst(capture.KindAudio, 1, 172, 20, true))
	waitFor(t, "fan-out", func() bool { return fOther.packets.Load() == 2 && fPhone.packets.Load() == 1 })
	time.Sleep(10 * time.Millisecond)
	if fPhone.packets.Load() != 1 {
		t.Fatal("the phone got its own packet back")
	}
}

func TestRelayKeyframeRequestAndTimeReply(t *testing.T) {
	cfg := testConfig()
	cfg.Video.MaxUnits = 2
	r := New(cfg, nil)
	defer r.Close()
	var asked atomic.Int32
	r.OnKeyframeRequest(func() { asked.Add(1) })
	s, f := attach(t, r, capture.KindVideo)
	s.mu.Lock()
	s.pol.idle = cfg.Video.IdleLimit // a client that is behind
	s.mu.Unlock()
	for i := 0; i < 3; i++ { // H.264: an IDR, then P frames that overflow
		r.Publish(mkBurst(capture.KindVideo, 1, 100, int64(i)*33, i == 0))
	}
	if asked.Load() != 1 {
		t.Fatalf("keyframe requests %d, want 1", asked.Load())
	}
	f.in <- wire.AppendTimeQuery(nil, 12345)
	waitFor(t, "CBTR", func() bool { f.mu.Lock(); defer f.mu.Unlock(); return len(f.ctrl) == 1 })
	c, _, err := wire.ParseControl(f.ctrl[0])
	if err != nil || c.Type != wire.ControlTimeReply || c.ClientTime != 12345 || c.BoxTime == 0 {
		t.Fatalf("time reply %+v, %v", c, err)
	}
	// Garbage from the client ends the session.
	f.in <- []byte{0x00, 0x01}
	waitFor(t, "the session to end", func() bool { return f.aborted.Load() })
}

func TestRelayRejectsBadBursts(t *testing.T) {
	r := New(Config{}, nil)
	defer r.Close()
	for _, b := range []capture.Burst{
		{Kind: 9, Packets: [][]byte{make([]byte, 20)}},
		{Kind: capture.KindVideo},
		{Kind: capture.KindAudio, Packets: [][]byte{{0x80, 0}}},
		{Kind: capture.KindAudio, Packets: [][]byte{make([]byte, 20)}}, // version 0
		{Kind: capture.KindVideo, Packets: [][]byte{make([]byte, 70000)}},
	} {
		if err := r.self.Publish(b); err == nil {
			t.Errorf("accepted %d-packet burst of kind %d", len(b.Packets), b.Kind)
		}
		r.Publish(b) // counted and logged, never panics
	}
	if r.tot.rejected.Load() != 5 {
		t.Fatalf("rejected %d", r.tot.rejected.Load())
	}
}

// TestFanoutAllocatesNothing publishes to 20 sessions, waiting for every
// writer to finish, and counts allocations in all goroutines.
func TestFanoutAllocatesNothing(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under the race detector")
	}
	cfg := DefaultConfig()
	cfg.Video.IdleLimit = 1 << 30 // fakes do not acknowledge
	cfg.Video.HealthInterval = 1 << 30
	r := New(cfg, nil)
	defer r.Close()
	var fs []*fakeConn
	for i := 0; i < 20; i++ {
		_, f := attach(t, r, capture.KindVideo)
		fs = append(fs, f)
	}
	b := mkBurst(capture.KindVideo, 14, 1200, 0, true)
	want := int64(0)
	publish := func() {
		r.Publish(b)
		want += 14
		for _, f := range fs {
			for f.packets.Load() < want {
				runtime.Gosched()
			}
		}
	}
	for i := 0; i < 50; i++ {
		publish() // warm the pool and the writers' slices
	}
	if a := minAllocs(200, publish); a != 0 {
		t.Fatalf("%.2f allocations per published frame fanned out to 20 sessions, want 0", a)
	}
}

func BenchmarkFanout(b *testing.B) {
	for _, n := range []int{1, 100} {
		b.Run("clients="+itoa(n), func(b *testing.B) {
			cfg := DefaultConfig()
			cfg.Video.IdleLimit = 1 << 30
			cfg.Video.HealthInterval = 1 << 30
			r := New(cfg, nil)
			defer r.Close()
			var fs []*fakeConn
			for i := 0; i < n; i++ {
				_, f := attach(b, r, capture.KindVideo)
				fs = append(fs, f)
			}
			burst := mkBurst(capture.KindVideo, 14, 1200, 0, true)
			b.SetBytes(int64(14 * 1200 * n))
			b.ReportAllocs()
			want := int64(0)
			for b.Loop() {
				r.Publish(burst)
				want += 14
				for _, f := range fs {
					for f.packets.Load() < want {
						runtime.Gosched()
					}
				}
			}
		})
	}
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}

func TestDisconnectAll(t *testing.T) {
	r := New(testConfig(), nil)
	defer r.Close()
	_, f1 := attach(t, r, capture.KindVideo)
	_, f2 := attach(t, r, capture.KindAudio)
	if n := r.DisconnectAll("unpaired"); n != 2 {
		t.Fatalf("DisconnectAll ended %d sessions, want 2", n)
	}
	waitFor(t, "both sessions to end", func() bool { return f1.aborted.Load() && f2.aborted.Load() && r.Viewers() == 0 })
	r.Close()
	r.tot.mu.Lock()
	defer r.tot.mu.Unlock()
	if r.tot.disconnects["unpaired"] != 2 {
		t.Fatalf("disconnects %v", r.tot.disconnects)
	}
}

// TestHandoffToWriter: a write that would block Publish is finished by the
// session's writer goroutine, and Publish returns at once.
func TestHandoffToWriter(t *testing.T) {
	r := New(testConfig(), nil)
	defer r.Close()
	f := newFake()
	f.stall = make(chan struct{})
	s := r.newSession(capture.KindVideo, f)
	if err := r.add(s); err != nil {
		t.Fatal(err)
	}
	r.activate(s)
	go s.run()
	done := make(chan struct{})
	go func() {
		r.Publish(mkBurst(capture.KindVideo, 3, 100, 0, true))
		r.Publish(mkBurst(capture.KindVideo, 3, 100, 33, true))
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("Publish blocked on a stalled client")
	}
	if f.packets.Load() != 0 {
		t.Fatal("written through a stall")
	}
	close(f.stall)
	waitFor(t, "the writer to finish both frames", func() bool { return f.packets.Load() == 6 })
	if f.partial.Load() != 0 {
		t.Fatal("partial frames")
	}
}

// TestRelayNativeVideo: with JPEG and H.264 published side by side and
// JPEG native, the relay's own (TCP/WebSocket) sessions get JPEG only and
// keep announcing it, while a session attached for H.264 gets H.264 only.
func TestRelayNativeVideo(t *testing.T) {
	r := New(testConfig(), nil)
	defer r.Close()
	r.SetNativeVideo(capture.CodecJPEG)
	_, fNative := attach(t, r, capture.KindVideo)
	fH264 := newFake()
	s := r.newSession(capture.KindVideo, fH264)
	s.native, s.only = false, capture.CodecH264 // as Attach with Codec H.264
	if err := r.add(s); err != nil {
		t.Fatal(err)
	}
	r.activate(s)
	go s.run()
	h := mkBurst(capture.KindVideo, 3, 100, 0, true)
	for _, p := range h.Packets {
		p[1] = p[1]&0x80 | capture.PayloadTypeH264
	}
	r.Publish(h)
	r.Publish(mkBurst(capture.KindVideo, 2, 100, 0, true))
	waitFor(t, "fan-out", func() bool { return fNative.packets.Load() == 2 && fH264.packets.Load() == 3 })
	time.Sleep(10 * time.Millisecond)
	if n, m := fNative.units.Load(), fH264.units.Load(); n != 1 || m != 1 {
		t.Fatalf("units: native %d, H.264 %d; want one each", n, m)
	}
	if c := r.VideoCodec(); c != capture.CodecJPEG {
		t.Fatalf("handshakes announce %v, want JPEG", c)
	}
	if !r.Publishing(capture.CodecH264) || !r.Publishing(capture.CodecJPEG) {
		t.Fatal("both codecs are published")
	}
	// Lifted: the native session takes every codec again.
	r.SetNativeVideo(0)
	r.Publish(h)
	waitFor(t, "H.264 to the native session", func() bool { return fNative.packets.Load() == 5 })
}

// TestRelayOpusOnlyToOpusSessions: Opus audio published beside PCMU goes
// only to the sessions that asked for it (WebRTC, AttachOptions.Opus);
// the others, TCP and WebSocket among them, keep getting PCMU only.
func TestRelayOpusOnlyToOpusSessions(t *testing.T) {
	r := New(testConfig(), nil)
	defer r.Close()
	_, fPCMU := attach(t, r, capture.KindAudio)
	fOpus := newFake()
	s := r.newSession(capture.KindAudio, fOpus)
	s.opus = true // as Attach with Opus
	if err := r.add(s); err != nil {
		t.Fatal(err)
	}
	r.activate(s)
	go s.run()
	o := mkBurst(capture.KindAudio, 1, 60, 0, true)
	o.Packets[0][1] = o.Packets[0][1]&0x80 | capture.PayloadTypeOpus
	r.Publish(o)
	r.Publish(mkBurst(capture.KindAudio, 2, 100, 0, true)) // PCMU
	r.Publish(o)
	waitFor(t, "fan-out", func() bool { return fPCMU.packets.Load() == 2 && fOpus.packets.Load() == 2 })
	time.Sleep(10 * time.Millisecond)
	if n, m := fPCMU.packets.Load(), fOpus.packets.Load(); n != 2 || m != 2 {
		t.Fatalf("packets: PCMU session %d, Opus session %d; want 2 each", n, m)
	}
}
