//go:build !linux

package update

import "errors"

// TrybootReboot needs Linux's reboot(2).
func TrybootReboot() error { return errors.New("tryboot reboot: Linux only") }
