package rtsp

import (
	"context"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/callbox/callbox/capture"
	"github.com/callbox/callbox/capture/pcmu"
	"github.com/callbox/callbox/capture/rtpjpeg"
	"github.com/callbox/callbox/capture/synth"
	"github.com/callbox/callbox/outputs/access"
	"github.com/callbox/callbox/relay"
)

const testToken = "t0k3n-for-tests"

// box is a relay fed by the synthetic camera and microphone through the
// real packetizers, with an RTSP server in front: the appliance's media
// path without the board.
type box struct {
	relay  *relay.Relay
	rtsp   *Server
	url    string // rtsp://127.0.0.1:PORT/live
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// published counts the bytes an RTSP/TCP reader of everything would
	// read (RTP plus the 4-byte interleaved headers), since start.
	published atomic.Int64
	started   time.Time
}

// rate is the stream's rate in bytes per second on an RTSP/TCP reader's
// wire, as published (not as some reader happened to receive it).
func (b *box) rate() float64 {
	return float64(b.published.Load()) / time.Since(b.started).Seconds()
}

func burstBytes(bu capture.Burst) int64 {
	n := int64(0)
	for _, p := range bu.Packets {
		n += int64(4 + len(p))
	}
	return n
}

type boxOptions struct {
	open          bool
	udp           bool
	width, height int
	fps           int
	quality       int
	owner         func(token string) string // Config.Owner
}

func startBox(t testing.TB, o boxOptions) *box {
	t.Helper()
	if o.width == 0 {
		o.width, o.height = 640, 480
	}
	if o.fps == 0 {
		o.fps = 30
	}
	var gate *access.Gate
	if !o.open {
		gate = access.New(func(tok string) error {
			if tok == testToken {
				return nil
			}
			return access.ErrUnpaired
		})
		// The phone that paired (or any viewer) presented the token once:
		// the gate knows it in clear from then on, for Digest.
		if err := gate.Check(testToken); err != nil {
			t.Fatal(err)
		}
	}
	r := relay.New(relay.Config{}, testLog(t))
	cfg := Config{Addr: "127.0.0.1:0", Relay: r, Gate: gate, Owner: o.owner, Log: testLog(t)}
	if o.udp {
		cfg.UDPPort = freeUDPPair(t)
	}
	srv, err := New(cfg)
	if err != nil {
		r.Close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	b := &box{relay: r, rtsp: srv, cancel: cancel,
		url: "rtsp://" + srv.Addr().String() + "/" + Path}
	cam, err := synth.NewCamera(synth.CameraConfig{Width: o.width, Height: o.height, FPS: o.fps, Quality: o.quality})
	if err != nil {
		t.Fatal(err)
	}
	mic, err := synth.NewMic(synth.MicConfig{Rate: 8000})
	if err != nil {
		t.Fatal(err)
	}
	vp, err := rtpjpeg.NewPacketizer(0, 0x1234, capture.PayloadTypeJPEG)
	if err != nil {
		t.Fatal(err)
	}
	ap, err := pcmu.NewPacketizer(0, 0x5678, capture.PayloadTypePCMU)
	if err != nil {
		t.Fatal(err)
	}
	b.started = time.Now()
	b.wg.Add(2)
	go func() {
		defer b.wg.Done()
		defer cam.Close()
		for {
			f, err := cam.ReadFrame(ctx)
			if err != nil {
				return
			}
			bu, err := vp.Packetize(f)
			if err == nil {
				b.published.Add(burstBytes(bu))
				r.Publish(bu)
			}
		}
	}()
	go func() {
		defer b.wg.Done()
		defer mic.Close()
		for {
			c, err := mic.ReadChunk(ctx)
			if err != nil {
				return
			}
			bu, err := ap.Packetize(c)
			if err == nil {
				b.published.Add(burstBytes(bu))
				r.Publish(bu)
			}
		}
	}()
	t.Cleanup(b.close)
	return b
}

func (b *box) close() {
	b.cancel()
	b.wg.Wait()
	b.rtsp.Close()
	b.relay.Close()
}

// urlWith puts user:token into the box's URL.
func (b *box) urlWith(user, token string) string {
	return "rtsp://" + user + ":" + token + "@" + b.url[len("rtsp://"):]
}

// freeUDPPair finds an even UDP port whose successor is free too.
func freeUDPPair(t testing.TB) int {
	t.Helper()
	for i := 0; i < 100; i++ {
		a, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		p := a.LocalAddr().(*net.UDPAddr).Port
		a.Close()
		if p%2 != 0 || p > 65000 {
			continue
		}
		a, err1 := net.ListenPacket("udp", "127.0.0.1:"+strconv.Itoa(p))
		c, err2 := net.ListenPacket("udp", "127.0.0.1:"+strconv.Itoa(p+1))
		if a != nil {
			a.Close()
		}
		if c != nil {
			c.Close()
		}
		if err1 == nil && err2 == nil {
			return p
		}
	}
	t.Fatal("no free UDP port pair")
	return 0
}

func testLog(t testing.TB) *slog.Logger {
	if os.Getenv("RTSP_TEST_LOG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
