package firmware

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/callbox/callbox/capture"
	"github.com/callbox/callbox/capture/rtpjpeg"
	"github.com/callbox/callbox/relay/viewer"
)

// viewSummary is `callbox view --json`'s output.
type viewSummary struct {
	Addr             string         `json:"addr"`
	DurationSeconds  float64        `json:"duration_s"`
	FramesWhole      uint64         `json:"frames_whole"`
	FramesIncomplete uint64         `json:"frames_incomplete"`
	FPS              float64        `json:"fps"`
	Kbps             float64        `json:"kbps"`
	LatencyP50Ms     float64        `json:"latency_p50_ms"`
	LatencyP99Ms     float64        `json:"latency_p99_ms"`
	LatencyMaxMs     float64        `json:"latency_max_ms"`
	HealthChecks     uint64         `json:"health_checks"`
	FlushesSeen      uint64         `json:"flushes_seen"`
	ClockOffsetMs    float64        `json:"clock_offset_ms"`
	JPEGFrames       uint64         `json:"jpeg_frames_reassembled"`
	JPEGLost         uint64         `json:"jpeg_frames_lost"`
	Video            viewer.Summary `json:"video"`
	Audio            viewer.Summary `json:"audio"`
	Errors           []string       `json:"errors,omitempty"`
	Codec            string         `json:"codec"`
	// AudioCodec: WebRTC's negotiated audio (audio/opus, audio/PCMU).
	AudioCodec string `json:"audio_codec,omitempty"`
	Throttle   int    `json:"throttle_bytes_per_s,omitempty"`
	Transport  string `json:"transport"`
	// WebRTC: H.264 access units that arrived whole and decodable, and the
	// waits for an IDR (from the start and from each flush).
	Decodable       uint64    `json:"h264_decodable,omitempty"`
	KeyframeWaitsMs []float64 `json:"keyframe_waits_ms,omitempty"`
	// LeadPacketsSkipped (WebRTC): packets of a frame begun before a
	// session could decrypt, skipped before its first frame start.
	LeadPacketsSkipped uint64 `json:"lead_packets_skipped,omitempty"`
	// WebRTC: the WHEP exchange (from the start), the first whole frame
	// (from the start), the selected candidate pair's types.
	SetupMs      float64 `json:"setup_ms,omitempty"`
	FirstFrameMs float64 `json:"first_frame_ms,omitempty"`
	Path         string  `json:"path,omitempty"`
	// WebRTC to a hub's phone endpoint: where the media came from last
	// (direct or hub), each S7 move, and the longest wait between two
	// whole frames as shown (across a move too).
	Mode          string     `json:"mode,omitempty"`
	Moves         []viewMove `json:"moves,omitempty"`
	MaxFrameGapMs float64    `json:"max_frame_gap_ms,omitempty"`
}

func cmdView(args []string) int {
	fs := newFlagSet("view", usageText{
		synopsis: []string{"[flags] ADDR"},
		about: "ADDR is the relay's TCP host:port (e.g. box.local:4571), ws://host:port for WebSocket,\n" +
			"or with --webrtc the box's WHEP URL (http://box.local/whep).\n" +
			"Receives video and audio, sends Health Checks, prints live stats.",
		examples: []string{
			"callbox view --token TOKEN box.local:4571",
			"callbox view --duration 10s --json ws://127.0.0.1:8080",
			"callbox view --webrtc --token TOKEN http://box.local/whep",
		},
	})
	duration := fs.Duration("duration", 0, "stop after this long (0: until interrupted)")
	throttle := fs.Int("throttle", 0, "read at most this many bytes per second, video and audio together (a slow phone)")
	asJSON := fs.Bool("json", false, "print a JSON summary at the end instead of live stats")
	token := fs.String("token", "", "pairing token")
	useWebRTC := fs.Bool("webrtc", false, "receive over WebRTC: ADDR is the WHEP URL (http://host:port/whep)")
	// Flags may follow ADDR too.
	var rest []string
	for len(args) > 0 {
		if code, ok := parseArgs(fs, args); !ok {
			return code
		}
		if fs.NArg() == 0 {
			break
		}
		rest = append(rest, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(rest) != 1 {
		fs.Usage()
		return 2
	}
	addr := rest[0]
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}
	var live io.Writer = os.Stderr
	if *asJSON {
		live = nil
	}
	var sum viewSummary
	var err error
	if *useWebRTC {
		if *throttle > 0 {
			fmt.Fprintln(os.Stderr, "callbox view: --throttle works over TCP and WebSocket only (shape a WebRTC link with tc)")
			return 2
		}
		sum, err = viewWebRTC(ctx, addr, *token, live)
	} else {
		sum, err = view(ctx, addr, *token, *throttle, live)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "callbox view:", err)
		if viewer.IsRefused(err) {
			return 3
		}
		return 1
	}
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		enc.Encode(sum)
	} else {
		fmt.Printf("%s: %d frames whole, %d incomplete, %.1f fps, %.0f kbit/s, latency p50 %.1f ms p99 %.1f ms max %.1f ms, %d Health Checks, %d flushes seen",
			addr, sum.FramesWhole, sum.FramesIncomplete, sum.FPS, sum.Kbps, sum.LatencyP50Ms, sum.LatencyP99Ms, sum.LatencyMaxMs, sum.HealthChecks, sum.FlushesSeen)
		if sum.Transport == "webrtc" {
			fmt.Printf(", %d decodable, keyframe waits %v ms", sum.Decodable, sum.KeyframeWaitsMs)
		}
		fmt.Println()
	}
	if sum.FramesIncomplete != 0 {
		return 1
	}
	return 0
}

