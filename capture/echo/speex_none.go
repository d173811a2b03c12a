//go:build !cgo || nospeex

package echo

import "time"

// Available reports whether this build has the echo canceller.
const Available = false

// Library names what cancels the echo.
const Library = "none (built without cgo)"

// Canceller is absent from this build; see ErrNoCgo.
type Canceller struct{}

// New returns ErrNoCgo.
func New(Config) (*Canceller, error) { return nil, ErrNoCgo }

func (*Canceller) Config() Config                { return Config{} }
func (*Canceller) Process(_, _, _ []int16) error { return ErrNoCgo }
func (*Canceller) Reset()                        {}
func (*Canceller) EchoDelay() time.Duration      { return 0 }
func (*Canceller) Close() error                  { return nil }
