package proto

import (
	"encoding/json"
	"testing"
)

// FuzzParseMessage feeds arbitrary bytes to the parser the hub and the boxes
// run on every message from the network. It must never panic, and whatever
// it accepts must survive a re-encode and re-parse unchanged in meaning.
// Seeds: testdata/fuzz/FuzzParseMessage (one of each message type, plus
// near misses).
func FuzzParseMessage(f *testing.F) {
	f.Add([]byte(`{"type":"ping"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseMessage(b)
		if err != nil {
			return
		}
		out, err := json.Marshal(&m)
		if err != nil {
			t.Fatalf("accepted message does not re-encode: %v", err)
		}
		m2, err := ParseMessage(out)
		if err != nil {
			t.Fatalf("re-encoded message refused: %v\n%s", err, out)
		}
		if m2.Type != m.Type || m2.Box != m.Box || m2.To != m.To || m2.SDP != m.SDP || m2.Code != m.Code {
			t.Fatalf("round trip changed the message: %+v -> %+v", m, m2)
		}
		if m.Type == TypeHello {
			// Verification must be safe on anything the parser lets through.
			_ = VerifyHelloSignature(&m)
		}
		if m.Type == TypeSignal && m.From != "" {
			_ = VerifySignal(m.Key, &m)
		}
	})
}

func TestParseMessageRejects(t *testing.T) {
	for _, in := range []string{
		``, `null`, `[]`, `{}`, `{"type":"nope"}`,
		`{"type":"hello","box":"abc"}`,
		`{"type":"signal","to":"aaaaaaaaaaaaaaaa","call":"c","kind":"offer","sig":"` + b64(64) + `"}`, // no SDP
		`{"type":"signal","to":"aaaaaaaaaaaaaaaa","call":"c","kind":"dance","sig":"` + b64(64) + `"}`,
		`{"type":"signal","to":"aaaaaaaaaaaaaaaa","call":"c","kind":"ring"}`, // unsigned
		`{"type":"pair_join","code":"12a456"}`,
		`{"type":"ping"} {"type":"ping"}`,
		`{"type":"ping","name":"a\u0000b"}`,
	} {
		if _, err := ParseMessage([]byte(in)); err == nil {
			t.Errorf("accepted %q", in)
		}
	}
}

func b64(n int) string {
	b, _ := json.Marshal(make([]byte, n))
	return string(b[1 : len(b)-1])
}
