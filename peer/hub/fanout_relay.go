package hub

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/callbox/callbox/capture"
	"github.com/callbox/callbox/peer/proto"
	"github.com/callbox/callbox/relay"
	rwebrtc "github.com/callbox/callbox/relay/webrtc"
	"github.com/coder/websocket"
)

// FanoutRelay is the hub's side of S7: a box whose uplink cannot carry one
// copy per receiver publishes one copy here, and a relay.Relay for that box
// forwards it to every receiver with the same per-client Buffer and Health
// Check policy as the on-device relay (S9-S13).
//
// Unlike a call, this media is RTP, not SRTP: the hub can read it. The box
// chooses this only when FanoutPolicy says its uplink needs it, and only
// receivers holding the token the box hands out may connect.
//
// Routes (under the hub's HTTP server):
//
//	/v1/publish                      WebSocket: signed hello, then one burst per binary message
//	/v1/fanout/<box>/ws/{video,audio} the box's relay, WebSocket transport (docs/protocol.md), ?token=
type FanoutRelay struct {
	hub *Hub
	log *slog.Logger

	mu    sync.Mutex
	rooms map[string]*fanoutRoom
	// phones is where each box's phones away from home take its media
	// (phone_fanout.go).
	phones phoneMedia
}

type fanoutRoom struct {
	relay *relay.Relay
	pub   *relay.Publisher
	token string
	addr  string // the publisher's source address (AddrKey)
	// whep serves the box's phones away from home from this relay while
	// the box says so (phone_fanout.go).
	whep *rwebrtc.Server
	// allowed are the token IDs of the phones paired with the box now
	// (proto.FanoutControl.Allowed; under FanoutRelay.mu); nil until the
	// box sends its list: no phone is admitted before.
	allowed map[string]bool
}

// NewFanoutRelay serves S7 relays for boxes registered with hub (whose
// VerifyHello authenticates the publishers).
func NewFanoutRelay(hub *Hub, log *slog.Logger) *FanoutRelay {
	if log == nil {
		log = slog.Default()
	}
	f := &FanoutRelay{hub: hub, log: log, rooms: map[string]*fanoutRoom{}}
	hub.fanout = f
	return f
}

// Close ends every relay.
func (f *FanoutRelay) Close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for id, r := range f.rooms {
		r.relay.Close()
		delete(f.rooms, id)
	}
}

// Publishing reports whether box has a publish connection (a relay) now.
func (f *FanoutRelay) Publishing(box string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.rooms[box] != nil
}

func (f *FanoutRelay) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/v1/publish" {
		f.publish(w, r)
		return
	}
	// /v1/fanout/<box>/ws/<kind>
	parts := strings.Split(strings.TrimPrefix(r.URL.Path, "/v1/fanout/"), "/")
	if len(parts) != 3 || parts[1] != "ws" || !proto.ValidBoxID(parts[0]) {
		http.NotFound(w, r)
		return
	}
	var kind capture.Kind
	switch parts[2] {
	case "video":
		kind = capture.KindVideo
	case "audio":
		kind = capture.KindAudio
	default:
		http.NotFound(w, r)
		return
	}
	f.mu.Lock()
	room := f.rooms[parts[0]]
	f.mu.Unlock()
	if room == nil {
		http.Error(w, "box is not publishing", http.StatusNotFound)
		return
	}
	room.relay.WebSocketHandler(kind).ServeHTTP(w, r)
}

