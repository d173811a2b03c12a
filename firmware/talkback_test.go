//go:build cgo && !noopus

package firmware

import (
	"context"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/callbox/callbox/capture"
	"github.com/callbox/callbox/capture/opus"
	"github.com/callbox/callbox/capture/rtpext"
	"github.com/callbox/callbox/drivers/speaker"
	"github.com/callbox/callbox/internal/testenv"
	"github.com/callbox/callbox/relay"
	rwebrtc "github.com/callbox/callbox/relay/webrtc"
	"github.com/callbox/callbox/relay/webrtc/testsrc"
	hopus "gopkg.in/hraban/opus.v2"
)

// goertzelPower is the power of x at freq Hz (sample rate fs).
func goertzelPower(x []int16, freq, fs float64) float64 {
	w := 2 * math.Pi * freq / fs
	c := 2 * math.Cos(w)
	var s1, s2 float64
	for _, v := range x {
		s := float64(v) + c*s1 - s2
		s2, s1 = s1, s
	}
	return s1*s1 + s2*s2 - c*s1*s2
}

// TestTalkBackPlaysOnSpeaker: a remote phone's session (AnswerRemoteWith,
// as answerPhone makes it) with talk-back; a pion phone holds the button
// (sends a 440 Hz tone as Opus, 20 ms frames) and the box's simulated
// speaker plays it through the mixer; released, the box is quiet within
// half a second; pressed again, it plays again. A session without
// talk-back (a LAN phone's, or no speaker) plays nothing of what its
// phone sends.
func TestTalkBackPlaysOnSpeaker(t *testing.T) {
	testenv.Short(t)
	testenv.LookPath(t, "ffmpeg")
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	aus, err := testsrc.Make(t.TempDir(), testsrc.Spec{Width: 320, Height: 240, FPS: 15, Seconds: 2, Kbps: 300, GOP: 15})
	if err != nil {
		t.Fatal(err)
	}
	r := relay.New(relay.Config{}, log)
	defer r.Close()
	srv, err := rwebrtc.New(r, rwebrtc.Config{Loopback: true, IPFilter: func(ip net.IP) bool { return ip.IsLoopback() }, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	player := &testsrc.Player{AUs: aus, FPS: 15, Publish: r.Publish}
	go player.Run(ctx)
	// The box publishes Opus (as callbox run does with libopus), so the
	// phone's microphone is negotiated as Opus too.
	op, err := opus.NewPacketizer(0, rtpext.Random32(), opus.PayloadType)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for seq := uint64(0); ; seq++ {
			select {
			case <-ctx.Done():
				return
			case now := <-tick.C:
				b, err := op.Packetize(capture.AudioChunk{Samples: make([]int16, opus.FrameSamples), Rate: opus.Rate, CaptureTime: now, Seq: seq})
				if err == nil && len(b.Packets) > 0 {
					r.Publish(b)
				}
			}
		}
	}()
	deadline := time.Now().Add(10 * time.Second)
	for !r.Publishing(capture.CodecH264) || !r.PublishingOpus() {
		if time.Now().After(deadline) {
			t.Fatal("the box publishes no H.264 and Opus")
		}
		time.Sleep(10 * time.Millisecond)
	}

	sim := speaker.NewSim()
	mixer := speaker.NewMixer(speaker.MixerConfig{Output: sim, Device: "synthetic", Log: log})
	go mixer.Run(ctx)
	tb := newTalkBack(func() talkSpeaker { return mixer }, log)
	tokenID := strings.Repeat("c3", 32)

	// The hub's side, in short: the offer in, the box's answer out.
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method == http.MethodDelete {
			w.WriteHeader(http.StatusOK)
			return
		}
		if req.Method != http.MethodPost {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		body, _ := io.ReadAll(req.Body)
		opt := rwebrtc.RemoteOptions{Owner: tokenID}
		if req.URL.Query().Get("talk") == "1" {
			opt.TalkBack = tb.forPhone(tokenID)
		}
		id, answer, err := srv.AnswerRemoteWith(req.Context(), "remote phone", string(body), nil, opt)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/sdp")
		w.Header().Set("Location", "/whep/"+id)
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, answer)
	}))
	defer hs.Close()

	dctx, dcancel := context.WithTimeout(ctx, 15*time.Second)
	defer dcancel()
	phone, err := rwebrtc.Dial(dctx, hs.URL+"/whep?talk=1", rwebrtc.ClientOptions{Loopback: true, TimeProbes: -1, Talk: true})
	if err != nil {
		t.Fatal(err)
	}
	defer phone.Close()
	for !phone.Connected() || phone.Stats().Decodable == 0 {
		if time.Now().After(deadline.Add(10 * time.Second)) {
			t.Fatal("the phone never received the box's video")
		}
		time.Sleep(10 * time.Millisecond)
	}

	enc, err := hopus.NewEncoder(opus.Rate, 1, hopus.AppVoIP)
	if err != nil {
		t.Fatal(err)
	}
	pcm := make([]int16, opus.FrameSamples)
	buf := make([]byte, 1500)
	n := 0
	// press holds the button: the tone in real time, 20 ms frames, until
	// the returned release is called; release returns when the last
	// frame was sent.
	press := func() (release func() time.Time) {
		stop, done := make(chan struct{}), make(chan time.Time, 1)
		go func() {
			tick := time.NewTicker(20 * time.Millisecond)
			defer tick.Stop()
			var last time.Time
			for {
				select {
				case <-stop:
					done <- last
					return
				case <-tick.C:
				}
				for j := range pcm {
					pcm[j] = int16(10000 * math.Sin(2*math.Pi*440*float64(n)/opus.Rate))
					n++
				}
				k, err := enc.Encode(pcm, buf)
				if err == nil {
					err = phone.Talk(buf[:k], 20*time.Millisecond)
				}
				if err != nil {
					t.Error(err)
				}
				last = time.Now()
			}
		}()
		return func() time.Time { close(stop); return <-done }
	}
	playing := func() bool {
		for _, s := range mixer.State().Sources {
			if strings.HasPrefix(s, "talk-back ") {
				return true
			}
		}
		return false
	}

	before := sim.Counts().SoundFrames
	release := press()
	for sim.Counts().SoundFrames-before < 25 || !playing() || len(tb.state().Talking) != 1 {
		if time.Now().After(deadline.Add(20 * time.Second)) {
			release()
			t.Fatalf("while held: %d sound frames, talk-back %+v, mixer %+v", sim.Counts().SoundFrames-before, tb.state(), mixer.State())
		}
		time.Sleep(10 * time.Millisecond)
	}
	st, ms := tb.state(), mixer.State()
	t.Logf("held: %d frames with sound on the speaker, level %.1f dBFS, sources %v, talk-back %+v", sim.Counts().SoundFrames-before, ms.LevelDBFS, ms.Sources, st)
	if st.Talking[0] != tokenID[:8] || ms.LevelDBFS < -30 || st.Codec != "audio/opus" {
		t.Errorf("while held: talking %v, level %.1f dBFS, codec %q; want this phone, its voice, Opus", st.Talking, ms.LevelDBFS, st.Codec)
	}
	rec := sim.Recorded(400 * time.Millisecond)
	if at, off := goertzelPower(rec, 440, speaker.Rate), goertzelPower(rec, 1000, speaker.Rate); at < 100*off {
		t.Errorf("the speaker did not play the 440 Hz tone (power at 440 Hz %.3g, at 1 kHz %.3g)", at, off)
	}

	// Release: the box stops within half a second.
	released := release()
	for playing() || len(tb.state().Talking) > 0 {
		if time.Since(released) > 3*time.Second {
			t.Fatal("still playing 3 s after the release")
		}
		time.Sleep(5 * time.Millisecond)
	}
	quiet := time.Since(released)
	after := sim.Counts().SoundFrames
	time.Sleep(200 * time.Millisecond)
	if extra := sim.Counts().SoundFrames - after; extra > 0 {
		t.Errorf("%d sound frames after the stream closed", extra)
	}
	t.Logf("released: the box stopped playing %v after the last packet was sent", quiet.Round(time.Millisecond))
	if quiet > 500*time.Millisecond*time.Duration(loadSlack) {
		t.Errorf("the box played on for %v after the release; want about 0.5 s at most", quiet)
	}

	// Pressed again: plays again.
	release = press()
	for tb.state().Talks != 2 {
		if time.Now().After(deadline.Add(30 * time.Second)) {
			t.Fatalf("a second press: talk-back %+v", tb.state())
		}
		time.Sleep(10 * time.Millisecond)
	}
	release()

	// A session without talk-back: its phone's audio plays nowhere.
	lan, err := rwebrtc.Dial(dctx, hs.URL+"/whep", rwebrtc.ClientOptions{Loopback: true, TimeProbes: -1, Talk: true})
	if err != nil {
		t.Fatal(err)
	}
	defer lan.Close()
	for !lan.Connected() {
		if time.Now().After(deadline.Add(20 * time.Second)) {
			t.Fatal("the second phone never connected")
		}
		time.Sleep(10 * time.Millisecond)
	}
	for playing() {
		time.Sleep(5 * time.Millisecond)
	}
	pk := tb.state().Packets
	for i := 0; i < 25; i++ {
		k, _ := enc.Encode(pcm, buf)
		lan.Talk(buf[:k], 20*time.Millisecond)
		time.Sleep(20 * time.Millisecond)
		if playing() {
			t.Fatal("a session without talk-back played on the speaker")
		}
	}
	if tb.state().Packets != pk {
		t.Error("talk-back heard a session that has none")
	}

	// The session ends (the phone leaves, or is unpaired): nothing plays.
	phone.Close()
	srv.CloseOwner(tokenID, "test")
	for len(tb.state().Talking) > 0 {
		time.Sleep(5 * time.Millisecond)
	}
}
