package webrtc

import (
	"encoding/binary"
	"sync"

	"github.com/callbox/callbox/relay"
)

// historySize is how many packets of the stream the history keeps for
// retransmission: at 720p30 and 2.5 Mbit/s (about 260 packets a second)
// some 4 s, far more than a NACK's useful life; a power of two.
const historySize = 1024

// history is the video stream's recent packets, shared by every WebRTC
// client: a NACK is served from here, by the stream's own sequence number,
// so the box keeps one copy of the stream, not one per client. It holds a
// reference to every unit it indexes and gives it back when the slot is
// reused, so the units stay pooled and nothing is copied in.
type history struct {
	mu    sync.Mutex
	slots [historySize]histSlot
}

type histSlot struct {
	u   *relay.Unit
	idx int
	seq uint16
}

// add indexes u's packets by their sequence numbers. Every client's writer
// calls it; the first one adds, the rest find the unit already there.
func (h *history) add(u *relay.Unit) {
	n := u.Packets()
	if n == 0 {
		return
	}
	first := seqOf(u.Packet(0))
	h.mu.Lock()
	defer h.mu.Unlock()
	if s := &h.slots[first%historySize]; s.u == u && s.seq == first {
		return
	}
	for i := 0; i < n; i++ {
		seq := seqOf(u.Packet(i))
		s := &h.slots[seq%historySize]
		if s.u != nil {
			s.u.Release()
		}
		u.Ref()
		*s = histSlot{u: u, idx: i, seq: seq}
	}
}

// copyPacket appends the packet with stream sequence number seq to dst; ok
// is false when it is no longer (or never was) in the history.
func (h *history) copyPacket(dst []byte, seq uint16) ([]byte, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := &h.slots[seq%historySize]
	if s.u == nil || s.seq != seq {
		return dst, false
	}
	return append(dst, s.u.Packet(s.idx)...), true
}

// clear gives every reference back (the server is closing).
func (h *history) clear() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for i := range h.slots {
		if h.slots[i].u != nil {
			h.slots[i].u.Release()
		}
		h.slots[i] = histSlot{}
	}
}

func seqOf(pkt []byte) uint16 { return binary.BigEndian.Uint16(pkt[2:]) }
