// Command hilcam runs in the HIL VM: it captures frames from a V4L2 device
// through the real drivers/camera (the same code the firmware runs), checks
// that every frame decodes as a JPEG of the negotiated size, and writes the
// first one to -out.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"image/jpeg"
	"os"
	"path/filepath"
	"time"

	"github.com/callbox/callbox/capture"
	"github.com/callbox/callbox/capture/h264enc"
	"github.com/callbox/callbox/drivers/camera"
	"github.com/callbox/callbox/media"
)

func main() {
	dev := flag.String("dev", "/dev/video0", "V4L2 device")
	format := flag.String("format", "auto", "auto, mjpeg, h264 or yuyv")
	want := flag.String("want", "", "the device format that must be chosen (YUYV, MJPG)")
	n := flag.Int("n", 30, "frames to capture")
	fps := flag.Int("fps", 30, "requested frame rate")
	out := flag.String("out", "", "write the first frame here")
	replug := flag.Bool("replug", false, "unbind and rebind vivid's platform device during capture (an unplug)")
	h264out := flag.String("h264out", "", "H.264 camera: check the access units and write them here as one stream; also check that media.ChooseVideo picks the camera")
	flag.Parse()
	if *h264out != "" {
		if err := runH264(*dev, *n, *h264out); err != nil {
			fmt.Printf("CAM H264 FAIL %s: %v\n", *dev, err)
			os.Exit(1)
		}
		return
	}
	if *replug {
		if err := replugTest(); err != nil {
			fmt.Printf("CAM REPLUG FAIL: %v\n", err)
			os.Exit(1)
		}
		return
	}
	if err := run(*dev, *format, *want, *n, *fps, *out); err != nil {
		fmt.Printf("CAM FAIL %s: %v\n", *dev, err)
		os.Exit(1)
	}
}

