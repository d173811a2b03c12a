//go:build !cgo || noh264

package h264enc

// This build has no software encoder: cgo is off (a cross build without
// the target's C toolchain) or the noh264 tag left it out. Boxes built so
// send JPEG unless a camera or hardware encoder gives H.264.

// SoftwareName names the software encoder in the log and /api/state.
const SoftwareName = "none (built without cgo)"

// SoftwareAvailable reports whether this build has the software encoder.
func SoftwareAvailable() bool { return false }

// NewSoftware returns ErrUnavailable in this build.
func NewSoftware(cfg Config) (Engine, error) {
	if err := cfg.Fill(); err != nil {
		return nil, err
	}
	return nil, ErrUnavailable
}
