package firmware

import (
	"bytes"
	"image"
	"image/jpeg"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/callbox/callbox/capture"
	"github.com/callbox/callbox/capture/h264dec"
	"github.com/callbox/callbox/capture/pcmu"
	"github.com/callbox/callbox/capture/rtpext"
	"github.com/callbox/callbox/capture/rtpjpeg"
	"github.com/callbox/callbox/peer/proto"
	"github.com/callbox/callbox/relay"
)

// The call's relay (/ws/call/*, and the phones' WebRTC path) republishes
// what the other box sends as it arrives: H.264 access units and Opus
// packets, untouched, for WebRTC phones. A phone on the WebSocket fallback
// draws JPEG and plays PCMU only, so for it the box also publishes:
//   - JPEG made from the call's H.264, decoded here (capture/h264dec) only
//     while someone watches the call's relay, at most fallbackFPS frames a
//     second (a 720p JPEG costs about as much as its decode);
//   - PCMU made from the call's Opus (decoded by the call, FEC included).
// The relay's WebSocket sessions get only JPEG (SetNativeVideo); a call
// with an older box carries JPEG and PCMU, published as they come.

// fallbackFPS bounds the JPEG frames made for the WebSocket fallback.
const fallbackFPS = 15

type callFallback struct {
	remote *relay.Relay
	log    *slog.Logger
	// pli asks the other box for a keyframe (a viewer came: decoding
	// starts at an IDR).
	pli func()

	queue   chan capture.VideoFrame // units waiting for the decoder
	done    chan struct{}           // closed by close: run returns
	idle    atomic.Bool             // a unit came while nobody watched
	overrun atomic.Bool             // a unit was dropped: the queue was full
	pliAt   time.Time

	mu        sync.Mutex // the decoder's side
	amu       sync.Mutex // the audio's
	dec       *h264dec.Decoder
	decoding  bool // the decoder has had an IDR and every unit since
	broken    bool // decoding failed: wait for the next IDR
	jpack     *rtpjpeg.Packetizer
	apack     *pcmu.Packetizer
	last      time.Time
	img       image.YCbCr
	full      []byte // the picture in full range
	buf       bytes.Buffer
	warned    bool
	closeOnce sync.Once
}

func newCallFallback(remote *relay.Relay, maxPacket int, pli func(), log *slog.Logger) *callFallback {
	remote.SetNativeVideo(capture.CodecJPEG)
	fb := &callFallback{remote: remote, log: log, pli: pli, queue: make(chan capture.VideoFrame, 8), done: make(chan struct{})}
	fb.jpack, _ = rtpjpeg.NewPacketizer(maxPacket, rtpext.Random32(), capture.PayloadTypeJPEG)
	fb.apack, _ = pcmu.NewPacketizer(maxPacket, rtpext.Random32(), capture.PayloadTypePCMU)
	go fb.run()
	return fb
}

// frame hears every whole video frame of the call (box.CallerConfig.OnFrame),
// on the call's receive goroutine: it only queues a copy; the decoding
// and the JPEG run on the fallback's own goroutine (run), so they never
// hold up the call's packets (nor its sound, on the speaker).
func (fb *callFallback) frame(_ proto.PeerInfo, f capture.VideoFrame) {
	if f.Codec != capture.CodecH264 {
		return // JPEG from an older box: OnMedia published it as it is
	}
	if fb.remote.Viewers() == 0 {
		fb.idle.Store(true)
		return
	}
	f.Data = bytes.Clone(f.Data)
	select {
	case fb.queue <- f:
	default:
		// The decoder is behind: this unit is lost to it, and so is
		// everything up to the next IDR.
		fb.overrun.Store(true)
	}
}

// run decodes the queued units and publishes their JPEG.
func (fb *callFallback) run() {
	for {
		select {
		case f := <-fb.queue:
			fb.decode(f)
		case <-fb.done:
			return
		}
	}
}

