package webrtc

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/callbox/callbox/capture"
	"github.com/callbox/callbox/capture/rtpext"
	"github.com/callbox/callbox/capture/rtph264"
	"github.com/callbox/callbox/relay/viewer"
	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/nack"
	"github.com/pion/interceptor/pkg/report"
	"github.com/pion/interceptor/pkg/twcc"
	"github.com/pion/rtcp"
	pion "github.com/pion/webrtc/v4"
)

// TimeHeader carries the box's clock (Unix nanoseconds) on every WHEP
// response, so a client can estimate the clock offset for capture-to-
// arrival latency from the requests with the smallest round trip.
const TimeHeader = "Callbox-Time"

// ClientOptions configure Dial.
type ClientOptions struct {
	Token string // pairing token (Authorization: Bearer)
	// FeedbackInterval is how often the client sends transport-wide
	// feedback (default 50 ms, like Chrome at these rates).
	FeedbackInterval time.Duration
	// H264Out, when set, receives every decodable access unit in Annex B
	// form (for ffmpeg).
	H264Out io.Writer
	// HTTPClient is the client for the WHEP requests (nil: a default one).
	HTTPClient *http.Client
	// Loopback lets ICE use 127.0.0.1 (tests on one machine).
	Loopback bool
	// TimeProbes is how many OPTIONS requests estimate the clock offset
	// (default 5; negative: none, offset 0).
	TimeProbes int
	// ICEServers are STUN/TURN servers for the client's own candidates.
	// Nil: the ones the endpoint's OPTIONS answer names in Link headers
	// with rel="ice-server" (RFC 9725 section 4.6; the hub names its STUN
	// server: a phone away from home needs its server-reflexive address),
	// none on the LAN.
	ICEServers []pion.ICEServer
	// PCMUOnly offers PCMU audio only; by default the client offers
	// opus/48000/2 first, as browsers do.
	PCMUOnly bool
	// Talk offers the client's own audio too (sendrecv, as the hub page's
	// push-to-talk does): Client.Talk sends 20 ms frames on it.
	Talk bool
	// AudioOut, when set, receives every audio RTP packet in sequence
	// order (valid only during the call), e.g. for an Opus decoder.
	AudioOut func(pkt []byte)
	// VideoOut, when set, receives every video RTP packet in sequence
	// order (valid only during the call), as the box sent it.
	VideoOut func(pkt []byte)
	// OnFrame, when set, hears each whole H.264 access unit: its RTP
	// timestamp and arrival time (a phone following the box's S7 moves
	// joins two sessions' frames by timestamp). It runs under the
	// client's lock: it must not block nor call the client.
	OnFrame func(rtpTS uint32, at time.Time)
}

// Client is a headless WHEP viewer (pion): it receives the box's H.264
// and audio, sends the feedback a browser sends (transport-wide congestion
// control, NACK, receiver reports) and measures what arrives like the
// TCP/WebSocket viewer: whole frames, fps, kbit/s, capture-to-arrival
// latency, keyframe waits.
type Client struct {
	pc       *pion.PeerConnection
	resource string
	hc       *http.Client
	token    string
	offset   time.Duration
	start    time.Time

	mu        sync.Mutex
	video     *viewer.Tracker
	audio     *viewer.Tracker
	audioOut  func([]byte)
	videoOut  func([]byte)
	onFrame   func(uint32, time.Time)
	audioMime string // the negotiated audio codec
	dep       *rtph264.Depacketizer
	decodable uint64
	keyWait   []time.Duration // from the start and from each gap to the next IDR
	setup     time.Duration   // Dial's start to the answer (OPTIONS, gathering, the POST)
	waitFrom  time.Time
	h264Out   io.Writer
	writeErr  error
	videoSSRC uint32
	lastPLI   time.Time
	// videoBegun: a packet starting a frame (it carries abs-capture-time)
	// has arrived. Before it, packets are the tail of a frame whose head
	// the phone could not read: the box's DTLS finished before the phone's
	// and its first SRTP packets were dropped here. Such a tail is no frame
	// the relay cut; it is counted in leadSkipped, not as incomplete.
	videoBegun  bool
	leadSkipped uint64
	plis        uint64
	done        chan struct{}
	closeOnce   sync.Once
	wg          sync.WaitGroup

	mic *pion.TrackLocalStaticSample // ClientOptions.Talk
}

