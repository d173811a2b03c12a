// Package viewer is a client of the relay (docs/protocol.md): it connects
// over TCP or WebSocket, receives RTP packets, sends the Health Checks the
// relay paces it by, estimates the box's clock offset with CBTQ/CBTR, and
// tracks whether frames arrive whole. `callbox view`, the relay's tests and
// the relay benchmark all use it, so they measure the same thing.
package viewer

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/callbox/callbox/capture"
	"github.com/callbox/callbox/relay/wire"
	"github.com/coder/websocket"
)

// Options tune a Client.
type Options struct {
	Token   string
	Session string
	// Throttle limits reading to this many bytes per second (0: no limit),
	// like a phone on weak Wi-Fi. The relay sees it as a slow link.
	Throttle int
	// Limiter, when set, is shared with other connections instead of
	// Throttle's own.
	Limiter *Limiter
	// RecvBuffer sets SO_RCVBUF on TCP (0: the system's default).
	RecvBuffer int
	// TimeQueryEvery is how often the client sends CBTQ (0: every 2 s;
	// negative: never).
	TimeQueryEvery time.Duration
}

// Client is one connection to the relay for one media kind. Next must be
// called from one goroutine; Offset and Close from any.
type Client struct {
	kind   capture.Kind
	accept wire.Accept
	opt    Options

	raw net.Conn
	br  *bufio.Reader // TCP
	ws  *websocket.Conn

	buf      []byte
	wmu      sync.Mutex
	wbuf     []byte
	received uint32
	sinceHC  int
	hcSent   uint64
	lastTQ   time.Time

	omu     sync.Mutex
	offset  time.Duration // box clock minus ours
	bestRTT time.Duration
	haveOff bool
	minUp   time.Duration // smallest box time minus our send time: offset + uplink delay
}

// Dial connects to addr: "host:port" for TCP, "ws://host:port" (the
// /ws/<kind> path is added) or a full ws:// URL for WebSocket.
func Dial(ctx context.Context, addr string, kind capture.Kind, opt Options) (*Client, error) {
	if kind != capture.KindVideo && kind != capture.KindAudio {
		return nil, fmt.Errorf("viewer: kind %d", kind)
	}
	c := &Client{kind: kind, opt: opt, buf: make([]byte, wire.MaxFrame)}
	if opt.TimeQueryEvery == 0 {
		c.opt.TimeQueryEvery = 2 * time.Second
	}
	var err error
	if strings.HasPrefix(addr, "ws://") || strings.HasPrefix(addr, "wss://") {
		err = c.dialWS(ctx, addr)
	} else {
		err = c.dialTCP(ctx, addr)
	}
	if err != nil {
		return nil, err
	}
	return c, nil
}

func (c *Client) dialer() *net.Dialer {
	d := &net.Dialer{}
	if c.opt.RecvBuffer > 0 {
		d.Control = setRecvBuffer(c.opt.RecvBuffer)
	}
	return d
}

func (c *Client) limiter() *Limiter {
	if c.opt.Limiter != nil {
		return c.opt.Limiter
	}
	if c.opt.Throttle > 0 {
		return NewLimiter(c.opt.Throttle)
	}
	return nil
}

func (c *Client) dialTCP(ctx context.Context, addr string) error {
	conn, err := c.dialer().DialContext(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("viewer: %w", err)
	}
	c.raw = conn
	var r io.Reader = conn
	if l := c.limiter(); l != nil {
		r = newThrottle(conn, l)
	}
	c.br = bufio.NewReaderSize(r, 64<<10)
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	} else {
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	}
	hello, _ := wire.AppendFrame(nil, wire.Hello{Kind: c.kind, Token: c.opt.Token, Session: c.opt.Session}.Append(nil))
	if _, err := conn.Write(hello); err != nil {
		conn.Close()
		return fmt.Errorf("viewer: handshake: %w", err)
	}
	body, err := wire.ReadFrame(c.br, c.buf)
	if err != nil {
		conn.Close()
		return fmt.Errorf("viewer: handshake answer: %w", err)
	}
	c.accept, err = wire.ParseAccept(body, c.kind)
	if err != nil {
		conn.Close()
		return fmt.Errorf("viewer: %w", err)
	}
	_ = conn.SetDeadline(time.Time{})
	return nil
}