func (fb *callFallback) decode(f capture.VideoFrame) {
	fb.mu.Lock()
	defer fb.mu.Unlock()
	if fb.idle.Swap(false) {
		fb.decoding = false // nobody watched: start again at an IDR
	}
	if fb.overrun.Swap(false) {
		fb.broken = true
	}
	if !fb.decoding || fb.broken {
		if !f.Keyframe {
			if (!fb.decoding || time.Since(fb.pliAt) > time.Second) && fb.pli != nil {
				fb.pli()
				fb.pliAt = time.Now()
				fb.decoding, fb.broken = true, true // asked; units are skipped until the IDR
			}
			return
		}
		fb.decoding, fb.broken = true, false
	}
	if fb.dec == nil {
		d, err := h264dec.NewDecoder()
		if err != nil {
			if !fb.warned {
				fb.warned = true
				fb.log.Warn("the call's H.264 cannot be shown on the WebSocket fallback", "err", err)
			}
			return
		}
		fb.dec = d
	}
	pic, w, h, err := fb.dec.Decode(f.Data)
	if err != nil {
		fb.broken = true
		return
	}
	if pic == nil || (!fb.last.IsZero() && f.CaptureTime.Sub(fb.last) < time.Second/fallbackFPS*3/4) {
		return
	}
	fb.last = f.CaptureTime
	ys, cs := w*h, (w/2)*(h/2)
	// H.264 from callbox is limited range, JFIF full range.
	fb.full = append(fb.full[:0], pic[:ys+2*cs]...)
	for i, v := range fb.full[:ys] {
		fb.full[i] = lumaFull[v]
	}
	for i, v := range fb.full[ys:] {
		fb.full[ys+i] = chromaFull[v]
	}
	pic = fb.full
	fb.img = image.YCbCr{Y: pic[:ys], Cb: pic[ys : ys+cs], Cr: pic[ys+cs : ys+2*cs], YStride: w, CStride: w / 2,
		SubsampleRatio: image.YCbCrSubsampleRatio420, Rect: image.Rect(0, 0, w, h)}
	fb.buf.Reset()
	if err := jpeg.Encode(&fb.buf, &fb.img, &jpeg.Options{Quality: 80}); err != nil {
		return
	}
	b, err := fb.jpack.Packetize(capture.VideoFrame{Codec: capture.CodecJPEG, Data: fb.buf.Bytes(), Width: w, Height: h,
		Keyframe: true, CaptureTime: f.CaptureTime, Seq: f.Seq})
	if err != nil {
		return
	}
	fb.remote.Publish(b)
}

// audio hears the call's decoded sound (box.CallerConfig.OnAudio): Opus's
// 48 kHz chunks become PCMU for the WebSocket fallback (a PCMU call's
// packets were published as they came).
func (fb *callFallback) audio(_ proto.PeerInfo, c capture.AudioChunk) {
	if c.Rate == capture.PCMUClockRate || fb.remote.Viewers() == 0 {
		return
	}
	fb.amu.Lock()
	defer fb.amu.Unlock()
	b, err := fb.apack.Packetize(c)
	if err != nil || len(b.Packets) == 0 {
		return
	}
	fb.remote.Publish(b)
}

func (fb *callFallback) close() {
	fb.closeOnce.Do(func() { close(fb.done) })
	fb.mu.Lock()
	defer fb.mu.Unlock()
	if fb.dec != nil {
		fb.dec.Close()
		fb.dec = nil
	}
}

// lumaFull and chromaFull map BT.601 limited range to full range.
var lumaFull, chromaFull [256]byte

func init() {
	clamp := func(v int) byte { return byte(max(0, min(255, v))) }
	for i := range 256 {
		lumaFull[i] = clamp(((i-16)*255 + 109) / 219)
		c := (i - 128) * 255
		if c >= 0 {
			c = (c + 112) / 224
		} else {
			c = (c - 112) / 224
		}
		chromaFull[i] = clamp(c + 128)
	}
}
