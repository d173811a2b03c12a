package box

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/callbox/callbox/capture"
	"github.com/callbox/callbox/peer/proto"
	"github.com/coder/websocket"
)

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
func PublishToHub(ctx context.Context, hubURL string, id *proto.Identity, hc *http.Client) (*FanoutPublisher, error) {
	u, err := url.Parse(hubURL)
	if err != nil {
		return nil, fmt.Errorf("peer: hub URL: %w", err)
	}
	u.Path, u.RawQuery = "/v1/publish", ""
	conn, _, err := websocket.Dial(ctx, u.String(), &websocket.DialOptions{HTTPClient: hc})
	if err != nil {
		return nil, fmt.Errorf("peer: publish to %s: %w", u, err)
	}
	conn.SetReadLimit(proto.MaxMessageSize)
	nonce := make([]byte, proto.NonceSize)
	if _, err := rand.Read(nonce); err != nil {
		conn.CloseNow()
		return nil, err
	}
	hello := proto.NewHello(id, "", time.Now().UnixMilli(), nonce)
	if err := writeMsg(ctx, conn, &hello); err != nil {
		conn.CloseNow()
		return nil, err
	}
	_, b, err := conn.Read(ctx)
	if err != nil {
		conn.CloseNow()
		return nil, fmt.Errorf("peer: publish answer: %w", err)
	}
	m, err := proto.ParseMessage(b)
	if err == nil && m.Type == proto.TypeError {
		err = fmt.Errorf("%w: publish: %s", proto.ErrHub, m.Error)
	} else if err == nil && (m.Type != proto.TypeFanout || m.Box != id.ID) {
		err = fmt.Errorf("%w: publish answered with %s", proto.ErrBadMessage, m.Type)
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
	p.buf = proto.AppendBurst(p.buf[:0], &b)
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

// SendControl sends a control message to the hub's relay (where the
// box's phones should take the media: proto.FanoutControl.Phones).
func (p *FanoutPublisher) SendControl(ctx context.Context, c proto.FanoutControl) error {
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.conn.Write(ctx, websocket.MessageText, b); err != nil {
		return fmt.Errorf("peer: publish control: %w", err)
	}
	return nil
}

// ReadControl reads the hub's control messages (keyframe requests, the
// phones' sessions on its relay) and hands each to f until the
// connection ends; it returns why. Run it once per publisher: the
// connection's close and ping frames are read here too.
func (p *FanoutPublisher) ReadControl(ctx context.Context, f func(proto.FanoutControl)) error {
	for {
		typ, b, err := p.conn.Read(ctx)
		if err != nil {
			return err
		}
		if typ != websocket.MessageText {
			continue
		}
		c, err := proto.ParseFanoutControl(b)
		if err != nil {
			continue // a newer hub's message: nothing for this box
		}
		f(c)
	}
}
