package wire

import (
	"encoding/binary"
	"fmt"
)

// RTCP packet types used here (RFC 3550, RFC 4585).
const (
	rtcpAPP   = 204
	rtcpPSFB  = 206
	fmtPLI    = 1
	appHeader = 12 // V/P/subtype, PT, length, SSRC, name
)

// ControlType names a parsed RTCP packet.
type ControlType uint8

const (
	ControlOther       ControlType = iota // valid RTCP this protocol ignores
	ControlHealthCheck                    // APP CBHC
	ControlTimeQuery                      // APP CBTQ
	ControlTimeReply                      // APP CBTR
	ControlPLI                            // RFC 4585 Picture Loss Indication
)

// Control is one parsed RTCP packet.
type Control struct {
	Type       ControlType
	Count      uint32 // CBHC: messages this Health Check covers
	Total      uint32 // CBHC: messages received on the connection
	ClientTime uint64 // CBTQ, CBTR: the client's NTP time
	BoxTime    uint64 // CBTR: the box's NTP time
	MediaSSRC  uint32 // PLI
}

// ParseControl parses the first RTCP packet of b (a compound packet holds
// several) and returns it and the rest of b. It allocates nothing on success.
func ParseControl(b []byte) (Control, []byte, error) {
	var c Control
	if len(b) < 4 {
		return c, nil, fmt.Errorf("%w: RTCP packet of %d bytes", ErrMalformed, len(b))
	}
	if b[0]>>6 != 2 {
		return c, nil, fmt.Errorf("%w: RTCP version %d", ErrMalformed, b[0]>>6)
	}
	n := (int(binary.BigEndian.Uint16(b[2:])) + 1) * 4
	if n > len(b) {
		return c, nil, fmt.Errorf("%w: RTCP length %d beyond %d bytes", ErrMalformed, n, len(b))
	}
	pkt, rest := b[:n], b[n:]
	body := pkt
	if pkt[0]&0x20 != 0 { // padding: the last byte counts it
		pad := int(pkt[n-1])
		if pad == 0 || pad > n-4 {
			return c, nil, fmt.Errorf("%w: RTCP padding %d", ErrMalformed, pad)
		}
		body = pkt[:n-pad]
	}
	sub := pkt[0] & 0x1f
	switch pkt[1] {
	case rtcpAPP:
		if len(body) < appHeader {
			return c, nil, fmt.Errorf("%w: RTCP APP of %d bytes", ErrMalformed, len(body))
		}
		data := body[appHeader:]
		var need int
		switch string(body[8:12]) {
		case "CBHC":
			c.Type, need = ControlHealthCheck, 8
		case "CBTQ":
			c.Type, need = ControlTimeQuery, 8
		case "CBTR":
			c.Type, need = ControlTimeReply, 16
		default:
			return c, rest, nil
		}
		if sub != 0 || len(data) < need {
			return Control{}, nil, fmt.Errorf("%w: %s with subtype %d and %d data bytes", ErrMalformed, body[8:12], sub, len(data))
		}
		switch c.Type {
		case ControlHealthCheck:
			c.Count = binary.BigEndian.Uint32(data)
			c.Total = binary.BigEndian.Uint32(data[4:])
		case ControlTimeQuery:
			c.ClientTime = binary.BigEndian.Uint64(data)
		case ControlTimeReply:
			c.ClientTime = binary.BigEndian.Uint64(data)
			c.BoxTime = binary.BigEndian.Uint64(data[8:])
		}
	case rtcpPSFB:
		if sub == fmtPLI {
			if len(body) < 12 {
				return c, nil, fmt.Errorf("%w: PLI of %d bytes", ErrMalformed, len(body))
			}
			c.Type = ControlPLI
			c.MediaSSRC = binary.BigEndian.Uint32(body[8:])
		}
	}
	return c, rest, nil
}

func appendApp(dst []byte, name string, words int) []byte {
	// V=2, P=0, subtype 0; PT=APP; length in 32-bit words minus one; SSRC 0.
	dst = append(dst, 0x80, rtcpAPP)
	dst = binary.BigEndian.AppendUint16(dst, uint16(2+words))
	dst = append(dst, 0, 0, 0, 0)
	return append(dst, name...)
}

// AppendHealthCheck appends a CBHC covering count messages, total received.
func AppendHealthCheck(dst []byte, count, total uint32) []byte {
	dst = appendApp(dst, "CBHC", 2)
	dst = binary.BigEndian.AppendUint32(dst, count)
	return binary.BigEndian.AppendUint32(dst, total)
}

// AppendTimeQuery appends a CBTQ carrying the client's NTP time.
func AppendTimeQuery(dst []byte, clientTime uint64) []byte {
	dst = appendApp(dst, "CBTQ", 2)
	return binary.BigEndian.AppendUint64(dst, clientTime)
}

// AppendTimeReply appends a CBTR echoing clientTime with the box's NTP time.
func AppendTimeReply(dst []byte, clientTime, boxTime uint64) []byte {
	dst = appendApp(dst, "CBTR", 4)
	dst = binary.BigEndian.AppendUint64(dst, clientTime)
	return binary.BigEndian.AppendUint64(dst, boxTime)
}

// AppendPLI appends an RFC 4585 Picture Loss Indication for mediaSSRC, the
// keyframe request a remote publisher receives.
func AppendPLI(dst []byte, senderSSRC, mediaSSRC uint32) []byte {
	dst = append(dst, 0x80|fmtPLI, rtcpPSFB, 0, 2)
	dst = binary.BigEndian.AppendUint32(dst, senderSSRC)
	return binary.BigEndian.AppendUint32(dst, mediaSSRC)
}
