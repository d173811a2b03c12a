// Command hilfeed runs in the HIL VM: it is the producer side of a
// v4l2loopback device, writing MJPEG frames so that the capture side (the
// real camera driver) sees an MJPEG camera, or, with -h264 FILE, H.264
// access units (a UVC camera that encodes H.264); vivid offers no
// compressed formats. It prints "streaming" after its first frame: v4l2loopback only
// offers a capture format once the producer has written.
package main

import (
	"bytes"
	"encoding/binary"
	"flag"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"os"
	"strconv"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// VIDIOC_S_FMT is _IOWR('V', 5, struct v4l2_format); the struct is 208
// bytes on 64-bit targets and 204 on 32-bit ones.
func sFmt() (uintptr, int) {
	size := 204
	if strconv.IntSize == 64 {
		size = 208
	}
	return uintptr(0xC0005605) | uintptr(size)<<16, size
}

func main() {
	dev := flag.String("dev", "/dev/video10", "v4l2loopback device")
	w := flag.Int("w", 640, "width")
	h := flag.Int("h", 480, "height")
	fps := flag.Int("fps", 30, "frames per second")
	dur := flag.Duration("t", 10*time.Second, "how long to stream")
	h264 := flag.String("h264", "", "stream these H.264 access units instead (each a 4-byte big-endian length, then the Annex B bytes), in a loop")
	flag.Parse()
	if err := run(*dev, *w, *h, *fps, *dur, *h264); err != nil {
		fmt.Println("hilfeed:", err)
		os.Exit(1)
	}
}

func run(dev string, w, h, fps int, dur time.Duration, h264 string) error {
	if w <= 0 || h <= 0 || fps <= 0 {
		return fmt.Errorf("bad size or rate %dx%d@%d", w, h, fps)
	}
	var frames [][]byte
	fourcc := uint32('M' | 'J'<<8 | 'P'<<16 | 'G'<<24)
	if h264 != "" {
		b, err := os.ReadFile(h264)
		if err != nil {
			return err
		}
		for len(b) >= 4 {
			n := int(binary.BigEndian.Uint32(b))
			if n <= 0 || 4+n > len(b) {
				return fmt.Errorf("%s: bad access unit length %d", h264, n)
			}
			frames = append(frames, b[4:4+n])
			b = b[4+n:]
		}
		if len(frames) == 0 {
			return fmt.Errorf("%s: no access units", h264)
		}
		fourcc = 'H' | '2'<<8 | '6'<<16 | '4'<<24
	}
	for i := 0; i < 8 && h264 == ""; i++ { // a bar moving across a gradient
		img := image.NewRGBA(image.Rect(0, 0, w, h))
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				c := color.RGBA{uint8(x * 255 / w), uint8(y * 255 / h), 128, 255}
				if x*8/w == i {
					c = color.RGBA{255, 255, 255, 255}
				}
				img.SetRGBA(x, y, c)
			}
		}
		var b bytes.Buffer
		if err := jpeg.Encode(&b, img, &jpeg.Options{Quality: 80}); err != nil {
			return err
		}
		frames = append(frames, b.Bytes())
	}
	fd, err := unix.Open(dev, unix.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", dev, err)
	}
	defer unix.Close(fd)
	req, size := sFmt()
	f := make([]byte, size)
	le := binary.LittleEndian
	le.PutUint32(f[0:], 2) // V4L2_BUF_TYPE_VIDEO_OUTPUT
	// struct v4l2_format: type (4), then the union at offset 8 on 64-bit
	// (aligned for pointers inside it), 4 on 32-bit.
	off := 4
	if strconv.IntSize == 64 {
		off = 8
	}
	le.PutUint32(f[off:], uint32(w))
	le.PutUint32(f[off+4:], uint32(h))
	le.PutUint32(f[off+8:], fourcc)
	le.PutUint32(f[off+12:], 1) // V4L2_FIELD_NONE
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), req, uintptr(unsafe.Pointer(&f[0]))); e != 0 {
		return fmt.Errorf("VIDIOC_S_FMT: %w", e)
	}
	tick := time.NewTicker(time.Second / time.Duration(fps))
	defer tick.Stop()
	end := time.Now().Add(dur)
	n := 0
	for time.Now().Before(end) {
		if _, err := unix.Write(fd, frames[n%len(frames)]); err != nil {
			return fmt.Errorf("write frame %d: %w", n, err)
		}
		if n == 0 {
			fmt.Println("streaming")
		}
		n++
		<-tick.C
	}
	fmt.Printf("hilfeed: wrote %d frames\n", n)
	return nil
}
