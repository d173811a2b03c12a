package box

import (
	"fmt"
	"net"
	"time"

	"github.com/callbox/callbox/capture"
	"github.com/callbox/callbox/capture/opus"
	"github.com/callbox/callbox/capture/rtpext"
	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/cc"
	"github.com/pion/interceptor/pkg/gcc"
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
	// twccOverhead is what transport-cc adds to a packet: a one-byte
	// extension element of 3 bytes, in a 4-byte extension header when the
	// packet had none, padded to 4 (8 at most; none on a packet whose
	// abs-capture-time padding already has room).
	twccOverhead = 8
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

// maxMediaPacket is the largest RTP packet a packetizer may make: room is
// left for the transport-cc extension the interceptors add.
func maxMediaPacket(maxDatagram int) int { return MaxRTPPacket(maxDatagram) - twccOverhead }

// Call codecs, in the order of preference each box offers them: H.264
// (constrained baseline, packetization-mode 1, what every WebRTC stack
// decodes and what the phones' WHEP path forwards untouched), then RFC 2435
// JPEG, which boxes from before H.264 calls send and take. Opus (in-band
// FEC) before PCMU for audio. The payload types are the ones the rest of
// callbox uses (capture.PayloadType*), so the call relay republishes the
// received packets as they are.
const (
	h264FMTP = "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"
	opusFMTP = "minptime=10;useinbandfec=1"
)

var (
	videoFeedback = []webrtc.RTCPFeedback{
		{Type: "nack", Parameter: "pli"}, {Type: "ccm", Parameter: "fir"}, {Type: webrtc.TypeRTCPFBTransportCC},
	}
	audioFeedback = []webrtc.RTCPFeedback{{Type: webrtc.TypeRTCPFBTransportCC}}
)

// newAPI builds the Caller's WebRTC API: its codecs and, unless the
// Caller plays a box from before H.264 calls (cfg.LegacyMedia), the
// congestion control (TWCC feedback and Google congestion control's send
// side estimate, whose estimator each PeerConnection hands to bwe) and
// the RTCP reports whose loss figures drive Opus's FEC.
func newAPI(cfg *CallerConfig, bwe func(cc.BandwidthEstimator)) (*webrtc.API, error) {
	me := &webrtc.MediaEngine{}
	reg := func(c webrtc.RTPCodecParameters, k webrtc.RTPCodecType) error {
		if err := me.RegisterCodec(c, k); err != nil {
			return fmt.Errorf("peer: register %s: %w", c.MimeType, err)
		}
		return nil
	}
	legacy := cfg.LegacyMedia
	if !legacy {
		if err := reg(webrtc.RTPCodecParameters{
			RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: capture.VideoClockRate,
				SDPFmtpLine: h264FMTP, RTCPFeedback: videoFeedback},
			PayloadType: capture.PayloadTypeH264,
		}, webrtc.RTPCodecTypeVideo); err != nil {
			return nil, err
		}
	}
	// JPEG (RFC 2435) has the static payload type 26; pion has no built-in
	// entry for it, so it is registered by hand, as is PCMU with its static 0.
	jpegCap := webrtc.RTPCodecCapability{MimeType: mimeJPEG, ClockRate: capture.VideoClockRate}
	if !legacy {
		jpegCap.RTCPFeedback = videoFeedback
	}
	if err := reg(webrtc.RTPCodecParameters{RTPCodecCapability: jpegCap, PayloadType: capture.PayloadTypeJPEG}, webrtc.RTPCodecTypeVideo); err != nil {
		return nil, err
	}
	if !legacy && opus.Available {
		if err := reg(webrtc.RTPCodecParameters{
			RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: opus.Rate, Channels: 2,
				SDPFmtpLine: opusFMTP, RTCPFeedback: audioFeedback},
			PayloadType: capture.PayloadTypeOpus,
		}, webrtc.RTPCodecTypeAudio); err != nil {
			return nil, err
		}
	}
	pcmuCap := webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypePCMU, ClockRate: capture.PCMUClockRate, Channels: 1}
	if !legacy {
		pcmuCap.RTCPFeedback = audioFeedback
	}
	if err := reg(webrtc.RTPCodecParameters{RTPCodecCapability: pcmuCap, PayloadType: capture.PayloadTypePCMU}, webrtc.RTPCodecTypeAudio); err != nil {
		return nil, err
	}
	ir := &interceptor.Registry{}
	if !legacy {
		// abs-capture-time first, so that it gets ID 1 on both boxes: the
		// packetizers write it there (capture/rtpext) and the call relay
		// passes it on to the phones unchanged. transport-cc comes second.
		for _, k := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
			if err := me.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: rtpext.AbsCaptureTimeURI}, k); err != nil {
				return nil, fmt.Errorf("peer: abs-capture-time: %w", err)
			}
		}
		// The congestion controller (with its pacer) comes first: the
		// transport-cc extension must be on a packet when it reaches the
		// pacer, so the extension's interceptor wraps it.
		f, err := cc.NewInterceptor(func() (cc.BandwidthEstimator, error) {
			return gcc.NewSendSideBWE(
				gcc.SendSideBWEInitialBitrate(cfg.StartBitrate),
				gcc.SendSideBWEMinBitrate(MinCallBitrate),
				gcc.SendSideBWEMaxBitrate(cfg.MaxBitrate),
			)
		})
		if err != nil {
			return nil, fmt.Errorf("peer: congestion control: %w", err)
		}
		f.OnNewPeerConnection(func(_ string, e cc.BandwidthEstimator) { bwe(e) })
		ir.Add(f)
		if err := webrtc.ConfigureTWCCHeaderExtensionSender(me, ir); err != nil {
			return nil, fmt.Errorf("peer: transport-cc: %w", err)
		}
		if err := webrtc.ConfigureTWCCSender(me, ir); err != nil {
			return nil, fmt.Errorf("peer: transport-cc feedback: %w", err)
		}
		if err := webrtc.ConfigureRTCPReports(ir); err != nil {
			return nil, fmt.Errorf("peer: RTCP reports: %w", err)
		}
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
	// The interceptors add transport-cc (3 bytes and padding) to every
	// packet: twccOverhead in the datagram budget.
	return webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithSettingEngine(se), webrtc.WithInterceptorRegistry(ir)), nil
}

const mimeJPEG = "video/JPEG"