func (c *Client) dialWS(ctx context.Context, addr string) error {
	u, err := url.Parse(addr)
	if err != nil {
		return fmt.Errorf("viewer: %w", err)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/ws/" + c.kind.String()
	}
	if c.opt.Token != "" {
		q := u.Query()
		q.Set("token", c.opt.Token)
		u.RawQuery = q.Encode()
	}
	d := c.dialer()
	tr := &http.Transport{DialContext: func(ctx context.Context, network, a string) (net.Conn, error) {
		conn, err := d.DialContext(ctx, network, a)
		if err != nil {
			return nil, err
		}
		c.raw = conn
		if l := c.limiter(); l != nil {
			return &throttledConn{Conn: conn, r: newThrottle(conn, l)}, nil
		}
		return conn, nil
	}}
	ws, _, err := websocket.Dial(ctx, u.String(), &websocket.DialOptions{HTTPClient: &http.Client{Transport: tr}})
	if err != nil {
		return fmt.Errorf("viewer: %w", err)
	}
	ws.SetReadLimit(wire.MaxFrame)
	typ, msg, err := ws.Read(ctx)
	if err != nil {
		ws.CloseNow()
		return fmt.Errorf("viewer: hello: %w", err)
	}
	var h struct {
		Kind, Codec, Error string
		PT, Clock, HC      int
	}
	if typ != websocket.MessageText || json.Unmarshal(msg, &h) != nil {
		ws.CloseNow()
		return fmt.Errorf("viewer: hello: %w: %.40q", wire.ErrMalformed, msg)
	}
	if h.Error != "" {
		ws.CloseNow()
		return fmt.Errorf("viewer: %w", &wire.RefusedError{Reason: h.Error})
	}
	if h.HC < 1 {
		ws.CloseNow()
		return fmt.Errorf("viewer: hello: %w: hc %d", wire.ErrMalformed, h.HC)
	}
	c.ws = ws
	c.accept = wire.Accept{Kind: c.kind, HealthEvery: h.HC, PayloadType: uint8(h.PT), ClockRate: h.Clock, Codec: h.Codec}
	return nil
}

// Accept is the relay's answer to the handshake (codec, clock, hc).
func (c *Client) Accept() wire.Accept { return c.accept }

// HealthChecks is the number of Health Checks sent.
func (c *Client) HealthChecks() uint64 {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.hcSent
}

// maxUplink bounds the uplink one-way delay the offset estimate assumes: a
// LAN's base delay (Wi-Fi, a few hops) is below it.
const maxUplink = 2 * time.Millisecond

// Offset estimates the box's clock minus this machine's from the CBTQ/CBTR
// exchanges: the smallest uplink sample less half the smallest round trip
// (at most maxUplink); ok is false before the first.
func (c *Client) Offset() (d time.Duration, ok bool) {
	c.omu.Lock()
	defer c.omu.Unlock()
	return c.offset, c.haveOff
}

// Next returns the next RTP packet, valid until the following call. Before
// it reads, it sends the Health Check owed for the packets returned so far
// (every hc of them) and, now and then, a time query.
func (c *Client) Next(ctx context.Context) ([]byte, error) {
	for {
		if c.sinceHC >= c.accept.HealthEvery {
			if err := c.send(wire.AppendHealthCheck(c.wbuf[:0], uint32(c.sinceHC), c.received)); err != nil {
				return nil, err
			}
			c.hcSent++
			c.sinceHC = 0
		}
		if now := time.Now(); c.opt.TimeQueryEvery > 0 && now.Sub(c.lastTQ) >= c.opt.TimeQueryEvery {
			c.lastTQ = now
			if err := c.send(wire.AppendTimeQuery(c.wbuf[:0], wire.NTP(now))); err != nil {
				return nil, err
			}
		}
		msg, err := c.read(ctx)
		if err != nil {
			return nil, err
		}
		// RTCP packet types are 200..211 (RFC 5761 section 4); RTP payload
		// types with the marker bit never fall there for callbox's streams.
		if len(msg) >= 2 && msg[1] >= 200 && msg[1] <= 211 {
			c.control(msg, time.Now())
			continue
		}
		c.received++
		c.sinceHC++
		return msg, nil
	}
}

