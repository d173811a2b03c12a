package mic

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestSoundCards(t *testing.T) {
	const card = " 0 [Loopback       ]: Loopback - Loopback\n                      Loopback 1\n"
	for _, tc := range []struct {
		name  string
		cards *string // nil: no /proc/asound/cards
		nodes []string
		none  bool // want ErrNoSoundCard
	}{
		{"a card", ptr(card), nil, false},
		{"no soundcards", ptr("--- no soundcards ---\n"), nil, true},
		{"empty list", ptr(""), nil, true},
		{"no /proc/asound", nil, nil, true},
		{"no /proc/asound, playback only", nil, []string{"controlC0", "pcmC0D0p"}, true},
		// A container may mask /proc/asound and still be given /dev/snd.
		{"no /proc/asound, capture node", nil, []string{"controlC0", "pcmC0D0c"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			defer func(c, d string) { asoundCards, sndDev = c, d }(asoundCards, sndDev)
			asoundCards = filepath.Join(dir, "cards")
			sndDev = filepath.Join(dir, "snd")
			if tc.cards != nil {
				if err := os.WriteFile(asoundCards, []byte(*tc.cards), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.Mkdir(sndDev, 0o755); err != nil {
				t.Fatal(err)
			}
			for _, n := range tc.nodes {
				if err := os.WriteFile(filepath.Join(sndDev, n), nil, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			err := soundCards()
			if tc.none {
				if !errors.Is(err, ErrNoSoundCard) || !errors.Is(err, ErrNoDevice) {
					t.Fatalf("got %v, want ErrNoSoundCard (an ErrNoDevice)", err)
				}
				t.Logf("%v", err)
			} else if err != nil {
				t.Fatalf("got %v, want nil (probe)", err)
			}
		})
	}
}

func ptr(s string) *string { return &s }
