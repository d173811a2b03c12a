// Package capture is callbox's media model: sources that yield timestamped
// encoded video frames and PCM audio chunks, and the RTP packetizers that turn
// them into standard RTP (RFC 2435 JPEG, RFC 6184 H.264, PCMU).
//
// Sources are small interfaces so that real drivers (drivers/camera,
// drivers/mic), the synthetic sources (capture/synth) and test fakes are
// interchangeable. Buffers handed out by a source are owned by the source and
// valid only until the next call: a consumer that keeps data copies it. That
// keeps the steady-state capture path free of per-frame allocations.
package capture

import (
	"context"
	"time"
)

// Codec names the encoding of a video frame.
type Codec uint8

const (
	CodecJPEG Codec = iota + 1 // baseline JFIF/MJPEG, one image per frame
	CodecH264                  // one H.264 access unit in Annex B byte-stream form
	// CodecI420 is an uncompressed picture: planar YUV 4:2:0, the Y plane
	// (Width x Height) then U and V (each Width/2 x Height/2), rows packed
	// with no padding, BT.601 limited range. What encoders take in.
	CodecI420
)

// I420Size is the size in bytes of an I420 picture of w x h pixels (even).
func I420Size(w, h int) int { return w*h + 2*((w/2)*(h/2)) }

func (c Codec) String() string {
	switch c {
	case CodecJPEG:
		return "jpeg"
	case CodecH264:
		return "h264"
	case CodecI420:
		return "i420"
	}
	return "unknown"
}

// VideoFrame is one encoded picture.
type VideoFrame struct {
	Codec       Codec
	Data        []byte    // owned by the source; valid until the next ReadFrame
	Width       int       // pixels
	Height      int       // pixels
	Keyframe    bool      // a decoder can start here (always true for JPEG)
	CaptureTime time.Time // when the sensor produced the picture (wall clock)
	Seq         uint64    // frame counter from the source; gaps mean the source dropped frames
}

// VideoSource yields encoded frames. ReadFrame blocks until the next frame,
// ctx is done, or the source fails. A source that has lost its device
// returns an error wrapping ErrDeviceGone and may be read again later.
type VideoSource interface {
	ReadFrame(ctx context.Context) (VideoFrame, error)
	Close() error
}

// ChunkDuration is the length of every audio chunk a source yields.
const ChunkDuration = 20 * time.Millisecond

// AudioChunk is ChunkDuration of mono signed 16-bit PCM.
type AudioChunk struct {
	Samples     []int16   // owned by the source; valid until the next ReadChunk
	Rate        int       // samples per second
	CaptureTime time.Time // wall-clock time of the first sample
	Seq         uint64    // chunk counter; gaps mean lost chunks (e.g. an input overflow)
}

// AudioSource yields 20 ms chunks of mono S16 PCM.
type AudioSource interface {
	ReadChunk(ctx context.Context) (AudioChunk, error)
	Close() error
}

// Kind is the media kind of a stream.
type Kind uint8

const (
	KindVideo Kind = iota + 1
	KindAudio
)

func (k Kind) String() string {
	switch k {
	case KindVideo:
		return "video"
	case KindAudio:
		return "audio"
	}
	return "unknown"
}

// Burst is one media unit (a whole video frame or one audio chunk) as
// marshalled RTP packets: what the packetizers produce and what the relay and
// the peer transports consume. Packets are owned by the producer and valid
// only until its next call; a consumer that keeps them copies them.
type Burst struct {
	Kind        Kind
	Packets     [][]byte  // marshalled RTP packets; the last of a video frame has the marker bit
	Keyframe    bool      // video: a decoder can start here
	CaptureTime time.Time // of the frame or the chunk's first sample
}
