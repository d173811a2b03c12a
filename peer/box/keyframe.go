package box

import (
	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"
)

// RequestKeyframe asks the other box of the current call for a frame a
// decoder can start from: an RTCP PLI for every video track received on
// the call. The box's phones need one when they join a call that runs
// (the call's relay starts every H.264 phone session at an IDR), as a
// browser sends one after a loss. It never blocks: the PLI is written
// aside. Without a call, or before the other box's video arrives, it does
// nothing.
func (c *Caller) RequestKeyframe() {
	cur := c.Current()
	if cur == nil {
		return
	}
	cur.mu.Lock()
	pc := cur.pc
	cur.mu.Unlock()
	if pc == nil {
		return
	}
	var pkts []rtcp.Packet
	for _, r := range pc.GetReceivers() {
		if tr := r.Track(); tr != nil && tr.Kind() == webrtc.RTPCodecTypeVideo {
			pkts = append(pkts, &rtcp.PictureLossIndication{MediaSSRC: uint32(tr.SSRC())})
		}
	}
	if len(pkts) == 0 {
		return
	}
	go func() { _ = pc.WriteRTCP(pkts) }()
}
