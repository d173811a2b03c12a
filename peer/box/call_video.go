package box

import (
	"bytes"
	"fmt"
	"image"
	"image/jpeg"
	"strings"
	"sync/atomic"
	"time"

	"github.com/callbox/callbox/capture"
	"github.com/callbox/callbox/capture/h264enc"
	"github.com/callbox/callbox/capture/rtph264"
	"github.com/callbox/callbox/capture/rtpjpeg"
	"github.com/pion/interceptor/pkg/cc"
	"github.com/pion/webrtc/v4"
)

// Bitrates of a call (bit/s).
const (
	// MinCallBitrate is the floor of the bandwidth estimate: Opus and
	// 640x360 at 15 fps still get through.
	MinCallBitrate = 150_000
	// DefaultStartBitrate is where the estimate starts: 720p at once on a
	// home uplink of a few Mbit/s, found out within a second or two when
	// the path has less (the estimator backs off on the first delay rise).
	DefaultStartBitrate = 1_500_000
	// DefaultMaxBitrate caps the estimate: 720p30 of a room needs no more.
	DefaultMaxBitrate = 2_500_000
	// audioReserve is what the audio takes of the estimate, headers
	// included (Opus at 32 kbit/s in 50 packets a second).
	audioReserve = 70_000
	// encoderShare is the part of the video's share the encoder is asked
	// for: RTP, SRTP, UDP and IP headers and the rate control's overshoot
	// take the rest.
	encoderShare = 0.85
	// keyframeGap is the shortest time between two keyframes that the
	// other box's PLIs force (a burst of PLIs makes one IDR).
	keyframeGap = 300 * time.Millisecond
)

// videoSender feeds the call's video track: H.264 it encodes itself (at
// the ladder's step, at the bitrate the estimate allows) or the camera's
// JPEG frames to a box that takes nothing else.
type videoSender struct {
	call  *Call
	m     *Media
	track *callTrack

	open      func(h264enc.Config) (h264enc.Engine, error)
	eng       h264enc.Engine
	engW      int
	engH      int
	engFPS    int
	rateSet   int // bitrate last given to the encoder
	pack264   *rtph264.Packetizer
	packJPEG  capture.VideoPacketizer
	ladder    *Ladder
	sc        scaler
	conv      []byte // a JPEG frame as I420
	last      time.Time
	lastKey   time.Time
	noRateCtl bool // the engine cannot change its bitrate (logged once)
}

// VideoStats is what the call's video sender did.
type VideoStats struct {
	Codec          string `json:"codec"`             // negotiated: h264 or jpeg
	Step           string `json:"step"`              // WxH@fps now
	LowestStep     string `json:"lowest_step"`       // the smallest step the call went down to
	StepDowns      int    `json:"step_downs"`        //
	StepUps        int    `json:"step_ups"`          //
	TargetBitrate  int    `json:"target_bitrate"`    // the bandwidth estimate now
	EncoderBitrate int    `json:"encoder_bitrate"`   // what the encoder was last asked for
	Keyframes      uint64 `json:"keyframes_sent"`    //
	KeyRequests    uint64 `json:"keyframe_requests"` // PLI and FIR from the other box
}

// videoStats is updated by the sender, read by Summary.
type videoStats struct {
	step, lowest           atomic.Value // string
	downs, ups             atomic.Int64
	encoderBitrate         atomic.Int64
	keyframes, keyRequests atomic.Uint64
	keyPending             atomic.Bool
}

func newVideoSender(call *Call, m *Media, t *callTrack) (*videoSender, error) {
	maxPacket := maxMediaPacket(call.caller.cfg.MaxDatagram)
	p, err := rtph264.NewPacketizer(maxPacket, randomSSRC(), capture.PayloadTypeH264)
	if err != nil {
		return nil, fmt.Errorf("peer: H.264 packetizer: %w", err)
	}
	vs := &videoSender{call: call, m: m, track: t, open: m.OpenH264, pack264: p, packJPEG: m.VideoPacketizer}
	if vs.open == nil {
		vs.open = h264enc.NewSoftware
	}
	if vs.packJPEG == nil {
		if vs.packJPEG, err = rtpjpeg.NewPacketizer(maxPacket, randomSSRC(), capture.PayloadTypeJPEG); err != nil {
			return nil, fmt.Errorf("peer: JPEG packetizer: %w", err)
		}
	}
	return vs, nil
}

