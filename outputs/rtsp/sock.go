package rtsp

import (
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// listener hands gortsplib sockConns, so the media writers of a session
// and gortsplib's own writes (RTSP answers) share one socket safely.
type listener struct {
	net.Listener
}

func (l *listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c, nil
	}
	_ = tc.SetNoDelay(true) // whole frames per writev; see docs/relay.md on Nagle
	sc := &sockConn{TCPConn: tc, closed: make(chan struct{})}
	sc.rc, _ = tc.SyscallConn()
	return sc, nil
}

// sockConn is one RTSP TCP connection. gortsplib reads it and writes its
// answers through Write; the session's media writers (tcpMedia, one per
// media kind) write interleaved frames straight to the socket with
// writev. wmu keeps every write whole on the wire: a media write that the
// socket took only partly keeps wmu until the rest is written, so no RTSP
// answer or other kind's frame lands inside it.
type sockConn struct {
	*net.TCPConn
	rc syscall.RawConn

	wmu sync.Mutex
	// pos is where the next write starts in the connection's byte stream
	// (under wmu): media writers record each unit's end position.
	pos int64
	// written counts bytes the socket has taken; minus the socket's
	// unacknowledged bytes (SIOCOUTQ) it is what the client's TCP has
	// acknowledged.
	written atomic.Int64

	deadline   atomic.Int64 // gortsplib's write deadline, applied to its writes only
	afterWrite func()       // run after the next gortsplib write (the PLAY answer); under wmu

	closeOnce sync.Once
	closed    chan struct{}
}

// Write is gortsplib's write (RTSP answers): whole, under wmu, with the
// deadline gortsplib asked for.
func (c *sockConn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	if d := c.deadline.Load(); d != 0 {
		_ = c.TCPConn.SetWriteDeadline(time.Unix(0, d))
	}
	n, err := c.TCPConn.Write(p)
	_ = c.TCPConn.SetWriteDeadline(time.Time{})
	c.pos += int64(n)
	c.written.Add(int64(n))
	f := c.afterWrite
	c.afterWrite = nil
	c.wmu.Unlock()
	if f != nil && err == nil {
		f()
	}
	return n, err
}

// SetWriteDeadline keeps gortsplib's deadline for its own writes: set on
// the socket it would also cut the media writes, whose time limit is the
// relay's WriteTimeout.
func (c *sockConn) SetWriteDeadline(t time.Time) error {
	if t.IsZero() {
		c.deadline.Store(0)
	} else {
		c.deadline.Store(t.UnixNano())
	}
	return nil
}

func (c *sockConn) SetDeadline(t time.Time) error {
	_ = c.SetWriteDeadline(t)
	return c.TCPConn.SetReadDeadline(t)
}

// onNextWrite runs f after gortsplib's next write: the PLAY answer must
// reach the client before the first media frame.
func (c *sockConn) onNextWrite(f func()) {
	c.wmu.Lock()
	c.afterWrite = f
	c.wmu.Unlock()
}

// abort resets the connection (SO_LINGER 0: no TIME_WAIT on the box, as
// the relay does, design S15) and unblocks every writer and Acked.
func (c *sockConn) abort() {
	c.closeOnce.Do(func() {
		close(c.closed)
		_ = c.TCPConn.SetLinger(0)
		_ = c.TCPConn.Close()
	})
}

func (c *sockConn) Close() error {
	c.closeOnce.Do(func() {
		close(c.closed)
		_ = c.TCPConn.Close()
	})
	return nil
}
