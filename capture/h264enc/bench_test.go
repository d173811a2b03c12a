package h264enc

import (
	"bytes"
	"context"
	"os/exec"
	"sort"
	"syscall"
	"testing"
	"time"

	"github.com/callbox/callbox/capture"
	"github.com/callbox/callbox/capture/rtph264"
	"github.com/callbox/callbox/capture/synth"
)

// BenchmarkEncode720p30 is `make bench`'s encoder figure: b.N pictures of
// the synthetic camera at 1280x720, paced at 30 fps as the real camera
// paces them (-benchtime 300x is 10 s), encoded at 2 Mbit/s and
// packetized to RFC 6184. It reports
//
//	cpu-ms/frame   process CPU time (user+system) per picture: the encoder
//	               plus the camera and packetizer, all threads
//	kbit/s         the bitstream's rate
//	PSNR-dB        mean luma PSNR of ffmpeg's decode against the source
//	lat-p50-ms,    capture (the picture's slot on the camera's clock) to
//	lat-p99-ms     the last RTP packet of the picture out of the packetizer
func BenchmarkEncode720p30(b *testing.B) {
	if !SoftwareAvailable() {
		b.Skip("no software encoder in this build")
	}
	const w, h, fps = 1280, 720, 30
	cam, err := synth.NewCamera(synth.CameraConfig{Width: w, Height: h, FPS: fps, Format: capture.CodecI420})
	if err != nil {
		b.Fatal(err)
	}
	cfg := Config{Width: w, Height: h, FPS: fps, Bitrate: 2_000_000, GOP: 60}
	eng, err := NewSoftware(cfg)
	if err != nil {
		b.Fatal(err)
	}
	st, err := NewStage(cam, eng, cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	p, err := rtph264.NewPacketizer(0, 1, capture.PayloadTypeH264)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	var stream bytes.Buffer
	var seqs []uint64
	lat := make([]time.Duration, 0, b.N)
	var ru0, ru1 syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	b.ResetTimer()
	for range b.N {
		f, err := st.ReadFrame(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := p.Packetize(f); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(f.CaptureTime))
		stream.Write(f.Data)
		seqs = append(seqs, f.Seq)
	}
	b.StopTimer()
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	cpu := time.Duration(syscall.TimevalToNsec(ru1.Utime)-syscall.TimevalToNsec(ru0.Utime)) +
		time.Duration(syscall.TimevalToNsec(ru1.Stime)-syscall.TimevalToNsec(ru0.Stime))
	b.ReportMetric(float64(cpu)/float64(b.N)/1e6, "cpu-ms/frame")
	b.ReportMetric(float64(stream.Len())*8*fps/float64(b.N)/1000, "kbit/s")
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2])/1e6, "lat-p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100])/1e6, "lat-p99-ms")
	if ff, err := exec.LookPath("ffmpeg"); err == nil {
		cmd := exec.Command(ff, "-hide_banner", "-v", "error", "-f", "h264", "-i", "-", "-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", "yuv420p", "-")
		cmd.Stdin = &stream
		out, err := cmd.Output()
		if err != nil {
			b.Fatalf("ffmpeg: %v", err)
		}
		size := capture.I420Size(w, h)
		n := len(out) / size
		if n != len(seqs) {
			b.Fatalf("ffmpeg decoded %d pictures of %d", n, len(seqs))
		}
		var sum float64
		for i := range n {
			pic := out[i*size : (i+1)*size]
			ref := cam.AppendI420(nil, seqs[i], cam.ReadFlash(ycbcr(pic, w, h)))
			sum += psnr(ref[:w*h], pic[:w*h])
		}
		b.ReportMetric(sum/float64(n), "PSNR-dB")
	}
	s := st.Stats()
	b.Logf("%s: %d frames, %d keyframes, last encode %v", eng.Name(), s.Frames, s.Keyframes, s.LastEncodeLatency)
}
