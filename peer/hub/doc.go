// Package hub is the small public server of design S3, S6 and S7: the
// rendezvous for boxes, a STUN/TURN server, and the fan-out relay.
//
// Boxes keep a WebSocket to the Hub and register with a signed hello (a
// replayed or forged registration is refused). Two boxes pair once, by a
// short code or by both pressing their buttons within a window; the hub
// forwards signalling only between paired boxes. TURNServer answers STUN (a
// box learns its external address, S3) and relays with TURN (S6),
// authenticated with the TURN REST shared-secret scheme coturn implements,
// so coturn can replace it. FanoutRelay (S7) takes one copy of a box's media
// and forwards it to that box's receivers.
//
// The hub never sees call media in the clear: a call's media is DTLS-SRTP
// end to end, so the TURN relay only carries ciphertext.
package hub
