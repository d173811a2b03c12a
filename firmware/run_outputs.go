package firmware

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"

	"github.com/callbox/callbox/board"
	"github.com/callbox/callbox/board/config"
	"github.com/callbox/callbox/board/pairing"
	"github.com/callbox/callbox/capture"
	"github.com/callbox/callbox/integrations/homeassistant"
	"github.com/callbox/callbox/outputs/access"
	"github.com/callbox/callbox/outputs/rtsp"
	"github.com/callbox/callbox/outputs/snapshot"
	"github.com/callbox/callbox/relay"
)

// outputsPart is the box in the tools people already run
// (docs/integrations.md): the RTSP server (outputs/rtsp, readers are relay
// clients), GET /snapshot.jpg (outputs/snapshot) and Home Assistant's MQTT
// discovery (integrations/homeassistant). All three take a pairing token
// through one access.Gate, which wire puts in front of the board's pairing
// check for the relay too, so that every token a phone or viewer presents
// is known for RTSP Digest.
type outputsPart struct {
	// Set by wire.
	rtspCfg  config.RTSP
	mqttCfg  config.MQTT
	name     string
	httpAddr string
	log      *slog.Logger
	mux      *http.ServeMux
	gate     *access.Gate
	board    outputsBoard
	relay    outputsRelay
	media    outputsMedia
	page     outputsPage

	rtsp *rtsp.Server
	snap *snapshot.Handler
	ha   *homeassistant.Client
}

// outputsBoard is what the outputs need of the board: its state (Home
// Assistant's sensors), the mute switch and the button presses.
type outputsBoard interface {
	Authorize(token string) error
	status() (board.Status, bool)
	setMuted(on bool)
	onPress(f func(board.Press))
}

// outputsRelay gives the relay RTSP readers join.
type outputsRelay interface {
	current() *relay.Relay
}

// outputsMedia gives the camera's next frame (the snapshot).
type outputsMedia interface {
	nextFrame(ctx context.Context) (capture.VideoFrame, error)
}

// outputsPage names the box on the LAN (the URLs Home Assistant shows).
type outputsPage interface {
	announcedName() string
}

func newOutputsPart(cfg *config.Config, log *slog.Logger, mux *http.ServeMux, b outputsBoard, r outputsRelay, m outputsMedia, pg outputsPage) *outputsPart {
	p := &outputsPart{rtspCfg: cfg.RTSP, mqttCfg: cfg.MQTT, name: cfg.Name, httpAddr: cfg.HTTP, log: log, mux: mux,
		board: b, relay: r, media: m, page: pg}
	if cfg.Pairing.Open {
		p.gate = access.New(nil) // open: everyone
	} else {
		p.gate = access.New(b.Authorize)
	}
	return p
}

// Authorize is the pairing gate for the relay: the board's check, with
// the tokens that pass remembered for RTSP Digest.
func (p *outputsPart) Authorize(token string) error { return p.gate.Check(token) }

// learnToken is told each token a pairing hands out.
func (p *outputsPart) learnToken(token string) { _ = p.gate.Check(token) }

func (p *outputsPart) start(ctx context.Context) error {
	p.snap = snapshot.New(snapshot.SourceFunc(p.media.nextFrame), p.gate, p.log)
	p.mux.Handle("GET "+snapshot.Path, p.snap)

	if addr := p.rtspCfg.Listen; addr != "" && p.relay.current() != nil {
		s, err := rtsp.New(rtsp.Config{Addr: addr, UDPPort: p.rtspCfg.UDPPort, Relay: p.relay.current(), Gate: p.gate, Owner: pairing.Hash, Log: p.log})
		if err != nil {
			// A taken port must not stop the box: the page and the relay
			// still work. Say so.
			p.log.Error("RTSP server off", "addr", addr, "err", err)
		} else {
			p.rtsp = s
			p.log.Info("RTSP server listening", "url", "rtsp://"+s.Addr().String()+"/"+rtsp.Path, "udp_port", p.rtspCfg.UDPPort)
		}
	}

	if m := p.mqttCfg; m.Broker != "" {
		host := p.publicHost()
		web := "http://" + net.JoinHostPort(host, portOf(p.httpAddr, "8080"))
		cfg := homeassistant.Config{
			Broker: m.Broker, Username: m.Username, Password: m.Password, DiscoveryPrefix: m.DiscoveryPrefix,
			NodeID: nodeID(p.name), Name: p.name,
			PageURL: web + "/", SnapshotURL: web + snapshot.Path,
			State: func() homeassistant.State {
				st, _ := p.board.status()
				return homeassistant.State{State: st.State.String(), LED: st.LED.Name, Call: callStateNames[st.Call],
					Viewers: st.Viewers, Muted: st.Muted}
			},
			SetMuted: p.board.setMuted,
			Image:    p.snap.JPEG,
			Log:      p.log,
		}
		if p.rtsp != nil {
			cfg.RTSPURL = "rtsp://" + net.JoinHostPort(host, portOf(p.rtspCfg.Listen, "8554")) + "/" + rtsp.Path
		}
		ha, err := homeassistant.Start(cfg)
		if err != nil {
			p.log.Error("Home Assistant discovery off", "err", err)
		} else {
			p.ha = ha
			p.board.onPress(func(pr board.Press) {
				button, event := pressEvent(pr)
				ha.Press(button, event)
				if pr.Button == board.ButtonB && pr.Gesture == board.Short {
					ha.Press(homeassistant.Doorbell, "ring")
				}
				ha.Changed()
			})
		}
	}
	return nil
}

