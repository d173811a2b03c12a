package proto

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// The signalling protocol: one JSON object per WebSocket text message, in
// both directions, discriminated by "type". docs/peer.md has the full table.
const (
	// box -> hub
	TypeHello    = "hello"     // signed registration; first message on a connection
	TypePairCode = "pair_code" // ask for a pairing code (hub answers with the same type and Code)
	TypePairJoin = "pair_join" // enter the other box's code, with a commitment to this box's pairing nonce
	// TypePairButton was "my button was pressed": it paired any two boxes
	// in the world pressing within 15 s. The hub refuses it now (pair
	// with a code); the name stays so the refusal can say so.
	TypePairButton = "pair_button"
	TypeSignal     = "signal" // to a paired box: offer, answer, ring, bye (forwarded with From set)
	TypePing       = "ping"   // application-level keepalive (the hub answers pong)
	// TypeICE asks for fresh ICE servers (TURN credentials are short-lived);
	// the hub answers with the same type and ICE.
	TypeICE = "ice"
	// TypeForget: a factory reset. The hub deletes the box's record, its
	// pairs and its pending code, tells its paired boxes (TypeUnpaired),
	// and answers with the same type once it is done. The box then drops
	// the connection and comes back, if at all, under a new identity.
	TypeForget = "forget"

	// hub -> box
	TypeWelcome = "welcome" // registration accepted: ICE servers with TURN credentials, paired peers
	TypePaired  = "paired"  // a pairing completed: both owners confirmed it
	TypePong    = "pong"
	// TypePresence tells a box that paired boxes came online or went
	// offline (Peers, with Online set accordingly).
	TypePresence = "presence"
	// TypeFanout answers a publish connection (S7): Token for the
	// receivers and URL, the relay's WebSocket base for this box.
	TypeFanout = "fanout"
	TypeError  = "error" // Error says why, Ref names the refused message type
	// TypeUnpaired tells a box that the boxes in Peers forgot it (a
	// factory reset): it drops them from its peers.
	TypeUnpaired = "unpaired"

	// The confirmation of a pairing (docs/security.md, "The hub"), between
	// the code's owner and the box that joined it, through the hub, which
	// forwards these only within that pending pairing (with From set):
	TypePairRequest = "pair_request" // hub -> owner: who joined (Peers) and its Commit
	TypePairNonce   = "pair_nonce"   // owner -> joiner: the owner's Nonce (the hub adds the owner in Peers)
	TypePairReveal  = "pair_reveal"  // joiner -> owner: the Nonce the joiner committed to
	TypePairConfirm = "pair_confirm" // box -> hub -> other box: this box's owner confirmed the SAS
	TypePairCancel  = "pair_cancel"  // either box, or the hub (expired): the pending pairing is dropped
)

// Signal kinds.
const (
	KindOffer  = "offer"  // SDP offer (also an ICE restart)
	KindAnswer = "answer" // SDP answer
	KindRing   = "ring"   // "please call me": sent by the box that must not offer (see Caller)
	KindBye    = "bye"    // hang up
	// KindRinging: callee -> caller: the call rings at the box and waits for
	// someone to answer (the caller waits longer than its setup timeout).
	KindRinging = "ringing"

	// S7 fan-out between a box and its remote receivers (peer/box/fanout_box.go):
	KindWatch   = "watch"   // receiver -> box: send me your stream
	KindUnwatch = "unwatch" // receiver -> box: stop
	KindMedia   = "media"   // box -> receiver: where the stream is now (SDP carries a MediaLocation as JSON)
)

// Signature contexts: one per signed message type.
const (
	ctxHello  = "callbox-hello-v1"
	ctxSignal = "callbox-signal-v1"
)

// Limits on what the hub and boxes accept from the network.
const (
	MaxMessageSize = 64 << 10 // one signalling message
	maxSDP         = 48 << 10
	maxName        = 32
	// NonceSize is the length of a hello's nonce and of a pairing nonce.
	NonceSize = 16
	// PairCodeLen is the length of a pairing code: PairSlotLen digits
	// name the pending code on the hub (so a wrong guess counts against
	// that code), the rest are its secret.
	PairCodeLen = 10
	PairSlotLen = 4
	// CommitSize is the length of a pairing commitment (SHA-256).
	CommitSize = 32
	maxCallID  = 64
	// maxMediaLocation bounds a media signal's JSON (mode, URL with token).
	maxMediaLocation = 1024
)

