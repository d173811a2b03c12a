package firmware

import (
	"context"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/callbox/callbox/capture"
	"github.com/callbox/callbox/peer/box"
	"github.com/callbox/callbox/peer/proto"
	"github.com/callbox/callbox/relay"
	rwebrtc "github.com/callbox/callbox/relay/webrtc"
)

// S7 in the appliance (docs/peer.md, "S7 in the appliance"): the box
// knows its uplink (box.UplinkEstimator, from its remote phones' transport-
// wide congestion feedback, call.uplink_kbps as a cap) and, when its
// remote phones times the stream's bitrate pass it (box.FanoutPolicy,
// with its hysteresis band), publishes one copy to the hub's fan-out relay
// and tells the hub to move the phones there; below the band it tells the
// hub to move them back, and stops publishing once they have left it.
// The phones move make-before-break: they open the new session and let go
// of the old one after its first whole frame.

// remoteUplink is what S7 needs of the relay part.
type remoteUplink interface {
	remoteFeedback() rwebrtc.Feedback
	streamBytes() uint64
	liveRelay() *relay.Relay
}

// fanoutWindow is how often the feedback is summed and the policy asked.
const fanoutWindow = 500 * time.Millisecond

// streamMarks windows make the span the stream's bitrate is measured over (4 s).
const streamMarks = 9

// fanoutSettle is how long a decision stands: the phones are moving (a
// new session, a keyframe), and their count on each side is in flux.
const fanoutSettle = 3 * time.Second

// fanoutLinger bounds how long the box keeps publishing to the hub after
// moving the phones back, while the last ones leave the hub's relay.
const fanoutLinger = 10 * time.Second

// remoteAPIState is /api/state's "remote": S7 for phones away from home.
type remoteAPIState struct {
	Mode string `json:"mode"` // direct (a copy per phone from the box) or hub (one copy, the hub's relay)
	// UplinkKbps is the estimate (0: unknown), UplinkCapKbps the
	// configured cap (0: none).
	UplinkKbps    int    `json:"uplink_kbps"`
	UplinkCapKbps int    `json:"uplink_cap_kbps"`
	Congested     bool   `json:"congested"`
	UplinkReason  string `json:"uplink_reason"`
	StreamKbps    int    `json:"stream_kbps"`
	Viewers       int    `json:"viewers"`        // remote phones counted by the policy
	DirectViewers int    `json:"direct_viewers"` // remote sessions from the box across its uplink
	HubViewers    int    `json:"hub_viewers"`    // sessions on the hub's relay
	Reason        string `json:"reason"`         // the policy's latest
	Switches      int    `json:"switches"`
	SwitchedAtMs  int64  `json:"switched_at_ms,omitempty"` // Unix ms of the latest switch
	HubUploadKB   uint64 `json:"hub_upload_kb"`            // the one copy, all publications
}

// remoteFanout is the box's S7 controller for its remote phones.
type remoteFanout struct {
	up     remoteUplink
	hubURL string
	dir    string // the identity
	log    *slog.Logger
	policy box.FanoutPolicy
	est    box.UplinkEstimator
	// phones lists the token IDs of the phones paired now: the hub's
	// relay admits only these (proto.FanoutControl.Allowed).
	phones func() []string

	mu       sync.Mutex
	mode     box.FanoutMode
	pub      *box.FanoutPublisher
	pubStop  context.CancelFunc
	copies   []*relay.Client // the hub copy's sessions on the box's relay
	video    *relay.Client
	hubView  int
	hubBytes atomic.Uint64
	state    remoteAPIState
	switched time.Time
	leaving  time.Time // moved back to direct: publishing until the hub is empty
	allowed  string    // the list last sent to the hub, sorted and joined
	// lastFeedback is when the relay's feedback sums were last taken
	// (run's goroutine only).
	lastFeedback time.Time
}

