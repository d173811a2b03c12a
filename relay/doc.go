// Package relay is callbox's on-device fan-out relay: it forwards every RTP
// packet a publisher (the box's camera and microphone, later a phone's
// microphone or a remote box) sends to every other client ("all-me", design
// S9), over TCP with RFC 4571 framing or over WebSocket (docs/protocol.md).
//
// # Concepts
//
// Unit: one whole video frame or one audio chunk, the packets of one
// capture.Burst. The relay copies a burst once into a pooled, reference
// counted unit that every client's queue shares; a unit is sent whole or not
// at all, so a client never receives part of a frame.
//
// Session: one client connection for one media kind (video or audio). Each
// session has its own Buffer (design S11) and the pacing policy of S12-S13:
//
//   - idle is the number of messages (RTP packets) sent to the client that no
//     Health Check has covered yet: it grows by one per packet written and
//     shrinks by the count of every Health Check (an RTCP APP "CBHC").
//   - The session is busy while a write is in flight or while idle has
//     reached the limit; new units then wait in the Buffer. When it is not
//     busy, the writer takes the oldest units first, at most a batch of
//     messages (rounded up to whole units), and writes them with one writev.
//   - When the Buffer passes any of its bounds (units, bytes, media time) the
//     link has not kept up for too long and the Buffer is flushed by kind:
//     video drops everything queued and resumes at a frame a decoder can start
//     from (JPEG: any frame; H.264: the next IDR, which the publisher is asked
//     for), audio drops the oldest chunks so that only a short tail remains.
//   - Too many flushes within a window, no Health Check while one is owed for
//     a timeout, or a write stuck for a timeout end the session with
//     SO_LINGER 0 (design S15), so ejected clients leave no TIME_WAIT behind.
//
// The policy itself (policy.go) is a plain state machine with the clock passed
// in, so every branch is unit-tested without sockets or sleeps.
//
// # Allocation
//
// Publish copies a burst into pooled memory; the fan-out, the queues and the
// TCP writes allocate nothing per packet or per client once warm (see the
// AllocsPerRun tests and BenchmarkFanout).
package relay
