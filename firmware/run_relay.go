package firmware

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"

	"github.com/callbox/callbox/board/config"
	"github.com/callbox/callbox/board/pairing"
	"github.com/callbox/callbox/capture"
	"github.com/callbox/callbox/internal/netguard"
	"github.com/callbox/callbox/relay"
	rwebrtc "github.com/callbox/callbox/relay/webrtc"
	pion "github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// relayPart is the appliance's on-device relay (package relay): the TCP
// listener, the WebSocket paths /ws/video and /ws/audio, and /metrics on the
// HTTP server. It is the media pipeline's sink (Publish, keyframe
// requests) and tells the board how many phones watch (Viewers) and cuts
// off revoked ones (DisconnectAll).
type relayPart struct {
	// Set by wire.
	cfg config.Relay
	log *slog.Logger
	mux *http.ServeMux
	// auth is the pairing gate (the board); nil admits everyone.
	auth authorizer

	r    *relay.Relay
	whep *rwebrtc.Server
	ln   net.Listener
	done chan error
	ptr  atomic.Pointer[relay.Relay]
	// The bytes of what one WebRTC phone receives at full rate: H.264,
	// and Opus or PCMU (S7's stream bitrate, run_fanout.go).
	h264Bytes, opusBytes, pcmuBytes atomic.Uint64
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

// authorizer is the pairing gate: nil when token belongs to a paired phone.
type authorizer interface {
	Authorize(token string) error
}

func (p *relayPart) start(ctx context.Context) error {
	cfg := relayConfig(p.cfg)
	if err := cfg.Validate(); err != nil {
		return err
	}
	var authorize func(string) error
	if p.auth != nil {
		authorize = p.auth.Authorize
		cfg.Authorize = authorize
		cfg.Owner = pairing.Hash // a phone's sessions are its token's: unpairing it ends them
	}
	r := relay.New(cfg, p.log)
	if addr := p.cfg.TCP; addr != "" {
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
		p.log.Info("relay listening", "addr", ln.Addr().String())
	}
	p.mux.Handle("/ws/video", r.WebSocketHandler(capture.KindVideo))
	p.mux.Handle("/ws/audio", r.WebSocketHandler(capture.KindAudio))
	// Per-viewer addresses: for the box itself and paired phones only.
	p.mux.Handle("/metrics", localOrPaired(promhttp.HandlerFor(r.Registry(), promhttp.HandlerOpts{}), p.auth))
	whep, err := startWHEP(p.mux, r, authorize, cfg.Owner, p.log)
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
		if len(b.Packets) > 0 && len(b.Packets[0]) > 1 {
			var c *atomic.Uint64
			switch b.Packets[0][1] & 0x7f {
			case capture.PayloadTypeH264:
				c = &p.h264Bytes
			case capture.PayloadTypeOpus:
				c = &p.opusBytes
			case capture.PayloadTypePCMU:
				c = &p.pcmuBytes
			}
			if c != nil {
				n := 0
				for _, pkt := range b.Packets {
					n += len(pkt)
				}
				c.Add(uint64(n))
			}
		}
	}
}

// streamBytes is what one WebRTC phone would have received so far at
// full rate: the H.264 video and the audio codec it gets.
func (p *relayPart) streamBytes() uint64 {
	audio := p.pcmuBytes.Load()
	if r := p.ptr.Load(); r != nil && r.PublishingOpus() {
		audio = p.opusBytes.Load()
	}
	return p.h264Bytes.Load() + audio
}

// remoteFeedback is the remote phones' congestion feedback (run_fanout.go).
func (p *relayPart) remoteFeedback() rwebrtc.Feedback {
	if p.whep == nil {
		return rwebrtc.Feedback{}
	}
	return p.whep.RemoteFeedback()
}

// liveRelay is the relay, nil before start and after stop.
func (p *relayPart) liveRelay() *relay.Relay { return p.ptr.Load() }

// Viewers is the number of connected clients (for the board's LED).
func (p *relayPart) Viewers() int {
	if r := p.ptr.Load(); r != nil {
		return r.Viewers()
	}
	return 0
}

// DisconnectAll ends every client's connection (a factory reset revoked
// their pairing); it returns how many.
func (p *relayPart) DisconnectAll(reason string) int {
	if r := p.ptr.Load(); r != nil {
		return r.DisconnectAll(reason)
	}
	return 0
}

// disconnectPhone ends the sessions of one unpaired phone (owner: its
// token's hash): its TCP, WebSocket and WebRTC clients, LAN and remote.
func (p *relayPart) disconnectPhone(hash string) int {
	n := 0
	if p.whep != nil {
		n += p.whep.CloseOwner(hash, "unpaired")
	}
	if r := p.ptr.Load(); r != nil {
		n += r.DisconnectOwner(hash, "unpaired") // what WebRTC did not already end
	}
	return n
}

// OnKeyframeRequest sets what the relay calls when a client needs a frame a
// decoder can start from (an H.264 encoder forces an IDR).
func (p *relayPart) OnKeyframeRequest(f func()) {
	if r := p.ptr.Load(); r != nil {
		r.OnKeyframeRequest(f)
	}
}

// SetNativeVideo keeps the relay's TCP and WebSocket clients on codec c
// while the box publishes another beside it (relay.SetNativeVideo).
func (p *relayPart) SetNativeVideo(c capture.Codec) {
	if r := p.ptr.Load(); r != nil {
		r.SetNativeVideo(c)
	}
}

// Addr is the TCP listener's address, or nil.
func (p *relayPart) Addr() net.Addr {
	if p.ln == nil {
		return nil
	}
	return p.ln.Addr()
}

// AnswerRemote answers a phone away from home, forwarded by the hub, with
// a session of the relay's WebRTC transport (the same per-client policy as
// the LAN's phones) whose ICE also uses the hub's STUN/TURN.
// It returns the session's ID (for CloseRemote) and the answer.
func (p *relayPart) AnswerRemote(ctx context.Context, remote, offer string, ice []pion.ICEServer, opt rwebrtc.RemoteOptions) (string, string, error) {
	if p.whep == nil || p.ptr.Load() == nil {
		return "", "", relay.ErrClosed
	}
	return p.whep.AnswerRemoteWith(ctx, remote, offer, ice, opt)
}

// CloseRemote ends a remote phone's session (the phone's DELETE).
func (p *relayPart) CloseRemote(id string) bool {
	if p.whep == nil {
		return false
	}
	return p.whep.CloseSession(id)
}
