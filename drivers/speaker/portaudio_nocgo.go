//go:build !cgo

package speaker

import "time"

// Available reports whether this binary can play audio at all.
const Available = false

// Devices reports ErrNoCgo.
func Devices() ([]string, error) { return nil, ErrNoCgo }

type paOutput struct{ name string }

func openPortAudio(string) (*paOutput, error) { return nil, ErrNoCgo }

func (*paOutput) Write([]int16) error    { return ErrNoCgo }
func (*paOutput) Latency() time.Duration { return 0 }
func (*paOutput) Underruns() uint64      { return 0 }
func (*paOutput) Close() error           { return nil }

func (*paOutput) OnPlayed(func([]int16, time.Time)) {}
