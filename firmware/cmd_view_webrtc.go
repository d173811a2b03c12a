package firmware

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/callbox/callbox/relay/viewer"
	rwebrtc "github.com/callbox/callbox/relay/webrtc"
)

// viewWebRTC is `callbox view --webrtc URL`: a headless WHEP client that
// prints the figures the TCP/WebSocket viewer prints. Its feedback is a
// browser's (transport-wide congestion control every 50 ms, NACK,
// receiver reports), so the box treats it as it treats a phone.
//
// Given a hub's phone endpoint (https://hub/box/<id>/whep) it is a phone
// away from home and behaves like the hub's page: it asks the hub where
// the media is (GET /box/<id>/media), offers there, and follows the box's
// S7 moves between the box and the hub's relay make-before-break (the new
// session first, the old one let go after the new one's first whole frame).
func viewWebRTC(ctx context.Context, whepURL, token string, live io.Writer) (viewSummary, error) {
	if !strings.Contains(whepURL, "://") {
		whepURL = "http://" + whepURL
	}
	if !strings.Contains(strings.SplitN(whepURL, "://", 2)[1], "/") {
		whepURL += "/whep"
	}
	f := &webrtcFollower{token: token, start: time.Now()}
	base, boxID := hubPhoneEndpoint(whepURL)
	first := whepURL
	var v uint64
	if boxID != "" {
		m, err := f.pollMedia(ctx, base, boxID, 0)
		if err != nil {
			return viewSummary{}, err
		}
		first, v, f.mode = base+m.WHEP, m.V, m.Mode
	}
	c, _, err := f.dial(ctx, first)
	if err != nil {
		return viewSummary{}, err
	}
	f.cur = c
	followDone := make(chan struct{})
	go func() {
		defer close(followDone)
		if boxID != "" {
			f.follow(ctx, base, boxID, v)
		}
	}()
	stopLive := make(chan struct{})
	liveDone := make(chan struct{})
	go func() {
		defer close(liveDone)
		if live == nil {
			<-stopLive
			return
		}
		t := time.NewTicker(time.Second)
		defer t.Stop()
		var prev rwebrtc.Stats
		for {
			select {
			case <-stopLive:
				return
			case <-t.C:
			}
			st := f.current().Stats()
			fmt.Fprintln(live, webrtcLiveLine(prev, st))
			prev = st
		}
	}()
	<-ctx.Done()
	close(stopLive)
	<-liveDone
	<-followDone
	c = f.current()
	st := c.Stats()
	c.Close()
	f.mu.Lock()
	earlier := f.earlier
	f.mu.Unlock()
	// The first session's figures: setup, first frame, keyframe waits.
	first0 := st
	if len(earlier) > 0 {
		first0 = earlier[0]
	}
	sum := viewSummary{Addr: whepURL, Transport: "webrtc", Codec: "h264", DurationSeconds: time.Since(f.start).Seconds(),
		Video: st.Video, Audio: st.Audio, AudioCodec: st.AudioCodec}
	var bytes uint64
	for _, s := range append(earlier, st) {
		sum.FramesWhole += s.Video.Whole
		sum.FramesIncomplete += s.Video.Incomplete + s.Audio.Incomplete
		sum.Decodable += s.Decodable
		sum.LeadPacketsSkipped += s.LeadSkipped
		sum.FlushesSeen += s.Video.Gaps + s.Audio.Gaps
		bytes += s.Video.Bytes + s.Audio.Bytes
	}
	sum.FPS = st.Video.Rate
	if sum.DurationSeconds > 0 {
		sum.Kbps = float64(bytes) * 8 / sum.DurationSeconds / 1000
	}
	sum.LatencyP50Ms, sum.LatencyP99Ms, sum.LatencyMaxMs = st.Video.LatencyP50Ms, st.Video.LatencyP99Ms, st.Video.LatencyMaxMs
	sum.ClockOffsetMs = float64(st.ClockOffset) / 1e6
	sum.SetupMs, sum.Path = float64(first0.Setup.Microseconds())/1000, st.Path
	if len(first0.KeyframeWaits) > 0 {
		sum.FirstFrameMs = float64((first0.Setup + first0.KeyframeWaits[0]).Microseconds()) / 1000
	}
	for _, w := range first0.KeyframeWaits {
		sum.KeyframeWaitsMs = append(sum.KeyframeWaitsMs, float64(w.Microseconds())/1000)
	}
	f.mu.Lock()
	for i := range f.moves {
		mv := &f.moves[i]
		from, to := time.UnixMilli(mv.LearnedMs), time.UnixMilli(mv.FirstFrameMs).Add(time.Second)
		for _, g := range f.gaps {
			if !g.at.Before(from) && !g.at.After(to) {
				mv.MaxGapMs = max(mv.MaxGapMs, float64(g.d.Microseconds())/1000)
			}
		}
	}
	sum.Moves, sum.Mode = f.moves, f.mode
	sum.MaxFrameGapMs = float64(f.maxGap.Microseconds()) / 1000
	f.mu.Unlock()
	if st.Video.Packets == 0 && st.Audio.Packets == 0 {
		return sum, fmt.Errorf("no media from %s", whepURL)
	}
	return sum, nil
}

