//go:build !linux

package update

import "errors"

// GrowData needs Linux.
func GrowData(device string) (string, error) { return "", errors.New("grow: Linux only") }
