package box

import (
	"errors"
	"strings"
	"sync"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// callTrack is a call's local track. Unlike pion's TrackLocalStaticRTP,
// which sends one codec, it takes whichever of its codecs the other box
// accepted, in its own order of preference (H.264 before JPEG, Opus before
// PCMU): the sender asks Codec which one to make. An older box answers
// with JPEG and PCMU only, and gets them.
type callTrack struct {
	id, stream string
	kind       webrtc.RTPCodecType
	prefer     []string // mime types, lower case, best first

	mu     sync.Mutex
	codec  webrtc.RTPCodecParameters // zero while unbound
	ssrc   webrtc.SSRC
	writer webrtc.TrackLocalWriter
	hdr    rtp.Header // reused by Write: no allocation per packet
}

func newCallTrack(kind webrtc.RTPCodecType, id string, prefer ...string) *callTrack {
	for i := range prefer {
		prefer[i] = strings.ToLower(prefer[i])
	}
	return &callTrack{id: id, stream: "callbox", kind: kind, prefer: prefer}
}

var errNoCommonCodec = errors.New("peer: the other box accepts none of this box's codecs")

// Bind picks the best codec both boxes have.
func (t *callTrack) Bind(ctx webrtc.TrackLocalContext) (webrtc.RTPCodecParameters, error) {
	params := ctx.CodecParameters()
	for _, want := range t.prefer {
		for _, c := range params {
			if strings.ToLower(c.MimeType) != want {
				continue
			}
			if want == strings.ToLower(webrtc.MimeTypeH264) && !strings.Contains(c.SDPFmtpLine, "packetization-mode=1") {
				continue
			}
			t.mu.Lock()
			t.codec, t.ssrc, t.writer = c, ctx.SSRC(), ctx.WriteStream()
			t.mu.Unlock()
			return c, nil
		}
	}
	return webrtc.RTPCodecParameters{}, errNoCommonCodec
}

// Unbind forgets the binding (a PeerConnection replaced after glare, or
// closed); the codec stays known for the call's summary.
func (t *callTrack) Unbind(webrtc.TrackLocalContext) error {
	t.mu.Lock()
	t.writer = nil
	t.mu.Unlock()
	return nil
}

func (t *callTrack) ID() string                { return t.id }
func (t *callTrack) RID() string               { return "" }
func (t *callTrack) StreamID() string          { return t.stream }
func (t *callTrack) Kind() webrtc.RTPCodecType { return t.kind }

// Codec is the negotiated codec's mime type in lower case ("" before the
// negotiation, or while unbound).
func (t *callTrack) Codec() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.writer == nil {
		return ""
	}
	return strings.ToLower(t.codec.MimeType)
}

// lastCodec is the codec of the latest binding, bound or not.
func (t *callTrack) lastCodec() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.ToLower(t.codec.MimeType)
}

// Write sends one marshalled RTP packet with the binding's SSRC and
// payload type. Before the binding it drops the packet (the call is still
// connecting).
func (t *callTrack) Write(b []byte) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.writer == nil {
		return nil
	}
	n, err := t.hdr.Unmarshal(b)
	if err != nil {
		return err
	}
	t.hdr.SSRC = uint32(t.ssrc)
	t.hdr.PayloadType = uint8(t.codec.PayloadType)
	_, err = t.writer.WriteRTP(&t.hdr, b[n:])
	return err
}