func newRemoteFanout(up remoteUplink, phones func() []string, hubURL, dir string, capKbps int, log *slog.Logger) *remoteFanout {
	// Back to direct copies below 64% of the uplink (80% less a band of
	// 20%): two phones of a stream that made three pass 80% are at 53%.
	f := &remoteFanout{up: up, hubURL: hubURL, dir: dir, log: log, phones: phones, policy: box.FanoutPolicy{Hysteresis: 0.2}}
	f.est.CapBps = float64(capKbps) * 1e3
	f.state = remoteAPIState{Mode: proto.PhonesDirect, UplinkCapKbps: capKbps}
	return f
}

// apiState is /api/state's "remote".
func (f *remoteFanout) apiState() *remoteAPIState {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := f.state
	st.HubUploadKB = f.hubBytes.Load() >> 10
	return &st
}

// run measures and decides every fanoutWindow until ctx ends.
func (f *remoteFanout) run(ctx context.Context) {
	t := time.NewTicker(fanoutWindow)
	defer t.Stop()
	defer f.stopHub()
	// The stream's bitrate over the last 4 s (streamMarks): a 500 ms window
	// holds one or two keyframes of a short GOP, which is ±30%.
	type mark struct {
		at    time.Time
		bytes uint64
	}
	marks := make([]mark, 0, streamMarks+1)
	marks = append(marks, mark{time.Now(), f.up.streamBytes()})
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			marks = append(marks, mark{now, f.up.streamBytes()})
			if len(marks) > streamMarks {
				marks = append(marks[:0], marks[1:]...)
			}
			streamBps := 0.0
			if first := marks[0]; now.After(first.at) {
				streamBps = float64(marks[len(marks)-1].bytes-first.bytes) * 8 / now.Sub(first.at).Seconds()
			}
			f.step(ctx, streamBps)
		}
	}
}

func (f *remoteFanout) step(ctx context.Context, streamBps float64) {
	// The feedback is summed since the last call: its window is the time
	// since then (a step that waited on the hub makes it longer, and the
	// ticker's next tick comes at once).
	fb, now := f.up.remoteFeedback(), time.Now()
	dt := now.Sub(f.lastFeedback)
	if f.lastFeedback.IsZero() {
		dt = fanoutWindow
	}
	f.lastFeedback = now
	est := f.est.Observe(now, box.UplinkWindow{Duration: dt, SentBytes: fb.SentBytes, DeliveredBytes: fb.DeliveredBytes,
		Received: fb.Received, Lost: fb.Lost, QueueDelay: fb.QueueDelay, Sessions: fb.Sessions, AllSkipping: fb.AllSkipping, StreamBps: streamBps})
	f.mu.Lock()
	if est.Congested != f.state.Congested {
		f.log.Info("S7: uplink", "congested", est.Congested, "estimate_kbps", int(est.Bps/1e3), "delivered_kbps", int(est.DeliveredBps/1e3),
			"loss", est.LossFraction, "standing_queue_ms", est.QueueDelay.Milliseconds(), "remote_sessions", fb.Sessions)
	}
	f.policy.UplinkBps = est.Bps
	hubView, mode := f.hubView, f.mode
	if f.pub == nil {
		hubView = 0
	}
	// A phone moving is on both sides for a moment: count it once.
	n := max(fb.Sessions, hubView)
	settled := now.Sub(f.switched) >= fanoutSettle
	d := f.policy.Decide(n, streamBps, mode)
	f.state.UplinkKbps, f.state.Congested, f.state.UplinkReason = int(est.Bps/1e3), est.Congested, est.Reason
	f.state.StreamKbps, f.state.Viewers, f.state.DirectViewers, f.state.HubViewers = int(streamBps/1e3), n, fb.Sessions, hubView
	if settled || d.Mode == mode {
		f.state.Reason = d.Reason
	}
	leaving := !f.leaving.IsZero() && mode == box.FanoutDirect &&
		(hubView == 0 || now.Sub(f.leaving) > fanoutLinger)
	pub := f.pub
	f.mu.Unlock()
	if pub != nil {
		f.sendAllowed(ctx, pub) // a phone unpaired meanwhile is cut off at the hub too
	}
	if leaving {
		f.stopHub()
	}
	if !settled || d.Mode == mode {
		return
	}
	if d.Mode == box.FanoutRelay {
		if err := f.toHub(ctx); err != nil {
			f.log.Warn("S7: cannot publish to the hub; the remote phones stay direct", "err", err)
			f.mu.Lock()
			f.switched = now // try again after a settle period
			f.mu.Unlock()
			return
		}
	} else {
		f.toDirect(ctx)
	}
	f.mu.Lock()
	f.mode, f.switched = d.Mode, now
	f.state.Mode = proto.PhonesDirect
	if d.Mode == box.FanoutRelay {
		f.state.Mode = proto.PhonesHub
	}
	f.state.Switches++
	f.state.SwitchedAtMs = now.UnixMilli()
	f.state.Reason = d.Reason
	f.mu.Unlock()
	f.log.Info("S7: remote phones switched", "to", f.state.Mode, "at_ms", now.UnixMilli(), "viewers", n,
		"stream_kbps", int(streamBps/1e3), "uplink_kbps", int(est.Bps/1e3), "copies", d.Copies, "reason", d.Reason)
}

