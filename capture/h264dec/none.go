//go:build !cgo || noh264

package h264dec

// Available reports whether this build has the decoder.
const Available = false

// Decoder is absent from this build.
type Decoder struct{}

// NewDecoder returns ErrUnavailable.
func NewDecoder() (*Decoder, error) { return nil, ErrUnavailable }

// Decode returns ErrUnavailable.
func (d *Decoder) Decode(au []byte) (pic []byte, w, h int, err error) {
	return nil, 0, 0, ErrUnavailable
}

// Close does nothing.
func (d *Decoder) Close() error { return nil }
