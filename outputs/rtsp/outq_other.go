//go:build !linux

package rtsp

// outq is Linux's SIOCOUTQ; elsewhere the socket's buffer is the only
// pacing and a written unit counts as acknowledged.
func (m *tcpMedia) outq(fd uintptr) {}

func (m *tcpMedia) unacked() (int, error) { return 0, nil }
