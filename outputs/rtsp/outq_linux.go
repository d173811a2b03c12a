//go:build linux

package rtsp

import (
	"errors"
	"syscall"
	"unsafe"
)

// outq reads the socket's bytes not yet acknowledged by the peer
// (SIOCOUTQ = TIOCOUTQ, tcp(7): unsent plus sent-but-unacknowledged).
func (m *tcpMedia) outq(fd uintptr) {
	var n int32
	_, _, e := syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TIOCOUTQ, uintptr(unsafe.Pointer(&n)))
	m.outqN, m.outqErr = int(n), nil
	if e != 0 {
		m.outqErr = e
	}
}

func (m *tcpMedia) unacked() (int, error) {
	if m.sc.rc == nil {
		return 0, errors.New("rtsp: no raw socket")
	}
	if err := m.sc.rc.Control(m.outqFn); err != nil {
		return 0, err
	}
	return m.outqN, m.outqErr
}
