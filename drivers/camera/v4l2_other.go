//go:build !linux

package camera

import "fmt"

func videoNodes() []string { return nil }

func openV4L2(path string) (Device, error) {
	return nil, fmt.Errorf("camera: %s: V4L2 exists only on Linux: %w", path, ErrNoCamera)
}
