package box

import (
	"strings"
	"time"

	"github.com/callbox/callbox/capture"
	"github.com/callbox/callbox/capture/opus"
	"github.com/callbox/callbox/capture/pcmu"
	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"
)

func (call *Call) sendAudio(m *Media, t *callTrack) {
	maxPacket := maxMediaPacket(call.caller.cfg.MaxDatagram)
	var op *opus.Packetizer
	lossSet := -1
	pp := m.AudioPacketizer
	if pp == nil {
		p, err := pcmu.NewPacketizer(maxPacket, randomSSRC(), capture.PayloadTypePCMU)
		if err != nil {
			call.caller.cfg.Log.Error("no audio in this call", "err", err)
			return
		}
		pp = p
	}
	for {
		c, err := m.Audio.ReadChunk(call.ctx)
		if err != nil {
			return
		}
		var b capture.Burst
		switch t.Codec() {
		case "":
			continue
		case strings.ToLower(webrtc.MimeTypeOpus):
			if op == nil {
				if op, err = opus.NewPacketizer(maxPacket, randomSSRC(), capture.PayloadTypeOpus); err != nil {
					call.caller.cfg.Log.Error("no Opus in this call", "err", err)
					return
				}
			}
			// In-band FEC always on, its share following the loss the
			// other box reports (RTCP receiver reports).
			if loss := int(call.lossPercent.Load()); loss != lossSet {
				if err := op.SetLoss(true, loss); err != nil {
					call.caller.cfg.Log.Warn("Opus FEC", "err", err)
				}
				lossSet = loss
				call.opusLossSet.Store(int32(loss))
			}
			b, err = op.Packetize(c)
		default:
			b, err = pp.Packetize(c)
		}
		if err != nil {
			call.caller.cfg.Log.Warn("audio chunk not sent", "err", err)
			continue
		}
		for _, p := range b.Packets {
			call.notePacket(len(p))
			_ = t.Write(p)
		}
		call.audioSent.Add(1)
	}
}

// readRTCP reads the other box's RTCP about what this box sends: the
// interceptors (transport-cc feedback into the bandwidth estimate, the
// reports) see it as it is read. A PLI or FIR asks for a keyframe; a
// receiver report's fraction lost sets Opus's FEC.
func (call *Call) readRTCP(s *webrtc.RTPSender, kind webrtc.RTPCodecType) {
	for {
		pkts, _, err := s.ReadRTCP()
		if err != nil {
			return
		}
		for _, p := range pkts {
			switch p := p.(type) {
			case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
				if kind == webrtc.RTPCodecTypeVideo {
					call.vstats.keyRequests.Add(1)
					call.vstats.keyPending.Store(true)
				}
			case *rtcp.ReceiverReport:
				if kind == webrtc.RTPCodecTypeAudio {
					for _, r := range p.Reports {
						call.lossPercent.Store(int32(r.FractionLost) * 100 / 256)
					}
				}
			}
		}
	}
}

// opusReceiver decodes the other box's Opus, rebuilding a lost packet from
// the next one's in-band FEC (one lost packet; more are concealed).
type opusReceiver struct {
	dec     *opus.Decoder
	seen    bool
	lastSeq uint16
}

func newOpusReceiver() (*opusReceiver, error) {
	d, err := opus.NewDecoder()
	if err != nil {
		return nil, err
	}
	return &opusReceiver{dec: d}, nil
}

// push decodes one packet; emit hears every 20 ms of audio in order
// (recovered ones first). It reports how many packets were lost before
// this one and how many of them FEC rebuilt.
func (r *opusReceiver) push(seq uint16, payload []byte, at time.Time, emit func(capture.AudioChunk)) (lost, recovered int, err error) {
	if r.seen {
		d := int16(seq - r.lastSeq)
		if d <= 0 {
			return 0, 0, nil // duplicate or late
		}
		lost = int(d) - 1
	}
	r.seen, r.lastSeq = true, seq
	if lost > 0 && lost < 50 {
		// The frame right before this packet is in its FEC data.
		if pcm, err := r.dec.Recover(payload); err == nil {
			recovered = 1
			if emit != nil {
				emit(capture.AudioChunk{Samples: pcm, Rate: opus.Rate, CaptureTime: at.Add(-capture.ChunkDuration)})
			}
		}
	}
	pcm, err := r.dec.Decode(payload)
	if err != nil {
		return lost, recovered, err
	}
	if emit != nil {
		emit(capture.AudioChunk{Samples: pcm, Rate: opus.Rate, CaptureTime: at})
	}
	return lost, recovered, nil
}
