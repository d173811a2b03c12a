package mic

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// ErrNoSoundCard reports a machine whose kernel has no sound card at all.
// It wraps ErrNoDevice.
var ErrNoSoundCard = fmt.Errorf("%w: no sound card", ErrNoDevice)

// The kernel's list of ALSA cards and its device nodes (variables for
// tests).
var (
	asoundCards = "/proc/asound/cards"
	sndDev      = "/dev/snd"
)

// soundCards returns ErrNoSoundCard when the machine has no ALSA card to
// capture from: /proc/asound/cards says "--- no soundcards ---" or does not
// exist, and /dev/snd has no capture node (pcmC*D*c; a container may mask
// /proc/asound yet be given /dev/snd). Anything unexpected is not a
// verdict: nil lets the caller probe.
func soundCards() error {
	b, err := os.ReadFile(asoundCards)
	var why string
	switch {
	case errors.Is(err, fs.ErrNotExist):
		why = asoundCards + " does not exist"
	case err != nil:
		return nil
	default:
		text := strings.TrimSpace(string(b))
		if text != "" && !strings.Contains(text, "no soundcards") {
			return nil
		}
		why = asoundCards + " lists none"
	}
	if nodes, _ := filepath.Glob(filepath.Join(sndDev, "pcmC*D*c")); len(nodes) > 0 {
		return nil
	}
	return fmt.Errorf("%w (%s, no capture device in %s)", ErrNoSoundCard, why, sndDev)
}
