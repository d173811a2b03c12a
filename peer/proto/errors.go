package proto

import "errors"

// Sentinel errors. Callers test them with errors.Is; they are wrapped with
// the detail that explains the case.
var (
	// ErrBadMessage reports a signalling message that does not parse or
	// lacks a required field.
	ErrBadMessage = errors.New("peer: malformed signalling message")
	// ErrBadSignature reports a signature that does not verify against the
	// claimed key (a forged identity or a tampered message).
	ErrBadSignature = errors.New("peer: bad signature")
	// ErrReplay reports a registration whose nonce was already used or whose
	// timestamp is outside the hub's window.
	ErrReplay = errors.New("peer: replayed or stale registration")
	// ErrNotPaired reports a request between two boxes that have not paired.
	ErrNotPaired = errors.New("peer: boxes are not paired")
	// ErrOffline reports a call to a paired box that is not connected to the hub.
	ErrOffline = errors.New("peer: peer is offline")
	// ErrBadCode reports a wrong or expired pairing code.
	ErrBadCode = errors.New("peer: wrong or expired pairing code")
	// ErrUnknownPeer reports a peer name or ID the box has not paired with.
	ErrUnknownPeer = errors.New("peer: unknown peer")
	// ErrKeyFile reports an identity key file that cannot be used.
	ErrKeyFile = errors.New("peer: bad identity key file")
	// ErrHub reports an error answer from the hub.
	ErrHub = errors.New("peer: hub refused")
	// ErrClosed reports use of a closed client or caller.
	ErrClosed = errors.New("peer: closed")
)
