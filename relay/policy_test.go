package relay

import (
	"testing"
	"time"

	"github.com/callbox/callbox/capture"
)

// mkBurst builds a burst of n minimal RTP packets of size bytes each,
// captured at ms milliseconds.
func mkBurst(kind capture.Kind, n, size int, ms int64, key bool) capture.Burst {
	b := capture.Burst{Kind: kind, Keyframe: key, CaptureTime: time.Unix(0, ms*int64(time.Millisecond))}
	for i := 0; i < n; i++ {
		p := make([]byte, size)
		p[0] = 0x80
		p[1] = capture.PayloadTypeJPEG
		if i == n-1 {
			p[1] |= 0x80
		}
		p[3] = byte(i)
		b.Packets = append(b.Packets, p)
	}
	return b
}

func mkUnit(kind capture.Kind, n, size int, ms int64, key bool) *unit {
	b := mkBurst(kind, n, size, ms, key)
	return newUnit(&b, 0)
}

func testConfig() Config {
	c := DefaultConfig().withDefaults()
	c.Video = KindConfig{HealthInterval: 4, IdleLimit: 10, Batch: 6, MaxUnits: 5, MaxBytes: 1 << 20, MaxDelay: time.Second}
	c.Audio = KindConfig{HealthInterval: 2, IdleLimit: 4, Batch: 3, MaxUnits: 8, MaxBytes: 1 << 20, MaxDelay: 100 * time.Millisecond, Keep: 40 * time.Millisecond}
	c.MaxFlushes = 3
	c.MinFrames = 1
	c.FlushWindow = 10 * time.Second
	c.HealthTimeout = 2 * time.Second
	c.WriteTimeout = time.Second
	return c
}

const ms = int64(time.Millisecond)

func TestPolicyIdleArithmeticAndBatch(t *testing.T) {
	cfg := testConfig()
	p := newPolicy(capture.KindVideo, &cfg)
	for i := 0; i < 4; i++ {
		u := mkUnit(capture.KindVideo, 3, 100, int64(i)*33, true)
		if q, _ := p.offer(u, 0); !q {
			t.Fatalf("unit %d not queued", i)
		}
		u.release()
	}
	// Batch 6 messages = two 3-packet units.
	got := p.take(nil, 0)
	if len(got) != 2 || p.idle != 6 || !p.inflight {
		t.Fatalf("take: %d units, idle %d, inflight %v; want 2, 6, true", len(got), p.idle, p.inflight)
	}
	if again := p.take(nil, 0); len(again) != 0 {
		t.Fatal("took while a write is in flight")
	}
	release(got)
	p.written()
	// Idle 6 < limit 10: may send, but only until idle would reach 10:
	// 6+3 = 9 < 10 takes one unit, a second would start at 9 < 10 too.
	got = p.take(nil, 0)
	if len(got) != 2 || p.idle != 12 {
		t.Fatalf("second take: %d units idle %d; want 2 units, idle 12 (whole units past the limit)", len(got), p.idle)
	}
	release(got)
	p.written()
	if !p.busy() {
		t.Fatal("idle 12 >= limit 10 must be busy")
	}
	u := mkUnit(capture.KindVideo, 3, 100, 200, true)
	p.offer(u, 0)
	u.release()
	if got := p.take(nil, 0); len(got) != 0 {
		t.Fatal("sent while idle is at the limit")
	}
	// A Health Check for 4 brings idle to 8: not busy, the buffer drains.
	if !p.healthCheck(4, 0) || p.idle != 8 {
		t.Fatalf("health check: idle %d, want 8 and more to send", p.idle)
	}
	got = p.take(nil, 0)
	if len(got) != 1 || p.idle != 11 {
		t.Fatalf("after health check: %d units idle %d; want 1, 11", len(got), p.idle)
	}
	release(got)
	p.written()
	// Over-counting clients cannot push idle below zero.
	p.healthCheck(1000, 0)
	if p.idle != 0 {
		t.Fatalf("idle %d after an oversized Health Check, want 0", p.idle)
	}
	if p.st.healthChecks != 2 || p.st.sentMsgs != 15 || p.st.sentUnits != 5 {
		t.Fatalf("stats %+v", p.st)
	}
}

func release(us []*unit) {
	for _, u := range us {
		u.release()
	}
}

