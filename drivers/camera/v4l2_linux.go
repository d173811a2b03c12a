//go:build linux

package camera

import (
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/blackjack/webcam"
)

// videoNodes lists /dev/video* in numeric order (video10 after video2).
func videoNodes() []string {
	paths, _ := filepath.Glob("/dev/video*")
	num := func(p string) int {
		n, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(p), "video"))
		if err != nil {
			return 1 << 30
		}
		return n
	}
	sort.Slice(paths, func(i, j int) bool { return num(paths[i]) < num(paths[j]) })
	return paths
}

// v4l2 adapts *webcam.Webcam to Device.
type v4l2 struct{ w *webcam.Webcam }

func openV4L2(path string) (Device, error) {
	w, err := webcam.Open(path)
	if err != nil {
		return nil, err
	}
	return v4l2{w}, nil
}

func (d v4l2) Formats() map[uint32]string {
	m := map[uint32]string{}
	for f, desc := range d.w.GetSupportedFormats() {
		m[uint32(f)] = desc
	}
	return m
}

func (d v4l2) SetFormat(f uint32, w, h int) (uint32, int, int, error) {
	gf, gw, gh, err := d.w.SetImageFormat(webcam.PixelFormat(f), uint32(w), uint32(h))
	return uint32(gf), int(gw), int(gh), err
}

func (d v4l2) SetFramerate(fps float32) error { return d.w.SetFramerate(fps) }

func (d v4l2) Start(buffers int) error {
	if err := d.w.SetBufferCount(uint32(buffers)); err != nil {
		return fmt.Errorf("set buffer count: %w", err)
	}
	return d.w.StartStreaming()
}

// WaitForFrame polls with whole seconds: that is webcam's granularity.
func (d v4l2) WaitForFrame(timeout time.Duration) error {
	secs := uint32((timeout + time.Second - 1) / time.Second)
	err := d.w.WaitForFrame(max(secs, 1))
	var to *webcam.Timeout
	if errors.As(err, &to) {
		return ErrTimeout
	}
	return err
}

func (d v4l2) GetFrame() ([]byte, uint32, error) { return d.w.GetFrame() }
func (d v4l2) ReleaseFrame(i uint32) error       { return d.w.ReleaseFrame(i) }
func (d v4l2) Close() error                      { return d.w.Close() }