// stream is one kind's connection and what it measured.
type stream struct {
	mu   sync.Mutex
	c    *viewer.Client
	tr   *viewer.Tracker // the whole run
	win  *viewer.Tracker // the current second, for live stats
	jpeg *rtpjpeg.Depacketizer
	err  error
}

// view receives video and audio from addr until ctx ends. live, when not
// nil, gets a line of stats a second.
func view(ctx context.Context, addr, token string, throttle int, live io.Writer) (viewSummary, error) {
	opt := viewer.Options{Token: token}
	if throttle > 0 {
		opt.Limiter = viewer.NewLimiter(throttle)
	}
	var streams [2]*stream
	for i, kind := range []capture.Kind{capture.KindVideo, capture.KindAudio} {
		c, err := viewer.Dial(ctx, addr, kind, opt)
		if err != nil {
			for _, s := range streams[:i] {
				s.c.Close()
			}
			return viewSummary{}, err
		}
		streams[i] = &stream{c: c, tr: viewer.NewTracker(kind, 0), win: viewer.NewTracker(kind, 0)}
		if kind == capture.KindVideo && c.Accept().Codec == "jpeg" {
			streams[i].jpeg = rtpjpeg.NewDepacketizer()
		}
	}
	start := time.Now()
	var wg sync.WaitGroup
	for _, s := range streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.receive(ctx)
		}()
	}
	stopLive := make(chan struct{})
	if live != nil {
		go func() {
			t := time.NewTicker(time.Second)
			defer t.Stop()
			for {
				select {
				case <-stopLive:
					return
				case <-t.C:
					fmt.Fprintln(live, liveLine(streams))
				}
			}
		}()
	}
	<-ctx.Done()
	for _, s := range streams {
		s.c.Close()
	}
	wg.Wait()
	close(stopLive)
	v, a := streams[0], streams[1]
	sum := viewSummary{
		Addr: addr, DurationSeconds: time.Since(start).Seconds(), Codec: v.c.Accept().Codec, Throttle: throttle, Transport: "tcp",
		Video: v.tr.Summary(), Audio: a.tr.Summary(),
		HealthChecks: v.c.HealthChecks() + a.c.HealthChecks(),
	}
	sum.FramesWhole, sum.FramesIncomplete = sum.Video.Whole, sum.Video.Incomplete+sum.Audio.Incomplete
	sum.FPS = sum.Video.Rate
	if sum.DurationSeconds > 0 {
		sum.Kbps = float64(sum.Video.Bytes+sum.Audio.Bytes) * 8 / sum.DurationSeconds / 1000
	}
	sum.LatencyP50Ms, sum.LatencyP99Ms, sum.LatencyMaxMs = sum.Video.LatencyP50Ms, sum.Video.LatencyP99Ms, sum.Video.LatencyMaxMs
	sum.FlushesSeen = sum.Video.Gaps + sum.Audio.Gaps
	if off, ok := v.c.Offset(); ok {
		sum.ClockOffsetMs = float64(off) / 1e6
	}
	if strings.HasPrefix(addr, "ws") {
		sum.Transport = "websocket"
	}
	if v.jpeg != nil {
		st := v.jpeg.Stats()
		sum.JPEGFrames, sum.JPEGLost = st.Frames, st.LostFrames
	}
	for _, s := range streams {
		if s.err != nil {
			sum.Errors = append(sum.Errors, s.err.Error())
		}
	}
	if sum.Video.Packets == 0 && sum.Audio.Packets == 0 && len(sum.Errors) > 0 {
		return sum, errors.New(sum.Errors[0])
	}
	return sum, nil
}

func (s *stream) receive(ctx context.Context) {
	for {
		pkt, err := s.c.Next(ctx)
		if err != nil {
			if ctx.Err() == nil {
				s.mu.Lock()
				s.err = err
				s.mu.Unlock()
			}
			return
		}
		now := time.Now()
		off, _ := s.c.Offset()
		s.mu.Lock()
		s.tr.Add(pkt, now, off)
		s.win.Add(pkt, now, off)
		if s.jpeg != nil {
			s.jpeg.Push(pkt) // losses are counted in its Stats
		}
		s.mu.Unlock()
	}
}

func liveLine(streams [2]*stream) string {
	line := ""
	for _, s := range streams {
		s.mu.Lock()
		sum := s.win.Summary()
		s.win.Reset()
		s.mu.Unlock()
		if line != "" {
			line += " | "
		}
		line += fmt.Sprintf("%s %5.1f/s %6.0f kbit/s p50 %5.1f ms p99 %5.1f ms incomplete %d flushes %d",
			sum.Kind, sum.Rate, sum.Kbps, sum.LatencyP50Ms, sum.LatencyP99Ms, sum.Incomplete, sum.Gaps)
	}
	return line
}
