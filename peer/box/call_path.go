package box

import (
	"fmt"
	"net"

	"github.com/pion/webrtc/v4"
)

func candString(c *webrtc.ICECandidate) string {
	if c == nil {
		return ""
	}
	return fmt.Sprintf("%s %s:%d", c.Typ, c.Address, c.Port)
}

// pathOf classifies a selected pair. Two host candidates are a LAN path
// (S5) when both addresses are private, or a path with no NAT at all (S1)
// when both are public; a private host candidate talking to a public one
// goes through a NAT and counts as srflx, like peer-reflexive pairs.
func pathOf(local, remote *webrtc.ICECandidate) Path {
	switch {
	case local.Typ == webrtc.ICECandidateTypeRelay || remote.Typ == webrtc.ICECandidateTypeRelay:
		return PathRelay
	case local.Typ == webrtc.ICECandidateTypeHost && remote.Typ == webrtc.ICECandidateTypeHost &&
		isPrivate(local.Address) == isPrivate(remote.Address):
		return PathHost
	}
	return PathSrflx
}

func isPrivate(addr string) bool {
	ip := net.ParseIP(addr)
	return ip != nil && (ip.IsPrivate() || ip.IsLoopback() || ip.IsLinkLocalUnicast())
}

func (call *Call) pairChanged(p *webrtc.ICECandidatePair) {
	if p == nil || p.Local == nil || p.Remote == nil {
		return
	}
	call.lastPair.Store(p)
	call.localCand.Store(candString(p.Local))
	call.remoteCand.Store(candString(p.Remote))
	if call.connectedOnce.Load() {
		call.setState(PhaseConnected, pathOf(p.Local, p.Remote), nil)
	}
}

// path is the path of the selected candidate pair, as last reported by
// pion's callback. (ICETransport.GetSelectedCandidatePair is not safe to
// call while the transport starts: it races with Start in pion v4.2.)
func (call *Call) path() Path { return call.lastPath() }

// samplePairBytes sums the bytes of the candidate pairs that use a relayed
// candidate, from pion's stats report (which, unlike the ICETransport
// accessors, is safe to read at any time).
func (call *Call) samplePairBytes() {
	call.mu.Lock()
	pc := call.pc
	call.mu.Unlock()
	if pc == nil {
		return
	}
	rep := pc.GetStats()
	relayed := map[string]bool{}
	for _, st := range rep {
		switch c := st.(type) {
		case webrtc.ICECandidateStats:
			if c.CandidateType == webrtc.ICECandidateTypeRelay {
				relayed[c.ID] = true
			}
		}
	}
	var n uint64
	for _, st := range rep {
		if p, ok := st.(webrtc.ICECandidatePairStats); ok && (relayed[p.LocalCandidateID] || relayed[p.RemoteCandidateID]) {
			n += p.BytesSent + p.BytesReceived
		}
	}
	// Pairs vanish with an ICE restart: keep what they carried.
	if old := call.pairBytes.Load(); n < old {
		call.relayBytes.Add(old)
	}
	call.pairBytes.Store(n)
}

// Summary is the outcome of a call, as `callbox call --json` prints it.
type Summary struct {
	Peer            string  `json:"peer"`
	Path            Path    `json:"path"`
	LocalCandidate  string  `json:"local_candidate"`
	RemoteCandidate string  `json:"remote_candidate"`
	ConnectMS       float64 `json:"connect_ms"`     // ICE connected, since the call started on this box
	FirstMediaMS    float64 `json:"first_media_ms"` // first media packet received
	FirstFrameMS    float64 `json:"first_frame_ms"` // first video frame received and decoded
	LastFrameMS     float64 `json:"last_frame_ms"`  // last video frame decoded (media resumed after a restart?)
	FramesSent      uint64  `json:"frames_sent"`
	FramesReceived  uint64  `json:"frames_received"`
	FramesDecoded   uint64  `json:"frames_decoded"`
	FramesLost      uint64  `json:"frames_lost"`
	AudioSent       uint64  `json:"audio_sent"`
	AudioReceived   uint64  `json:"audio_received"` // 20 ms PCMU packets
	AudioLost       uint64  `json:"audio_lost"`
	BytesViaRelay   uint64  `json:"bytes_via_relay"` // both directions, on relayed candidate pairs
	MaxRTPPacket    int     `json:"max_rtp_packet"`  // largest RTP packet sent
	Restarts        int     `json:"ice_restarts"`
	RecoveryMS      float64 `json:"recovery_ms"` // last loss of the path (as ICE saw it) to connected again
	DurationMS      float64 `json:"duration_ms"`
	Error           string  `json:"error,omitempty"`
}

func ms(ns int64) float64 { return float64(ns/1000) / 1000 }

// Summary reports the call so far (or its final figures once Done).
func (call *Call) Summary() Summary {
	call.samplePairBytes()
	st := call.State()
	path := st.Path
	if path == PathNone {
		path = call.lastPath()
	}
	s := Summary{
		Peer:           call.Peer.ID,
		Path:           path,
		ConnectMS:      ms(call.connectAt.Load()),
		FirstMediaMS:   ms(call.firstMedia.Load()),
		FirstFrameMS:   ms(call.firstFrame.Load()),
		LastFrameMS:    ms(call.lastFrame.Load()),
		FramesSent:     call.framesSent.Load(),
		FramesReceived: call.framesRecv.Load(),
		FramesDecoded:  call.framesDecoded.Load(),
		FramesLost:     call.framesLost.Load(),
		AudioSent:      call.audioSent.Load(),
		AudioReceived:  call.audioRecv.Load(),
		AudioLost:      call.audioLost.Load(),
		BytesViaRelay:  call.relayBytes.Load() + call.pairBytes.Load(),
		MaxRTPPacket:   int(call.maxPacket.Load()),
		Restarts:       int(call.restarts.Load()),
		RecoveryMS:     ms(call.recovery.Load()),
		DurationMS:     ms(call.since()),
	}
	s.LocalCandidate, _ = call.localCand.Load().(string)
	s.RemoteCandidate, _ = call.remoteCand.Load().(string)
	if st.Err != nil {
		s.Error = st.Err.Error()
	}
	return s
}

// lastPath is the path of the last selected pair (after the call ended and
// the connection is gone).
func (call *Call) lastPath() Path {
	p, _ := call.lastPair.Load().(*webrtc.ICECandidatePair)
	if p == nil {
		return PathNone
	}
	return pathOf(p.Local, p.Remote)
}
