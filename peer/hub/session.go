package hub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/callbox/callbox/peer/proto"
	"github.com/coder/websocket"
)

// errorMessage turns an error into the message sent to the box.
func errorMessage(ref string, err error) proto.Message {
	return proto.Message{Type: proto.TypeError, Ref: ref, Error: err.Error()}
}

// ServeHTTP upgrades to a WebSocket and runs one box's session: a signed
// hello first, then requests until either side hangs up.
//
// Memory per connected box is what bounds a hub (50,000 boxes in under
// 1 GB, docs/hub.md), so an idle session holds no goroutine but its one
// reader: the registration (JSON, signature check, store calls, which grow
// a goroutine's stack) runs on the HTTP handler's goroutine, which then
// returns, and the read loop starts on a fresh, small stack; the writer
// goroutine exists only while messages are queued for the box.
func (h *Hub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c, err := websocket.Accept(smallBufWriter{w}, r, &websocket.AcceptOptions{CompressionMode: websocket.CompressionDisabled})
	if err != nil {
		return // Accept has answered the request
	}
	c.SetReadLimit(proto.MaxMessageSize)
	// Not r.Context(): the server cancels it when this handler returns,
	// and the session outlives the handler.
	ctx, cancel := context.WithCancel(context.Background())
	q := &sendQueue{c: c, ctx: ctx, cancel: cancel}
	s := &Session{
		Addr:  AddrKey(r.RemoteAddr),
		Send:  q.send,
		Close: cancel,
		// Close code 1012 (service restart) tells the box to reconnect at
		// once; Close waits for the box's answer, so not under any lock.
		drain: func() { go c.Close(websocket.StatusServiceRestart, "hub instance draining: reconnect") },
	}
	remote := r.RemoteAddr
	hctx, hcancel := context.WithTimeout(ctx, 10*time.Second)
	_, b, err := c.Read(hctx)
	hcancel()
	if err != nil {
		cancel()
		c.CloseNow()
		return
	}
	hello, err := proto.ParseMessage(b)
	var welcome proto.Message
	if err == nil {
		welcome, err = h.Register(s, &hello)
	}
	if err != nil {
		h.cfg.Log.Warn("registration refused", "remote", remote, "err", err)
		writeLast(c, errorMessage(proto.TypeHello, err))
		c.Close(websocket.StatusPolicyViolation, "registration refused")
		cancel()
		return
	}
	h.cfg.Log.Debug("box registered", "box", s.Box, "name", hello.Name, "remote", remote, "peers", len(welcome.Peers))
	go h.readLoop(ctx, c, s)
}

// readLoop handles one registered box's messages until it hangs up.
func (h *Hub) readLoop(ctx context.Context, c *websocket.Conn, s *Session) {
	defer c.CloseNow()
	defer s.Close()
	defer h.Unregister(s)
	for {
		_, b, err := c.Read(ctx)
		if err != nil {
			h.cfg.Log.Debug("box disconnected", "box", s.Box, "err", err)
			return
		}
		m, err := proto.ParseMessage(b)
		if err == nil {
			err = h.Handle(s, &m)
		}
		if err != nil {
			if errors.Is(err, errTooManyTries) {
				writeLast(c, errorMessage(m.Type, err))
				c.Close(websocket.StatusPolicyViolation, "too many wrong codes")
				return
			}
			_ = s.Send(errorMessage(m.Type, err))
		}
	}
}

// sendQueue holds the messages for one box. The hub never waits for a
// box's socket while holding its lock: send only queues, and a writer
// goroutine, started when the queue stops being empty and gone when it is
// empty again, writes them in order. A box too slow to take its messages
// is hung up on instead.
type sendQueue struct {
	c      *websocket.Conn
	ctx    context.Context
	cancel context.CancelFunc

	mu      sync.Mutex
	q       [][]byte
	writing bool
}

// maxQueued is how many messages may wait for a box before it counts as
// not reading.
const maxQueued = 64

func (q *sendQueue) send(m proto.Message) error {
	b, err := json.Marshal(&m)
	if err != nil {
		return fmt.Errorf("peer: encode %s: %w", m.Type, err)
	}
	if err := q.ctx.Err(); err != nil {
		return fmt.Errorf("peer: session closed: %w", err)
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.q) >= maxQueued {
		q.cancel()
		return fmt.Errorf("%w: the box does not read its messages", proto.ErrOffline)
	}
	q.q = append(q.q, b)
	if !q.writing {
		q.writing = true
		go q.write()
	}
	return nil
}

func (q *sendQueue) write() {
	for {
		q.mu.Lock()
		if len(q.q) == 0 || q.ctx.Err() != nil {
			q.q = nil // the backing array too: an idle box holds nothing
			q.writing = false
			q.mu.Unlock()
			return
		}
		b := q.q[0]
		q.q[0] = nil
		q.q = q.q[1:]
		q.mu.Unlock()
		wctx, cancel := context.WithTimeout(q.ctx, 5*time.Second)
		err := q.c.Write(wctx, websocket.MessageText, b)
		cancel()
		if err != nil {
			q.cancel()
		}
	}
}

// writeLast writes a final message directly (not through the queue), so it
// is on the wire before the connection closes.
func writeLast(c *websocket.Conn, m proto.Message) {
	b, err := json.Marshal(&m)
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = c.Write(ctx, websocket.MessageText, b)
}
