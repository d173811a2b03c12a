package box

import (
	"fmt"
	"net"
	"time"

	"github.com/callbox/callbox/capture"
	"github.com/pion/ice/v4"
	"github.com/pion/logging"
	"github.com/pion/webrtc/v4"
)

// Datagram budget (S8). A media datagram on the wire is the RTP packet,
// plus the SRTP authentication tag (16 bytes with AEAD_AES_128_GCM, 10 with
// AES_CM_128_HMAC_SHA1_80), plus, through a relay, a TURN Send indication
// (20-byte STUN header, 12-byte XOR-PEER-ADDRESS, 4-byte DATA header, up
// to 3 bytes of padding; ChannelData needs only 4). Budgeting the worst
// case keeps every datagram within MaxDatagram on every path.
const (
	srtpOverhead = 16
	turnOverhead = 40
	// DefaultMaxDatagram is the default datagram limit: the RTP size the
	// rest of callbox uses (capture.DefaultMaxPacketSize).
	DefaultMaxDatagram = capture.DefaultMaxPacketSize
	// MinMaxDatagram is the smallest limit accepted: DTLS handshake
	// flights from pion are fragmented at 1200 bytes and cannot be made
	// smaller through webrtc's SettingEngine, so a lower limit would be a
	// promise the call breaks during setup.
	MinMaxDatagram = 1200
)

// MaxRTPPacket is the largest RTP packet that fits maxDatagram after SRTP
// and TURN overhead.
func MaxRTPPacket(maxDatagram int) int { return maxDatagram - srtpOverhead - turnOverhead }

func newAPI(cfg *CallerConfig) (*webrtc.API, error) {
	me := &webrtc.MediaEngine{}
	// JPEG (RFC 2435) has the static payload type 26; pion has no built-in
	// entry for it, so it is registered by hand, as is PCMU with its static 0.
	if err := me.RegisterCodec(webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: mimeJPEG, ClockRate: capture.VideoClockRate},
		PayloadType:        capture.PayloadTypeJPEG,
	}, webrtc.RTPCodecTypeVideo); err != nil {
		return nil, fmt.Errorf("peer: register JPEG: %w", err)
	}
	if err := me.RegisterCodec(webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypePCMU, ClockRate: capture.PCMUClockRate, Channels: 1},
		PayloadType:        capture.PayloadTypePCMU,
	}, webrtc.RTPCodecTypeAudio); err != nil {
		return nil, fmt.Errorf("peer: register PCMU: %w", err)
	}
	var se webrtc.SettingEngine
	lf := logging.NewDefaultLoggerFactory()
	// pion warns about every closed socket at hang-up; errors are enough.
	lf.DefaultLogLevel = logging.LogLevelError
	se.LoggerFactory = lf
	if cfg.Net != nil {
		se.SetNet(cfg.Net)
	}
	if cfg.LoopbackOnly {
		se.SetIncludeLoopbackCandidate(true)
		se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	}
	se.SetReceiveMTU(uint(cfg.MaxDatagram))
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled) // boxes learn addresses from signed SDPs, not mDNS
	se.SetICETimeouts(cfg.DisconnectedTimeout, cfg.FailedTimeout, cfg.KeepAlive)
	se.SetHostAcceptanceMinWait(0)
	se.SetSrflxAcceptanceMinWait(cfg.SrflxWait)
	se.SetPrflxAcceptanceMinWait(cfg.SrflxWait)
	se.SetRelayAcceptanceMinWait(cfg.RelayWait)
	se.SetSTUNGatherTimeout(2 * time.Second)
	// The call closes its PeerConnection itself, after its stats sampler has
	// stopped: pion's own close on a DTLS close_notify races with GetStats.
	se.DisableCloseByDTLS(true)
	// No interceptors: they would add header extensions (TWCC) that the
	// datagram budget does not account for; the JPEG and PCMU streams need
	// no congestion feedback to be decoded.
	return webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithSettingEngine(se)), nil
}

const mimeJPEG = "video/JPEG"
