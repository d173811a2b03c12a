package capture

import "errors"

var (
	// ErrDeviceGone reports that a capture device disappeared (unplugged,
	// driver reset). The pipeline keeps running and retries.
	ErrDeviceGone = errors.New("capture: device gone")
)
