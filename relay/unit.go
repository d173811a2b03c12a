package relay

import (
	"encoding/binary"
	"sync"
	"sync/atomic"

	"github.com/callbox/callbox/capture"
)

// unit is one whole media unit (a video frame or an audio chunk) shared by
// every session that queues it. Its packets sit back to back in framed, each
// behind its RFC 4571 2-byte length, so that a TCP session writes a whole
// frame as one contiguous slice and a WebSocket session slices the packets
// out of the same memory. Units are pooled and reference counted: the last
// release returns the memory for the next burst, so steady-state fan-out
// allocates nothing.
type unit struct {
	refs    atomic.Int32
	kind    capture.Kind
	pub     uint8         // publisher index, for "all-me" and per-publisher restart
	start   bool          // video: a decoder can start here (JPEG: always; H.264: IDR)
	codec   capture.Codec // video: from the payload type (0: unknown, or audio)
	opus    bool          // audio: Opus (capture.PayloadTypeOpus), for the sessions that asked for it
	capture int64         // capture time, Unix nanoseconds
	msgs    int           // packets
	framed  []byte
	offs    []int32 // offset of each packet's length prefix in framed

	// il is the unit re-framed for RTSP interleaved channel ilCh (-1: not
	// built), built once by the first RTSP reader that asks and shared by
	// the others (Interleaved).
	ilMu sync.Mutex
	ilCh int
	il   []byte
}

var unitPool = sync.Pool{New: func() any { return new(unit) }}

// maxPacket is the largest packet RFC 4571 framing can carry.
const maxPacket = 0xffff

// newUnit copies b into a pooled unit with one reference held by the caller.
// The caller has checked every packet's size.
func newUnit(b *capture.Burst, pub uint8) *unit {
	u := unitPool.Get().(*unit)
	u.kind = b.Kind
	u.pub = pub
	u.start = b.Kind != capture.KindVideo || b.Keyframe
	u.codec = 0
	u.opus = b.Kind == capture.KindAudio && b.Packets[0][1]&0x7f == capture.PayloadTypeOpus
	if b.Kind == capture.KindVideo {
		switch b.Packets[0][1] & 0x7f {
		case capture.PayloadTypeJPEG:
			u.codec = capture.CodecJPEG
		case capture.PayloadTypeH264:
			u.codec = capture.CodecH264
		}
	}
	u.capture = b.CaptureTime.UnixNano()
	u.msgs = len(b.Packets)
	u.framed = u.framed[:0]
	u.offs = u.offs[:0]
	u.ilCh = -1
	for _, p := range b.Packets {
		u.offs = append(u.offs, int32(len(u.framed)))
		u.framed = binary.BigEndian.AppendUint16(u.framed, uint16(len(p)))
		u.framed = append(u.framed, p...)
	}
	u.refs.Store(1)
	return u
}

// packet returns the i-th RTP packet without its length prefix.
func (u *unit) packet(i int) []byte {
	o := int(u.offs[i])
	n := int(binary.BigEndian.Uint16(u.framed[o:]))
	return u.framed[o+2 : o+2+n]
}

// bytes is the unit's size on the wire (with framing).
func (u *unit) bytes() int { return len(u.framed) }

func (u *unit) ref() { u.refs.Add(1) }

func (u *unit) release() {
	switch n := u.refs.Add(-1); {
	case n == 0:
		unitPool.Put(u)
	case n < 0:
		// A double release would hand the same memory to two bursts; fail
		// loudly in development rather than corrupt frames silently.
		panic("relay: unit released twice")
	}
}