// toHub publishes one copy to the hub's fan-out relay (unless still
// publishing from the last time) and tells the hub to move the phones.
func (f *remoteFanout) toHub(ctx context.Context) error {
	f.mu.Lock()
	pub := f.pub
	f.leaving = time.Time{}
	f.mu.Unlock()
	if pub == nil {
		var err error
		if pub, err = f.publish(ctx); err != nil {
			return err
		}
	}
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return pub.SendControl(sctx, proto.FanoutControl{Phones: proto.PhonesHub})
}

// toDirect tells the hub to send the phones back; the copy goes on until
// they have left the hub's relay.
func (f *remoteFanout) toDirect(ctx context.Context) {
	f.mu.Lock()
	pub := f.pub
	f.leaving = time.Now()
	f.mu.Unlock()
	if pub == nil {
		return
	}
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := pub.SendControl(sctx, proto.FanoutControl{Phones: proto.PhonesDirect}); err != nil {
		f.log.Warn("S7: cannot tell the hub", "err", err)
		f.stopHub()
	}
}

// publish opens the publish connection and feeds it from the box's relay:
// one session per kind under the relay's policy, so a slow uplink costs
// whole frames of this copy, never the capture pipeline.
func (f *remoteFanout) publish(ctx context.Context) (*box.FanoutPublisher, error) {
	r := f.up.liveRelay()
	if r == nil {
		return nil, relay.ErrClosed
	}
	id, err := proto.LoadOrCreateIdentity(f.dir)
	if err != nil {
		return nil, err
	}
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	pub, err := box.PublishToHub(dctx, f.hubURL, id, nil)
	cancel()
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	f.allowed = "\x00" // nothing sent on this connection yet
	f.mu.Unlock()
	if err := f.sendAllowed(ctx, pub); err != nil {
		pub.Close()
		return nil, err
	}
	pctx, stop := context.WithCancel(ctx)
	video := &hubCopy{kind: capture.KindVideo, pub: pub, ctx: pctx, sent: &f.hubBytes}
	audio := &hubCopy{kind: capture.KindAudio, pub: pub, ctx: pctx, sent: &f.hubBytes}
	vc, err := r.Attach(capture.KindVideo, video, relay.AttachOptions{Codec: capture.CodecH264})
	if err != nil {
		stop()
		pub.Close()
		return nil, err
	}
	video.client.Store(vc)
	ac, err := r.Attach(capture.KindAudio, audio, relay.AttachOptions{Opus: r.PublishingOpus()})
	if err != nil {
		vc.Close()
		stop()
		pub.Close()
		return nil, err
	}
	audio.client.Store(ac)
	f.mu.Lock()
	f.pub, f.pubStop, f.copies, f.video, f.hubView = pub, stop, []*relay.Client{vc, ac}, vc, 0
	f.mu.Unlock()
	go func() {
		err := pub.ReadControl(pctx, func(c proto.FanoutControl) {
			if c.Keyframe {
				vc.RequestKeyframe()
			}
			if c.Viewers != nil {
				f.mu.Lock()
				if f.pub == pub {
					f.hubView = *c.Viewers
				}
				f.mu.Unlock()
			}
		})
		f.mu.Lock()
		mine := f.pub == pub
		f.mu.Unlock()
		if mine && pctx.Err() == nil {
			// The hub lost the copy (and told its phones to go back to the
			// box): so does the box, and the policy decides afresh.
			f.log.Warn("S7: publish connection to the hub lost", "err", err)
			f.stopHub()
			f.mu.Lock()
			if f.mode == box.FanoutRelay {
				f.mode, f.state.Mode, f.switched = box.FanoutDirect, proto.PhonesDirect, time.Now()
			}
			f.mu.Unlock()
		}
	}()
	f.log.Info("S7: publishing one copy to the hub's relay")
	return pub, nil
}

