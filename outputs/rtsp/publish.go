package rtsp

import (
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/bluenviron/gortsplib/v5"
	"github.com/bluenviron/gortsplib/v5/pkg/base"
	"github.com/bluenviron/gortsplib/v5/pkg/description"
	"github.com/bluenviron/gortsplib/v5/pkg/format"
	"github.com/callbox/callbox/capture"
	"github.com/pion/rtp"
)

// Publishing (Config.Publisher): one RTSP client may ANNOUNCE and RECORD
// the path; its packets go into the relay unchanged (sequence numbers,
// timestamps, SSRC), a video frame per burst (up to the marker bit), an
// audio packet per burst. The load harness that measures other relays
// publishes this way, so the box is measured with the same publisher.

func (s *Server) OnAnnounce(ctx *gortsplib.ServerHandlerOnAnnounceCtx) (*base.Response, error) {
	if s.cfg.Publisher == nil {
		return &base.Response{StatusCode: base.StatusMethodNotAllowed}, nil
	}
	if !s.authorized(ctx.Conn, ctx.Request) {
		return &base.Response{StatusCode: base.StatusUnauthorized}, errAuth
	}
	if strings.Trim(ctx.Path, "/") != Path {
		return &base.Response{StatusCode: base.StatusNotFound}, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.publishing != nil {
		return &base.Response{StatusCode: base.StatusServiceUnavailable}, nil
	}
	s.publishing = ctx.Session
	return &base.Response{StatusCode: base.StatusOK}, nil
}

func (s *Server) OnRecord(ctx *gortsplib.ServerHandlerOnRecordCtx) (*base.Response, error) {
	if s.cfg.Publisher == nil {
		return &base.Response{StatusCode: base.StatusMethodNotAllowed}, nil
	}
	p := &publisher{s: s}
	ctx.Session.OnPacketRTPAny(func(m *description.Media, _ format.Format, pkt *rtp.Packet) {
		p.packet(m, pkt)
	})
	return &base.Response{StatusCode: base.StatusOK}, nil
}

// publisher gathers one RECORD session's packets into bursts.
type publisher struct {
	s     *Server
	mu    sync.Mutex
	video frameBuf
	audio frameBuf
}

type frameBuf struct {
	mem     []byte
	packets [][]byte
	ends    []int
	first   time.Time
}

func (f *frameBuf) add(pkt *rtp.Packet) error {
	n := pkt.MarshalSize()
	start := len(f.mem)
	f.mem = slices.Grow(f.mem, n)[:start+n]
	if _, err := pkt.MarshalTo(f.mem[start:]); err != nil {
		f.mem = f.mem[:start]
		return err
	}
	f.ends = append(f.ends, len(f.mem))
	return nil
}

func (f *frameBuf) burst(kind capture.Kind, key bool) capture.Burst {
	f.packets = f.packets[:0]
	start := 0
	for _, e := range f.ends {
		f.packets = append(f.packets, f.mem[start:e])
		start = e
	}
	return capture.Burst{Kind: kind, Packets: f.packets, Keyframe: key, CaptureTime: f.first}
}

func (f *frameBuf) reset() { f.mem, f.ends = f.mem[:0], f.ends[:0] }

func (p *publisher) packet(m *description.Media, pkt *rtp.Packet) {
	p.mu.Lock()
	defer p.mu.Unlock()
	pub := p.s.cfg.Publisher
	switch m.Type {
	case description.MediaTypeVideo:
		f := &p.video
		if len(f.ends) == 0 {
			f.first = time.Now()
		}
		if err := f.add(pkt); err != nil {
			f.reset()
			return
		}
		if pkt.Marker || len(f.ends) >= 512 {
			key := pkt.PayloadType == capture.PayloadTypeJPEG || h264Keyframe(f)
			_ = pub.Publish(f.burst(capture.KindVideo, key))
			f.reset()
		}
	case description.MediaTypeAudio:
		f := &p.audio
		f.first = time.Now()
		if err := f.add(pkt); err == nil {
			_ = pub.Publish(f.burst(capture.KindAudio, false))
		}
		f.reset()
	}
}

// h264Keyframe reports whether a frame's packets hold an IDR slice or an
// SPS (RFC 6184: single NAL units, STAP-A, FU-A starts).
func h264Keyframe(f *frameBuf) bool {
	start := 0
	for _, e := range f.ends {
		var h rtp.Header
		n, err := h.Unmarshal(f.mem[start:e])
		pl := f.mem[start+n : e]
		start = e
		if err != nil || len(pl) < 2 {
			continue
		}
		switch t := pl[0] & 0x1f; t {
		case 5, 7:
			return true
		case 24: // STAP-A
			for b := pl[1:]; len(b) > 2; {
				l := int(b[0])<<8 | int(b[1])
				if l == 0 || 2+l > len(b) {
					break
				}
				if nt := b[2] & 0x1f; nt == 5 || nt == 7 {
					return true
				}
				b = b[2+l:]
			}
		case 28: // FU-A
			if pl[1]&0x80 != 0 && pl[1]&0x1f == 5 {
				return true
			}
		}
	}
	return false
}
