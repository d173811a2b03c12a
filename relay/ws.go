package relay

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"

	"github.com/callbox/callbox/capture"
	"github.com/callbox/callbox/relay/wire"
	"github.com/coder/websocket"
)

// WebSocketHandler serves one media kind over WebSocket (docs/protocol.md):
// mount it at /ws/video and /ws/audio. The token is the client's first
// message, {"token":"..."}, when the URL says ?auth=message (the page: a
// token in a URL ends up in histories and proxy logs), else the query
// parameter "token" (scripts, `callbox view`). Every binary message from
// the relay is one RTP packet; every binary message from the client one
// RTCP packet.
func (r *Relay) WebSocketHandler(kind capture.Kind) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if kind != capture.KindVideo && kind != capture.KindAudio {
			http.Error(w, "unknown media kind", http.StatusNotFound)
			return
		}
		hw := &hijackWriter{ResponseWriter: w}
		c, err := websocket.Accept(hw, req, nil)
		if err != nil {
			return // Accept has answered the request
		}
		ctx := context.Background()
		owner := ""
		if r.cfg.Authorize != nil {
			token, err := r.wsToken(c, req)
			owner = r.ownerOf(token)
			if err == nil {
				err = r.cfg.Authorize(token)
			}
			if err != nil {
				r.log.Info("relay: refused client", "remote", req.RemoteAddr, "err", err)
				_ = c.Write(ctx, websocket.MessageText, []byte(`{"error":"unpaired"}`))
				_ = c.Close(websocket.StatusPolicyViolation, "unpaired")
				return
			}
		}
		c.SetReadLimit(wire.MaxFrame)
		t := &wsTransport{c: c, raw: hw.conn, addr: req.RemoteAddr}
		s := r.newSession(kind, t)
		s.owner = owner
		if err := r.add(s); err != nil {
			msg := `{"error":"busy"}`
			if errors.Is(err, ErrClosed) {
				msg = `{"error":"closed"}`
			}
			_ = c.Write(ctx, websocket.MessageText, []byte(msg))
			_ = c.Close(websocket.StatusTryAgainLater, "busy")
			return
		}
		hello := wire.AcceptFor(kind, r.codec(), r.cfg.kind(kind).HealthInterval).AppendJSON(nil)
		if err := c.Write(ctx, websocket.MessageText, hello); err != nil {
			s.end(err)
		}
		r.activate(s)
		s.run()
	})
}

// maxTokenMessage bounds the first message that carries the token.
const maxTokenMessage = 1024

// wsToken is the client's token: from its first message when the URL asks
// for that (?auth=message), read within the handshake timeout, else from
// the query.
func (r *Relay) wsToken(c *websocket.Conn, req *http.Request) (string, error) {
	q := req.URL.Query()
	if q.Get("auth") != "message" {
		return q.Get("token"), nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), r.cfg.HandshakeTimeout)
	defer cancel()
	c.SetReadLimit(maxTokenMessage)
	typ, msg, err := c.Read(ctx)
	if err != nil {
		return "", fmt.Errorf("no token message: %w", err)
	}
	var m struct {
		Token string `json:"token"`
	}
	if typ != websocket.MessageText || json.Unmarshal(msg, &m) != nil {
		return "", errors.New("malformed token message")
	}
	return m.Token, nil
}

// hijackWriter remembers the hijacked connection so that an ejected
// WebSocket client is closed with SO_LINGER 0 like a TCP one.
type hijackWriter struct {
	http.ResponseWriter
	mu   sync.Mutex
	conn net.Conn
}

func (h *hijackWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	hj, ok := h.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("relay: response writer cannot hijack")
	}
	c, rw, err := hj.Hijack()
	h.mu.Lock()
	h.conn = c
	h.mu.Unlock()
	return c, rw, err
}

// Unwrap lets http.ResponseController reach the original writer.
func (h *hijackWriter) Unwrap() http.ResponseWriter { return h.ResponseWriter }

// wsTransport sends each RTP packet as one binary message.
type wsTransport struct {
	c     *websocket.Conn
	raw   net.Conn
	addr  string
	pendU []*unit // what finish writes
	pendC []byte
}

func (t *wsTransport) write(units []*unit, ctrl []byte) error {
	ctx := context.Background() // the monitor's abort bounds a stuck write
	if len(ctrl) > 0 {
		if err := t.c.Write(ctx, websocket.MessageBinary, ctrl); err != nil {
			return err
		}
	}
	for _, u := range units {
		for i := 0; i < u.msgs; i++ {
			if err := t.c.Write(ctx, websocket.MessageBinary, u.packet(i)); err != nil {
				return err
			}
		}
	}
	return nil
}

// tryWrite leaves the write to finish: coder/websocket has no
// non-blocking write.
func (t *wsTransport) tryWrite(units []*unit, ctrl []byte) (bool, error) {
	t.pendU, t.pendC = units, ctrl
	return false, nil
}

func (t *wsTransport) finish() error {
	err := t.write(t.pendU, t.pendC)
	t.pendU, t.pendC = nil, nil
	return err
}

func (t *wsTransport) read(buf []byte) ([]byte, error) {
	typ, rd, err := t.c.Reader(context.Background())
	if err != nil {
		return nil, err
	}
	if typ != websocket.MessageBinary {
		return nil, fmt.Errorf("%w: text message from client", ErrBadRTCP)
	}
	n := 0
	for {
		m, err := rd.Read(buf[n:])
		n += m
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		if n == len(buf) {
			return nil, fmt.Errorf("%w: message longer than %d bytes", ErrBadRTCP, len(buf))
		}
	}
	if n == 0 {
		return nil, fmt.Errorf("%w: empty message", ErrBadRTCP)
	}
	return buf[:n], nil
}

func (t *wsTransport) abort() {
	if t.raw != nil {
		abort(t.raw)
	}
	_ = t.c.CloseNow()
}

func (t *wsTransport) remote() string { return t.addr }
