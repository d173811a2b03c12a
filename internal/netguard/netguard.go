// Package netguard bounds what a stranger's connections can cost a server:
// the bytes of one request's header, the time to send it, how long an idle
// keep-alive connection is kept, and how many connections are open at once,
// in total and from one address. The box's HTTP server, the relay's TCP
// listener and the hub's HTTP server all use it (docs/security.md).
//
// Without it, Go's defaults let 300 connections each sending an
// unterminated 1 MB header take a box from 25 MB to 765 MB of RSS (a Pi
// Zero 2 W has 512 MB), and 1,100 idle keep-alive connections use up a
// 1,024-descriptor limit so that a legitimate client times out.
package netguard

import (
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Limits are one listener's bounds. Zero fields take the defaults of
// DefaultLimits; a negative count turns that cap off.
type Limits struct {
	// MaxHeaderBytes bounds one request's header (HTTP only). Larger
	// headers are answered 431 and the connection is closed.
	MaxHeaderBytes int
	// ReadHeaderTimeout is how long a client may take to send a request's
	// header (HTTP only): a slow or never-ending header is cut.
	ReadHeaderTimeout time.Duration
	// IdleTimeout is how long a keep-alive connection may wait for its
	// next request (HTTP only).
	IdleTimeout time.Duration
	// MaxConns caps the connections open at once; a connection beyond it
	// is closed as soon as it is accepted.
	MaxConns int
	// MaxConnsPerAddr caps the connections open at once from one address
	// (one IPv4 address, or one IPv6 /64: a host picks addresses in its
	// /64 at will), so one client cannot take the whole MaxConns.
	MaxConnsPerAddr int
}

// DefaultLimits suit a box serving a household's phones: a header is a
// few hundred bytes (16 KiB leaves room for cookies a reverse proxy might
// add), a phone opens a handful of connections (page, /api polls, two
// WebSockets), and 256 connections stay far below the descriptor limit.
func DefaultLimits() Limits {
	return Limits{
		MaxHeaderBytes:    16 << 10,
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       30 * time.Second,
		MaxConns:          256,
		MaxConnsPerAddr:   32,
	}
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	if l.MaxHeaderBytes == 0 {
		l.MaxHeaderBytes = d.MaxHeaderBytes
	}
	if l.ReadHeaderTimeout == 0 {
		l.ReadHeaderTimeout = d.ReadHeaderTimeout
	}
	if l.IdleTimeout == 0 {
		l.IdleTimeout = d.IdleTimeout
	}
	if l.MaxConns == 0 {
		l.MaxConns = d.MaxConns
	}
	if l.MaxConnsPerAddr == 0 {
		l.MaxConnsPerAddr = d.MaxConnsPerAddr
	}
	return l
}

// Server returns an http.Server for h with l's header size and timeouts.
// Serve it on a Listener (NewListener or Listen) for the connection caps,
// after ln.Watch(srv), so that the caps close idle connections first.
func Server(h http.Handler, l Limits) *http.Server {
	l = l.withDefaults()
	return &http.Server{
		Handler:           h,
		MaxHeaderBytes:    l.MaxHeaderBytes,
		ReadHeaderTimeout: l.ReadHeaderTimeout,
		IdleTimeout:       l.IdleTimeout,
	}
}

// Listen is net.Listen("tcp", addr) with l's connection caps.
func Listen(addr string, l Limits) (*Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	return NewListener(ln, l), nil
}

// Listener caps the connections open at once on the listener it wraps.
//
// When a new connection would exceed a cap, the listener first closes a
// connection that is doing nothing, the one waiting longest: an HTTP
// connection that has not sent its request yet or sits idle between
// requests (known through Watch), taken from the address holding the most
// connections. Only when every connection is busy (a request being served,
// a WebSocket, a relay stream) is the new one refused, closed at once with
// a reset. So a flood of idle or slow connections cannot lock out a client
// that sends its request promptly: it takes the place of the flood's oldest.
type Listener struct {
	net.Listener
	max, perAddr int

	mu      sync.Mutex
	byAddr  map[netip.Addr]map[*Conn]struct{}
	open    int
	refused atomic.Int64
	evicted atomic.Int64
	// watched: an http.Server reports connection states (Watch). Without
	// it every connection counts as busy: a relay stream is never evicted.
	watched atomic.Bool
}

// NewListener wraps ln with l's connection caps.
func NewListener(ln net.Listener, l Limits) *Listener {
	l = l.withDefaults()
	return &Listener{Listener: ln, max: l.MaxConns, perAddr: l.MaxConnsPerAddr, byAddr: map[netip.Addr]map[*Conn]struct{}{}}
}

// Watch makes srv report its connections' states to the listener (it
// chains srv's own ConnState), so that idle ones are the first closed.
func (l *Listener) Watch(srv *http.Server) {
	l.watched.Store(true)
	prev := srv.ConnState
	srv.ConnState = func(c net.Conn, s http.ConnState) {
		if gc, ok := c.(*Conn); ok && gc.l == l {
			gc.setState(s)
		}
		if prev != nil {
			prev(c, s)
		}
	}
}

// Accept returns the next connection within the caps.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		gc := &Conn{Conn: c, l: l, key: addrKey(c.RemoteAddr())}
		if l.watched.Load() {
			gc.setState(http.StateNew)
		} else {
			gc.setState(http.StateActive)
		}
		if victim, ok := l.admit(gc); ok {
			if victim != nil {
				l.evicted.Add(1)
				victim.abort()
			}
			return gc, nil
		}
		l.refused.Add(1)
		gc.abortRaw()
	}
}

