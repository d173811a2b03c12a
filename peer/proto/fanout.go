package proto

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// Phone modes of a FanoutControl: where a box's phones away from home take
// its media (S7 in the appliance, docs/peer.md).
const (
	PhonesDirect = "direct" // from the box, one copy per phone
	PhonesHub    = "hub"    // from the hub's fan-out relay: the box uploads one copy
)

// maxFanoutControl bounds a control message (a few dozen bytes).
const maxFanoutControl = 1024

// FanoutControl is a text message on a box's publish connection to the
// hub's fan-out relay (/v1/publish), either way; the binary messages are
// the media (AppendBurst).
type FanoutControl struct {
	// Phones, box -> hub: where the box's remote phones should take its
	// media now (PhonesDirect or PhonesHub); empty: unchanged.
	Phones string `json:"phones,omitempty"`
	// Keyframe, hub -> box: a viewer of the hub's relay needs a frame a
	// decoder can start from.
	Keyframe bool `json:"keyframe,omitempty"`
	// Viewers, hub -> box: the phones' sessions on the hub's relay now
	// (nil: not reported in this message).
	Viewers *int `json:"viewers,omitempty"`
}

// ParseFanoutControl decodes and checks one control message.
func ParseFanoutControl(b []byte) (FanoutControl, error) {
	var c FanoutControl
	if len(b) > maxFanoutControl {
		return c, fmt.Errorf("%w: fan-out control of %d bytes", ErrBadMessage, len(b))
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&c); err != nil {
		return FanoutControl{}, fmt.Errorf("%w: fan-out control: %w", ErrBadMessage, err)
	}
	switch {
	case c.Phones != "" && c.Phones != PhonesDirect && c.Phones != PhonesHub:
		return FanoutControl{}, fmt.Errorf("%w: fan-out control: phones %q", ErrBadMessage, c.Phones)
	case c.Viewers != nil && (*c.Viewers < 0 || *c.Viewers > 1<<16):
		return FanoutControl{}, fmt.Errorf("%w: fan-out control: %d viewers", ErrBadMessage, *c.Viewers)
	}
	return c, nil
}
