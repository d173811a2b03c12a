//go:build linux

package relay

import (
	"syscall"
	"unsafe"
)

// nonblocking holds the raw socket and the iovec array for tryWrite.
type nonblocking struct {
	rc    syscall.RawConn
	iovs  []syscall.Iovec
	fn    func(fd uintptr) bool // writev, bound once: a closure per call would allocate
	n     int
	errno syscall.Errno
}

func (nb *nonblocking) writev(fd uintptr) bool {
	r, _, e := syscall.Syscall(syscall.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&nb.iovs[0])), uintptr(len(nb.iovs)))
	nb.n, nb.errno = int(r), e
	return true // never wait for writability here
}

// tryWrite writes with one writev straight on the non-blocking socket and
// never waits: the caller is the publisher (or the reader) serving many
// clients. What the socket did not take stays in t.wb for finish.
func (t *tcpTransport) tryWrite(units []*unit, ctrl []byte) (bool, error) {
	total := t.gather(units, ctrl)
	t.wb = t.iov
	if t.nb.rc == nil {
		if t.tc == nil {
			return false, nil
		}
		rc, err := t.tc.SyscallConn()
		if err != nil {
			return false, nil
		}
		t.nb.rc = rc
		t.nb.fn = t.nb.writev
	}
	t.nb.iovs = t.nb.iovs[:0]
	for _, b := range t.iov {
		v := syscall.Iovec{Base: &b[0]}
		v.SetLen(len(b))
		t.nb.iovs = append(t.nb.iovs, v)
	}
	err := t.nb.rc.Write(t.nb.fn)
	n, errno := t.nb.n, t.nb.errno
	clear(t.nb.iovs) // drop the pointers into the units
	switch {
	case err != nil:
		return false, err
	case errno == syscall.EAGAIN || errno == syscall.EINTR:
		return false, nil
	case errno != 0:
		return false, errno
	case n == total:
		clear(t.iov)
		return true, nil
	}
	t.consume(n)
	return false, nil
}
