package peer

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
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/callbox/callbox/capture"
	"github.com/callbox/callbox/relay"
	"github.com/coder/websocket"
)

// FanoutHub is the hub's side of S7: a box whose uplink cannot carry one
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
type FanoutHub struct {
	hub *Hub
	log *slog.Logger

	mu    sync.Mutex
	rooms map[string]*fanoutRoom
}

type fanoutRoom struct {
	relay *relay.Relay
	pub   *relay.Publisher
	token string
}

// NewFanoutHub serves S7 relays for boxes registered with hub (whose
// VerifyHello authenticates the publishers).
func NewFanoutHub(hub *Hub, log *slog.Logger) *FanoutHub {
	if log == nil {
		log = slog.Default()
	}
	return &FanoutHub{hub: hub, log: log, rooms: map[string]*fanoutRoom{}}
}

// Close ends every relay.
func (f *FanoutHub) Close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for id, r := range f.rooms {
		r.relay.Close()
		delete(f.rooms, id)
	}
}

// Publishing reports whether box has a publish connection (a relay) now.
func (f *FanoutHub) Publishing(box string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.rooms[box] != nil
}

func (f *FanoutHub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/v1/publish" {
		f.publish(w, r)
		return
	}
	// /v1/fanout/<box>/ws/<kind>
	parts := strings.Split(strings.TrimPrefix(r.URL.Path, "/v1/fanout/"), "/")
	if len(parts) != 3 || parts[1] != "ws" || !ValidBoxID(parts[0]) {
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

func (f *FanoutHub) publish(w http.ResponseWriter, r *http.Request) {
	c, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	defer c.CloseNow()
	c.SetReadLimit(MaxMessageSize)
	ctx := r.Context()
	hctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	_, b, err := c.Read(hctx)
	cancel()
	if err != nil {
		return
	}
	hello, err := ParseMessage(b)
	if err == nil {
		err = f.hub.VerifyHello(&hello)
	}
	if err != nil {
		f.log.Warn("publish refused", "remote", r.RemoteAddr, "err", err)
		m, _ := json.Marshal(errorMessage(TypeHello, err))
		_ = c.Write(ctx, websocket.MessageText, m)
		c.Close(websocket.StatusPolicyViolation, "refused")
		return
	}
	var tok [16]byte
	if _, err := rand.Read(tok[:]); err != nil {
		return
	}
	room := &fanoutRoom{token: hex.EncodeToString(tok[:])}
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
		room.relay.Close()
	}()
	ans, _ := json.Marshal(Message{Type: TypeFanout, Box: hello.Box, Token: room.token, URL: "/v1/fanout/" + hello.Box + "/ws/"})
	if err := c.Write(ctx, websocket.MessageText, ans); err != nil {
		return
	}
	f.log.Info("fan-out publisher", "box", hello.Box, "remote", r.RemoteAddr)
	pkts := make([][]byte, 0, 64)
	for {
		typ, msg, err := c.Read(ctx)
		if err != nil {
			return
		}
		if typ != websocket.MessageBinary {
			continue
		}
		burst, err := ParseBurst(msg, pkts)
		if err != nil {
			f.log.Warn("fan-out: bad burst", "box", hello.Box, "err", err)
			continue
		}
		if err := room.pub.Publish(burst); err != nil && !errors.Is(err, relay.ErrClosed) {
			f.log.Warn("fan-out: burst refused", "box", hello.Box, "err", err)
		}
	}
}

// FanoutPublisher is the box's side: one connection to the hub's relay
// carrying one copy of the box's media.
type FanoutPublisher struct {
	conn  *websocket.Conn
	token string
	base  string // ws(s)://host/v1/fanout/<box>/ws/
	buf   []byte
	sent  uint64
	mu    sync.Mutex
}

// PublishToHub opens a publish connection. hubURL is the box's signalling
// URL (ws://host:port/v1/ws); the publish endpoint is on the same server.
func PublishToHub(ctx context.Context, hubURL string, id *Identity, hc *http.Client) (*FanoutPublisher, error) {
	u, err := url.Parse(hubURL)
	if err != nil {
		return nil, fmt.Errorf("peer: hub URL: %w", err)
	}
	u.Path, u.RawQuery = "/v1/publish", ""
	conn, _, err := websocket.Dial(ctx, u.String(), &websocket.DialOptions{HTTPClient: hc})
	if err != nil {
		return nil, fmt.Errorf("peer: publish to %s: %w", u, err)
	}
	conn.SetReadLimit(MaxMessageSize)
	nonce := make([]byte, nonceSize)
	if _, err := rand.Read(nonce); err != nil {
		conn.CloseNow()
		return nil, err
	}
	hello := NewHello(id, "", time.Now().UnixMilli(), nonce)
	if err := writeMsg(ctx, conn, &hello); err != nil {
		conn.CloseNow()
		return nil, err
	}
	_, b, err := conn.Read(ctx)
	if err != nil {
		conn.CloseNow()
		return nil, fmt.Errorf("peer: publish answer: %w", err)
	}
	m, err := ParseMessage(b)
	if err == nil && m.Type == TypeError {
		err = fmt.Errorf("%w: publish: %s", ErrHub, m.Error)
	} else if err == nil && (m.Type != TypeFanout || m.Box != id.ID) {
		err = fmt.Errorf("%w: publish answered with %s", ErrBadMessage, m.Type)
	}
	if err != nil {
		conn.CloseNow()
		return nil, err
	}
	u.Path = m.URL
	return &FanoutPublisher{conn: conn, token: m.Token, base: u.String()}, nil
}

// Token is what a receiver presents to the hub's relay (the box hands it
// to its receivers over signalling).
func (p *FanoutPublisher) Token() string { return p.token }

// ViewerURL is the relay's WebSocket URL for one media kind.
func (p *FanoutPublisher) ViewerURL(k capture.Kind) string {
	return p.base + k.String() + "?token=" + url.QueryEscape(p.token)
}

// Publish sends one burst (one copy, whatever the number of receivers).
func (p *FanoutPublisher) Publish(ctx context.Context, b capture.Burst) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.buf = AppendBurst(p.buf[:0], &b)
	if err := p.conn.Write(ctx, websocket.MessageBinary, p.buf); err != nil {
		return fmt.Errorf("peer: publish: %w", err)
	}
	p.sent += uint64(len(p.buf))
	return nil
}

// BytesSent is what the box has uploaded on this connection.
func (p *FanoutPublisher) BytesSent() uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.sent
}

// Close ends the publication (the hub closes the relay and its receivers).
func (p *FanoutPublisher) Close() error {
	return p.conn.Close(websocket.StatusNormalClosure, "done")
}
