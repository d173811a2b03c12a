// Package h264dec decodes H.264 access units to I420 pictures with Cisco's
// OpenH264 decoder: the same static library the software encoder
// (capture/h264enc) links through pion/mediadevices, so it adds no
// dependency. A box decodes only what it must: the call's H.264 for a
// phone on the WebSocket fallback, whose player draws JPEG only.
//
// Builds without cgo, or with the noh264 tag, have no decoder: NewDecoder
// returns ErrUnavailable (Available says which build this is).
package h264dec

import "errors"

// Errors.
var (
	ErrUnavailable = errors.New("h264dec: no H.264 decoder in this build (built without cgo or with -tags noh264)")
	ErrDecode      = errors.New("h264dec: the access unit does not decode")
	ErrClosed      = errors.New("h264dec: closed")
)
