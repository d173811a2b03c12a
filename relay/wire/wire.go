// Package wire is the relay's wire protocol (docs/protocol.md) as small,
// allocation-free encoders and parsers shared by the relay and its clients:
// RFC 4571 framing, the TCP handshake, and the callbox RTCP APP messages
// (CBHC Health Check, CBTQ/CBTR time query and reply).
//
// Parsers take untrusted bytes: they return errors wrapping ErrMalformed and
// never panic (see the fuzz targets).
package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/callbox/callbox/capture"
)

// ErrMalformed reports input that does not follow docs/protocol.md.
var ErrMalformed = errors.New("wire: malformed")

// MaxFrame is the largest body RFC 4571 framing can carry.
const MaxFrame = 0xffff

// ReadFrame reads one RFC 4571 frame (a 2-byte big-endian length, then that
// many bytes) into buf and returns the body. A frame longer than buf or of
// length zero is an error: buf's size is the caller's limit.
func ReadFrame(r io.Reader, buf []byte) ([]byte, error) {
	if len(buf) < 2 {
		return nil, fmt.Errorf("%w: frame buffer of %d bytes", ErrMalformed, len(buf))
	}
	if _, err := io.ReadFull(r, buf[:2]); err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint16(buf))
	if n == 0 || n > len(buf) {
		return nil, fmt.Errorf("%w: frame of %d bytes (limit %d)", ErrMalformed, n, len(buf))
	}
	if _, err := io.ReadFull(r, buf[:n]); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("frame body: %w", err)
	}
	return buf[:n], nil
}

// AppendFrame appends body with its RFC 4571 length prefix.
func AppendFrame(dst, body []byte) ([]byte, error) {
	if len(body) == 0 || len(body) > MaxFrame {
		return dst, fmt.Errorf("%w: frame body of %d bytes", ErrMalformed, len(body))
	}
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(body)))
	return append(dst, body...), nil
}

// Hello is the client's handshake on TCP:
//
//	CALLBOX/1 <kind> [token=<token>] [session=<name>]
type Hello struct {
	Kind    capture.Kind
	Token   string
	Session string
}

const helloMagic = "CALLBOX/1"

// maxField bounds token and session names.
const maxField = 128

// ParseHello parses a handshake. Unknown key=value fields are ignored so
// later clients can add some; anything else malformed is an error.
func ParseHello(b []byte) (Hello, error) {
	var h Hello
	f, rest := nextField(b)
	if string(f) != helloMagic {
		return h, fmt.Errorf("%w: handshake does not start with %s", ErrMalformed, helloMagic)
	}
	f, rest = nextField(rest)
	switch string(f) {
	case "video":
		h.Kind = capture.KindVideo
	case "audio":
		h.Kind = capture.KindAudio
	default:
		return h, fmt.Errorf("%w: handshake kind %q", ErrMalformed, truncate(f))
	}
	for len(rest) > 0 {
		f, rest = nextField(rest)
		eq := indexByte(f, '=')
		if eq <= 0 {
			return h, fmt.Errorf("%w: handshake field %q", ErrMalformed, truncate(f))
		}
		val := f[eq+1:]
		if len(val) > maxField || !printable(val) {
			return h, fmt.Errorf("%w: handshake value of %q", ErrMalformed, truncate(f[:eq]))
		}
		switch string(f[:eq]) {
		case "token":
			h.Token = string(val)
		case "session":
			h.Session = string(val)
		}
	}
	return h, nil
}

// Append appends the handshake text (without framing).
func (h Hello) Append(dst []byte) []byte {
	dst = append(dst, helloMagic...)
	dst = append(dst, ' ')
	dst = append(dst, h.Kind.String()...)
	if h.Token != "" {
		dst = append(dst, " token="...)
		dst = append(dst, h.Token...)
	}
	if h.Session != "" {
		dst = append(dst, " session="...)
		dst = append(dst, h.Session...)
	}
	return dst
}

// Accept is the relay's answer to a good handshake; it also is the JSON
// hello on WebSocket.
type Accept struct {
	Kind        capture.Kind
	HealthEvery int    // hc: send a Health Check per this many messages
	PayloadType uint8  // pt
	ClockRate   int    // clock
	Codec       string // jpeg, h264, pcmu
}

// AcceptFor fills the media description of kind from the video codec.
func AcceptFor(kind capture.Kind, video capture.Codec, hc int) Accept {
	a := Accept{Kind: kind, HealthEvery: hc}
	switch {
	case kind == capture.KindAudio:
		a.PayloadType, a.ClockRate, a.Codec = capture.PayloadTypePCMU, capture.PCMUClockRate, "pcmu"
	case video == capture.CodecH264:
		a.PayloadType, a.ClockRate, a.Codec = capture.PayloadTypeH264, capture.VideoClockRate, "h264"
	default:
		a.PayloadType, a.ClockRate, a.Codec = capture.PayloadTypeJPEG, capture.VideoClockRate, "jpeg"
	}
	return a
}