// viewMove is one S7 move of a phone away from home, Unix milliseconds.
type viewMove struct {
	Mode string `json:"mode"` // where the media comes from now: direct (the box) or hub
	// LearnedMs: the hub said so; FirstFrameMs: the new session's first
	// whole frame, when the old one was let go.
	LearnedMs    int64 `json:"learned_ms"`
	FirstFrameMs int64 `json:"first_frame_ms"`
	// MaxGapMs is the longest wait between two frames shown from the
	// moment the hub said so to a second after the old session went.
	MaxGapMs float64 `json:"max_gap_ms"`
	Path     string  `json:"path,omitempty"`
	Error    string  `json:"error,omitempty"`
	// LeftWhole and LeftIncomplete are the video frames of the session let
	// go (whole, and incomplete: a cut frame there is counted in the
	// summary too, this says which session had it).
	LeftWhole      uint64 `json:"left_whole"`
	LeftIncomplete uint64 `json:"left_incomplete"`
	// NewIncomplete: the new session's incomplete frames at its first whole
	// frame (packets of a frame begun before the session could decrypt).
	NewIncomplete uint64 `json:"new_incomplete"`
}

// hubPhoneRE matches a hub's phone endpoint path.
var hubPhoneRE = regexp.MustCompile(`^/box/([A-Za-z0-9_-]{1,64})/whep/?$`)

// hubPhoneEndpoint splits https://hub/box/<id>/whep into the hub's base
// URL and the box ID ("" for any other URL: a box's own /whep).
func hubPhoneEndpoint(whepURL string) (base, box string) {
	u, err := url.Parse(whepURL)
	if err != nil {
		return "", ""
	}
	m := hubPhoneRE.FindStringSubmatch(u.Path)
	if m == nil {
		return "", ""
	}
	return u.Scheme + "://" + u.Host, m[1]
}

// webrtcFollower holds the phone's sessions: the current one, and the
// figures of those it let go.
type webrtcFollower struct {
	token string
	start time.Time

	mu      sync.Mutex
	cur     *rwebrtc.Client
	earlier []rwebrtc.Stats
	moves   []viewMove
	mode    string
	// The frames as the phone shows them: each timestamp once, from
	// whichever session brings it first; maxGap is the longest wait
	// between two (a move must not add one).
	lastTS uint32
	haveTS bool
	lastAt time.Time
	maxGap time.Duration
	// gaps are the waits longer than slowFrame, by the time they ended:
	// each move's own (viewMove.MaxGapMs) is told apart from the box's
	// stalls at other times.
	gaps []frameGap
}

type frameGap struct {
	at time.Time
	d  time.Duration
}

// slowFrame is a wait between frames worth remembering (two frames at 30
// fps are 67 ms); maxGaps bounds the list.
const (
	slowFrame = 50 * time.Millisecond
	maxGaps   = 4096
)

func (f *webrtcFollower) current() *rwebrtc.Client {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cur
}

func (f *webrtcFollower) frame(ts uint32, at time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.haveTS && int32(ts-f.lastTS) <= 0 {
		return // shown already, from the other session
	}
	if f.haveTS {
		d := at.Sub(f.lastAt)
		f.maxGap = max(f.maxGap, d)
		if d > slowFrame && len(f.gaps) < maxGaps {
			f.gaps = append(f.gaps, frameGap{at, d})
		}
	}
	f.lastTS, f.lastAt, f.haveTS = ts, at, true
}

// dial opens a session; first is closed at its first whole frame.
func (f *webrtcFollower) dial(ctx context.Context, whepURL string) (*rwebrtc.Client, chan struct{}, error) {
	first := make(chan struct{})
	var once sync.Once
	c, err := rwebrtc.Dial(ctx, whepURL, rwebrtc.ClientOptions{Token: f.token, OnFrame: func(ts uint32, at time.Time) {
		once.Do(func() { close(first) })
		f.frame(ts, at)
	}})
	return c, first, err
}

