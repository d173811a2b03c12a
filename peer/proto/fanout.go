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

// maxFanoutControl bounds a control message (a list of paired phones:
// MaxFanoutPhones hashes of 64 hex digits).
const maxFanoutControl = 24 << 10

// MaxFanoutPhones bounds FanoutControl.Phones' list.
const MaxFanoutPhones = 256

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
	// Allowed, box -> hub: the token IDs (hex SHA-256, as in the phones'
	// credentials) of the phones paired with the box now. The hub's relay
	// admits only these and ends the sessions of a phone that leaves the
	// list (unpaired, factory reset): the hub cannot see the box's pairing
	// registry, and a credential's signature outlives a revocation. Nil:
	// unchanged.
	Allowed []string `json:"allowed,omitempty"`
	// AllowedSet: Allowed is sent (an empty list is a list too).
	AllowedSet bool `json:"allowed_set,omitempty"`
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
	case len(c.Allowed) > MaxFanoutPhones:
		return FanoutControl{}, fmt.Errorf("%w: fan-out control: %d phones", ErrBadMessage, len(c.Allowed))
	}
	for _, h := range c.Allowed {
		if !validTokenID(h) {
			return FanoutControl{}, fmt.Errorf("%w: fan-out control: phone %q", ErrBadMessage, h)
		}
	}
	return c, nil
}

// validTokenID: 64 lowercase hex digits.
func validTokenID(h string) bool {
	if len(h) != 64 {
		return false
	}
	for _, c := range h {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
