package rtsp

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/callbox/callbox/relay"
)

// errGone is Acked's answer once the connection is closed.
var errGone = errors.New("rtsp: connection closed")

// tcpMedia is one media kind of an RTSP/TCP reader as a relay client
// (relay.NonBlockingConn): RTP interleaved on channel ch, RTCP on ch+1 (RFC 2326
// section 10.12).
//
// The Health Check is TCP's own pacing: a unit counts as acknowledged when
// the client's TCP has acknowledged its last byte (the socket's
// unacknowledged bytes, SIOCOUTQ, have fallen below its end). RTSP clients
// send RTCP receiver reports every few seconds at best (ffmpeg about every
// 280 KB, GStreamer and VLC about every 5 s), far too rarely to pace a
// 30 fps stream on; TCP acknowledges within a round trip, and a reader
// that does not read closes its window, so its acknowledgements stop
// exactly as a Health Check would.
type tcpMedia struct {
	sc     *sockConn
	remote string
	dollar [2]byte // '$', channel: every RTP packet's header starts so; the length follows from the unit

	// Write state, owned by the goroutine writing (the relay serializes).
	iov     [][]byte
	wb      net.Buffers
	pending bool // TryWriteUnits could not take wmu: FinishUnits gathers and writes
	pUnits  []*relay.Unit
	holding atomic.Bool // this media holds sc.wmu across a split write
	nbIovs  []syscall.Iovec
	nbFn    func(fd uintptr) bool
	nbN     int
	nbErrno syscall.Errno

	// Acked's socket query, bound once (a closure per call would allocate).
	outqFn  func(fd uintptr)
	outqN   int
	outqErr error

	// client is the relay session, for Acks from the writing goroutine.
	client atomic.Pointer[relay.Client]
	// qmu serializes the socket query (its result lives in outqN).
	qmu sync.Mutex

	// Acknowledgement records: each written unit's end position and packets.
	mu    sync.Mutex
	recs  []ackRec
	wrote chan struct{}
	timer *time.Timer
	lazy  *time.Timer // lazyAck

	// stopped: the RTSP session ended (TEARDOWN, timeout) and the media
	// stops, leaving the connection to gortsplib for its answer.
	stopped  chan struct{}
	stopOnce sync.Once
}

type ackRec struct {
	end  int64
	msgs int
}

func newTCPMedia(sc *sockConn, ch int) *tcpMedia {
	m := &tcpMedia{sc: sc, remote: sc.RemoteAddr().String(), wrote: make(chan struct{}, 1), stopped: make(chan struct{})}
	m.dollar = [2]byte{'$', byte(ch)}
	m.nbFn = m.writev
	m.outqFn = m.outq
	m.timer = time.NewTimer(time.Hour)
	m.timer.Stop()
	m.lazy = time.NewTimer(time.Hour)
	m.lazy.Stop()
	return m
}

// gather lines up the write in m.iov and records each unit's end position.
// The caller holds sc.wmu.
func (m *tcpMedia) gather(units []*relay.Unit) int {
	m.iov = m.iov[:0]
	total := 0
	m.mu.Lock()
	for _, u := range units {
		if il, ok := u.Interleaved(m.dollar[1]); ok {
			// Framed once for every reader on this channel: one slice.
			m.iov = append(m.iov, il)
			total += len(il)
		} else {
			framed, offs := u.Framed()
			for _, off := range offs {
				n := 2 + u.PacketLen(off)
				m.iov = append(m.iov, m.dollar[:], framed[off:int(off)+n])
				total += 2 + n
			}
		}
		m.recs = append(m.recs, ackRec{end: m.sc.pos + int64(total), msgs: u.Packets()})
	}
	m.mu.Unlock()
	m.sc.pos += int64(total)
	return total
}

// WriteUnits writes blocking (the relay's writer goroutine).
func (m *tcpMedia) WriteUnits(units []*relay.Unit) error {
	stale := m.ackBefore()
	m.sc.wmu.Lock()
	m.gather(units)
	m.wb = m.iov
	n, err := m.wb.WriteTo(m.sc.TCPConn)
	m.sc.written.Add(n)
	clear(m.iov)
	m.sc.wmu.Unlock()
	m.ackAfter(stale)
	return err
}

// TryWriteUnits writes with one non-blocking writev. When another write
// holds the socket or the socket takes only part, the rest is left to
// FinishUnits.
func (m *tcpMedia) TryWriteUnits(units []*relay.Unit) (bool, error) {
	stale := m.ackBefore()
	if !m.sc.wmu.TryLock() {
		m.pending, m.pUnits = true, units
		return false, nil
	}
	total := m.gather(units)
	m.nbIovs = m.nbIovs[:0]
	for _, b := range m.iov {
		v := syscall.Iovec{Base: &b[0]}
		v.SetLen(len(b))
		m.nbIovs = append(m.nbIovs, v)
	}
	var err error
	if m.sc.rc == nil {
		err = errors.New("rtsp: no raw socket")
	} else {
		err = m.sc.rc.Write(m.nbFn)
	}
	n, errno := m.nbN, m.nbErrno
	clear(m.nbIovs)
	if n > 0 {
		m.sc.written.Add(int64(n))
	}
	switch {
	case err != nil:
	case errno == syscall.EAGAIN || errno == syscall.EINTR:
		n = 0
	case errno != 0:
		err = errno
	}
	if err != nil {
		clear(m.iov)
		m.sc.wmu.Unlock()
		return false, err
	}
	if n == total {
		clear(m.iov)
		m.sc.wmu.Unlock()
		m.ackAfter(stale)
		return true, nil
	}
	// Split: keep wmu so nothing lands inside this write; Finish ends it.
	m.wb = m.iov
	m.consume(n)
	m.holding.Store(true)
	return false, nil
}

