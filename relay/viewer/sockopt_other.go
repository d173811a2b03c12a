//go:build !linux

package viewer

import "syscall"

// setRecvBuffer is a no-op where SO_RCVBUF is not set portably.
func setRecvBuffer(n int) func(network, address string, c syscall.RawConn) error { return nil }