// Message is every signalling message. Only the fields of its Type are set.
type Message struct {
	Type string `json:"type"`

	// hello
	Box   string `json:"box,omitempty"`
	Key   []byte `json:"key,omitempty"`   // ed25519 public key (base64 in JSON)
	Name  string `json:"name,omitempty"`  // human label, e.g. "kitchen"
	TS    int64  `json:"ts,omitempty"`    // Unix milliseconds when signed
	Nonce []byte `json:"nonce,omitempty"` // 16 random bytes
	Sig   []byte `json:"sig,omitempty"`   // hello: by Key; signal: by the sender's key

	// welcome, paired
	ICE   []ICEServer `json:"ice,omitempty"`
	Peers []PeerInfo  `json:"peers,omitempty"`

	// pair_code, pair_join
	Code    string `json:"code,omitempty"`
	Expires int64  `json:"expires,omitempty"` // Unix seconds
	// pair_join, pair_request: SHA-256 of the joiner's key and pairing
	// nonce (PairCommit); pair_nonce and pair_reveal carry nonces in Nonce.
	Commit []byte `json:"commit,omitempty"`

	// signal
	From string `json:"from,omitempty"` // set by the hub, never trusted from a box
	To   string `json:"to,omitempty"`
	Call string `json:"call,omitempty"` // call ID chosen by the caller
	Kind string `json:"kind,omitempty"`
	SDP  string `json:"sdp,omitempty"`

	// fanout
	Token string `json:"token,omitempty"`
	URL   string `json:"url,omitempty"`

	// error
	Error string `json:"error,omitempty"`
	Ref   string `json:"ref,omitempty"`
}

// ICEServer is one STUN or TURN server with its credentials.
type ICEServer struct {
	URLs       []string `json:"urls"`
	Username   string   `json:"username,omitempty"`
	Credential string   `json:"credential,omitempty"`
}

// PeerInfo describes a paired box.
type PeerInfo struct {
	ID     string `json:"id"`
	Key    []byte `json:"key"`
	Name   string `json:"name,omitempty"`
	Online bool   `json:"online,omitempty"`
}

// ParseMessage decodes and validates one signalling message from the
// network. It never panics; anything it returns without error has every
// field its Type needs, in range.
func ParseMessage(b []byte) (Message, error) {
	var m Message
	if len(b) > MaxMessageSize {
		return m, fmt.Errorf("%w: %d bytes, limit %d", ErrBadMessage, len(b), MaxMessageSize)
	}
	d := json.NewDecoder(bytes.NewReader(b))
	if err := d.Decode(&m); err != nil {
		return Message{}, fmt.Errorf("%w: %w", ErrBadMessage, err)
	}
	if d.More() {
		return Message{}, fmt.Errorf("%w: trailing data after the JSON object", ErrBadMessage)
	}
	if err := m.Validate(); err != nil {
		return Message{}, err
	}
	return m, nil
}

// Validate checks the fields m.Type requires.
func (m *Message) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrBadMessage, m.Type, fmt.Sprintf(format, args...))
	}
	if err := validName(m.Name); err != nil {
		return bad("%v", err)
	}
	switch m.Type {
	case TypeHello:
		if !ValidBoxID(m.Box) {
			return bad("box ID %q", m.Box)
		}
		if len(m.Key) != ed25519.PublicKeySize {
			return bad("key is %d bytes", len(m.Key))
		}
		if len(m.Nonce) != NonceSize {
			return bad("nonce is %d bytes", len(m.Nonce))
		}
		if len(m.Sig) != ed25519.SignatureSize {
			return bad("signature is %d bytes", len(m.Sig))
		}
		if m.TS <= 0 {
			return bad("no timestamp")
		}
	case TypePairCode, TypePairButton, TypePing, TypePong:
		// A pair_code answer carries a code; a request does not. Both
		// directions share the type, so a present code must be well formed.
		if m.Code != "" && !ValidPairCode(m.Code) {
			return bad("code %q", m.Code)
		}
	case TypePairJoin:
		if !ValidPairCode(m.Code) {
			return bad("code %q", m.Code)
		}
		if len(m.Commit) != CommitSize {
			return bad("commitment is %d bytes", len(m.Commit))
		}
	case TypePairRequest, TypePairNonce, TypePairReveal, TypePairConfirm, TypePairCancel:
		// Box -> hub names the other box in To; hub -> box names it in From.
		if !ValidBoxID(m.To) && !ValidBoxID(m.From) {
			return bad("names no box")
		}
		if m.To != "" && !ValidBoxID(m.To) || m.From != "" && !ValidBoxID(m.From) {
			return bad("to %q from %q", m.To, m.From)
		}
		if m.Type == TypePairRequest && len(m.Commit) != CommitSize {
			return bad("commitment is %d bytes", len(m.Commit))
		}
		if (m.Type == TypePairNonce || m.Type == TypePairReveal) && len(m.Nonce) != NonceSize {
			return bad("nonce is %d bytes", len(m.Nonce))
		}
		if err := validPeers(m.Peers); err != nil {
			return bad("%v", err)
		}
		if m.Type == TypePairRequest && len(m.Peers) != 1 {
			return bad("%d peers", len(m.Peers))
		}
	case TypeSignal:
		if !ValidBoxID(m.To) {
			return bad("to %q", m.To)
		}
		if m.From != "" && !ValidBoxID(m.From) {
			return bad("from %q", m.From)
		}
		if m.Call == "" || len(m.Call) > maxCallID || !printableASCII(m.Call) {
			return bad("call ID %q", m.Call)
		}
		switch m.Kind {
		case KindOffer, KindAnswer:
			if m.SDP == "" || len(m.SDP) > maxSDP || !utf8.ValidString(m.SDP) {
				return bad("SDP of %d bytes", len(m.SDP))
			}
		case KindMedia:
			if m.SDP == "" || len(m.SDP) > maxMediaLocation || !utf8.ValidString(m.SDP) {
				return bad("media location of %d bytes", len(m.SDP))
			}
		case KindRing, KindRinging, KindBye, KindWatch, KindUnwatch:
			if m.SDP != "" {
				return bad("%s with an SDP", m.Kind)
			}
		default:
			return bad("kind %q", m.Kind)
		}
		if len(m.Sig) != ed25519.SignatureSize {
			return bad("signature is %d bytes", len(m.Sig))
		}
	case TypeForget:
		// No fields: the connection's hello says which box forgets itself.
	case TypeWelcome, TypePaired, TypePresence, TypeICE, TypeUnpaired:
		if m.Type == TypeWelcome && !ValidBoxID(m.Box) {
			return bad("box ID %q", m.Box)
		}
		if err := validPeers(m.Peers); err != nil {
			return bad("%v", err)
		}
		for _, s := range m.ICE {
			if len(s.URLs) == 0 {
				return bad("ICE server without URLs")
			}
		}
	case TypeFanout:
		if !ValidBoxID(m.Box) {
			return bad("box ID %q", m.Box)
		}
		if m.Token == "" || len(m.Token) > 64 || !printableASCII(m.Token) {
			return bad("token")
		}
		if !strings.HasPrefix(m.URL, "/") || len(m.URL) > 256 || !printableASCII(m.URL) {
			return bad("url %q", m.URL)
		}
	case TypePhoneOffer, TypePhoneAnswer, TypePhoneBye:
		if err := validPhoneMessage(m); err != nil {
			return bad("%v", err)
		}
	case TypeError:
		if m.Error == "" {
			return bad("empty error")
		}
	default:
		return fmt.Errorf("%w: unknown type %q", ErrBadMessage, m.Type)
	}
	return nil
}