func (f *FanoutRelay) publish(w http.ResponseWriter, r *http.Request) {
	c, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	defer c.CloseNow()
	c.SetReadLimit(proto.MaxMessageSize)
	ctx := r.Context()
	hctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	_, b, err := c.Read(hctx)
	cancel()
	if err != nil {
		return
	}
	hello, err := proto.ParseMessage(b)
	if err == nil {
		err = f.hub.VerifyHello(&hello)
	}
	addr := AddrKey(r.RemoteAddr)
	if err == nil && !f.hub.HasPairing(hello.Box) && !f.phones.recent(hello.Box) {
		// The relay carries a box's media to its paired boxes, or to its
		// phones away from home: a box with neither has no receivers, and
		// the hub is no free relay.
		err = fmt.Errorf("%w: %s has no pairing and no phone away from home; fan-out is for paired boxes and phones", proto.ErrNotPaired, hello.Box)
	}
	if err == nil {
		f.mu.Lock()
		n := 0
		for id, room := range f.rooms {
			if room.addr == addr && id != hello.Box {
				n++
			}
		}
		f.mu.Unlock()
		if n >= f.hub.cfg.Limits.AddrPublishers {
			err = fmt.Errorf("%w: %d fan-out publications from %s already", ErrLimited, n, addr)
		}
	}
	if err != nil {
		f.log.Warn("publish refused", "remote", r.RemoteAddr, "err", err)
		m, _ := json.Marshal(errorMessage(proto.TypeHello, err))
		_ = c.Write(ctx, websocket.MessageText, m)
		c.Close(websocket.StatusPolicyViolation, "refused")
		return
	}
	var tok [16]byte
	if _, err := rand.Read(tok[:]); err != nil {
		return
	}
	room := &fanoutRoom{token: hex.EncodeToString(tok[:]), addr: addr}
	cfg := relay.DefaultConfig()
	cfg.Authorize = func(token string) error {
		if subtle.ConstantTimeCompare([]byte(token), []byte(room.token)) != 1 {
			return errors.New("peer: wrong fan-out token")
		}
		return nil
	}
	room.relay = relay.New(cfg, f.log.With("fanout", hello.Box))
	if room.pub, err = room.relay.NewPublisher(hello.Box); err != nil {
		room.relay.Close()
		return
	}
	if room.whep, err = f.newPhoneWHEP(room.relay, hello.Box); err != nil {
		f.log.Warn("fan-out: no WebRTC for phones", "box", hello.Box, "err", err)
		room.relay.Close()
		return
	}
	// A phone joining the hub's relay needs a keyframe: the box makes one.
	keyReq := make(chan struct{}, 1)
	room.pub.OnKeyframeRequest(func() {
		select {
		case keyReq <- struct{}{}:
		default:
		}
	})
	f.mu.Lock()
	if old := f.rooms[hello.Box]; old != nil {
		old.relay.Close() // a box publishes once; a new connection replaces the old
	}
	f.rooms[hello.Box] = room
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		if f.rooms[hello.Box] == room {
			delete(f.rooms, hello.Box)
		}
		f.mu.Unlock()
		f.phones.set(hello.Box, proto.PhonesDirect, false)
		room.whep.Close()
		room.relay.Close()
	}()
	ans, _ := json.Marshal(proto.Message{Type: proto.TypeFanout, Box: hello.Box, Token: room.token, URL: "/v1/fanout/" + hello.Box + "/ws/"})
	if err := c.Write(ctx, websocket.MessageText, ans); err != nil {
		return
	}
	f.log.Info("fan-out publisher", "box", hello.Box, "remote", r.RemoteAddr)
	cctx, stop := context.WithCancel(ctx)
	defer stop()
	go f.phoneControl(cctx, c, room, keyReq)
	pkts := make([][]byte, 0, 64)
	wantHub := false
	for {
		typ, msg, err := c.Read(ctx)
		if err != nil {
			return
		}
		if typ == websocket.MessageText {
			ctl, err := proto.ParseFanoutControl(msg)
			if err != nil {
				f.log.Warn("fan-out: bad control message", "box", hello.Box, "err", err)
				continue
			}
			if ctl.AllowedSet {
				f.setAllowed(hello.Box, room, ctl.Allowed)
			}
			if ctl.Phones != "" {
				wantHub = ctl.Phones == proto.PhonesHub
				f.log.Info("fan-out: the box moves its phones", "box", hello.Box, "to", ctl.Phones)
				f.phones.set(hello.Box, ctl.Phones, room.relay.Publishing(capture.CodecH264))
			}
			continue
		}
		if typ != websocket.MessageBinary {
			continue
		}
		burst, err := proto.ParseBurst(msg, pkts)
		if err != nil {
			f.log.Warn("fan-out: bad burst", "box", hello.Box, "err", err)
			continue
		}
		if err := room.pub.Publish(burst); err != nil && !errors.Is(err, relay.ErrClosed) {
			f.log.Warn("fan-out: burst refused", "box", hello.Box, "err", err)
		}
		if wantHub && burst.Kind == capture.KindVideo {
			// The phones are told to come once there is video to give them.
			f.phones.set(hello.Box, proto.PhonesHub, true)
		}
	}
}
