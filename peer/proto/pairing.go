package proto

import (
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"fmt"
	"strings"
)

// Pairing two boxes (docs/security.md, "The hub").
//
// The owner's box asks the hub for a code and its owner reads it to the
// other box's owner, who enters it. The hub then introduces the two boxes
// to each other, but the hub is not trusted with their keys: a hub that
// lies, or anyone in the middle of its connection, could introduce its own
// key instead. So each box shows a short authentication string (SAS)
// derived from both keys and two nonces, and each owner confirms that the
// two boxes show the same one; a box pins the other's key only then.
//
// The nonces keep a man in the middle from choosing keys until the two
// strings match: the joiner commits to its nonce (PairCommit) before it
// sees the owner's, and the owner sends its nonce before it sees the
// joiner's. Whoever sits in the middle must fix each side's inputs before
// it learns the other side's random contribution, so its two strings match
// by chance only: one in a million (SASDigits digits).

// SASDigits is the length of the short authentication string.
const SASDigits = 6

const ctxCommit, ctxSAS = "callbox-pair-commit-v1", "callbox-pair-sas-v1"

// PairCommit is the joiner's commitment to its pairing nonce.
func PairCommit(joinerKey ed25519.PublicKey, nonce []byte) []byte {
	h := sha256.New()
	h.Write(signedBytes(ctxCommit, string(joinerKey), string(nonce)))
	return h.Sum(nil)
}

// CheckCommit reports whether nonce is the one the commitment was made to.
func CheckCommit(commit []byte, joinerKey ed25519.PublicKey, nonce []byte) bool {
	return subtle.ConstantTimeCompare(commit, PairCommit(joinerKey, nonce)) == 1
}

// SAS is the short authentication string both boxes show: SASDigits
// decimal digits from a hash of both keys and both nonces.
func SAS(ownerKey, joinerKey ed25519.PublicKey, ownerNonce, joinerNonce []byte) string {
	sum := sha256.Sum256(signedBytes(ctxSAS, string(ownerKey), string(joinerKey), string(ownerNonce), string(joinerNonce)))
	n := binary.BigEndian.Uint64(sum[:8]) % 1_000_000
	return fmt.Sprintf("%06d", n)
}

// CodeSlot splits a pairing code into the slot that names the pending code
// on the hub and its secret.
func CodeSlot(code string) (slot, secret string) {
	if len(code) < PairSlotLen {
		return code, ""
	}
	return code[:PairSlotLen], code[PairSlotLen:]
}

// NormalizePairCode removes the spaces and dashes a person types between
// groups of digits ("1234-567 890"); the result still needs ValidPairCode.
func NormalizePairCode(s string) string {
	return strings.Map(func(r rune) rune {
		if r == ' ' || r == '-' {
			return -1
		}
		return r
	}, strings.TrimSpace(s))
}

// FormatPairCode groups a code for reading aloud: "1234-567890".
func FormatPairCode(code string) string {
	if len(code) != PairCodeLen {
		return code
	}
	return code[:PairSlotLen] + "-" + code[PairSlotLen:]
}