func validPeers(ps []PeerInfo) error {
	for _, p := range ps {
		if !ValidBoxID(p.ID) || len(p.Key) != ed25519.PublicKeySize || BoxID(p.Key) != p.ID {
			return fmt.Errorf("peer %q does not match its key", p.ID)
		}
		if err := validName(p.Name); err != nil {
			return fmt.Errorf("peer name: %w", err)
		}
	}
	return nil
}

func validName(s string) error {
	if len(s) > maxName {
		return fmt.Errorf("name longer than %d bytes", maxName)
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("name is not UTF-8")
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return fmt.Errorf("name has a non-printable character")
		}
	}
	return nil
}

// ValidPairCode reports whether s has the form of a pairing code.
func ValidPairCode(s string) bool {
	if len(s) != PairCodeLen {
		return false
	}
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func utf8Valid(s string) bool { return utf8.ValidString(s) }

func printableASCII(s string) bool {
	for _, c := range []byte(s) {
		if c <= ' ' || c > '~' {
			return false
		}
	}
	return true
}

// helloParts are the signed fields of a hello, in order.
func helloParts(m *Message) []string {
	return []string{m.Box, base64.StdEncoding.EncodeToString(m.Key), m.Name,
		strconv.FormatInt(m.TS, 10), base64.StdEncoding.EncodeToString(m.Nonce)}
}

// signalParts are the signed fields of a signal. From is included: the hub
// sets it, and a signature that names another sender fails.
func signalParts(from string, m *Message) []string {
	return []string{from, m.To, m.Call, m.Kind, m.SDP}
}

// NewHello makes a signed registration for id at time tsMillis.
func NewHello(id *Identity, name string, tsMillis int64, nonce []byte) Message {
	m := Message{Type: TypeHello, Box: id.ID, Key: id.Pub, Name: name, TS: tsMillis, Nonce: nonce}
	m.Sig = id.Sign(ctxHello, helloParts(&m)...)
	return m
}

// VerifyHelloSignature checks the part of a registration that needs no
// state: the box ID belongs to the key presented and the signature is that
// key's. The hub adds the timestamp window and the nonce check.
func VerifyHelloSignature(m *Message) error {
	if BoxID(m.Key) != m.Box {
		return fmt.Errorf("%w: box ID %s does not belong to the key presented", ErrBadSignature, m.Box)
	}
	if !Verify(m.Key, m.Sig, ctxHello, helloParts(m)...) {
		return fmt.Errorf("%w: registration of %s", ErrBadSignature, m.Box)
	}
	return nil
}

// SignSignal fills in the signature of a signal sent by id.
func SignSignal(id *Identity, m *Message) {
	m.Sig = id.Sign(ctxSignal, signalParts(id.ID, m)...)
}

// VerifySignal checks that a forwarded signal was signed by the key of its
// From box.
func VerifySignal(fromKey ed25519.PublicKey, m *Message) error {
	if BoxID(fromKey) != m.From {
		return fmt.Errorf("%w: key does not belong to %s", ErrBadSignature, m.From)
	}
	if !Verify(fromKey, m.Sig, ctxSignal, signalParts(m.From, m)...) {
		return fmt.Errorf("%w: signal %s from %s", ErrBadSignature, m.Kind, m.From)
	}
	return nil
}