// Dial posts a WHEP offer to url (http://box/whep) and starts receiving.
func Dial(ctx context.Context, whepURL string, opt ClientOptions) (*Client, error) {
	if opt.FeedbackInterval == 0 {
		opt.FeedbackInterval = 50 * time.Millisecond
	}
	if opt.TimeProbes == 0 {
		opt.TimeProbes = 5
	}
	hc := opt.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: 10 * time.Second}
	}
	dialStart := time.Now()
	c := &Client{hc: hc, token: opt.Token, video: viewer.NewTracker(capture.KindVideo, 0),
		audio: viewer.NewTracker(capture.KindAudio, 0), dep: rtph264.NewDepacketizer(),
		h264Out: opt.H264Out, audioOut: opt.AudioOut, videoOut: opt.VideoOut, onFrame: opt.OnFrame, done: make(chan struct{})}
	ice := opt.ICEServers
	if opt.TimeProbes > 0 {
		off, links, err := probeOffset(ctx, hc, whepURL, opt.TimeProbes)
		if err != nil {
			return nil, err
		}
		c.offset = off
		if ice == nil && len(links) > 0 {
			ice = []pion.ICEServer{{URLs: links}}
		}
	}
	m, err := mediaEngine(true, !opt.PCMUOnly)
	if err != nil {
		return nil, err
	}
	reg := &interceptor.Registry{}
	tw, err := twcc.NewSenderInterceptor(twcc.SendInterval(opt.FeedbackInterval))
	if err != nil {
		return nil, err
	}
	reg.Add(tw)
	ng, err := nack.NewGeneratorInterceptor(nack.GeneratorInterval(20 * time.Millisecond))
	if err != nil {
		return nil, err
	}
	reg.Add(ng)
	rr, err := report.NewReceiverInterceptor()
	if err != nil {
		return nil, err
	}
	reg.Add(rr)
	var se pion.SettingEngine
	se.SetNetworkTypes([]pion.NetworkType{pion.NetworkTypeUDP4})
	se.SetIncludeLoopbackCandidate(opt.Loopback)
	api := pion.NewAPI(pion.WithMediaEngine(m), pion.WithInterceptorRegistry(reg), pion.WithSettingEngine(se))
	pc, err := api.NewPeerConnection(pion.Configuration{ICEServers: ice})
	if err != nil {
		return nil, err
	}
	c.pc = pc
	for _, k := range []pion.RTPCodecType{pion.RTPCodecTypeVideo, pion.RTPCodecTypeAudio} {
		if k == pion.RTPCodecTypeAudio && opt.Talk {
			if err := c.addMic(!opt.PCMUOnly); err != nil {
				pc.Close()
				return nil, err
			}
			continue
		}
		if _, err := pc.AddTransceiverFromKind(k, pion.RTPTransceiverInit{Direction: pion.RTPTransceiverDirectionRecvonly}); err != nil {
			pc.Close()
			return nil, err
		}
	}
	pc.OnTrack(func(t *pion.TrackRemote, _ *pion.RTPReceiver) {
		c.wg.Add(1)
		go c.receive(t)
	})
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		pc.Close()
		return nil, err
	}
	gathered := pion.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		pc.Close()
		return nil, err
	}
	select {
	case <-gathered:
	case <-ctx.Done():
		pc.Close()
		return nil, ctx.Err()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, whepURL, strings.NewReader(pc.LocalDescription().SDP))
	if err != nil {
		pc.Close()
		return nil, err
	}
	req.Header.Set("Content-Type", "application/sdp")
	if opt.Token != "" {
		req.Header.Set("Authorization", "Bearer "+opt.Token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		pc.Close()
		return nil, err
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxOffer))
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		pc.Close()
		return nil, &StatusError{Code: resp.StatusCode, Body: strings.TrimSpace(string(body))}
	}
	loc, err := resp.Location()
	if err != nil {
		pc.Close()
		return nil, fmt.Errorf("webrtc: WHEP answer without Location: %w", err)
	}
	c.resource = loc.String()
	c.start = time.Now()
	c.setup = c.start.Sub(dialStart)
	c.waitFrom = c.start
	if err := pc.SetRemoteDescription(pion.SessionDescription{Type: pion.SDPTypeAnswer, SDP: string(body)}); err != nil {
		c.Close()
		return nil, fmt.Errorf("webrtc: answer: %w", err)
	}
	return c, nil
}

// StatusError is a WHEP request the box refused.
type StatusError struct {
	Code int
	Body string
}

func (e *StatusError) Error() string { return fmt.Sprintf("webrtc: WHEP: %d %s", e.Code, e.Body) }