func TestPolicyBatchRoundsUpToWholeUnits(t *testing.T) {
	cfg := testConfig()
	cfg.Video.Batch = 2
	cfg.Video.IdleLimit = 100
	p := newPolicy(capture.KindVideo, &cfg)
	u := mkUnit(capture.KindVideo, 12, 100, 0, true)
	p.offer(u, 0)
	u.release()
	got := p.take(nil, 0)
	if len(got) != 1 || got[0].msgs != 12 || p.idle != 12 {
		t.Fatalf("a 12-packet frame with batch 2: got %d units idle %d; want the whole frame", len(got), p.idle)
	}
	release(got)
}

func TestPolicyVideoFlushKeepsNewestStartFrame(t *testing.T) {
	cfg := testConfig()
	p := newPolicy(capture.KindVideo, &cfg)
	p.idle = cfg.Video.IdleLimit // the client is not keeping up
	for i := 0; i < 5; i++ {
		u := mkUnit(capture.KindVideo, 2, 100, int64(i)*33, true)
		p.offer(u, 0)
		u.release()
	}
	if p.n != 5 || p.st.flushes != 0 {
		t.Fatalf("queued %d flushes %d", p.n, p.st.flushes)
	}
	u := mkUnit(capture.KindVideo, 2, 100, 6*33, true) // 6th unit passes MaxUnits 5
	_, keyReq := p.offer(u, 0)
	u.release()
	if p.n != 1 || p.at(0).capture != 6*33*ms || p.st.flushes != 1 || p.st.dropUnits != 5 || p.st.dropMsgs != 10 {
		t.Fatalf("after flush: queued %d (capture %d), flushes %d, drops %d/%d", p.n, p.at(0).capture, p.st.flushes, p.st.dropUnits, p.st.dropMsgs)
	}
	if keyReq&1 != 0 {
		t.Fatal("asked the publisher for a keyframe although the kept frame is one")
	}
	p.clear()
}

func TestPolicyVideoFlushWaitsForKeyframe(t *testing.T) {
	cfg := testConfig()
	cfg.Video.MaxBytes = 1000
	p := newPolicy(capture.KindVideo, &cfg)
	p.idle = cfg.Video.IdleLimit
	u := mkUnit(capture.KindVideo, 4, 200, 0, true) // IDR, 808 bytes framed
	p.offer(u, 0)
	u.release()
	u = mkUnit(capture.KindVideo, 2, 200, 33, false) // P frame: 1210 bytes queued > 1000
	_, keyReq := p.offer(u, 0)
	u.release()
	if p.n != 0 || keyReq&1 == 0 {
		t.Fatalf("H.264 flush: queued %d, keyReq %b; want empty buffer and a keyframe request", p.n, keyReq)
	}
	// P frames until the IDR are dropped, not queued, not sent.
	for i := 0; i < 3; i++ {
		u = mkUnit(capture.KindVideo, 1, 100, int64(66+i*33), false)
		if q, kr := p.offer(u, 0); q || kr != 0 {
			t.Fatalf("P frame %d queued %v or re-requested a keyframe %b", i, q, kr)
		}
		u.release()
	}
	u = mkUnit(capture.KindVideo, 1, 100, 200, true)
	if q, _ := p.offer(u, 0); !q || p.n != 1 {
		t.Fatal("the IDR after a flush must be queued")
	}
	u.release()
	if p.st.dropUnits != 2+3 {
		t.Fatalf("dropped %d units, want 5", p.st.dropUnits)
	}
	p.clear()
}

func TestPolicyVideoFlushByMediaTime(t *testing.T) {
	cfg := testConfig()
	cfg.Video.MaxDelay = 100 * time.Millisecond
	p := newPolicy(capture.KindVideo, &cfg)
	p.idle = cfg.Video.IdleLimit
	for _, at := range []int64{0, 33, 66, 100} { // span 100 ms: at the bound, not past it
		u := mkUnit(capture.KindVideo, 1, 100, at, true)
		p.offer(u, 0)
		u.release()
	}
	if p.st.flushes != 0 {
		t.Fatal("flushed at the bound")
	}
	u := mkUnit(capture.KindVideo, 1, 100, 133, true)
	p.offer(u, 0)
	u.release()
	if p.st.flushes != 1 || p.n != 1 {
		t.Fatalf("flushes %d queued %d", p.st.flushes, p.n)
	}
	p.clear()
}

