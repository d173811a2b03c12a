package mic

import (
	"fmt"

	"github.com/callbox/callbox/internal/alsacards"
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
	if why := alsacards.Missing(asoundCards, sndDev, alsacards.Capture); why != "" {
		return fmt.Errorf("%w (%s, no capture device in %s)", ErrNoSoundCard, why, sndDev)
	}
	return nil
}