// probeOffset estimates the box's clock minus ours from OPTIONS requests,
// as relay/viewer does from CBTQ/CBTR: the box stamps its answer when it
// handles the request, so box time minus our send time is the offset plus
// the uplink's delay; the downlink, where the media queues, only lengthens
// the round trip. The estimate is the smallest such sample less half the
// smallest round trip, at most 2 ms.
//
// It also returns the STUN URLs the answers name in Link headers
// (rel="ice-server").
func probeOffset(ctx context.Context, hc *http.Client, u string, n int) (time.Duration, []string, error) {
	const maxUplink = 2 * time.Millisecond
	minUp, bestRTT := time.Duration(1<<62), time.Duration(1<<62)
	var links []string
	for i := 0; i < n; i++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodOptions, u, nil)
		if err != nil {
			return 0, nil, err
		}
		t0 := time.Now()
		resp, err := hc.Do(req)
		if err != nil {
			return 0, nil, err
		}
		t1 := time.Now()
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if i == 0 {
			links = iceLinks(resp.Header.Values("Link"))
		}
		v, err := strconv.ParseInt(resp.Header.Get(TimeHeader), 10, 64)
		if err != nil {
			return 0, links, nil // an endpoint without the header: no offset
		}
		minUp = min(minUp, time.Unix(0, v).Sub(t0))
		bestRTT = min(bestRTT, t1.Sub(t0))
	}
	if n == 0 {
		return 0, links, nil
	}
	return minUp - min(bestRTT/2, maxUplink), links, nil
}

// iceLinks returns the stun: URLs of Link header values with
// rel="ice-server" (credentialed TURN links are not taken: a phone away
// from home needs only its server-reflexive address, the box relays).
func iceLinks(values []string) []string {
	var out []string
	for _, v := range values {
		for _, l := range strings.Split(v, ",") {
			l = strings.TrimSpace(l)
			u, params, ok := strings.Cut(l, ";")
			if !ok || !strings.HasPrefix(u, "<") || !strings.HasSuffix(u, ">") {
				continue
			}
			u = u[1 : len(u)-1]
			if strings.Contains(strings.ReplaceAll(params, " ", ""), `rel="ice-server"`) && strings.HasPrefix(u, "stun:") && len(u) < 256 {
				out = append(out, u)
			}
		}
	}
	return out
}

func (c *Client) receive(t *pion.TrackRemote) {
	defer c.wg.Done()
	kind := capture.KindVideo
	if t.Kind() == pion.RTPCodecTypeAudio {
		kind = capture.KindAudio
	}
	c.mu.Lock()
	if kind == capture.KindVideo {
		c.videoSSRC = uint32(t.SSRC())
	} else {
		c.audioMime = t.Codec().MimeType
	}
	c.mu.Unlock()
	ro := newReorder()
	buf := make([]byte, 1600)
	for {
		n, _, err := t.Read(buf)
		if err != nil {
			return
		}
		now := time.Now()
		ro.push(buf[:n], func(pkt []byte) { c.account(kind, pkt, now) })
	}
}

// account measures one packet, in sequence order.
func (c *Client) account(kind capture.Kind, pkt []byte, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if kind == capture.KindAudio {
		c.audio.Add(pkt, now, c.offset)
		if c.audioOut != nil {
			c.audioOut(pkt)
		}
		return
	}
	if c.videoOut != nil {
		c.videoOut(pkt)
	}
	if !c.videoBegun {
		if _, err := rtpext.AbsCaptureTime(pkt); err == nil {
			c.videoBegun = true
		} else {
			c.leadSkipped++
		}
	}
	gaps := c.video.Gaps
	if c.videoBegun {
		c.video.Add(pkt, now, c.offset)
	}
	if c.video.Gaps != gaps && c.waitFrom.IsZero() {
		c.waitFrom = now
	}
	au, ok, err := c.dep.Push(pkt)
	if c.dep.NeedKeyframe() && now.Sub(c.lastPLI) > 500*time.Millisecond {
		// Lost a packet NACK did not bring back: ask for an IDR, as a
		// browser does.
		c.lastPLI = now
		c.plis++
		ssrc := c.videoSSRC
		go c.pc.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: ssrc}})
	}
	if err != nil || !ok {
		return
	}
	c.decodable++
	if c.onFrame != nil {
		c.onFrame(binary.BigEndian.Uint32(pkt[4:8]), now)
	}
	if au.Keyframe && !c.waitFrom.IsZero() {
		c.keyWait = append(c.keyWait, now.Sub(c.waitFrom))
		c.waitFrom = time.Time{}
	}
	if c.h264Out != nil && c.writeErr == nil {
		_, c.writeErr = c.h264Out.Write(au.Data)
	}
}

// Stats is what the client measured so far.
type Stats struct {
	Video, Audio    viewer.Summary
	Decodable       uint64          // H.264 access units the depacketizer emitted whole
	KeyframeWaits   []time.Duration // from the start (and from each flush) to the next IDR
	ClockOffset     time.Duration
	DurationSeconds float64
	Depacketizer    rtph264.Stats
	PLIs            uint64 // keyframe requests sent
	// LeadSkipped: video packets before the session's first frame start
	// (the tail of a frame the phone could not decrypt yet), not counted
	// in Video.
	LeadSkipped uint64
	// Setup is Dial's start to the WHEP answer; Setup + KeyframeWaits[0]
	// is the time to the first whole frame.
	Setup time.Duration
	// Path is the selected candidate pair as "local type -> remote type"
	// (host, srflx, prflx, relay), empty before ICE selects one.
	Path string
	// AudioCodec is the negotiated audio MIME type (audio/opus,
	// audio/PCMU), empty before the audio track arrives.
	AudioCodec string
}

