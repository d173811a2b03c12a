package proto

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Phones away from home (docs/peer.md, "Phones away from home"): a phone
// paired on the box's LAN carries a credential the box signed with its
// identity key. The hub checks the signature against the key the box
// registered with (it keeps no secret for phones), forwards the phone's
// WHEP offer to the box as a phone_offer, and the box answers with a
// phone_answer after checking the credential again against its own list of
// paired phones (a factory reset, which forgets them and replaces the
// identity, revokes every credential).
const (
	// TypePhoneOffer: hub -> box. Call is the hub's request ID, Token the
	// phone's credential, SDP the phone's offer, ICE the box's ICE servers
	// for this session (with TURN credentials: the hub checked the phone).
	TypePhoneOffer = "phone_offer"
	// TypePhoneAnswer: box -> hub. Call names the request; SDP is the
	// answer, or Error says why the box refused.
	TypePhoneAnswer = "phone_answer"
	// TypePhoneBye: hub -> box. The phone ended session Call (its WHEP
	// DELETE); Token is its credential, which must be the one that opened it.
	TypePhoneBye = "phone_bye"
)

const (
	ctxPhone = "callbox-phone-v1"
	// PhoneTokenIDLen is the length of a credential's phone token ID: the
	// hex SHA-256 of the phone's LAN pairing token (what the box stores).
	PhoneTokenIDLen = 64
	// maxPhoneCredential bounds a credential's text.
	maxPhoneCredential = 256
)

// Errors of phone credentials.
var (
	ErrPhoneCredential = errors.New("peer: bad phone credential")
	ErrPhoneExpired    = errors.New("peer: phone credential expired")
)

// PhoneCredential is what a box vouches for: phone TokenID of box Box may
// watch it remotely until Expires.
type PhoneCredential struct {
	Box     string
	TokenID string
	Expires time.Time
}

func phoneParts(c PhoneCredential) []string {
	return []string{c.Box, c.TokenID, strconv.FormatInt(c.Expires.Unix(), 10)}
}

// IssuePhoneCredential signs c with the box's identity and returns its
// text form: "<token id>.<expiry unix seconds>.<signature, base64url>".
// The box ID is not in the text: it is in the URL the phone opens, and a
// credential for another box fails the signature.
func IssuePhoneCredential(id *Identity, tokenID string, expires time.Time) string {
	c := PhoneCredential{Box: id.ID, TokenID: tokenID, Expires: expires}
	sig := id.Sign(ctxPhone, phoneParts(c)...)
	return tokenID + "." + strconv.FormatInt(expires.Unix(), 10) + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// VerifyPhoneCredential parses text and checks it was signed by key (the
// box boxID's registered key) and has not expired at now. It does not
// know whether the box still has the phone: the box checks that.
func VerifyPhoneCredential(boxID string, key ed25519.PublicKey, text string, now time.Time) (PhoneCredential, error) {
	c, sig, err := parsePhoneCredential(boxID, text)
	if err != nil {
		return PhoneCredential{}, err
	}
	if BoxID(key) != boxID || !Verify(key, sig, ctxPhone, phoneParts(c)...) {
		return PhoneCredential{}, fmt.Errorf("%w: not signed by box %s", ErrPhoneCredential, boxID)
	}
	if !now.Before(c.Expires) {
		return PhoneCredential{}, fmt.Errorf("%w: at %s", ErrPhoneExpired, c.Expires.UTC().Format(time.RFC3339))
	}
	return c, nil
}

func parsePhoneCredential(boxID, text string) (PhoneCredential, []byte, error) {
	bad := func(why string) (PhoneCredential, []byte, error) {
		return PhoneCredential{}, nil, fmt.Errorf("%w: %s", ErrPhoneCredential, why)
	}
	if len(text) > maxPhoneCredential {
		return bad("too long")
	}
	parts := strings.Split(text, ".")
	if len(parts) != 3 {
		return bad("want 3 dot-separated parts")
	}
	if len(parts[0]) != PhoneTokenIDLen {
		return bad("token ID length")
	}
	if _, err := hex.DecodeString(parts[0]); err != nil || strings.ToLower(parts[0]) != parts[0] {
		return bad("token ID is not lower-case hex")
	}
	exp, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil || exp <= 0 || exp > 1<<40 {
		return bad("expiry")
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || len(sig) != ed25519.SignatureSize {
		return bad("signature")
	}
	return PhoneCredential{Box: boxID, TokenID: parts[0], Expires: time.Unix(exp, 0)}, sig, nil
}

// validPhoneMessage checks phone_offer and phone_answer.
func validPhoneMessage(m *Message) error {
	if m.Call == "" || len(m.Call) > maxCallID || !printableASCII(m.Call) {
		return fmt.Errorf("request ID %q", m.Call)
	}
	if len(m.SDP) > maxSDP || !utf8Valid(m.SDP) {
		return fmt.Errorf("SDP of %d bytes", len(m.SDP))
	}
	switch m.Type {
	case TypePhoneOffer, TypePhoneBye:
		if m.Type == TypePhoneOffer && m.SDP == "" {
			return errors.New("no offer")
		}
		if m.Token == "" || len(m.Token) > maxPhoneCredential || !printableASCII(m.Token) {
			return errors.New("credential")
		}
		for _, s := range m.ICE {
			if len(s.URLs) == 0 {
				return errors.New("ICE server without URLs")
			}
		}
	case TypePhoneAnswer:
		if (m.SDP == "") == (m.Error == "") {
			return errors.New("want an answer or an error")
		}
	}
	return nil
}
