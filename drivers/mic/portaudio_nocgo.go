//go:build !cgo

package mic

// Available reports whether this binary can capture audio at all.
const Available = false

// Devices reports ErrNoCgo.
func Devices() ([]string, error) { return nil, ErrNoCgo }

// Version says there is no PortAudio.
func Version() string { return "none (built with CGO_ENABLED=0)" }

type portAudio struct{}

func (portAudio) Open(device string, rate, frames int) (Stream, error) { return nil, ErrNoCgo }