// Stats returns the measurements so far.
func (c *Client) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return Stats{Video: c.video.Summary(), Audio: c.audio.Summary(), Decodable: c.decodable,
		Setup: c.setup, Path: selectedPath(c.pc), AudioCodec: c.audioMime,
		KeyframeWaits: append([]time.Duration(nil), c.keyWait...), ClockOffset: c.offset,
		DurationSeconds: time.Since(c.start).Seconds(), Depacketizer: c.dep.Stats(), PLIs: c.plis,
		LeadSkipped: c.leadSkipped}
}

// ResetStats forgets what was measured (a warm-up), keeping frame state.
func (c *Client) ResetStats() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.video.Reset()
	c.audio.Reset()
	c.decodable = 0
	c.keyWait = c.keyWait[:0]
	c.start = time.Now()
}

// Connected reports whether the PeerConnection is up.
func (c *Client) Connected() bool { return c.pc.ConnectionState() == pion.PeerConnectionStateConnected }

// Resource is the session's URL (the WHEP Location).
func (c *Client) Resource() string { return c.resource }

// Close sends DELETE for the session and closes the PeerConnection.
func (c *Client) Close() error {
	var err error
	c.closeOnce.Do(func() {
		if c.resource != "" {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			req, rerr := http.NewRequestWithContext(ctx, http.MethodDelete, c.resource, nil)
			if rerr == nil {
				if c.token != "" {
					req.Header.Set("Authorization", "Bearer "+c.token)
				}
				if resp, derr := c.hc.Do(req); derr == nil {
					resp.Body.Close()
				} else if !errors.Is(derr, context.Canceled) {
					err = derr
				}
			}
			cancel()
		}
		if cerr := c.pc.Close(); cerr != nil && err == nil {
			err = cerr
		}
		c.wg.Wait()
		close(c.done)
	})
	return err
}

// reorder puts packets back in sequence order: retransmissions answer
// NACKs out of order. It holds at most reorderMax packets; past that, or
// when the missing one has not come for reorderWait packets, it moves on
// and the tracker sees the gap.
type reorder struct {
	next  uint16
	init  bool
	slots [reorderMax]struct {
		ok  bool
		seq uint16
		b   []byte
	}
	held int
}

const reorderMax = 256

func newReorder() *reorder { return &reorder{} }

func (r *reorder) push(pkt []byte, emit func([]byte)) {
	if len(pkt) < 12 {
		return
	}
	seq := uint16(pkt[2])<<8 | uint16(pkt[3])
	if !r.init {
		r.init, r.next = true, seq
	}
	d := int16(seq - r.next)
	if d < 0 {
		return // late duplicate or a retransmission after we moved on
	}
	if d >= reorderMax/2 {
		// Far ahead: give up on what is missing.
		r.drain(emit, true)
		r.next = seq
	}
	s := &r.slots[seq%reorderMax]
	if !s.ok {
		s.ok, s.seq = true, seq
		s.b = append(s.b[:0], pkt...)
		r.held++
	}
	r.drain(emit, false)
	if r.held > reorderMax/4 {
		r.drain(emit, true)
	}
}

// drain emits what is in order; with skip, it skips missing packets until
// nothing is held.
func (r *reorder) drain(emit func([]byte), skip bool) {
	for r.held > 0 {
		s := &r.slots[r.next%reorderMax]
		if s.ok && s.seq == r.next {
			emit(s.b)
			s.ok = false
			r.held--
			r.next++
			continue
		}
		if !skip {
			return
		}
		r.next++
	}
}

// selectedPath names the candidate types of pc's selected pair (the
// nominated, succeeded one).
func selectedPath(pc *pion.PeerConnection) string {
	if pc == nil {
		return ""
	}
	all := pc.GetStats()
	for _, st := range all {
		pair, ok := st.(pion.ICECandidatePairStats)
		if !ok || !pair.Nominated || pair.State != pion.StatsICECandidatePairStateSucceeded {
			continue
		}
		l, _ := all[pair.LocalCandidateID].(pion.ICECandidateStats)
		r, _ := all[pair.RemoteCandidateID].(pion.ICECandidateStats)
		return l.CandidateType.String() + " -> " + r.CandidateType.String()
	}
	return ""
}
