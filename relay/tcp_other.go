//go:build !linux

package relay

type nonblocking struct{}

// tryWrite leaves every write to finish where no non-blocking writev is
// wired up: correct, one goroutine handoff per write more.
func (t *tcpTransport) tryWrite(units []*unit, ctrl []byte) (bool, error) {
	t.gather(units, ctrl)
	t.wb = t.iov
	return false, nil
}