func TestPolicyAudioFlushKeepsNewest(t *testing.T) {
	cfg := testConfig()
	p := newPolicy(capture.KindAudio, &cfg)
	p.idle = cfg.Audio.IdleLimit
	for i := int64(0); i <= 5; i++ { // 0..100 ms: span 100, at the bound
		u := mkUnit(capture.KindAudio, 1, 172, i*20, true)
		p.offer(u, 0)
		u.release()
	}
	if p.st.flushes != 0 || p.n != 6 {
		t.Fatalf("flushes %d queued %d", p.st.flushes, p.n)
	}
	u := mkUnit(capture.KindAudio, 1, 172, 120, true)
	p.offer(u, 0)
	u.release()
	// Keep 40 ms: the chunks at 100 and 120 remain (120-80 = 40 is dropped).
	if p.st.flushes != 1 || p.n != 2 || p.at(0).capture != 100*ms {
		t.Fatalf("audio flush: flushes %d queued %d oldest %d ms", p.st.flushes, p.n, p.at(0).capture/ms)
	}
	p.clear()
}

func TestPolicyAudioFlushByBytes(t *testing.T) {
	cfg := testConfig()
	cfg.Audio.MaxBytes = 500
	cfg.Audio.Keep = time.Second
	p := newPolicy(capture.KindAudio, &cfg)
	p.idle = cfg.Audio.IdleLimit
	for i := int64(0); i < 3; i++ { // 174 bytes framed each: the third passes 500
		u := mkUnit(capture.KindAudio, 1, 172, i*20, true)
		p.offer(u, 0)
		u.release()
	}
	if p.st.flushes != 1 || p.qBytes > 500 || p.n != 2 || p.at(1).capture != 40*ms {
		t.Fatalf("flushes %d bytes %d queued %d", p.st.flushes, p.qBytes, p.n)
	}
	p.clear()
}

func TestPolicyRepeatedFlushesEject(t *testing.T) {
	cfg := testConfig()
	cfg.Video.MaxUnits = 1
	p := newPolicy(capture.KindVideo, &cfg)
	offer := func(at int64) {
		u := mkUnit(capture.KindVideo, 1, 100, at, true)
		p.offer(u, at*ms)
		u.release()
	}
	deliver := func() { // the client takes a frame and acknowledges it
		release(p.take(nil, 0))
		p.written()
		p.healthCheck(1, 0)
	}
	p.idle = cfg.Video.IdleLimit - 1
	// A slow client that completes something between flushes stays, however
	// often it is flushed.
	offer(0)
	for i := int64(1); i <= 20; i++ {
		offer(i)
		offer(i) // passes MaxUnits: flush
		deliver()
		p.idle = cfg.Video.IdleLimit - 1
	}
	if p.eject != nil || p.st.flushes < 20 {
		t.Fatalf("slow but progressing client: %d flushes, ejected %v", p.st.flushes, p.eject)
	}
	// Idle flushes (no progress in between) spread wider than the window
	// do not eject: any three span 11 s, the window is 10 s.
	p.idle = cfg.Video.IdleLimit
	for i := int64(1); i <= 4; i++ {
		offer(100000 + i*5500)
		if p.eject != nil {
			t.Fatalf("ejected after %d idle flushes 5.5 s apart", p.st.idleFlushes)
		}
	}
	// Three within 10 s do.
	offer(140000)
	offer(140001)
	if p.eject != nil {
		t.Fatal("ejected after two quick idle flushes")
	}
	offer(140002)
	if p.eject == nil || p.eject.Reason != "flushes" {
		t.Fatalf("not ejected after 3 idle flushes in the window: %v", p.eject)
	}
	n := p.n
	offer(140003)
	if p.n != n {
		t.Fatal("an ejected session still queues")
	}
	if got := p.take(nil, 0); len(got) != 0 {
		t.Fatal("an ejected session still sends")
	}
	p.clear()
}

