package firmware

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync/atomic"

	"github.com/callbox/callbox/board/config"
	"github.com/callbox/callbox/capture"
	"github.com/callbox/callbox/internal/netguard"
	"github.com/callbox/callbox/relay"
	rwebrtc "github.com/callbox/callbox/relay/webrtc"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// relayPart is the appliance's on-device relay (package relay): the TCP
// listener, the WebSocket paths /ws/video and /ws/audio, and /metrics on the
// HTTP server. The media pipeline finds Publish with a type assertion; the
// board sets authorize (pairing) in its start, which runs first, and reads
// Viewers for the LED.
type relayPart struct {
	// authorize checks a client's pairing token; nil admits everyone. The
	// board sets it before the relay starts.
	authorize func(token string) error

	r    *relay.Relay
	whep *rwebrtc.Server
	log  *slog.Logger
	ln   net.Listener
	done chan error
	ptr  atomic.Pointer[relay.Relay]
}

// relayConfig is the relay's configuration from the file's [relay] keys
// (and their flags). The call's relay takes the same (docs/config.md).
func relayConfig(r config.Relay) relay.Config {
	rc := relay.DefaultConfig()
	rc.Video.HealthInterval, rc.Video.IdleLimit, rc.Video.Batch = r.HealthCheck, r.IdleLimit, r.Batch
	rc.Video.MaxDelay, rc.Video.Nagle = r.MaxDelay, r.VideoNagle
	rc.Audio.MaxDelay, rc.Audio.Keep = r.AudioMaxDelay, r.AudioKeep
	rc.HealthTimeout, rc.MaxFlushes, rc.FlushWindow = r.HealthTimeout, r.MaxFlushes, r.FlushWindow
	return rc
}

func (p *relayPart) start(ctx context.Context, a *appliance) error {
	cfg := relayConfig(a.cfg.Relay)
	if err := cfg.Validate(); err != nil {
		return err
	}
	if p.authorize != nil {
		cfg.Authorize = p.authorize
	}
	p.log = a.log.With("part", "relay")
	r := relay.New(cfg, p.log)
	if addr := a.cfg.Relay.TCP; addr != "" {
		// The same caps as the HTTP server's (docs/security.md); the relay
		// bounds the handshake's time and size itself.
		ln, err := netguard.Listen(addr, netguard.DefaultLimits())
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
	whep, err := startWHEP(a, r, p.authorize, p.log)
	if err != nil {
		r.Close()
		return err
	}
	p.whep = whep
	p.r = r
	p.ptr.Store(r)
	return nil
}

func (p *relayPart) stop() {
	if p.r == nil {
		return
	}
	p.ptr.Store(nil)
	if p.whep != nil {
		p.whep.Close()
	}
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
