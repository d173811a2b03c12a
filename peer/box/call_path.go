package box

import (
	"fmt"
	"net"
	"strings"
	"time"

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

	// Call media (docs/calls.md).
	VideoSent      string  `json:"video_sent"`       // negotiated codec this box sends: h264 or jpeg
	AudioCodecSent string  `json:"audio_sent_codec"` // opus or pcmu
	VideoReceived  string  `json:"video_received"`   // the other box's codec
	AudioReceivedC string  `json:"audio_received_codec"`
	Step           string  `json:"step"`              // the video step sent now, WxH@fps
	LowestStep     string  `json:"lowest_step"`       // the smallest step sent
	StepDowns      int     `json:"step_downs"`        //
	StepUps        int     `json:"step_ups"`          //
	Estimate       int     `json:"estimate_bps"`      // the bandwidth estimate now (GCC)
	EncoderBitrate int     `json:"encoder_bps"`       // what the H.264 encoder was last asked for
	KeyframesSent  uint64  `json:"keyframes_sent"`    //
	KeyRequests    uint64  `json:"keyframe_requests"` // PLI/FIR from the other box
	PLIsSent       uint64  `json:"plis_sent"`         // keyframe requests this box sent
	AudioFEC       uint64  `json:"audio_fec"`         // lost Opus packets rebuilt from FEC
	OpusLoss       int     `json:"opus_loss_percent"` // expected loss Opus's encoder was told
	LatencyFrames  int     `json:"latency_frames"`    // frames with a capture time
	LatencyP50MS   float64 `json:"latency_p50_ms"`    // capture (abs-capture-time) to the frame's last packet
	LatencyP99MS   float64 `json:"latency_p99_ms"`
	VideoKbps      float64 `json:"video_kbps"`    // RTP video sent, over the call
	SteadyP99MS    float64 `json:"steady_p99_ms"` // the same, over the frames SteadyAfter the first
	ReceivedFPS    float64 `json:"received_fps"`  // whole frames a second, first to last
	// FramesUndecodable counts whole H.264 frames the decoder refused
	// (CallerConfig.DecodeVideo; JPEG: frames that did not decode).
	FramesUndecodable uint64 `json:"frames_undecodable"`
}

// SteadyAfter is how long after the first frame Summary.SteadyP99MS starts
// counting: the first keyframe (the largest frame of a call) and the
// estimate's first adjustment are behind.
const SteadyAfter = 2 * time.Second

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
	call.mu.Lock()
	vt, at := call.video, call.audio
	call.mu.Unlock()
	s.VideoSent, s.AudioCodecSent = codecName(vt), codecName(at)
	s.VideoReceived, _ = call.recvVideo.Load().(string)
	s.AudioReceivedC, _ = call.recvAudio.Load().(string)
	vs := &call.vstats
	s.Step, _ = vs.step.Load().(string)
	s.LowestStep, _ = vs.lowest.Load().(string)
	s.StepDowns, s.StepUps = int(vs.downs.Load()), int(vs.ups.Load())
	s.Estimate = call.estimate()
	s.EncoderBitrate = int(vs.encoderBitrate.Load())
	s.KeyframesSent, s.KeyRequests = vs.keyframes.Load(), vs.keyRequests.Load()
	s.PLIsSent, s.AudioFEC = call.plisSent.Load(), call.audioFEC.Load()
	s.OpusLoss = int(call.opusLossSet.Load())
	s.FramesUndecodable = call.framesUndecodable.Load()
	if d := call.since() - call.connectAt.Load(); call.connectAt.Load() != 0 && d > 0 {
		s.VideoKbps = float64(call.videoBytes.Load()) * 8 / (float64(d) / 1e9) / 1000
	}
	p50, p99, n := call.latencyPercentiles(0)
	s.LatencyFrames, s.LatencyP50MS, s.LatencyP99MS = n, ms(int64(p50)), ms(int64(p99))
	if first := call.firstFrame.Load(); first != 0 {
		_, p99, _ = call.latencyPercentiles(first + int64(SteadyAfter))
		s.SteadyP99MS = ms(int64(p99))
	}
	if first, last := call.firstFrame.Load(), call.lastFrame.Load(); last > first && s.FramesDecoded > 1 {
		s.ReceivedFPS = float64(s.FramesDecoded-1) / (float64(last-first) / 1e9)
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

func codecName(t *callTrack) string {
	if t == nil {
		return ""
	}
	c := t.lastCodec()
	if i := strings.IndexByte(c, '/'); i >= 0 {
		c = c[i+1:]
	}
	return c
}
