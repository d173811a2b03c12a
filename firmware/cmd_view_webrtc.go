package firmware

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/callbox/callbox/relay/viewer"
	rwebrtc "github.com/callbox/callbox/relay/webrtc"
)

// viewWebRTC is `callbox view --webrtc URL`: a headless WHEP client that
// prints the figures the TCP/WebSocket viewer prints. Its feedback is a
// browser's (transport-wide congestion control every 50 ms, NACK,
// receiver reports), so the box treats it as it treats a phone.
func viewWebRTC(ctx context.Context, url, token string, live io.Writer) (viewSummary, error) {
	if !strings.Contains(url, "://") {
		url = "http://" + url
	}
	if !strings.Contains(strings.SplitN(url, "://", 2)[1], "/") {
		url += "/whep"
	}
	c, err := rwebrtc.Dial(ctx, url, rwebrtc.ClientOptions{Token: token})
	if err != nil {
		return viewSummary{}, err
	}
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
			st := c.Stats()
			fmt.Fprintln(live, webrtcLiveLine(prev, st))
			prev = st
		}
	}()
	<-ctx.Done()
	close(stopLive)
	<-liveDone
	st := c.Stats()
	c.Close()
	sum := viewSummary{Addr: url, Transport: "webrtc", Codec: "h264", DurationSeconds: st.DurationSeconds,
		Video: st.Video, Audio: st.Audio, Decodable: st.Decodable, AudioCodec: st.AudioCodec}
	sum.FramesWhole, sum.FramesIncomplete = st.Video.Whole, st.Video.Incomplete+st.Audio.Incomplete
	sum.FPS = st.Video.Rate
	if sum.DurationSeconds > 0 {
		sum.Kbps = float64(st.Video.Bytes+st.Audio.Bytes) * 8 / sum.DurationSeconds / 1000
	}
	sum.LatencyP50Ms, sum.LatencyP99Ms, sum.LatencyMaxMs = st.Video.LatencyP50Ms, st.Video.LatencyP99Ms, st.Video.LatencyMaxMs
	sum.FlushesSeen = st.Video.Gaps + st.Audio.Gaps
	sum.ClockOffsetMs = float64(st.ClockOffset) / 1e6
	sum.SetupMs, sum.Path = float64(st.Setup.Microseconds())/1000, st.Path
	if len(st.KeyframeWaits) > 0 {
		sum.FirstFrameMs = float64((st.Setup + st.KeyframeWaits[0]).Microseconds()) / 1000
	}
	for _, w := range st.KeyframeWaits {
		sum.KeyframeWaitsMs = append(sum.KeyframeWaitsMs, float64(w.Microseconds())/1000)
	}
	if st.Video.Packets == 0 && st.Audio.Packets == 0 {
		return sum, fmt.Errorf("no media from %s", url)
	}
	return sum, nil
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