func run(dev, format, want string, n, fps int, out string) error {
	cam, err := camera.Open(camera.Config{Device: dev, Format: format, Width: 640, Height: 480, FPS: fps})
	if err != nil {
		return err
	}
	defer cam.Close()
	info := cam.Info()
	fmt.Println("camera:", info)
	if want != "" && camera.FourccString(info.Fourcc) != want {
		return fmt.Errorf("chose %s, want %s", camera.FourccString(info.Fourcc), want)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	t0 := time.Now()
	var last uint64
	for i := 0; i < n; i++ {
		fr, err := cam.ReadFrame(ctx)
		if err != nil {
			return fmt.Errorf("frame %d: %w", i, err)
		}
		img, err := jpeg.Decode(bytes.NewReader(fr.Data))
		if err != nil {
			return fmt.Errorf("frame %d (%d bytes) does not decode: %w", i, len(fr.Data), err)
		}
		if b := img.Bounds(); b.Dx() != info.Width || b.Dy() != info.Height {
			return fmt.Errorf("frame %d decodes to %v, negotiated %dx%d", i, b, info.Width, info.Height)
		}
		if fr.Seq <= last {
			return fmt.Errorf("frame %d: seq %d after %d", i, fr.Seq, last)
		}
		last = fr.Seq
		if i == 0 && out != "" {
			if err := os.WriteFile(out, fr.Data, 0o644); err != nil {
				return err
			}
		}
	}
	el := time.Since(t0)
	fmt.Printf("CAM PASS %s %s: %d frames %dx%d decoded in %v (%.1f fps), last seq %d\n",
		dev, camera.FourccString(info.Fourcc), n, info.Width, info.Height, el.Round(time.Millisecond), float64(n)/el.Seconds(), last)
	return nil
}

// replugTest unplugs the vivid camera while the Reopening wrapper reads
// it: unbinding the platform device from its driver removes the video
// device under an open file descriptor, as a USB unplug does. Binding it
// again brings the camera back; frames must flow again within 2 s.
func replugTest() error {
	devs, _ := filepath.Glob("/sys/bus/platform/drivers/vivid/vivid*")
	if len(devs) != 1 {
		return fmt.Errorf("vivid platform device: found %q", devs)
	}
	name := filepath.Base(devs[0])
	drv := "/sys/bus/platform/drivers/vivid/"
	cfg := camera.Config{Device: "auto", Format: "yuyv", Width: 640, Height: 480, FPS: 15}
	r, err := camera.NewReopening(nil, func() (capture.VideoSource, error) { return camera.Open(cfg) }, 0, nil)
	if err != nil {
		return err
	}
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var last uint64
	for i := 0; i < 5; i++ {
		f, err := r.ReadFrame(ctx)
		if err != nil {
			return fmt.Errorf("before unplug: %w", err)
		}
		last = f.Seq
	}
	if err := os.WriteFile(drv+"unbind", []byte(name), 0); err != nil {
		return fmt.Errorf("unbind: %w", err)
	}
	t0 := time.Now()
	for {
		_, err := r.ReadFrame(ctx)
		if errors.Is(err, capture.ErrDeviceGone) {
			break
		}
		if err != nil {
			return fmt.Errorf("after unplug: %w, want ErrDeviceGone", err)
		}
		if time.Since(t0) > 10*time.Second {
			return fmt.Errorf("frames still flow 10 s after the unplug")
		}
	}
	fmt.Printf("unplug seen as ErrDeviceGone after %v\n", time.Since(t0).Round(time.Millisecond))
	// While it is gone, reads keep reporting it (paced, not spinning).
	gone, t1 := 0, time.Now()
	for time.Since(t1) < time.Second {
		if _, err := r.ReadFrame(ctx); !errors.Is(err, capture.ErrDeviceGone) {
			return fmt.Errorf("while unplugged: %v", err)
		}
		gone++
	}
	if !r.Gone() || gone > 10 {
		return fmt.Errorf("while unplugged: Gone()=%v, %d reads in 1 s", r.Gone(), gone)
	}
	if err := os.WriteFile(drv+"bind", []byte(name), 0); err != nil {
		return fmt.Errorf("bind: %w", err)
	}
	back := time.Now()
	for {
		f, err := r.ReadFrame(ctx)
		if err == nil {
			el := time.Since(back)
			if el > 2*time.Second {
				return fmt.Errorf("first frame %v after the camera came back, promised 2 s", el)
			}
			if f.Seq <= last+1 {
				return fmt.Errorf("seq %d after %d: no gap marks the outage", f.Seq, last)
			}
			fmt.Printf("CAM REPLUG PASS: unplug reported, %d paced reads while gone, first frame %v after the camera came back\n", gone, el.Round(time.Millisecond))
			return nil
		}
		if !errors.Is(err, capture.ErrDeviceGone) {
			return fmt.Errorf("after replug: %w", err)
		}
		if time.Since(back) > 10*time.Second {
			return fmt.Errorf("no frame 10 s after the camera came back: %w", err)
		}
	}
}

// runH264 captures n frames from an H.264 camera through drivers/camera's
// passthrough: every frame is an Annex B access unit flagged a keyframe
// exactly when it holds an IDR; the stream goes to out for the host to
// decode. media.ChooseVideo must pick the camera's own H.264.
func runH264(dev string, n int, out string) error {
	choice, err := media.ChooseVideo(dev, media.H264Config{Codec: "auto"}, media.DefaultProbes)
	if err != nil {
		return err
	}
	fmt.Println("choice:", choice)
	if choice.Path != "camera" {
		return fmt.Errorf("ChooseVideo chose %q, want the camera's own H.264", choice.Path)
	}
	cam, err := camera.Open(camera.Config{Device: dev, Format: "h264", Width: 640, Height: 480, FPS: 30})
	if err != nil {
		return err
	}
	defer cam.Close()
	if got := camera.FourccString(cam.Info().Fourcc); got != "H264" {
		return fmt.Errorf("chose %s, want H264", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var stream []byte
	keys := 0
	for i := 0; i < n; i++ {
		fr, err := cam.ReadFrame(ctx)
		if err != nil {
			return fmt.Errorf("frame %d: %w", i, err)
		}
		if fr.Codec != capture.CodecH264 || !bytes.HasPrefix(fr.Data, []byte{0, 0, 0, 1}) && !bytes.HasPrefix(fr.Data, []byte{0, 0, 1}) {
			return fmt.Errorf("frame %d: %v, %d bytes, starts % x: not an Annex B access unit", i, fr.Codec, len(fr.Data), fr.Data[:min(8, len(fr.Data))])
		}
		if fr.Keyframe != h264enc.IsKeyframe(fr.Data) {
			return fmt.Errorf("frame %d: keyframe flag %v, IDR in the data %v", i, fr.Keyframe, h264enc.IsKeyframe(fr.Data))
		}
		if fr.Keyframe {
			keys++
		}
		stream = append(stream, fr.Data...)
	}
	if keys == 0 {
		return fmt.Errorf("no keyframe in %d frames", n)
	}
	if err := os.WriteFile(out, stream, 0o644); err != nil {
		return err
	}
	fmt.Printf("CAM H264 PASS %s: %d access units, %d keyframes, %d bytes\n", dev, n, keys, len(stream))
	return nil
}
