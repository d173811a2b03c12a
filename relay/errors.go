package relay

import "errors"

var (
	// ErrClosed reports use of a closed Relay.
	ErrClosed = errors.New("relay: closed")
	// ErrUnpaired reports a client whose token Config.Authorize refused.
	ErrUnpaired = errors.New("relay: unpaired")
	// ErrBadHandshake reports a malformed or unsupported handshake.
	ErrBadHandshake = errors.New("relay: bad handshake")
	// ErrBadFrame reports an RFC 4571 frame that is empty or too long.
	ErrBadFrame = errors.New("relay: bad frame")
	// ErrBadRTCP reports a malformed RTCP packet from a client.
	ErrBadRTCP = errors.New("relay: bad RTCP")
	// ErrConfig reports an invalid Config.
	ErrConfig = errors.New("relay: invalid config")
)

// EjectError says why the relay ended a session.
type EjectError struct {
	Reason string // "flushes", "health check timeout", "write timeout"
}

func (e *EjectError) Error() string { return "relay: client ejected: " + e.Reason }
