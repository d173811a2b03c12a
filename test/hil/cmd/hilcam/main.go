// Command hilcam runs in the HIL VM: it captures frames from a V4L2 device
// through the real drivers/camera (the same code the firmware runs), checks
// that every frame decodes as a JPEG of the negotiated size, and writes the
// first one to -out.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"image/jpeg"
	"os"
	"time"

	"github.com/callbox/callbox/drivers/camera"
)

func main() {
	dev := flag.String("dev", "/dev/video0", "V4L2 device")
	format := flag.String("format", "auto", "auto, mjpeg, h264 or yuyv")
	want := flag.String("want", "", "the device format that must be chosen (YUYV, MJPG)")
	n := flag.Int("n", 30, "frames to capture")
	fps := flag.Int("fps", 30, "requested frame rate")
	out := flag.String("out", "", "write the first frame here")
	flag.Parse()
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
