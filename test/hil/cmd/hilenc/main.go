// Command hilenc runs in the HIL VM against vicodec, the kernel's virtual
// stateful codec: it drives drivers/encoder (the same code the firmware
// runs on a Pi's bcm2835-codec) through the stateful encoder interface with
// FWHT instead of H.264, and prints one PASS or FAIL line per check:
//
//	ENC PROBE     Probe finds the encoder (and says why other nodes are not)
//	ENC GOP       30 synthetic 640x480 pictures, keyframes every GOP
//	ENC FORCE     a forced keyframe is the very next picture
//	ENC DECODE    every bitstream decoded by vicodec's decoder matches its
//	              input picture (PSNR) and shows its frame counter
//	ENC DRAIN     drain (V4L2_ENC_CMD_STOP) ends at the LAST buffer; encoding
//	              after it is refused; start (V4L2_ENC_CMD_START) resumes
//	ENC RESTART   close and open again: encodes from a keyframe
//	ENC VANISH    the device unbound mid-stream: Encode fails with
//	              capture.ErrDeviceGone within the timeout, Close returns,
//	              and after the rebind Probe finds it and it encodes again
package main

import (
	"errors"
	"flag"
	"fmt"
	"image"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/callbox/callbox/capture"
	"github.com/callbox/callbox/capture/synth"
	"github.com/callbox/callbox/drivers/encoder"
)

const w, h = 640, 480

var failed bool

func report(name string, err error) {
	if err != nil {
		fmt.Printf("ENC %s FAIL: %v\n", name, err)
		failed = true
		return
	}
	fmt.Printf("ENC %s PASS\n", name)
}

func main() {
	minPSNR := flag.Float64("psnr", 30, "least luma PSNR (dB) of a decoded picture against its input")
	flag.Parse()
	cam, err := synth.NewCamera(synth.CameraConfig{Width: w, Height: h})
	if err != nil {
		fmt.Println("ENC FAIL:", err)
		os.Exit(1)
	}
	pic := func(seq uint64) []byte { return cam.AppendI420(nil, seq, false) }

	found, rej, err := encoder.Probe(encoder.FourccFWHT)
	if err == nil {
		fmt.Printf("found %v\n", found)
		for _, r := range rej {
			fmt.Printf("  not %s: %s\n", r.Path, r.Why)
		}
		if _, _, herr := encoder.Probe(encoder.FourccH264); herr == nil {
			err = errors.New("Probe found an H.264 encoder in a VM that has none")
		}
	}
	report("PROBE", err)
	if err != nil {
		os.Exit(1)
	}
	dec := findDecoder(found.Path)

	cfg := encoder.Config{Device: found.Path, Codec: encoder.FourccFWHT, Width: w, Height: h, GOP: 10}
	enc, err := encoder.Open(cfg)
	if err != nil {
		report("GOP", err)
		os.Exit(1)
	}
	var streams [][]byte
	var keys []int
	gopErr := func() error {
		for i := range 30 {
			force := i == 15
			b, err := enc.Encode(pic(uint64(i)), force)
			if err != nil {
				return fmt.Errorf("picture %d: %w", i, err)
			}
			streams = append(streams, append([]byte(nil), b...))
			if enc.LastKeyframe() {
				keys = append(keys, i)
			}
		}
		fmt.Printf("keyframes at %v, %d bytes for picture 0, %d for picture 1\n", keys, len(streams[0]), len(streams[1]))
		return nil
	}()
	if gopErr == nil && !sameInts(keys, []int{0, 10, 15, 25}) {
		gopErr = fmt.Errorf("keyframes at %v, want GOP keyframes at 0 and 10, then the forced one at 15 and the next GOP at 25", keys)
	}
	report("GOP", gopErr)
	if gopErr == nil {
		report("FORCE", nil)
	} else {
		report("FORCE", errors.New("see ENC GOP"))
	}

	// Decode every picture and compare.
	report("DECODE", func() error {
		if dec == "" {
			return errors.New("no vicodec stateful decoder node found")
		}
		d, err := encoder.OpenDecoder(dec, encoder.FourccFWHT, w, h)
		if err != nil {
			return err
		}
		defer d.Close()
		worst := 99.0
		for i, s := range streams {
			out, err := d.Decode(nil, s)
			if err != nil {
				return fmt.Errorf("picture %d: %w", i, err)
			}
			p := psnr(pic(uint64(i))[:w*h], out[:w*h])
			worst = math.Min(worst, p)
			n, ok := cam.ReadCounter(ycbcr(out))
			if !ok || n != uint64(i) {
				return fmt.Errorf("picture %d decodes showing counter %d (readable %v)", i, n, ok)
			}
		}
		fmt.Printf("decoded %d pictures, worst luma PSNR %.1f dB\n", len(streams), worst)
		if worst < *minPSNR {
			return fmt.Errorf("worst luma PSNR %.1f dB under %.0f dB", worst, *minPSNR)
		}
		return nil
	}())

	report("DRAIN", func() error {
		outs, err := enc.Drain()
		if err != nil {
			return fmt.Errorf("drain: %w", err)
		}
		fmt.Printf("drain returned %d pending bitstreams\n", len(outs))
		if _, err := enc.Encode(pic(30), false); !errors.Is(err, encoder.ErrStopped) {
			return fmt.Errorf("encode after drain: %v, want ErrStopped", err)
		}
		if err := enc.Start(); err != nil {
			return fmt.Errorf("start: %w", err)
		}
		for i := 31; i < 36; i++ {
			b, err := enc.Encode(pic(uint64(i)), false)
			if err != nil || len(b) == 0 {
				return fmt.Errorf("picture %d after start: %d bytes, %v", i, len(b), err)
			}
			if i == 31 && !enc.LastKeyframe() {
				return errors.New("the first picture after start is not a keyframe")
			}
		}
		return nil
	}())
	enc.Close()

	report("RESTART", func() error {
		e2, err := encoder.Open(cfg)
		if err != nil {
			return err
		}
		defer e2.Close()
		b, err := e2.Encode(pic(40), false)
		if err != nil || len(b) == 0 || !e2.LastKeyframe() {
			return fmt.Errorf("first picture after reopening: %d bytes, keyframe %v, %v", len(b), e2.LastKeyframe(), err)
		}
		return nil
	}())

	report("VANISH", vanish(cfg, pic))
	if failed {
		os.Exit(1)
	}
}

