package firmware

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/callbox/callbox/board/config"
	"github.com/callbox/callbox/capture"
	"github.com/callbox/callbox/capture/opus"
	"github.com/callbox/callbox/capture/rtpext"
	"github.com/callbox/callbox/internal/testenv"
	"github.com/callbox/callbox/peer/proto"
	"github.com/callbox/callbox/relay"
	rwebrtc "github.com/callbox/callbox/relay/webrtc"
	"github.com/callbox/callbox/relay/webrtc/testsrc"
)

// TestCallWHEP: the call's relay served over WebRTC at /whep/call. The
// other box's H.264 access units and Opus audio, handed to the appliance
// as the call receives them (RTP packets, peerPart.onCallMedia), reach a
// pion WHEP client whole: every packet's payload byte for byte as the
// other box sent it (nothing decoded or re-encoded), under the client's
// own SSRC, payload type and gapless sequence numbers. Without the pairing
// token the endpoint answers 401; before the other box's video arrives
// OPTIONS says so and an offer gets 503; the phone's join asks the other
// box for a keyframe.
func TestCallWHEP(t *testing.T) {
	testenv.Short(t)
	testenv.LookPath(t, "ffmpeg")
	auth := func(tok string) error {
		if tok != "paired" {
			return relay.ErrUnpaired
		}
		return nil
	}
	rcfg := relayConfig(config.Default().Relay)
	rcfg.Authorize = auth
	p := &peerPart{log: quietLog, mux: http.NewServeMux()}
	p.remote = relay.New(rcfg, quietLog)
	var keyRequests atomic.Int64
	var player *testsrc.Player
	p.remote.OnKeyframeRequest(func() {
		keyRequests.Add(1)
		if player != nil {
			player.RequestKeyframe() // the other box's encoder, forced by the PLI
		}
	})
	cw, err := startCallWHEP(p.mux, p.remote, auth, quietLog)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(p.mux)
	defer func() {
		srv.Close()
		cw.Close()
		p.remote.Close()
	}()
	url := srv.URL + callWHEPPath

	live := func() string {
		req, _ := http.NewRequest(http.MethodOptions, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.Header.Get(rwebrtc.VideoLiveHeader)
	}
	post := func(token string) int {
		req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader("v=0\r\n"))
		req.Header.Set("Content-Type", "application/sdp")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := post(""); got != http.StatusUnauthorized {
		t.Errorf("POST /whep/call without a token: %d, want 401", got)
	}
	if got := post("wrong"); got != http.StatusUnauthorized {
		t.Errorf("POST /whep/call with a wrong token: %d, want 401", got)
	}
	if l := live(); l != "none" {
		t.Errorf("OPTIONS before any call media: %s %q, want none", rwebrtc.VideoLiveHeader, l)
	}
	if got := post("paired"); got != http.StatusServiceUnavailable {
		t.Errorf("POST /whep/call with no H.264 in the call: %d, want 503", got)
	}

	// The other box: H.264 (640x360, 1 s GOP) packetized by its sender,
	// and Opus, as the call hands them to the appliance.
	dir := filepath.Join(os.TempDir(), "callbox-webrtc-testsrc")
	os.MkdirAll(dir, 0o755)
	aus, err := testsrc.Make(dir, testsrc.Spec{Width: 640, Height: 360, FPS: 30, Seconds: 2, Kbps: 800, GOP: 30})
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu       sync.Mutex
		sent     = map[uint32][][]byte{} // RTP timestamp -> the AU's payloads, as the other box sent them
		sentSSRC uint32
	)
	onMedia := func(b capture.Burst) {
		if b.Kind == capture.KindVideo {
			mu.Lock()
			for _, pkt := range b.Packets {
				ts := binary.BigEndian.Uint32(pkt[4:])
				sentSSRC = binary.BigEndian.Uint32(pkt[8:])
				sent[ts] = append(sent[ts], bytes.Clone(rtpPayload(t, pkt)))
			}
			mu.Unlock()
		}
		p.onCallMedia(proto.PeerInfo{}, b)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	opusOK := true
	op, err := opus.NewPacketizer(1200, rtpext.Random32(), capture.PayloadTypeOpus)
	if errors.Is(err, opus.ErrUnavailable) {
		opusOK = false // the call then carries PCMU: the player's
	} else if err != nil {
		t.Fatal(err)
	}
	player = &testsrc.Player{AUs: aus, FPS: 30, Publish: onMedia, Audio: !opusOK}
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Add(1)
	go func() { defer wg.Done(); player.Run(ctx) }()
	if opusOK {
		wg.Add(1)
		go func() {
			defer wg.Done()
			publishOpusTone(ctx, op, onMedia)
		}()
	}
	deadline := time.Now().Add(10 * time.Second)
	for live() != "h264" {
		if time.Now().After(deadline) {
			t.Fatal("OPTIONS /whep/call never said h264 while the call carried it")
		}
		time.Sleep(20 * time.Millisecond)
	}

	type rx struct {
		ssrc, ts uint32
		seq      uint16
		pt       uint8
		payload  []byte
	}
	var (
		rmu   sync.Mutex
		recvd []rx
	)
	dctx, dcancel := context.WithTimeout(ctx, 10*time.Second)
	defer dcancel()
	c, err := rwebrtc.Dial(dctx, url, rwebrtc.ClientOptions{Token: "paired", Loopback: true,
		VideoOut: func(pkt []byte) {
			r := rx{pt: pkt[1] & 0x7f, seq: binary.BigEndian.Uint16(pkt[2:]), ts: binary.BigEndian.Uint32(pkt[4:]),
				ssrc: binary.BigEndian.Uint32(pkt[8:]), payload: bytes.Clone(rtpPayload(t, pkt))}
			rmu.Lock()
			recvd = append(recvd, r)
			rmu.Unlock()
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	deadline = time.Now().Add(15 * time.Second)
	for c.Stats().Decodable < 45 || c.Stats().Audio.Whole < 50 {
		if time.Now().After(deadline) {
			t.Fatalf("the phone got %d decodable frames and %d audio packets (%q, opus published %v) in 15 s", c.Stats().Decodable, c.Stats().Audio.Whole, c.Stats().AudioCodec, p.remote.PublishingOpus())
		}
		time.Sleep(50 * time.Millisecond)
	}
	st := c.Stats()
	t.Logf("phone on /whep/call: %d whole, %d incomplete, %d decodable, %.1f fps, audio %s %d packets, first IDR after %v (setup %v), keyframe requests to the other box %d",
		st.Video.Whole, st.Video.Incomplete, st.Decodable, st.Video.Rate, st.AudioCodec, st.Audio.Whole, st.KeyframeWaits, st.Setup, keyRequests.Load())
	if st.Video.Incomplete != 0 {
		t.Errorf("%d incomplete frames", st.Video.Incomplete)
	}
	wantAudio := "audio/opus"
	if !opusOK {
		wantAudio = "audio/PCMU"
	}
	if !strings.EqualFold(st.AudioCodec, wantAudio) {
		t.Errorf("audio codec %q, want %s (what the call carries)", st.AudioCodec, wantAudio)
	}
	if keyRequests.Load() == 0 {
		t.Error("the phone's join never asked the other box for a keyframe")
	}

	// Byte for byte: each frame the phone got is the other box's access
	// unit, packet by packet, under the phone's own RTP numbering.
	mu.Lock()
	defer mu.Unlock()
	rmu.Lock()
	defer rmu.Unlock()
	var frames int
	for i := 0; i < len(recvd); {
		j := i
		for j < len(recvd) && recvd[j].ts == recvd[i].ts {
			j++
		}
		want, ok := sent[recvd[i].ts]
		if !ok {
			t.Fatalf("the phone got a frame (RTP timestamp %d) the other box never sent", recvd[i].ts)
		}
		if j-i != len(want) {
			t.Fatalf("frame %d: %d packets, the other box sent %d", recvd[i].ts, j-i, len(want))
		}
		for k := i; k < j; k++ {
			if !bytes.Equal(recvd[k].payload, want[k-i]) {
				t.Fatalf("frame %d packet %d: payload differs from the other box's", recvd[i].ts, k-i)
			}
		}
		frames++
		i = j
	}
	for k, r := range recvd {
		if r.ssrc == sentSSRC {
			t.Fatalf("the phone got the other box's SSRC %08x: not its own stream", r.ssrc)
		}
		if r.pt == capture.PayloadTypeJPEG {
			t.Fatalf("payload type %d", r.pt)
		}
		if k > 0 && r.seq != recvd[k-1].seq+1 {
			t.Fatalf("sequence gap %d -> %d", recvd[k-1].seq, r.seq)
		}
	}
	if frames < 45 {
		t.Errorf("%d frames compared, want >= 45", frames)
	}
	t.Logf("%d frames (%d packets) identical to the other box's, SSRC %08x -> %08x", frames, len(recvd), sentSSRC, recvd[0].ssrc)
}

// rtpPayload is a marshalled RTP packet's payload (after CSRCs and the
// extension; padding removed).
func rtpPayload(t *testing.T, pkt []byte) []byte {
	t.Helper()
	if len(pkt) < 12 {
		t.Fatalf("RTP packet of %d bytes", len(pkt))
	}
	n := 12 + 4*int(pkt[0]&0x0f)
	if pkt[0]&0x10 != 0 {
		n += 4 + 4*int(binary.BigEndian.Uint16(pkt[n+2:]))
	}
	end := len(pkt)
	if pkt[0]&0x20 != 0 {
		end -= int(pkt[end-1])
	}
	return pkt[n:end]
}

// publishOpusTone publishes a 440 Hz tone as Opus, a packet every 20 ms,
// as a call carrying Opus hands it over.
func publishOpusTone(ctx context.Context, op *opus.Packetizer, publish func(capture.Burst)) {
	const rate = 48000
	samples := make([]int16, rate/50)
	var phase float64
	tick := time.NewTicker(capture.ChunkDuration)
	defer tick.Stop()
	for seq := uint64(1); ; seq++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		for k := range samples {
			samples[k] = int16(8000 * math.Sin(phase))
			phase += 2 * math.Pi * 440 / rate
		}
		phase = math.Mod(phase, 2*math.Pi)
		b, err := op.Packetize(capture.AudioChunk{Samples: samples, Rate: rate, CaptureTime: time.Now(), Seq: seq})
		if err != nil || len(b.Packets) == 0 {
			continue
		}
		publish(b)
	}
}
