package firmware

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"sync/atomic"

	"github.com/callbox/callbox/capture"
	"github.com/callbox/callbox/relay"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// DefaultRelayAddr is the relay's TCP listener: port 4571, after RFC 4571,
// the framing it speaks.
const DefaultRelayAddr = ":4571"

// relayPart is the appliance's on-device relay (package relay): the TCP
// listener, the WebSocket paths /ws/video and /ws/audio, and /metrics on the
// HTTP server. The media pipeline finds Publish with a type assertion; the
// board sets authorize (pairing) in its start, which runs first, and reads
// Viewers for the LED.
type relayPart struct {
	addr  string
	cfg   relay.Config
	nagle bool

	// authorize checks a client's pairing token; nil admits everyone. The
	// board sets it before the relay starts.
	authorize func(token string) error

	r    *relay.Relay
	log  *slog.Logger
	ln   net.Listener
	done chan error
	ptr  atomic.Pointer[relay.Relay]
}

func (p *relayPart) flags(fs *flag.FlagSet) {
	d := relay.DefaultConfig()
	p.cfg = d
	fs.StringVar(&p.addr, "relay", DefaultRelayAddr, "relay TCP listener (RFC 4571 framing, docs/protocol.md); empty: WebSocket only")
	fs.IntVar(&p.cfg.Video.HealthInterval, "relay-hc", d.Video.HealthInterval, "video: a client sends a Health Check per this many packets")
	fs.IntVar(&p.cfg.Video.IdleLimit, "relay-idle-limit", d.Video.IdleLimit, "video: packets a client may have unacknowledged before it counts as busy")
	fs.IntVar(&p.cfg.Video.Batch, "relay-batch", d.Video.Batch, "video: most packets one write takes from a client's buffer (whole frames)")
	fs.DurationVar(&p.cfg.Video.MaxDelay, "relay-max-delay", d.Video.MaxDelay, "video: media time a client's buffer may hold before it is flushed")
	fs.DurationVar(&p.cfg.Audio.MaxDelay, "relay-audio-max-delay", d.Audio.MaxDelay, "audio: media time a client's buffer may hold before it is flushed")
	fs.DurationVar(&p.cfg.Audio.Keep, "relay-audio-keep", d.Audio.Keep, "audio: newest media time an audio flush keeps")
	fs.DurationVar(&p.cfg.HealthTimeout, "relay-health-timeout", d.HealthTimeout, "disconnect a client that owes a Health Check this long")
	fs.IntVar(&p.cfg.MaxFlushes, "relay-max-flushes", d.MaxFlushes, "disconnect a client flushed this many times within --relay-flush-window")
	fs.DurationVar(&p.cfg.FlushWindow, "relay-flush-window", d.FlushWindow, "window for --relay-max-flushes")
	fs.BoolVar(&p.nagle, "relay-video-nagle", false, "leave Nagle's algorithm on for video connections (design S14; measured slower, docs/relay.md)")
}

func (p *relayPart) start(ctx context.Context, a *appliance) error {
	cfg := p.cfg
	if cfg.Video.HealthInterval == 0 { // flags not registered (tests)
		cfg = relay.DefaultConfig()
	}
	cfg.Video.Nagle = p.nagle
	if err := cfg.Validate(); err != nil {
		return err
	}
	if p.authorize != nil {
		cfg.Authorize = p.authorize
	}
	p.log = a.log.With("part", "relay")
	r := relay.New(cfg, p.log)
	if p.addr != "" {
		ln, err := net.Listen("tcp", p.addr)
		if err != nil {
			r.Close()
			return fmt.Errorf("relay listen: %w", err)
		}
		p.ln = ln
		p.done = make(chan error, 1)
		go func() { p.done <- r.ServeTCP(ln) }()
		a.log.Info("relay listening", "addr", ln.Addr().String())
	}
	a.mux.Handle("/ws/video", r.WebSocketHandler(capture.KindVideo))
	a.mux.Handle("/ws/audio", r.WebSocketHandler(capture.KindAudio))
	a.mux.Handle("/metrics", promhttp.HandlerFor(r.Registry(), promhttp.HandlerOpts{}))
	p.r = r
	p.ptr.Store(r)
	return nil
}

func (p *relayPart) stop() {
	if p.r == nil {
		return
	}
	p.ptr.Store(nil)
	p.r.Close()
	if p.ln != nil {
		p.ln.Close() // in case ServeTCP had not registered it yet
	}
	if p.done != nil {
		if err := <-p.done; err != nil && !errors.Is(err, relay.ErrClosed) && !errors.Is(err, net.ErrClosed) {
			p.log.Error("relay listener", "err", err)
		}
	}
}

// Publish fans the box's own burst out to every client (the media
// pipeline's sink). It copies the burst; before start and after stop it
// drops it.
func (p *relayPart) Publish(b capture.Burst) {
	if r := p.ptr.Load(); r != nil {
		r.Publish(b)
	}
}

// Viewers is the number of connected clients (for the board's LED).
func (p *relayPart) Viewers() int {
	if r := p.ptr.Load(); r != nil {
		return r.Viewers()
	}
	return 0
}

// OnKeyframeRequest sets what the relay calls when a client needs a frame a
// decoder can start from (an H.264 encoder forces an IDR).
func (p *relayPart) OnKeyframeRequest(f func()) {
	if r := p.ptr.Load(); r != nil {
		r.OnKeyframeRequest(f)
	}
}

// Addr is the TCP listener's address, or nil.
func (p *relayPart) Addr() net.Addr {
	if p.ln == nil {
		return nil
	}
	return p.ln.Addr()
}
