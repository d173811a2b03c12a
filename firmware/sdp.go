package firmware

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/callbox/callbox/capture"
)

// absCaptureTimeURI names the abs-capture-time RTP header extension
// (docs/protocol.md); every first packet of a frame and every audio packet
// carries it with ID 1.
const absCaptureTimeURI = "http://www.webrtc.org/experiments/rtp-hdrext/abs-capture-time"

// sendSDP describes the streams `callbox send` emits, in the form ffplay,
// VLC and GStreamer open as a file: plain RTP/AVP with static payload types
// (26 JPEG, 0 PCMU), so nothing needs negotiating, and the receiver's own
// address in c= (an SDP file tells the receiver where to listen).
type sendSDP struct {
	Addr      netip.Addr // the receiver's address (where the packets go)
	VideoPort int        // RTP/JPEG; RTCP would be VideoPort+1
	AudioPort int        // PCMU; VideoPort+2 by convention
	FPS       int        // announced with a=framerate (informational)
	// VideoCodec is capture.CodecH264 (dynamic payload type 96, RFC 6184
	// packetization mode 1) or JPEG (the default).
	VideoCodec capture.Codec
	// ProfileLevelID is the H.264 fmtp profile-level-id (hex), "" to
	// leave it out (a camera's own H.264, whose profile the camera picks).
	ProfileLevelID string
	SessionID      uint64 // o= session id; any number unique enough
	Version        string // the program version, for a=tool
}

// marshal returns the SDP text (RFC 8866), lines ending in CRLF.
func (s sendSDP) marshal() ([]byte, error) {
	if !s.Addr.IsValid() {
		return nil, fmt.Errorf("sdp: no receiver address")
	}
	for _, p := range []int{s.VideoPort, s.AudioPort} {
		if p <= 0 || p > 65535 {
			return nil, fmt.Errorf("sdp: port %d out of range", p)
		}
	}
	addrType := "IP4"
	addr := s.Addr.Unmap()
	if addr.Is6() {
		addrType = "IP6"
	}
	var b strings.Builder
	line := func(format string, args ...any) {
		fmt.Fprintf(&b, format, args...)
		b.WriteString("\r\n")
	}
	line("v=0")
	line("o=- %d 1 IN %s %s", s.SessionID, addrType, addr)
	line("s=callbox")
	if s.VideoCodec == capture.CodecH264 {
		line("i=callbox send: RTP/H.264 video and PCMU audio")
	} else {
		line("i=callbox send: RTP/JPEG video and PCMU audio")
	}
	line("c=IN %s %s", addrType, addr)
	line("t=0 0")
	line("a=tool:callbox %s", sdpToken(s.Version))
	if s.VideoCodec == capture.CodecH264 {
		// No sprop-parameter-sets: SPS and PPS come in band before every
		// IDR, so a receiver can start at any keyframe.
		line("m=video %d RTP/AVP %d", s.VideoPort, capture.PayloadTypeH264)
		line("a=rtpmap:%d H264/%d", capture.PayloadTypeH264, capture.VideoClockRate)
		if s.ProfileLevelID != "" {
			line("a=fmtp:%d packetization-mode=1;profile-level-id=%s", capture.PayloadTypeH264, s.ProfileLevelID)
		} else {
			line("a=fmtp:%d packetization-mode=1", capture.PayloadTypeH264)
		}
	} else {
		line("m=video %d RTP/AVP %d", s.VideoPort, capture.PayloadTypeJPEG)
		line("a=rtpmap:%d JPEG/%d", capture.PayloadTypeJPEG, capture.VideoClockRate)
	}
	if s.FPS > 0 {
		line("a=framerate:%d", s.FPS)
	}
	line("a=extmap:1 %s", absCaptureTimeURI)
	line("m=audio %d RTP/AVP %d", s.AudioPort, capture.PayloadTypePCMU)
	line("a=rtpmap:%d PCMU/%d", capture.PayloadTypePCMU, capture.PCMUClockRate)
	line("a=ptime:%d", capture.ChunkDuration.Milliseconds())
	line("a=extmap:1 %s", absCaptureTimeURI)
	return []byte(b.String()), nil
}

// sdpToken keeps a free-form value on one SDP line.
func sdpToken(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return -1
		}
		return r
	}, s)
	if s == "" {
		return "dev"
	}
	return s
}