// admit counts c in, or says no; victim is a connection to close to make
// room.
func (l *Listener) admit(c *Conn) (victim *Conn, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	mine := l.byAddr[c.key]
	switch {
	case l.perAddr > 0 && len(mine) >= l.perAddr:
		victim = oldestIdle(mine)
	case l.max > 0 && l.open >= l.max:
		// From the address holding the most connections that has an idle
		// one: the flood pays, not the household.
		// Among equals, the one idle longest.
		bestN, bestSince := 0, int64(0)
		for _, set := range l.byAddr {
			v := oldestIdle(set)
			if v == nil || len(set) < bestN {
				continue
			}
			_, since := v.load()
			if len(set) > bestN || since < bestSince {
				victim, bestN, bestSince = v, len(set), since
			}
		}
	default:
		l.addLocked(c)
		return nil, true
	}
	if victim == nil {
		return nil, false
	}
	l.removeLocked(victim)
	l.addLocked(c)
	return victim, true
}

func (l *Listener) addLocked(c *Conn) {
	set := l.byAddr[c.key]
	if set == nil {
		set = map[*Conn]struct{}{}
		l.byAddr[c.key] = set
	}
	set[c] = struct{}{}
	l.open++
}

func (l *Listener) removeLocked(c *Conn) {
	set := l.byAddr[c.key]
	if _, ok := set[c]; !ok {
		return
	}
	delete(set, c)
	if len(set) == 0 {
		delete(l.byAddr, c.key)
	}
	l.open--
}

// oldestIdle is the connection of set that has waited longest without a
// request in progress, or nil.
func oldestIdle(set map[*Conn]struct{}) *Conn {
	var old *Conn
	var oldSince int64
	for c := range set {
		st, since := c.load()
		if st != http.StateNew && st != http.StateIdle {
			continue
		}
		if old == nil || since < oldSince {
			old, oldSince = c, since
		}
	}
	return old
}

// Open is the number of connections open now.
func (l *Listener) Open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.open
}

// Refused is the number of new connections closed for being over a cap
// while every open one was busy.
func (l *Listener) Refused() int64 { return l.refused.Load() }

// Evicted is the number of idle connections closed to make room.
func (l *Listener) Evicted() int64 { return l.evicted.Load() }

// addrKey is the address a connection counts against: the IPv4 address,
// or the IPv6 /64 (IPv4-mapped IPv6 counts as IPv4).
func addrKey(a net.Addr) netip.Addr {
	var ip netip.Addr
	switch a := a.(type) {
	case *net.TCPAddr:
		ip, _ = netip.AddrFromSlice(a.IP)
	default:
		if ap, err := netip.ParseAddrPort(a.String()); err == nil {
			ip = ap.Addr()
		}
	}
	ip = ip.Unmap()
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.Addr()
	}
	return ip
}

// Conn is an admitted connection; closing it frees its place.
type Conn struct {
	net.Conn
	l    *Listener
	key  netip.Addr
	once sync.Once
	// state is the http.ConnState (New until the server reports more),
	// since when (Unix nanoseconds): written by the server's goroutines,
	// read by the eviction.
	state atomic.Int64
	since atomic.Int64
}

func (c *Conn) setState(s http.ConnState) {
	c.since.Store(time.Now().UnixNano())
	c.state.Store(int64(s))
}

func (c *Conn) load() (http.ConnState, int64) {
	return http.ConnState(c.state.Load()), c.since.Load()
}

// Close closes the connection and frees its place under the caps.
func (c *Conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.l.mu.Lock()
		c.l.removeLocked(c)
		c.l.mu.Unlock()
	})
	return err
}

// abort closes an evicted connection with a reset (no TIME_WAIT); its
// place is already given away.
func (c *Conn) abort() {
	c.once.Do(func() {})
	c.abortRaw()
}

func (c *Conn) abortRaw() {
	if tc := TCPConn(c.Conn); tc != nil {
		_ = tc.SetLinger(0)
	}
	_ = c.Conn.Close()
}

// NetConn is the wrapped connection, for code that tunes the socket
// (TCP_NODELAY, SO_LINGER), as crypto/tls.Conn.NetConn.
func (c *Conn) NetConn() net.Conn { return c.Conn }

// TCPConn finds the *net.TCPConn under c (through NetConn wrappers such as
// Conn), or nil.
func TCPConn(c net.Conn) *net.TCPConn {
	for range 8 {
		switch x := c.(type) {
		case *net.TCPConn:
			return x
		case interface{ NetConn() net.Conn }:
			c = x.NetConn()
		default:
			return nil
		}
	}
	return nil
}
