package box

import (
	"bytes"
	"errors"
	"image/jpeg"
	"slices"
	"strings"
	"time"

	"github.com/callbox/callbox/capture"
	"github.com/callbox/callbox/capture/h264dec"
	"github.com/callbox/callbox/capture/pcmu"
	"github.com/callbox/callbox/capture/rtph264"
	"github.com/callbox/callbox/capture/rtpjpeg"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

func (call *Call) notePacket(n int) {
	for {
		old := call.maxPacket.Load()
		if int64(n) <= old || call.maxPacket.CompareAndSwap(old, int64(n)) {
			return
		}
	}
}

// maxLatencySamples bounds the per-frame latencies kept for Summary (an
// hour at 30 fps would be 108,000: the first ones are enough).
const maxLatencySamples = 1 << 16

func (call *Call) noteLatency(d time.Duration) {
	call.latMu.Lock()
	if len(call.latency) < maxLatencySamples {
		call.latency = append(call.latency, latencySample{at: call.since(), us: int32(d / time.Microsecond)})
	}
	call.latMu.Unlock()
}

// latencySample is one frame's capture-to-received time and when it came
// (ns since the call started).
type latencySample struct {
	at int64
	us int32
}

// frameBuf collects the packets of the video frame being received, for
// OnMedia, reusing its buffers from frame to frame.
type frameBuf struct {
	pkts [][]byte
	n    int
}

func (fb *frameBuf) reset() { fb.n = 0 }

func (fb *frameBuf) add(p []byte) {
	if fb.n == len(fb.pkts) {
		fb.pkts = append(fb.pkts, make([]byte, 0, 1500))
	}
	fb.pkts[fb.n] = append(fb.pkts[fb.n][:0], p...)
	fb.n++
}

func (fb *frameBuf) packets() [][]byte { return fb.pkts[:fb.n] }

// sameFrame reports whether packet p has the RTP timestamp of the frame
// being collected.
func (fb *frameBuf) sameFrame(p []byte) bool {
	return fb.n == 0 || bytes.Equal(fb.pkts[0][4:8], p[4:8])
}

// receive depacketizes the peer's media: H.264 access units and JPEG
// frames are reassembled (a JPEG is decoded: proof it arrived whole; an
// H.264 unit is passed on whole or not at all, a loss asks the sender for
// a keyframe), Opus is decoded with FEC, PCMU decoded.
func (call *Call) receive(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
	buf := make([]byte, 1500)
	mime := strings.ToLower(tr.Codec().MimeType)
	cfg := call.caller.cfg
	if tr.Kind() == webrtc.RTPCodecTypeVideo {
		call.recvVideo.Store(strings.TrimPrefix(mime, "video/"))
	} else {
		call.recvAudio.Store(strings.TrimPrefix(mime, "audio/"))
	}
	jd := rtpjpeg.NewDepacketizer()
	hd := rtph264.NewDepacketizer()
	ad := pcmu.NewDepacketizer()
	var or *opusReceiver
	var dec *h264dec.Decoder
	if cfg.DecodeVideo && mime == strings.ToLower(webrtc.MimeTypeH264) {
		d, err := h264dec.NewDecoder()
		if err != nil {
			cfg.Log.Warn("received H.264 not decoded", "err", err)
		} else {
			dec = d
			defer d.Close()
		}
	}
	if mime == strings.ToLower(webrtc.MimeTypeOpus) {
		var err error
		if or, err = newOpusReceiver(); err != nil {
			cfg.Log.Warn("the other box's Opus is passed on undecoded", "err", err)
		}
	}
	onMedia, onFrame, onAudio := cfg.OnMedia, cfg.OnFrame, cfg.OnAudio
	var emit func(capture.AudioChunk)
	if onAudio != nil {
		emit = func(c capture.AudioChunk) { onAudio(call.Peer, c) }
	}
	var (
		frame    frameBuf // the packets of the frame being received, for OnMedia
		hdr      rtp.Header
		lastPLI  time.Time
		audioSeq uint64
	)
	for {
		n, _, err := tr.Read(buf)
		if err != nil {
			return
		}
		call.firstMedia.CompareAndSwap(0, call.since())
		pkt := buf[:n]
		switch mime {
		case strings.ToLower(webrtc.MimeTypeH264):
			if onMedia != nil && n >= 12 {
				if !frame.sameFrame(pkt) {
					frame.reset()
				}
				frame.add(pkt)
			}
			au, ok, err := hd.Push(pkt)
			if errors.Is(err, capture.ErrMediaLost) || (hd.NeedKeyframe() && !ok) {
				st := hd.Stats()
				call.framesLost.Store(st.LostUnits + st.Skipped)
				if now := time.Now(); hd.NeedKeyframe() && now.Sub(lastPLI) > keyframeGap {
					// The sender forces an IDR; until it comes nothing is
					// passed on (P frames without their reference).
					lastPLI = now
					call.plisSent.Add(1)
					_ = call.writeRTCP(&rtcp.PictureLossIndication{MediaSSRC: uint32(tr.SSRC())})
				}
			}
			if !ok {
				continue
			}
			call.framesRecv.Add(1)
			now := time.Now()
			if dec != nil {
				if _, _, _, err := dec.Decode(au.Data); err != nil {
					call.framesUndecodable.Add(1)
					cfg.Log.Warn("received frame does not decode", "err", err, "keyframe", au.Keyframe)
				} else {
					call.framesDecoded.Add(1)
				}
			} else {
				call.framesDecoded.Add(1) // whole, and its references too: a decoder takes it
			}
			if !au.CaptureTime.IsZero() {
				call.noteLatency(now.Sub(au.CaptureTime))
			}
			call.firstFrame.CompareAndSwap(0, call.since())
			call.lastFrame.Store(call.since())
			if onMedia != nil && frame.n > 0 {
				onMedia(call.Peer, capture.Burst{Kind: capture.KindVideo, Keyframe: au.Keyframe, CaptureTime: now, Packets: frame.packets()})
				frame.reset()
			}
			if onFrame != nil {
				at := au.CaptureTime
				if at.IsZero() {
					at = now
				}
				onFrame(call.Peer, capture.VideoFrame{Codec: capture.CodecH264, Data: au.Data, Keyframe: au.Keyframe,
					CaptureTime: at, Seq: call.framesRecv.Load()})
			}
		case strings.ToLower(mimeJPEG):
			if onMedia != nil && n >= 12 {
				// A packet of another frame (RTP timestamp) starts over:
				// the rest of an incomplete frame is never passed on.
				if !frame.sameFrame(pkt) {
					frame.reset()
				}
				frame.add(pkt)
			}
			f, ok, err := jd.Push(pkt)
			if errors.Is(err, capture.ErrMediaLost) {
				call.framesLost.Store(jd.Stats().LostFrames)
			}
			if !ok {
				continue
			}
			now := time.Now()
			if onMedia != nil && frame.n > 0 {
				onMedia(call.Peer, capture.Burst{Kind: capture.KindVideo, Keyframe: true, CaptureTime: now, Packets: frame.packets()})
				frame.reset()
			}
			call.framesRecv.Add(1)
			if !f.CaptureTime.IsZero() {
				call.noteLatency(now.Sub(f.CaptureTime))
			}
			if _, err := jpeg.Decode(bytes.NewReader(f.Data)); err != nil {
				call.framesUndecodable.Add(1)
				cfg.Log.Warn("received frame does not decode", "err", err)
				continue
			}
			call.framesDecoded.Add(1)
			if onFrame != nil {
				at := f.CaptureTime
				if at.IsZero() {
					at = now
				}
				onFrame(call.Peer, capture.VideoFrame{Codec: capture.CodecJPEG, Data: f.Data, Width: f.Width, Height: f.Height,
					Keyframe: true, CaptureTime: at, Seq: call.framesRecv.Load()})
			}
			call.firstFrame.CompareAndSwap(0, call.since())
			call.lastFrame.Store(call.since())
		case strings.ToLower(webrtc.MimeTypeOpus):
			if _, err := hdr.Unmarshal(pkt); err != nil || n <= hdr.MarshalSize() {
				continue
			}
			call.audioRecv.Add(1)
			if onMedia != nil {
				onMedia(call.Peer, capture.Burst{Kind: capture.KindAudio, Keyframe: true, CaptureTime: time.Now(), Packets: [][]byte{pkt}})
			}
			if or != nil {
				lost, rec, err := or.push(hdr.SequenceNumber, pkt[hdr.MarshalSize():], time.Now(), emit)
				call.audioLost.Add(uint64(lost - rec))
				call.audioFEC.Add(uint64(rec))
				if err != nil {
					cfg.Log.Debug("Opus packet does not decode", "err", err)
				}
			}
		case strings.ToLower(webrtc.MimeTypePCMU):
			if c, ok, _ := ad.Push(pkt); ok {
				call.audioRecv.Add(1)
				if onMedia != nil {
					onMedia(call.Peer, capture.Burst{Kind: capture.KindAudio, Keyframe: true, CaptureTime: time.Now(), Packets: [][]byte{pkt}})
				}
				if onAudio != nil {
					audioSeq++
					onAudio(call.Peer, capture.AudioChunk{Samples: c.Samples, Rate: capture.PCMUClockRate, CaptureTime: time.Now(), Seq: audioSeq})
				}
			}
			call.audioLost.Store(ad.Stats().LostPackets)
		}
	}
}

// writeRTCP sends RTCP on the current PeerConnection.
func (call *Call) writeRTCP(p rtcp.Packet) error {
	call.mu.Lock()
	pc := call.pc
	call.mu.Unlock()
	if pc == nil {
		return nil
	}
	return pc.WriteRTCP([]rtcp.Packet{p})
}

// latencyPercentiles returns the 50th and 99th percentile of the
// capture-to-received times of the frames that came after skip (ns since
// the call started), and how many frames had one.
func (call *Call) latencyPercentiles(skip int64) (p50, p99 time.Duration, n int) {
	call.latMu.Lock()
	var l []int32
	for _, s := range call.latency {
		if s.at >= skip {
			l = append(l, s.us)
		}
	}
	call.latMu.Unlock()
	if len(l) == 0 {
		return 0, 0, 0
	}
	slices.Sort(l)
	at := func(q float64) time.Duration {
		return time.Duration(l[min(len(l)-1, int(q*float64(len(l))))]) * time.Microsecond
	}
	return at(0.50), at(0.99), len(l)
}