// vanish unbinds vicodec's platform device while encoding.
func vanish(cfg encoder.Config, pic func(uint64) []byte) error {
	devs, _ := filepath.Glob("/sys/bus/platform/drivers/vicodec/vicodec*")
	if len(devs) != 1 {
		return fmt.Errorf("vicodec platform device: found %v", devs)
	}
	name := filepath.Base(devs[0])
	e, err := encoder.Open(cfg)
	if err != nil {
		return err
	}
	for i := range 3 {
		if _, err := e.Encode(pic(uint64(i)), false); err != nil {
			return fmt.Errorf("before unbind: %w", err)
		}
	}
	if err := os.WriteFile("/sys/bus/platform/drivers/vicodec/unbind", []byte(name), 0); err != nil {
		return fmt.Errorf("unbind: %w", err)
	}
	t0 := time.Now()
	var encErr error
	for i := 3; i < 10 && encErr == nil; i++ {
		_, encErr = e.Encode(pic(uint64(i)), false)
	}
	took := time.Since(t0)
	cerr := e.Close()
	fmt.Printf("after unbind: %v (in %v); close: %v\n", encErr, took.Round(time.Millisecond), cerr)
	if err := os.WriteFile("/sys/bus/platform/drivers/vicodec/bind", []byte(name), 0); err != nil {
		return fmt.Errorf("bind: %w", err)
	}
	if !errors.Is(encErr, capture.ErrDeviceGone) {
		return fmt.Errorf("encode after unbind: %v, want capture.ErrDeviceGone", encErr)
	}
	if took > 3*time.Second {
		return fmt.Errorf("the failure took %v", took)
	}
	var found encoder.Found
	for deadline := time.Now().Add(5 * time.Second); ; {
		found, _, err = encoder.Probe(encoder.FourccFWHT)
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("after rebind: %w", err)
	}
	cfg.Device = found.Path
	e2, err := encoder.Open(cfg)
	if err != nil {
		return fmt.Errorf("open after rebind: %w", err)
	}
	defer e2.Close()
	if _, err := e2.Encode(pic(0), false); err != nil {
		return fmt.Errorf("encode after rebind: %w", err)
	}
	return nil
}

// findDecoder finds vicodec's stateful decoder: the node named so, next to
// the encoder.
func findDecoder(enc string) string {
	names, _ := filepath.Glob("/sys/class/video4linux/video*/name")
	for _, n := range names {
		b, _ := os.ReadFile(n)
		if strings.TrimSpace(string(b)) == "stateful-decoder" {
			return "/dev/" + filepath.Base(filepath.Dir(n))
		}
	}
	return ""
}

func sameInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func psnr(a, b []byte) float64 {
	var sum float64
	for i := range a {
		d := float64(a[i]) - float64(b[i])
		sum += d * d
	}
	if sum == 0 {
		return 99
	}
	return 10 * math.Log10(255*255/(sum/float64(len(a))))
}

func ycbcr(p []byte) *image.YCbCr {
	ys, cs := w*h, (w/2)*(h/2)
	return &image.YCbCr{Y: p[:ys], Cb: p[ys : ys+cs], Cr: p[ys+cs:], YStride: w, CStride: w / 2,
		SubsampleRatio: image.YCbCrSubsampleRatio420, Rect: image.Rect(0, 0, w, h)}
}
