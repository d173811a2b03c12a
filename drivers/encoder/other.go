//go:build !linux

package encoder

import "fmt"

// Encoder is unavailable off Linux.
type Encoder struct{}

// Probe finds nothing off Linux.
func Probe(codec uint32) (Found, []Rejected, error) {
	return Found{}, nil, fmt.Errorf("%w: V4L2 is Linux-only", ErrNoDevice)
}

// Open fails off Linux.
func Open(cfg Config) (*Encoder, error) { _, _, err := Probe(cfg.Codec); return nil, err }

func (e *Encoder) Encode(pic []byte, forceIDR bool) ([]byte, error) { return nil, ErrClosed }
func (e *Encoder) Name() string                                     { return "none" }
func (e *Encoder) Close() error                                     { return nil }

// SetBitrate fails: there is no encoder on this platform.
func (e *Encoder) SetBitrate(int) error { return ErrClosed }