func TestPolicyHealthTimeout(t *testing.T) {
	cfg := testConfig()
	p := newPolicy(capture.KindVideo, &cfg)
	s := int64(time.Second)
	u := mkUnit(capture.KindVideo, 3, 100, 0, true)
	p.offer(u, 0)
	u.release()
	release(p.take(nil, 0)) // idle 3 < HealthInterval 4: nothing owed yet
	p.written()
	if p.check(10*s) != nil {
		t.Fatal("ejected a client that owes no Health Check")
	}
	u = mkUnit(capture.KindVideo, 3, 100, 33, true)
	p.offer(u, 10*s)
	u.release()
	release(p.take(nil, 10*s)) // idle 6 >= 4: owed from 10 s
	p.written()
	if p.check(12*s) != nil {
		t.Fatal("ejected at exactly the timeout")
	}
	// Partial progress (idle stays >= 4) restarts the clock.
	p.healthCheck(1, 12*s)
	if p.idle != 5 || p.check(13*s) != nil {
		t.Fatal("ejected despite progress")
	}
	// Covering everything owed clears it.
	p.healthCheck(4, 13*s)
	if p.owedSince != 0 || p.check(100*s) != nil {
		t.Fatal("ejected although nothing is owed")
	}
	u = mkUnit(capture.KindVideo, 4, 100, 66, true)
	p.offer(u, 100*s)
	u.release()
	release(p.take(nil, 100*s))
	p.written()
	if e := p.check(102*s + 1); e == nil || e.Reason != "health check timeout" {
		t.Fatalf("silent client not ejected: %v", e)
	}
}

func TestPolicyWriteTimeout(t *testing.T) {
	cfg := testConfig()
	p := newPolicy(capture.KindVideo, &cfg)
	u := mkUnit(capture.KindVideo, 1, 100, 0, true)
	p.offer(u, 0)
	u.release()
	got := p.take(nil, 0)
	defer release(got)
	if p.check(int64(time.Second)) != nil {
		t.Fatal("ejected at the write timeout")
	}
	if e := p.check(int64(time.Second) + 1); e == nil || e.Reason != "write timeout" {
		t.Fatalf("stuck write not ejected: %v", e)
	}
}

func TestPolicyAllocatesNothing(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under the race detector")
	}
	cfg := testConfig()
	cfg.Video.IdleLimit = 1 << 30
	p := newPolicy(capture.KindVideo, &cfg)
	u := mkUnit(capture.KindVideo, 12, 1200, 0, true)
	defer u.release()
	batch := make([]*unit, 0, 8)
	allocs := minAllocs(1000, func() {
		p.offer(u, 0)
		batch = p.take(batch[:0], 0)
		for _, x := range batch {
			x.release()
		}
		p.written()
		p.healthCheck(12, 0)
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per offer/take/health check, want 0", allocs)
	}
}

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("defaults invalid: %v", err)
	}
	var zero Config
	if err := zero.Validate(); err != nil {
		t.Fatalf("zero config (all defaults) invalid: %v", err)
	}
	bad := DefaultConfig()
	bad.Video.IdleLimit = 2
	bad.Video.HealthInterval = 8
	if err := bad.Validate(); err == nil {
		t.Fatal("idle limit below the health interval accepted")
	}
	bad = DefaultConfig()
	bad.Audio.Batch = -1
	if err := bad.Validate(); err == nil {
		t.Fatal("negative batch accepted")
	}
}

// TestPolicyFlushRuleCountsFrames: on a saturated link every client is
// flushed often; one that still completes MinFrames whole units within the
// window stays, one that completes fewer goes.
func TestPolicyFlushRuleCountsFrames(t *testing.T) {
	for _, tc := range []struct {
		perWindow int // frames completed per 10 s window
		eject     bool
	}{{10, false}, {2, true}} {
		cfg := testConfig()
		cfg.Video.MaxUnits = 1
		cfg.MaxFlushes = 10
		cfg.MinFrames = 5
		p := newPolicy(capture.KindVideo, &cfg)
		// 40 s: a flush every 100 ms; a frame delivered every 10 s / perWindow.
		every := int64(10000 / tc.perWindow)
		for at := int64(0); at < 40000 && p.eject == nil; at += 100 {
			u := mkUnit(capture.KindVideo, 1, 100, at, true)
			p.offer(u, at*ms)
			u.release()
			u = mkUnit(capture.KindVideo, 1, 100, at+1, true)
			p.offer(u, at*ms) // passes MaxUnits: flush
			u.release()
			if at%every == 0 {
				release(p.take(nil, at*ms))
				p.written()
				p.healthCheck(uint32(p.idle), at*ms)
			}
		}
		if got := p.eject != nil; got != tc.eject {
			t.Errorf("%d frames per window: ejected %v (%v), want %v; %d flushes", tc.perWindow, got, p.eject, tc.eject, p.st.flushes)
		}
		p.clear()
	}
}
