package box

import (
	"testing"
	"time"

	"github.com/callbox/callbox/capture"
	"github.com/callbox/callbox/capture/rtph264"
	"github.com/pion/interceptor"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// benchContext is a binding whose writer counts packets: the call's own
// per-packet path (packetizer, callTrack.Write) without pion's
// interceptors, SRTP and sockets below it.
type benchContext struct{ w benchWriter }

type benchWriter struct{ n, bytes int }

func (w *benchWriter) WriteRTP(h *rtp.Header, p []byte) (int, error) {
	w.n++
	w.bytes += len(p)
	return len(p), nil
}
func (w *benchWriter) Write(b []byte) (int, error) { return len(b), nil }

func (c *benchContext) CodecParameters() []webrtc.RTPCodecParameters {
	return []webrtc.RTPCodecParameters{{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264,
		ClockRate: 90000, SDPFmtpLine: h264FMTP}, PayloadType: capture.PayloadTypeH264}}
}
func (c *benchContext) HeaderExtensions() []webrtc.RTPHeaderExtensionParameter { return nil }
func (c *benchContext) SSRC() webrtc.SSRC                                      { return 1234 }
func (c *benchContext) SSRCRetransmission() webrtc.SSRC                        { return 0 }
func (c *benchContext) SSRCForwardErrorCorrection() webrtc.SSRC                { return 0 }
func (c *benchContext) WriteStream() webrtc.TrackLocalWriter                   { return &c.w }
func (c *benchContext) ID() string                                             { return "bench" }
func (c *benchContext) RTCPReader() interceptor.RTCPReader                     { return nil }

// BenchmarkCallSendH264 packetizes a 64 KB access unit (a 720p keyframe
// at call rates) and writes every packet through the call's track: the
// call's own share of the per-packet path, which must allocate nothing.
// (pion's interceptors below it, the pacer and transport-cc, are not
// counted: they allocate per packet, docs/calls.md.)
func BenchmarkCallSendH264(b *testing.B) {
	t := newCallTrack(webrtc.RTPCodecTypeVideo, "video", webrtc.MimeTypeH264, mimeJPEG)
	ctx := &benchContext{}
	if _, err := t.Bind(ctx); err != nil {
		b.Fatal(err)
	}
	p, err := rtph264.NewPacketizer(maxMediaPacket(DefaultMaxDatagram), 1, capture.PayloadTypeH264)
	if err != nil {
		b.Fatal(err)
	}
	// One IDR slice NAL of 64 KB after SPS and PPS, Annex B.
	au := []byte{0, 0, 0, 1, 0x67, 0x42, 0xe0, 0x1f, 0xda, 0x01, 0x40, 0x16, 0xe8, 0x06, 0xd0, 0xa1, 0x35,
		0, 0, 0, 1, 0x68, 0xce, 0x06, 0xe2, 0, 0, 0, 1, 0x65}
	for i := range 64 << 10 {
		au = append(au, byte(i%251)+1)
	}
	f := capture.VideoFrame{Codec: capture.CodecH264, Data: au, Width: 1280, Height: 720, Keyframe: true, CaptureTime: time.Now()}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		f.CaptureTime = f.CaptureTime.Add(33 * time.Millisecond)
		burst, err := p.Packetize(f)
		if err != nil {
			b.Fatal(err)
		}
		for _, pk := range burst.Packets {
			if err := t.Write(pk); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(ctx.w.n)/float64(b.N), "packets/op")
}
