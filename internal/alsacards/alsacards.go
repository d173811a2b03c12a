// Package alsacards tells whether the kernel has an ALSA device to capture
// from or play to, before a driver asks PortAudio (which answers a machine
// without sound with a long probe and no reason). The microphone and the
// speaker drivers share these rules.
package alsacards

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Direction is a PCM node's direction: 'c' (capture) or 'p' (playback),
// the last letter of /dev/snd/pcmC<card>D<device><c|p>.
type Direction byte

const (
	Capture  Direction = 'c'
	Playback Direction = 'p'
)

// Missing returns why the machine has no ALSA device in direction d, or ""
// when it has one or cannot tell: cardsFile (/proc/asound/cards) says "---
// no soundcards ---" or does not exist, and devDir (/dev/snd) has no PCM
// node of that direction (a container may mask /proc/asound yet be given
// /dev/snd). Anything unexpected is not a verdict: "" lets the caller
// probe.
func Missing(cardsFile, devDir string, d Direction) string {
	b, err := os.ReadFile(cardsFile)
	var why string
	switch {
	case errors.Is(err, fs.ErrNotExist):
		why = cardsFile + " does not exist"
	case err != nil:
		return ""
	default:
		text := strings.TrimSpace(string(b))
		if text != "" && !strings.Contains(text, "no soundcards") {
			return ""
		}
		why = cardsFile + " lists none"
	}
	if nodes, _ := filepath.Glob(filepath.Join(devDir, "pcmC*D*"+string(rune(d)))); len(nodes) > 0 {
		return ""
	}
	return why
}