func (call *Call) sendVideo(m *Media, t *callTrack) {
	vs, err := newVideoSender(call, m, t)
	if err != nil {
		call.caller.cfg.Log.Error("no video in this call", "err", err)
		return
	}
	defer vs.close()
	for {
		f, err := m.Video.ReadFrame(call.ctx)
		if err != nil {
			return
		}
		var b capture.Burst
		switch t.Codec() {
		case "":
			continue // not negotiated yet
		case strings.ToLower(webrtc.MimeTypeH264):
			b, err = vs.h264(f)
		default:
			b, err = vs.jpeg(f)
		}
		if err != nil {
			call.caller.cfg.Log.Warn("video frame not sent", "err", err)
			continue
		}
		if len(b.Packets) == 0 {
			continue // dropped for the step's frame rate
		}
		for _, p := range b.Packets {
			call.notePacket(len(p))
			call.videoBytes.Add(uint64(len(p)))
			_ = t.Write(p) // an unbound track (still connecting) drops it
		}
		call.framesSent.Add(1)
	}
}

func (vs *videoSender) close() {
	if vs.eng != nil {
		vs.eng.Close()
	}
}

// estimate is the call's current bandwidth estimate (0: none yet).
func (call *Call) estimate() int {
	e, _ := call.bwe.Load().(cc.BandwidthEstimator)
	if e == nil {
		return 0
	}
	return e.GetTargetBitrate()
}

// videoBitrate is the estimate's share for video.
func videoBitrate(estimate int) int { return max(estimate-audioReserve, MinCallBitrate/2) }

func (vs *videoSender) h264(f capture.VideoFrame) (capture.Burst, error) {
	call := vs.call
	if f.Codec == capture.CodecH264 {
		// A camera's own H.264 goes as it is (its bitrate is the camera's).
		return vs.pack264.Packetize(f)
	}
	now := time.Now()
	est := call.estimate()
	if est == 0 {
		est = call.caller.cfg.StartBitrate
	}
	vb := videoBitrate(est)
	if vs.ladder == nil {
		vs.ladder = NewLadder(call.caller.cfg.Ladder, f.Width, f.Height, vb)
		vs.noteStep(f.Width, f.Height)
	} else if vs.ladder.Update(now, vb) {
		vs.noteStep(f.Width, f.Height)
		call.caller.cfg.Log.Info("call video step", "step", call.vstats.step.Load(), "estimate", est)
	}
	step := vs.ladder.Current()
	// Fewer frames a second: a frame comes at most every 1/fps of capture
	// time (a quarter of slack for the camera's jitter).
	if !vs.last.IsZero() && f.CaptureTime.Sub(vs.last) < time.Second/time.Duration(step.FPS)*3/4 {
		return capture.Burst{}, nil
	}
	pic := f.Data
	switch f.Codec {
	case capture.CodecI420:
	case capture.CodecJPEG:
		var err error
		if vs.conv, err = h264enc.JPEGToI420(vs.conv, f.Data, f.Width, f.Height); err != nil {
			return capture.Burst{}, err
		}
		pic = vs.conv
	default:
		return capture.Burst{}, fmt.Errorf("peer: cannot encode %v frames", f.Codec)
	}
	if len(pic) != capture.I420Size(f.Width, f.Height) {
		return capture.Burst{}, fmt.Errorf("peer: %v frame of %d bytes for %dx%d", f.Codec, len(pic), f.Width, f.Height)
	}
	w, h := stepSize(step, f.Width, f.Height)
	pic = vs.sc.Scale(pic, f.Width, f.Height, w, h)
	rate := int(encoderShare * float64(vb))
	if vs.eng == nil || vs.engW != w || vs.engH != h || vs.engFPS != step.FPS {
		if vs.eng != nil {
			vs.eng.Close()
			vs.eng = nil
		}
		eng, err := vs.open(h264enc.Config{Width: w, Height: h, FPS: step.FPS, Bitrate: max(rate, 50_000),
			GOP: 10 * step.FPS, Profile: h264enc.ProfileConstrainedBaseline})
		if err != nil {
			return capture.Burst{}, fmt.Errorf("peer: open the H.264 encoder at %dx%d: %w", w, h, err)
		}
		vs.eng, vs.engW, vs.engH, vs.engFPS, vs.rateSet = eng, w, h, step.FPS, rate
		call.vstats.encoderBitrate.Store(int64(rate))
	} else if d := rate - vs.rateSet; d > vs.rateSet/20 || -d > vs.rateSet/20 {
		// Follow the estimate; a change under 5% is not worth a call.
		if bs, ok := vs.eng.(h264enc.BitrateSetter); ok {
			if err := bs.SetBitrate(max(rate, 50_000)); err != nil {
				return capture.Burst{}, err
			}
			vs.rateSet = rate
			call.vstats.encoderBitrate.Store(int64(rate))
		} else if !vs.noRateCtl {
			vs.noRateCtl = true
			call.caller.cfg.Log.Warn("the H.264 encoder cannot change its bitrate; the call keeps the first", "encoder", vs.eng.Name())
		}
	}
	force := false
	if call.vstats.keyPending.Load() && now.Sub(vs.lastKey) >= keyframeGap {
		call.vstats.keyPending.Store(false)
		force = true
	}
	au, err := vs.eng.Encode(pic, force)
	if err != nil {
		return capture.Burst{}, fmt.Errorf("peer: %s: %w", vs.eng.Name(), err)
	}
	if len(au) == 0 {
		return capture.Burst{}, nil
	}
	vs.last = f.CaptureTime
	key := h264enc.IsKeyframe(au)
	if key {
		vs.lastKey = now
		call.vstats.keyPending.Store(false)
		call.vstats.keyframes.Add(1)
	}
	return vs.pack264.Packetize(capture.VideoFrame{Codec: capture.CodecH264, Data: au, Width: w, Height: h,
		Keyframe: key, CaptureTime: f.CaptureTime, Seq: f.Seq})
}

