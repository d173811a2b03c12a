package alsacards

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestMissing(t *testing.T) {
	dir := t.TempDir()
	cards, dev := filepath.Join(dir, "cards"), filepath.Join(dir, "snd")
	if err := os.Mkdir(dev, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(p, s string) {
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if why := Missing(cards, dev, Capture); !strings.Contains(why, "does not exist") {
		t.Errorf("no cards file: %q", why)
	}
	write(cards, "--- no soundcards ---\n")
	if why := Missing(cards, dev, Playback); !strings.Contains(why, "lists none") {
		t.Errorf("no soundcards: %q", why)
	}
	// A capture node says nothing of playback, and the other way round.
	write(filepath.Join(dev, "pcmC0D0c"), "")
	if why := Missing(cards, dev, Capture); why != "" {
		t.Errorf("capture node present: %q", why)
	}
	if why := Missing(cards, dev, Playback); why == "" {
		t.Error("a capture node taken for a playback device")
	}
	write(cards, " 0 [Loopback       ]: Loopback - Loopback\n")
	if why := Missing(cards, dev, Playback); why != "" {
		t.Errorf("a listed card: %q", why)
	}
}
