// Package webrtc is the relay's WebRTC transport and its WHEP endpoint
// (RFC 9725): a phone's browser (or `callbox view --webrtc`) posts an SDP
// offer to /whep and receives the box's H.264 and audio over a
// PeerConnection whose two tracks are sessions of the relay, under the same
// per-client policy as TCP and WebSocket clients (design S11-S15, package
// relay):
//
//   - transport-wide congestion control feedback (TWCC) is the Health Check:
//     every packet the feedback covers leaves the client's idle count;
//   - busy, buffering, batches, flush by kind and disconnect are the
//     relay's; a video flush resumes at the next IDR and asks the encoder for
//     one, and a PLI or FIR from the browser is the same request;
//   - one encoder stream is shared by every client: a client's adaptation is
//     whole frames dropped up to the next IDR, and its packets are renumbered
//     without gaps so it never NACKs what the policy chose not to send;
//   - NACKs are served from one history of the stream shared by all
//     clients (history.go).
//
// The hot path (a unit's packets rewritten for one client and handed to
// pion's SRTP) allocates nothing per packet (BenchmarkWriteUnits).
package webrtc
