// Package peer makes calls between callbox boxes across NAT (design S1..S8).
//
// # Concepts
//
// A box has a persistent ed25519 Identity (a key file in its data dir); its
// BoxID is derived from the public key, so nobody can claim a box's ID
// without its private key.
//
// The Hub is the small public server of S3 and S6. Boxes keep a WebSocket to
// it and register with a signed Hello (timestamp + nonce: a replayed or
// forged registration is refused). Two boxes pair once, by a short code or by
// both pressing their buttons within a window; the hub forwards signalling
// only between paired boxes. The hub also answers STUN (a box learns its
// external address, S3) and relays with TURN (S6), authenticated with the
// TURN REST shared-secret scheme coturn implements, so coturn can replace it.
//
// A call is a pion/webrtc PeerConnection: ICE gathers host candidates (private
// addresses, preferred: S5), server-reflexive ones (S3, S4) and relayed ones
// (S6); DTLS-SRTP encrypts media end to end, so the hub (and a TURN relay)
// only ever carries ciphertext. The session descriptions are signed by the
// boxes' own keys and checked against the key pinned at pairing, so even the
// hub cannot substitute its own DTLS fingerprint.
//
// S8: every datagram stays below Config.MaxDatagram: RTP packets are made
// MaxDatagram minus the SRTP and TURN overhead, and the receive MTU is set to
// MaxDatagram.
//
// S7 (many receivers): Fanout decides when a box's uplink cannot carry one
// copy per receiver and the box should publish one copy to a relay instead.
package peer