func (m *tcpMedia) writev(fd uintptr) bool {
	r, _, e := syscall.Syscall(syscall.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&m.nbIovs[0])), uintptr(len(m.nbIovs)))
	m.nbN, m.nbErrno = int(r), e
	if e != 0 {
		m.nbN = 0
	}
	return true // never wait for writability here
}

func (m *tcpMedia) consume(n int) {
	for n > 0 && len(m.wb) > 0 {
		if n < len(m.wb[0]) {
			m.wb[0] = m.wb[0][n:]
			return
		}
		n -= len(m.wb[0])
		m.wb = m.wb[1:]
	}
}

// FinishUnits writes what TryWriteUnits left, blocking.
func (m *tcpMedia) FinishUnits() error {
	if m.pending {
		m.pending = false
		units := m.pUnits
		m.pUnits = nil
		return m.WriteUnits(units)
	}
	n, err := m.wb.WriteTo(m.sc.TCPConn)
	m.sc.written.Add(n)
	clear(m.iov)
	if m.holding.CompareAndSwap(true, false) {
		m.sc.wmu.Unlock()
	}
	m.ackAfter(true)
	return err
}

// The Health Check is read in the writing goroutine, before and after
// each write (one ioctl each), and applied at once (relay.Client.AckNow):
// a goroutine wake-up per write and reader would cost more than the
// write. The Health Check loop (acked) polls only when a reader is
// behind: units written before this write are still unacknowledged
// (stale), or the stream pauses with units outstanding (lazyAck).

// lazyAck is how long after the last write outstanding units are looked
// at again when no further write comes (the stream paused).
const lazyAck = 100 * time.Millisecond

// ackBefore acknowledges what the client's TCP has taken since the last
// write and reports whether units from before remain unacknowledged.
func (m *tcpMedia) ackBefore() (stale bool) {
	cl := m.client.Load()
	if cl == nil {
		return true
	}
	n, outstanding, err := m.collect()
	if n > 0 {
		cl.AckNow(n)
	}
	return outstanding || err != nil
}

// ackAfter acknowledges right after a write; a reader that is behind gets
// the polling loop now, others a look after lazyAck if no write comes.
func (m *tcpMedia) ackAfter(stale bool) {
	cl := m.client.Load()
	if cl == nil {
		m.signal()
		return
	}
	n, outstanding, err := m.collect()
	if n > 0 {
		cl.AckNow(n)
	}
	switch {
	case stale || err != nil:
		m.signal()
	case outstanding:
		m.lazy.Reset(lazyAck)
	}
}

// collect pops the units the client's TCP has acknowledged: their packets,
// and whether some remain.
func (m *tcpMedia) collect() (n int, outstanding bool, err error) {
	written := m.sc.written.Load() // before the socket's count: never ahead of it
	m.qmu.Lock()
	defer m.qmu.Unlock()
	q, err := m.unacked()
	if err != nil {
		return 0, true, err
	}
	acked := written - int64(q)
	m.mu.Lock()
	i := 0
	for ; i < len(m.recs) && m.recs[i].end <= acked; i++ {
		n += m.recs[i].msgs
	}
	if i > 0 {
		m.recs = append(m.recs[:0], m.recs[i:]...)
	}
	outstanding = len(m.recs) > 0
	m.mu.Unlock()
	return n, outstanding, nil
}

func (m *tcpMedia) signal() {
	select {
	case m.wrote <- struct{}{}:
	default:
	}
}

// acked waits until the client's TCP has acknowledged at least one more
// whole unit and returns its packets. While units are outstanding it looks
// at the socket after each write and then at growing intervals (1 to 16
// ms): on loopback and a LAN the acknowledgement is usually there by the
// time the write returns.
func (m *tcpMedia) acked() (int, error) {
	wait := time.Millisecond
	for {
		select {
		case <-m.sc.closed:
			return 0, errGone
		case <-m.stopped:
			return 0, errGone
		default:
		}
		m.mu.Lock()
		outstanding := len(m.recs) > 0
		m.mu.Unlock()
		if !outstanding {
			select {
			case <-m.wrote:
			case <-m.lazy.C:
			case <-m.sc.closed:
				return 0, errGone
			case <-m.stopped:
				return 0, errGone
			}
			wait = time.Millisecond
			continue
		}
		n, _, err := m.collect()
		if err != nil {
			return 0, err
		}
		if n > 0 {
			return n, nil
		}
		m.timer.Reset(wait)
		select {
		case <-m.timer.C:
		case <-m.wrote:
			m.timer.Stop()
		case <-m.sc.closed:
			m.timer.Stop()
			return 0, errGone
		case <-m.stopped:
			m.timer.Stop()
			return 0, errGone
		}
		wait = min(2*wait, 16*time.Millisecond)
	}
}

// Abort resets the whole RTSP connection: a client the relay ejects loses
// both media kinds and its RTSP session.
// After stop (the RTSP session ended by TEARDOWN or timeout) the
// connection is gortsplib's: it may still owe the client an answer.
func (m *tcpMedia) Abort() {
	select {
	case <-m.stopped:
	default:
		m.sc.abort()
	}
	if m.holding.CompareAndSwap(true, false) {
		m.sc.wmu.Unlock()
	}
}

// stop ends the media without touching the connection.
func (m *tcpMedia) stop() { m.stopOnce.Do(func() { close(m.stopped) }) }

func (m *tcpMedia) RemoteAddr() string { return "rtsp/tcp " + m.remote }
