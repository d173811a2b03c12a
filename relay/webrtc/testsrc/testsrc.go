// Package testsrc is an H.264 source for tests and benchmarks without a
// camera or an encoder in the process: ffmpeg (libx264, constrained
// baseline) encodes its test pattern to an Annex B file once, and a Player
// publishes the file's access units in a loop at the frame rate, with PCMU
// audio beside it. A keyframe request makes the next frame the file's next
// IDR, as a real encoder forcing one would.
package testsrc

import (
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/callbox/callbox/capture"
	"github.com/callbox/callbox/capture/pcmu"
	"github.com/callbox/callbox/capture/rtpext"
	"github.com/callbox/callbox/capture/rtph264"
)

// AU is one access unit in Annex B form.
type AU struct {
	Data []byte
	Key  bool
}

// Spec is what to encode.
type Spec struct {
	Width, Height, FPS int
	Seconds            int
	Kbps               int
	GOP                int // frames between IDRs
}

// Make encodes spec with ffmpeg into dir (reusing a file made before) and
// returns the access units.
func Make(dir string, s Spec) ([]AU, error) {
	name := filepath.Join(dir, fmt.Sprintf("testsrc-%dx%d-%d-%ds-%dk-g%d.h264", s.Width, s.Height, s.FPS, s.Seconds, s.Kbps, s.GOP))
	if _, err := os.Stat(name); err != nil {
		tmp := name + ".tmp"
		cmd := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
			"-f", "lavfi", "-i", fmt.Sprintf("testsrc2=size=%dx%d:rate=%d", s.Width, s.Height, s.FPS),
			"-t", fmt.Sprint(s.Seconds), "-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency",
			"-profile:v", "baseline", "-level", "3.1", "-pix_fmt", "yuv420p",
			"-b:v", fmt.Sprintf("%dk", s.Kbps), "-maxrate", fmt.Sprintf("%dk", s.Kbps), "-bufsize", fmt.Sprintf("%dk", s.Kbps/2),
			"-g", fmt.Sprint(s.GOP), "-keyint_min", fmt.Sprint(s.GOP), "-sc_threshold", "0", "-bf", "0",
			"-f", "h264", tmp)
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("testsrc: ffmpeg: %v: %s", err, out)
		}
		if err := os.Rename(tmp, name); err != nil {
			return nil, err
		}
	}
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, err
	}
	aus, err := Split(b)
	if err != nil {
		return nil, err
	}
	if len(aus) == 0 || !aus[0].Key {
		return nil, fmt.Errorf("testsrc: %s does not start with an IDR", name)
	}
	return aus, nil
}

// Split cuts an Annex B byte stream into access units: a new one starts at
// an AUD, SPS, PPS or SEI after a slice, or at a slice whose
// first_mb_in_slice is 0 after a slice.
func Split(b []byte) ([]AU, error) {
	nals, err := rtph264.SplitAnnexB(nil, b)
	if err != nil {
		return nil, err
	}
	var aus []AU
	var cur AU
	hasSlice := false
	flush := func() {
		if len(cur.Data) > 0 {
			aus = append(aus, cur)
		}
		cur, hasSlice = AU{}, false
	}
	for _, n := range nals {
		if len(n) == 0 {
			continue
		}
		t := n[0] & 0x1f
		switch {
		case t == 9 || t == 7 || t == 8 || t == 6:
			if hasSlice {
				flush()
			}
		case t == 1 || t == 5:
			if hasSlice && len(n) > 1 && n[1]&0x80 != 0 {
				flush()
			}
			hasSlice = true
			if t == 5 {
				cur.Key = true
			}
		}
		cur.Data = append(cur.Data, 0, 0, 0, 1)
		cur.Data = append(cur.Data, n...)
	}
	flush()
	return aus, nil
}

// Player publishes a file's access units at its frame rate, and 20 ms
// PCMU chunks of a tone, until its context ends.
type Player struct {
	AUs     []AU
	FPS     int
	Publish func(capture.Burst)
	// Audio adds PCMU.
	Audio bool

	keyReq atomic.Bool
	// Frames and ForcedKeys count what was published.
	Frames, ForcedKeys atomic.Uint64
}

// RequestKeyframe makes the next published frame the next IDR of the file.
func (p *Player) RequestKeyframe() { p.keyReq.Store(true) }

// Run publishes until ctx ends.
func (p *Player) Run(ctx context.Context) error {
	pk, err := rtph264.NewPacketizer(0, rtpext.Random32(), capture.PayloadTypeH264)
	if err != nil {
		return err
	}
	apk, err := pcmu.NewPacketizer(0, rtpext.Random32(), capture.PayloadTypePCMU)
	if err != nil {
		return err
	}
	const rate = 8000
	samples := make([]int16, rate/int(time.Second/capture.ChunkDuration))
	var phase float64
	frame := time.Second / time.Duration(p.FPS)
	start := time.Now()
	nextV, nextA := start, start
	i := 0
	var seq uint64
	for {
		now := time.Now()
		if !now.Before(nextV) {
			if p.keyReq.Swap(false) {
				for j := 1; j <= len(p.AUs); j++ {
					if k := (i + j) % len(p.AUs); p.AUs[k].Key {
						i = k
						break
					}
				}
				p.ForcedKeys.Add(1)
			}
			au := p.AUs[i]
			i = (i + 1) % len(p.AUs)
			seq++
			b, err := pk.Packetize(capture.VideoFrame{Codec: capture.CodecH264, Data: au.Data, Width: 0, Height: 0,
				Keyframe: au.Key, CaptureTime: now, Seq: seq})
			if err != nil {
				return err
			}
			p.Publish(b)
			p.Frames.Add(1)
			nextV = nextV.Add(frame)
			if now.Sub(nextV) > 10*frame {
				nextV = now // fell far behind (a stalled machine): do not burst
			}
		}
		if p.Audio && !now.Before(nextA) {
			for k := range samples { // a 440 Hz tone
				samples[k] = int16(8000 * math.Sin(phase))
				phase += 2 * math.Pi * 440 / rate
			}
			phase = math.Mod(phase, 2*math.Pi)
			seq++
			b, err := apk.Packetize(capture.AudioChunk{Samples: samples, Rate: rate, CaptureTime: now, Seq: seq})
			if err != nil {
				return err
			}
			p.Publish(b)
			nextA = nextA.Add(capture.ChunkDuration)
			if now.Sub(nextA) > 10*capture.ChunkDuration {
				nextA = now
			}
		}
		wait := time.Until(nextV)
		if p.Audio {
			wait = min(wait, time.Until(nextA))
		}
		if wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil
			case <-t.C:
			}
		} else if ctx.Err() != nil {
			return nil
		}
	}
}