// pollMedia asks the hub where the box's media is, once it differs from
// version v (a long poll).
func (f *webrtcFollower) pollMedia(ctx context.Context, base, box string, v uint64) (hubPhoneMedia, error) {
	var m hubPhoneMedia
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/box/"+box+"/media?v="+strconv.FormatUint(v, 10), nil)
	if err != nil {
		return m, err
	}
	req.Header.Set("Authorization", "Bearer "+f.token)
	resp, err := (&http.Client{Timeout: 40 * time.Second}).Do(req)
	if err != nil {
		return m, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return m, fmt.Errorf("hub: %s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 4096)).Decode(&m); err != nil {
		return m, fmt.Errorf("hub: media: %w", err)
	}
	if !strings.HasPrefix(m.WHEP, "/box/"+box+"/") {
		return m, fmt.Errorf("hub: media: WHEP path %q", m.WHEP)
	}
	return m, nil
}

// hubPhoneMedia is the hub's answer (peer/hub.PhoneMedia).
type hubPhoneMedia struct {
	V    uint64 `json:"v"`
	Mode string `json:"mode"`
	WHEP string `json:"whep"`
}

// follow moves the phone wherever the hub says the media is, until ctx ends.
func (f *webrtcFollower) follow(ctx context.Context, base, box string, v uint64) {
	for ctx.Err() == nil {
		m, err := f.pollMedia(ctx, base, box, v)
		if err != nil {
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
			continue
		}
		v = m.V
		f.mu.Lock()
		same := m.Mode == f.mode
		f.mu.Unlock()
		if same {
			continue
		}
		f.move(ctx, base+m.WHEP, m.Mode)
	}
}

// move opens a session at whepURL and, after its first whole frame, lets
// go of the current one.
func (f *webrtcFollower) move(ctx context.Context, whepURL, mode string) {
	mv := viewMove{Mode: mode, LearnedMs: time.Now().UnixMilli()}
	var c *rwebrtc.Client
	var first chan struct{}
	var err error
	for try := 0; try < 10 && ctx.Err() == nil; try++ {
		if c, first, err = f.dial(ctx, whepURL); err == nil {
			break
		}
		select { // the hub's relay may not have the box's video yet
		case <-ctx.Done():
		case <-time.After(300 * time.Millisecond):
		}
	}
	if err == nil && c == nil {
		err = ctx.Err()
	}
	if err == nil {
		select {
		case <-first:
		case <-time.After(10 * time.Second):
			err = fmt.Errorf("no whole frame from %s in 10 s", whepURL)
		case <-ctx.Done():
			err = ctx.Err()
		}
		if err != nil {
			c.Close()
		}
	}
	if err != nil {
		if ctx.Err() == nil {
			mv.Error = err.Error()
			f.mu.Lock()
			f.moves = append(f.moves, mv)
			f.mu.Unlock()
		}
		return
	}
	mv.FirstFrameMs = time.Now().UnixMilli()
	cst := c.Stats()
	mv.Path, mv.NewIncomplete = cst.Path, cst.Video.Incomplete
	f.mu.Lock()
	old := f.cur
	f.cur, f.mode = c, mode
	f.mu.Unlock()
	old.Close()
	st := old.Stats()
	mv.LeftWhole, mv.LeftIncomplete = st.Video.Whole, st.Video.Incomplete
	f.mu.Lock()
	f.moves = append(f.moves, mv)
	f.earlier = append(f.earlier, st)
	f.mu.Unlock()
}

func webrtcLiveLine(prev, st rwebrtc.Stats) string {
	line := ""
	for _, p := range [][2]viewer.Summary{{prev.Video, st.Video}, {prev.Audio, st.Audio}} {
		a, b := p[0], p[1]
		d := b.DurationSeconds - a.DurationSeconds
		if d <= 0 {
			d = 1
		}
		if line != "" {
			line += " | "
		}
		line += fmt.Sprintf("%s %5.1f/s %6.0f kbit/s p50 %5.1f ms p99 %5.1f ms incomplete %d flushes %d",
			b.Kind, float64(b.Whole-a.Whole)/d, float64(b.Bytes-a.Bytes)*8/d/1000, b.LatencyP50Ms, b.LatencyP99Ms,
			b.Incomplete-a.Incomplete, b.Gaps-a.Gaps)
	}
	return line + fmt.Sprintf(" | decodable %d", st.Decodable)
}
