// Package box is a box's side of calls between callbox boxes across NAT
// (design S1..S8): the hub Client, the Caller and its calls, and the S7
// fan-out sender.
//
// A call is a pion/webrtc PeerConnection: ICE gathers host candidates
// (private addresses, preferred: S5), server-reflexive ones (S3, S4) and
// relayed ones (S6); DTLS-SRTP encrypts media end to end, so the hub (and a
// TURN relay) only ever carries ciphertext. The session descriptions are
// signed by the boxes' own keys and checked against the key pinned at
// pairing, so even the hub cannot substitute its own DTLS fingerprint.
//
// S8: every datagram stays below CallerConfig.MaxDatagram: RTP packets are
// made MaxDatagram minus the SRTP and TURN overhead, and the receive MTU is
// set to MaxDatagram.
//
// S7 (many receivers): FanoutPolicy decides when a box's uplink cannot
// carry one copy per receiver and the box should publish one copy to the
// hub's relay instead (FanoutSender, FanoutPublisher; Watcher on the
// receiving side).
package box
