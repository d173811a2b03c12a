package rtsp

import (
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/callbox/callbox/relay"
)

// udpTimeout cuts a UDP reader that has sent no RTCP (receiver reports)
// for this long: over UDP the box learns nothing else about it. GStreamer
// and VLC send a report about every 5 s, ffmpeg more often.
const udpTimeout = 12 * time.Second

var errNoReports = errors.New("rtsp: no RTCP receiver report from the UDP reader")

// udpMedia is one media kind of an RTSP/UDP reader as a relay client:
// RTP from the server's RTP port to the client's, RTCP likewise.
//
// The Health Check: the kernel accepting each datagram. UDP has no
// acknowledgements to pace on, so a UDP reader takes what the box sends
// at the stream's rate (its loss is its own: the relay's policy cannot
// keep frames whole across a lossy path), and its liveness is its RTCP
// receiver reports: none for udpTimeout and it is cut.
type udpMedia struct {
	rtp, rtcp     *net.UDPConn
	dst, rtcpDst  netip.AddrPort
	remote        string
	ackCount      atomic.Int64
	lastReport    atomic.Int64 // Unix ns of the last RTCP from the client (PLAY counts)
	wrote, closed chan struct{}
	closeOnce     sync.Once
	onAbort       func()
	tick          *time.Ticker // Acked looks at lastReport on it
}

func newUDPMedia(rtp, rtcp *net.UDPConn, dst, rtcpDst netip.AddrPort, onAbort func()) *udpMedia {
	m := &udpMedia{rtp: rtp, rtcp: rtcp, dst: dst, rtcpDst: rtcpDst, remote: dst.String(),
		wrote: make(chan struct{}, 1), closed: make(chan struct{}), onAbort: onAbort,
		tick: time.NewTicker(time.Second)}
	m.lastReport.Store(time.Now().UnixNano())
	return m
}

func (m *udpMedia) WriteUnits(units []*relay.Unit) error {
	n := 0
	for _, u := range units {
		for i := 0; i < u.Packets(); i++ {
			if _, err := m.rtp.WriteToUDPAddrPort(u.Packet(i), m.dst); err != nil {
				select {
				case <-m.closed:
					return errGone
				default:
				}
				// A full socket buffer or an ICMP error drops this datagram,
				// as the network would: UDP readers live with loss.
			}
		}
		n += u.Packets()
	}
	m.ackCount.Add(int64(n))
	select {
	case m.wrote <- struct{}{}:
	default:
	}
	return nil
}

// TryWriteUnits sends at once: a UDP send does not wait for the client.
func (m *udpMedia) TryWriteUnits(units []*relay.Unit) (bool, error) {
	return true, m.WriteUnits(units)
}

func (m *udpMedia) FinishUnits() error { return nil }

func (m *udpMedia) acked() (int, error) {
	for {
		if n := m.ackCount.Swap(0); n > 0 {
			return int(n), nil
		}
		if time.Since(time.Unix(0, m.lastReport.Load())) > udpTimeout {
			return 0, errNoReports
		}
		select {
		case <-m.wrote:
		case <-m.tick.C:
		case <-m.closed:
			return 0, errGone
		}
	}
}

// report notes an RTCP packet from the client.
func (m *udpMedia) report() { m.lastReport.Store(time.Now().UnixNano()) }

// Abort stops the media and ends the reader's RTSP session.
func (m *udpMedia) Abort() {
	select {
	case <-m.closed:
		return // stopped: the session is over already
	default:
	}
	m.stop()
	if m.onAbort != nil {
		m.onAbort()
	}
}

// stop ends the media only (the RTSP session has ended).
func (m *udpMedia) stop() {
	m.closeOnce.Do(func() {
		close(m.closed)
		m.tick.Stop()
	})
}

func (m *udpMedia) RemoteAddr() string { return "rtsp/udp " + m.remote }
