package proto

import (
	"crypto/rand"
	"testing"
)

func mustNonce(t *testing.T) []byte {
	t.Helper()
	b := make([]byte, NonceSize)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// A hub in the middle that introduces its own key to either box makes the
// two boxes show different strings (but for a one-in-a-million chance),
// and a joiner nonce changed after the owner's was seen breaks the
// commitment.
func TestSASBindsBothKeys(t *testing.T) {
	owner, joiner, mitm := mustID(t), mustID(t), mustID(t)
	na, nb := mustNonce(t), mustNonce(t)
	sas := SAS(owner.Pub, joiner.Pub, na, nb)
	if len(sas) != SASDigits || SAS(owner.Pub, joiner.Pub, na, nb) != sas {
		t.Fatalf("SAS %q not %d stable digits", sas, SASDigits)
	}
	// Each box computes with the keys as it was told them.
	if SAS(owner.Pub, mitm.Pub, na, nb) == sas && SAS(mitm.Pub, joiner.Pub, na, nb) == sas {
		t.Fatal("a substituted key left the string unchanged on both boxes")
	}
	commit := PairCommit(joiner.Pub, nb)
	if !CheckCommit(commit, joiner.Pub, nb) {
		t.Fatal("the commitment does not open with its own nonce")
	}
	if CheckCommit(commit, joiner.Pub, mustNonce(t)) || CheckCommit(commit, mitm.Pub, nb) {
		t.Fatal("the commitment opens with another nonce or key")
	}
	// Across many nonces the strings spread over the space (a fixed or
	// biased string would make a match by chance likely).
	seen := map[string]bool{}
	for range 2000 {
		seen[SAS(owner.Pub, joiner.Pub, mustNonce(t), nb)] = true
	}
	if len(seen) < 1990 {
		t.Fatalf("2000 nonces gave %d distinct strings", len(seen))
	}
}

func TestPairCodeForms(t *testing.T) {
	if c := NormalizePairCode(" 1234-567 890 "); c != "1234567890" || !ValidPairCode(c) {
		t.Fatalf("normalized %q", c)
	}
	for _, bad := range []string{"123456", "12345678901", "12345x7890", ""} {
		if ValidPairCode(bad) {
			t.Errorf("accepted %q", bad)
		}
	}
	if s, sec := CodeSlot("1234567890"); s != "1234" || sec != "567890" {
		t.Fatalf("slot %q secret %q", s, sec)
	}
	if f := FormatPairCode("1234567890"); f != "1234-567890" {
		t.Fatalf("formatted %q", f)
	}
}

func mustID(t *testing.T) *Identity {
	t.Helper()
	id, err := NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	return id
}
