package box

import (
	"bytes"
	"errors"
	"image/jpeg"
	"strings"
	"time"

	"github.com/callbox/callbox/capture"
	"github.com/callbox/callbox/capture/pcmu"
	"github.com/callbox/callbox/capture/rtpjpeg"
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

func (call *Call) sendVideo(m *Media, t *webrtc.TrackLocalStaticRTP) {
	for {
		f, err := m.Video.ReadFrame(call.ctx)
		if err != nil {
			return
		}
		b, err := m.VideoPacketizer.Packetize(f)
		if err != nil {
			call.caller.cfg.Log.Warn("video frame not sent", "err", err)
			continue
		}
		for _, p := range b.Packets {
			call.notePacket(len(p))
			_, _ = t.Write(p) // no binding yet (still connecting) is not an error worth logging
		}
		call.framesSent.Add(1)
	}
}

func (call *Call) sendAudio(m *Media, t *webrtc.TrackLocalStaticRTP) {
	for {
		c, err := m.Audio.ReadChunk(call.ctx)
		if err != nil {
			return
		}
		b, err := m.AudioPacketizer.Packetize(c)
		if err != nil {
			call.caller.cfg.Log.Warn("audio chunk not sent", "err", err)
			continue
		}
		for _, p := range b.Packets {
			call.notePacket(len(p))
			_, _ = t.Write(p)
		}
		call.audioSent.Add(1)
	}
}

// receive depacketizes the peer's media: JPEG frames are reassembled and
// decoded (proof they arrived whole), PCMU packets decoded.
func (call *Call) receive(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
	buf := make([]byte, 1500)
	mime := strings.ToLower(tr.Codec().MimeType)
	jd := rtpjpeg.NewDepacketizer()
	ad := pcmu.NewDepacketizer()
	onMedia := call.caller.cfg.OnMedia
	var frame [][]byte // the packets of the frame being received, for OnMedia
	for {
		n, _, err := tr.Read(buf)
		if err != nil {
			return
		}
		call.firstMedia.CompareAndSwap(0, call.since())
		switch mime {
		case strings.ToLower(mimeJPEG):
			if onMedia != nil && n >= 12 {
				// A packet of another frame (RTP timestamp) starts over:
				// the rest of an incomplete frame is never passed on.
				if len(frame) > 0 && !bytes.Equal(frame[0][4:8], buf[4:8]) {
					frame = frame[:0]
				}
				frame = append(frame, bytes.Clone(buf[:n]))
			}
			f, ok, err := jd.Push(buf[:n])
			if errors.Is(err, capture.ErrMediaLost) {
				call.framesLost.Store(jd.Stats().LostFrames)
			}
			if !ok {
				continue
			}
			if onMedia != nil && len(frame) > 0 {
				onMedia(call.Peer, capture.Burst{Kind: capture.KindVideo, Keyframe: true, CaptureTime: time.Now(), Packets: frame})
				frame = frame[:0]
			}
			call.framesRecv.Add(1)
			if _, err := jpeg.Decode(bytes.NewReader(f.Data)); err != nil {
				call.caller.cfg.Log.Warn("received frame does not decode", "err", err)
				continue
			}
			call.framesDecoded.Add(1)
			now := call.since()
			call.firstFrame.CompareAndSwap(0, now)
			call.lastFrame.Store(now)
		case strings.ToLower(webrtc.MimeTypePCMU):
			if _, ok, _ := ad.Push(buf[:n]); ok {
				call.audioRecv.Add(1)
				if onMedia != nil {
					onMedia(call.Peer, capture.Burst{Kind: capture.KindAudio, Keyframe: true, CaptureTime: time.Now(), Packets: [][]byte{buf[:n]}})
				}
			}
			call.audioLost.Store(ad.Stats().LostPackets)
		}
	}
}