func (c *Client) read(ctx context.Context) ([]byte, error) {
	if c.ws == nil {
		return wire.ReadFrame(c.br, c.buf)
	}
	for {
		typ, rd, err := c.ws.Reader(ctx)
		if err != nil {
			return nil, err
		}
		n, err := io.ReadFull(rd, c.buf)
		if err != io.ErrUnexpectedEOF && err != nil {
			return nil, fmt.Errorf("viewer: message: %w", err)
		}
		if typ == websocket.MessageBinary && n > 0 {
			return c.buf[:n], nil
		}
	}
}

func (c *Client) control(msg []byte, now time.Time) {
	for len(msg) > 0 {
		ctl, rest, err := wire.ParseControl(msg)
		if err != nil {
			return
		}
		msg = rest
		if ctl.Type != wire.ControlTimeReply {
			continue
		}
		t0 := wire.FromNTP(ctl.ClientTime)
		rtt := now.Sub(t0)
		if rtt < 0 || rtt > 10*time.Second {
			continue
		}
		// The box stamps a query when it reads it, so boxTime - t0 is the
		// offset plus the uplink's one-way delay. The uplink carries only
		// RTCP and is never the congested direction; the downlink is, and
		// on a saturated link every reply waits in its queue, so halving
		// even the smallest round trip (NTP's symmetric guess) reads the
		// box's clock tens to hundreds of milliseconds early. The estimate
		// is the smallest uplink sample, less half the smallest round trip
		// but at most maxUplink: exact on a quiet symmetric link, within
		// the uplink's base delay on a congested one.
		up := wire.FromNTP(ctl.BoxTime).Sub(t0)
		c.omu.Lock()
		if !c.haveOff || up < c.minUp {
			c.minUp = up
		}
		if !c.haveOff || rtt < c.bestRTT {
			c.bestRTT = rtt
		}
		c.offset, c.haveOff = c.minUp-min(c.bestRTT/2, maxUplink), true
		c.omu.Unlock()
	}
}

func (c *Client) send(rtcp []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.wbuf = rtcp[:0]
	if c.ws != nil {
		return c.ws.Write(context.Background(), websocket.MessageBinary, rtcp)
	}
	var frame [64]byte
	binary.BigEndian.PutUint16(frame[:], uint16(len(rtcp)))
	n := copy(frame[2:], rtcp)
	_, err := c.raw.Write(frame[:2+n])
	return err
}

// Close closes the connection.
func (c *Client) Close() error {
	if c.ws != nil {
		return c.ws.CloseNow()
	}
	return c.raw.Close()
}

// Limiter is a token bucket of bytes per second, shared by the
// connections that read through it (a phone's one radio link carries both
// its video and its audio).
type Limiter struct {
	mu     sync.Mutex
	rate   float64
	tokens float64
	last   time.Time
}

// NewLimiter returns a limiter of rate bytes per second.
func NewLimiter(rate int) *Limiter {
	return &Limiter{rate: float64(rate), last: time.Now()}
}

// chunk is the most a throttled read takes at once: small enough that the
// pace is smooth, as a radio link's would be.
const chunk = 1500

// take waits until at least one byte may be read and returns how many (at
// most max).
func (l *Limiter) take(max int) int {
	for {
		l.mu.Lock()
		now := time.Now()
		l.tokens = min(l.tokens+now.Sub(l.last).Seconds()*l.rate, chunk)
		l.last = now
		if l.tokens >= 1 {
			n := min(max, int(l.tokens))
			l.tokens -= float64(n)
			l.mu.Unlock()
			return n
		}
		wait := time.Duration((chunk/4 - l.tokens) / l.rate * float64(time.Second))
		l.mu.Unlock()
		time.Sleep(wait)
	}
}

// giveBack returns tokens a read did not use.
func (l *Limiter) giveBack(n int) {
	l.mu.Lock()
	l.tokens += float64(n)
	l.mu.Unlock()
}

type throttle struct {
	r io.Reader
	l *Limiter
}

func newThrottle(r io.Reader, l *Limiter) *throttle { return &throttle{r: r, l: l} }

func (t *throttle) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	n := t.l.take(len(p))
	m, err := t.r.Read(p[:n])
	if m < n {
		t.l.giveBack(n - m)
	}
	return m, err
}

type throttledConn struct {
	net.Conn
	r *throttle
}

func (t *throttledConn) Read(p []byte) (int, error) { return t.r.Read(p) }

// IsRefused reports whether err is the relay refusing the client (e.g.
// "unpaired").
func IsRefused(err error) bool {
	var r *wire.RefusedError
	return errors.As(err, &r)
}
