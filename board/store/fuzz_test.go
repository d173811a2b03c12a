package store

import (
	"encoding/json"
	"os"
	"testing"
)

// FuzzParseState: whatever is on the SD card, Parse must not panic, and a
// state it accepts must survive a save/parse round trip unchanged.
func FuzzParseState(f *testing.F) {
	seed, err := os.ReadFile("testdata/state.json")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add([]byte(`{"version":1}`))
	f.Add([]byte(`{"version":1,"tokens":null}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := Parse(data)
		if err != nil {
			return
		}
		out, err := json.Marshal(st)
		if err != nil {
			t.Fatal(err)
		}
		again, err := Parse(out)
		if err != nil {
			t.Fatalf("accepted state does not re-parse: %v\n%s", err, out)
		}
		if again.Muted != st.Muted || len(again.Tokens) != len(st.Tokens) {
			t.Fatalf("round trip changed the state: %+v -> %+v", st, again)
		}
	})
}