// sendAllowed tells the hub which phones are paired, when that changed.
func (f *remoteFanout) sendAllowed(ctx context.Context, pub *box.FanoutPublisher) error {
	ids := []string{}
	if f.phones != nil {
		ids = f.phones()
	}
	sort.Strings(ids)
	key := strings.Join(ids, ",")
	f.mu.Lock()
	same := key == f.allowed
	f.mu.Unlock()
	if same {
		return nil
	}
	if len(ids) > proto.MaxFanoutPhones {
		ids = ids[len(ids)-proto.MaxFanoutPhones:]
	}
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := pub.SendControl(sctx, proto.FanoutControl{Allowed: ids, AllowedSet: true}); err != nil {
		return err
	}
	f.mu.Lock()
	f.allowed = key
	f.mu.Unlock()
	return nil
}

// stopHub ends the publication to the hub, if any.
func (f *remoteFanout) stopHub() {
	f.mu.Lock()
	pub, stop, copies := f.pub, f.pubStop, f.copies
	f.pub, f.pubStop, f.copies, f.video, f.hubView, f.leaving = nil, nil, nil, nil, 0, time.Time{}
	f.mu.Unlock()
	if pub == nil {
		return
	}
	for _, c := range copies {
		c.Close()
	}
	stop()
	pub.Close()
	f.log.Info("S7: stopped publishing to the hub")
}

// hubCopy is the box's one copy to the hub's relay: a session of the
// box's relay (relay.PacketConn) whose units go out as bursts on the
// publish connection. A write the connection took is acknowledged at once:
// TCP's own window paces it, and a blocked write is the relay's cue to
// skip whole frames.
type hubCopy struct {
	kind   capture.Kind
	pub    *box.FanoutPublisher
	ctx    context.Context
	sent   *atomic.Uint64
	client atomic.Pointer[relay.Client]
	pkts   [][]byte
}

func (h *hubCopy) WriteUnits(units []*relay.Unit) error {
	n := 0
	for _, u := range units {
		h.pkts = h.pkts[:0]
		for i := 0; i < u.Packets(); i++ {
			p := u.Packet(i)
			h.pkts = append(h.pkts, p)
			h.sent.Add(uint64(len(p)))
		}
		// A write stuck past the relay's write timeout is aborted (Abort
		// closes the connection), so no timeout of its own here.
		err := h.pub.Publish(h.ctx, capture.Burst{Kind: h.kind, Keyframe: h.kind == capture.KindVideo && u.Start(),
			CaptureTime: time.Unix(0, u.CaptureNanos()), Packets: h.pkts})
		if err != nil {
			return err
		}
		n += u.Packets()
	}
	if c := h.client.Load(); c != nil {
		c.Ack(n)
	}
	return nil
}

// Abort is the relay ejecting the copy (a stalled uplink): the publish
// connection goes, and with it the phones' hub mode (the hub sends them
// back to the box; the policy decides afresh).
func (h *hubCopy) Abort() { go h.pub.Close() }

func (h *hubCopy) RemoteAddr() string { return "the hub's fan-out relay" }
