package media

import (
	"context"

	"github.com/callbox/callbox/capture"
)

// Unit is what a Track carries: a video frame or an audio chunk.
type Unit interface {
	capture.VideoFrame | capture.AudioChunk
}

// Source yields units: a camera (frames) or a microphone (chunks).
type Source[U Unit] interface {
	Read(ctx context.Context) (U, error)
	Close() error
}

// VideoSource adapts a camera.
func VideoSource(s capture.VideoSource) Source[capture.VideoFrame] {
	if s == nil {
		return nil
	}
	return videoSource{s}
}

// AudioSource adapts a microphone.
func AudioSource(s capture.AudioSource) Source[capture.AudioChunk] {
	if s == nil {
		return nil
	}
	return audioSource{s}
}

type videoSource struct{ capture.VideoSource }

func (s videoSource) Read(ctx context.Context) (capture.VideoFrame, error) { return s.ReadFrame(ctx) }

type audioSource struct{ capture.AudioSource }

func (s audioSource) Read(ctx context.Context) (capture.AudioChunk, error) { return s.ReadChunk(ctx) }

// VideoEncoder is the seam for an encoder stage (H.264) between the camera
// and the packetizer: a capture.VideoSource that reads the camera's frames
// and yields encoded ones, and that produces a frame a decoder can start
// from (an IDR) soon after RequestKeyframe.
type VideoEncoder interface {
	capture.VideoSource
	RequestKeyframe()
}

// unitSeq is a unit's source sequence number (for counting gaps).
func unitSeq[U Unit](u U) uint64 {
	switch u := any(&u).(type) {
	case *capture.VideoFrame:
		return u.Seq
	case *capture.AudioChunk:
		return u.Seq
	}
	return 0
}

// clone copies a unit's payload, so a subscriber's copy outlives the
// source's reuse of its buffer.
func clone[U Unit](u U) U {
	switch p := any(&u).(type) {
	case *capture.VideoFrame:
		p.Data = append([]byte(nil), p.Data...)
	case *capture.AudioChunk:
		p.Samples = append([]int16(nil), p.Samples...)
	}
	return u
}

// kindOf is the capture kind of a unit type.
func kindOf[U Unit]() capture.Kind {
	var u U
	if _, ok := any(u).(capture.VideoFrame); ok {
		return capture.KindVideo
	}
	return capture.KindAudio
}