// Append appends "OK hc=<N> pt=<pt> clock=<rate> codec=<codec>".
func (a Accept) Append(dst []byte) []byte {
	dst = append(dst, "OK hc="...)
	dst = strconv.AppendInt(dst, int64(a.HealthEvery), 10)
	dst = append(dst, " pt="...)
	dst = strconv.AppendInt(dst, int64(a.PayloadType), 10)
	dst = append(dst, " clock="...)
	dst = strconv.AppendInt(dst, int64(a.ClockRate), 10)
	dst = append(dst, " codec="...)
	return append(dst, a.Codec...)
}

// AppendJSON appends the WebSocket hello:
// {"kind":"video","codec":"jpeg","pt":26,"clock":90000,"hc":8}.
func (a Accept) AppendJSON(dst []byte) []byte {
	dst = append(dst, `{"kind":"`...)
	dst = append(dst, a.Kind.String()...)
	dst = append(dst, `","codec":"`...)
	dst = append(dst, a.Codec...)
	dst = append(dst, `","pt":`...)
	dst = strconv.AppendInt(dst, int64(a.PayloadType), 10)
	dst = append(dst, `,"clock":`...)
	dst = strconv.AppendInt(dst, int64(a.ClockRate), 10)
	dst = append(dst, `,"hc":`...)
	dst = strconv.AppendInt(dst, int64(a.HealthEvery), 10)
	return append(dst, '}')
}

// RefusedError is the relay's "ERR <reason>" answer.
type RefusedError struct{ Reason string }

func (e *RefusedError) Error() string { return "relay refused: " + e.Reason }

// ParseAccept parses the relay's answer: an Accept, a *RefusedError for
// "ERR <reason>", or an error wrapping ErrMalformed.
func ParseAccept(b []byte, kind capture.Kind) (Accept, error) {
	a := Accept{Kind: kind}
	f, rest := nextField(b)
	switch string(f) {
	case "OK":
	case "ERR":
		return a, &RefusedError{Reason: string(truncate(rest))}
	default:
		return a, fmt.Errorf("%w: answer %q", ErrMalformed, truncate(b))
	}
	for len(rest) > 0 {
		f, rest = nextField(rest)
		eq := indexByte(f, '=')
		if eq <= 0 {
			return a, fmt.Errorf("%w: answer field %q", ErrMalformed, truncate(f))
		}
		key, val := string(f[:eq]), string(f[eq+1:])
		var n int
		var err error
		if key != "codec" {
			if n, err = strconv.Atoi(val); err != nil || n < 0 || n > 1<<24 {
				return a, fmt.Errorf("%w: answer field %s=%q", ErrMalformed, key, truncate(f[eq+1:]))
			}
		}
		switch key {
		case "hc":
			a.HealthEvery = n
		case "pt":
			a.PayloadType = uint8(n)
		case "clock":
			a.ClockRate = n
		case "codec":
			a.Codec = val
		}
	}
	if a.HealthEvery < 1 || a.HealthEvery > 1<<16 {
		return a, fmt.Errorf("%w: answer without a usable hc", ErrMalformed)
	}
	return a, nil
}

func nextField(b []byte) (field, rest []byte) {
	for len(b) > 0 && b[0] == ' ' {
		b = b[1:]
	}
	i := indexByte(b, ' ')
	if i < 0 {
		return b, nil
	}
	return b[:i], b[i+1:]
}

func indexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}

func printable(b []byte) bool {
	for _, c := range b {
		if c <= ' ' || c >= 0x7f {
			return false
		}
	}
	return true
}

// truncate keeps error messages short whatever a peer sends.
func truncate(b []byte) []byte {
	if len(b) > 32 {
		return b[:32]
	}
	return b
}

// NTP converts a wall-clock time to the 64-bit NTP format (UQ32.32 seconds
// since 1900), as abs-capture-time and CBTQ/CBTR carry it.
func NTP(t time.Time) uint64 {
	const ntpEpochOffset = 2208988800 // seconds from 1900 to 1970
	ns := t.UnixNano()
	sec := uint64(ns/1e9) + ntpEpochOffset
	frac := (uint64(ns%1e9) << 32) / 1e9
	return sec<<32 | frac
}

// FromNTP converts a 64-bit NTP timestamp back to a time.
func FromNTP(v uint64) time.Time {
	const ntpEpochOffset = 2208988800
	sec := int64(v>>32) - ntpEpochOffset
	nsec := int64(((v & 0xffffffff) * 1e9) >> 32)
	return time.Unix(sec, nsec)
}