func (p *outputsPart) stop() {
	if p.ha != nil {
		p.board.onPress(nil)
		p.ha.Close()
	}
	if p.rtsp != nil {
		p.rtsp.Close()
	}
}

// pressEvent names a gesture as Home Assistant's event entities do.
func pressEvent(pr board.Press) (button, event string) {
	if pr.Gesture == board.Both {
		return homeassistant.ButtonBoth, "press"
	}
	button = homeassistant.ButtonA
	if pr.Button == board.ButtonB {
		button = homeassistant.ButtonB
	}
	switch pr.Gesture {
	case board.Long:
		return button, "long_press"
	case board.VeryLong:
		return button, "very_long_press"
	}
	return button, "press"
}

// publicHost is the name other machines reach the box by: its .local name
// when announced, else its first LAN address.
func (p *outputsPart) publicHost() string {
	if n := p.page.announcedName(); n != "" {
		return n
	}
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, ad := range addrs {
			if ipn, ok := ad.(*net.IPNet); ok && ipn.IP.To4() != nil && !ipn.IP.IsLoopback() && !ipn.IP.IsLinkLocalUnicast() {
				return ipn.IP.String()
			}
		}
	}
	return "localhost"
}

func portOf(addr, def string) string {
	if _, port, err := net.SplitHostPort(addr); err == nil && port != "" && port != "0" {
		if _, err := strconv.Atoi(port); err == nil {
			return port
		}
	}
	return def
}

// nodeID is the box's stable id for Home Assistant: from its first network
// interface's hardware address (the same across restarts and renames),
// else from its name.
func nodeID(name string) string {
	ifs, _ := net.Interfaces()
	sort.Slice(ifs, func(i, j int) bool { return ifs[i].Name < ifs[j].Name })
	for _, i := range ifs {
		if i.Flags&net.FlagLoopback == 0 && len(i.HardwareAddr) >= 6 {
			return "callbox_" + hex.EncodeToString(i.HardwareAddr)
		}
	}
	h := sha256.Sum256([]byte(name))
	return "callbox_" + hex.EncodeToString(h[:6])
}

// The other parts' sides of the outputs' interfaces.

func (p *boardPart) status() (board.Status, bool) {
	if p.box == nil {
		return board.Status{}, false
	}
	return p.box.Status(), true
}

func (p *boardPart) setMuted(on bool) {
	if p.box != nil {
		p.box.SetMuted(on)
	}
}

func (p *boardPart) onPress(f func(board.Press)) {
	if p.box != nil {
		p.box.OnPress(f)
	}
}

func (p *relayPart) current() *relay.Relay { return p.ptr.Load() }

// nextFrame is a copy of the camera's next frame, from the pipeline's tap.
func (p *mediaPart) nextFrame(ctx context.Context) (capture.VideoFrame, error) {
	if p.pipe == nil {
		return capture.VideoFrame{}, errors.New("no camera")
	}
	sub := p.pipe.SubscribeVideo(0, 0)
	defer sub.Close()
	return sub.ReadFrame(ctx)
}

// announcedName is the .local name the box announces, "" when it does not.
func (p *pagePart) announcedName() string {
	if p.mdns == nil {
		return ""
	}
	return strings.TrimSuffix(p.mdnsName, ".")
}