// noteStep records the step for Summary as what is sent: the step's size
// for this camera (a small camera's own size) and frame rate.
func (vs *videoSender) noteStep(srcW, srcH int) {
	st := &vs.call.vstats
	name := func(s Step) string {
		w, h := stepSize(s, srcW, srcH)
		return fmt.Sprintf("%dx%d@%d", w, h, s.FPS)
	}
	st.step.Store(name(vs.ladder.Current()))
	st.lowest.Store(name(vs.ladder.Steps[vs.ladder.Lowest]))
	st.downs.Store(int64(vs.ladder.Downs))
	st.ups.Store(int64(vs.ladder.Ups))
}

// jpeg sends to a box that takes only JPEG: the camera's JPEG frames as
// they are, raw pictures compressed here.
func (vs *videoSender) jpeg(f capture.VideoFrame) (capture.Burst, error) {
	if f.Codec == capture.CodecI420 {
		data, err := i420ToJPEG(f.Data, f.Width, f.Height)
		if err != nil {
			return capture.Burst{}, err
		}
		f.Codec, f.Data = capture.CodecJPEG, data
	}
	if f.Codec != capture.CodecJPEG {
		return capture.Burst{}, fmt.Errorf("peer: a JPEG call cannot carry %v frames", f.Codec)
	}
	return vs.packJPEG.Packetize(f)
}

// i420ToJPEG compresses a raw picture for a JPEG-only call (the older
// boxes' fallback; it allocates, as image/jpeg does).
func i420ToJPEG(pic []byte, w, h int) ([]byte, error) {
	ys, cs := w*h, (w/2)*(h/2)
	if len(pic) != ys+2*cs {
		return nil, fmt.Errorf("peer: I420 frame of %d bytes for %dx%d", len(pic), w, h)
	}
	img := &image.YCbCr{Y: pic[:ys], Cb: pic[ys : ys+cs], Cr: pic[ys+cs:], YStride: w, CStride: w / 2,
		SubsampleRatio: image.YCbCrSubsampleRatio420, Rect: image.Rect(0, 0, w, h)}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 75}); err != nil {
		return nil, fmt.Errorf("peer: JPEG: %w", err)
	}
	return buf.Bytes(), nil
}
