package speaker

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/callbox/callbox/internal/alsacards"
)

// ErrNoSoundCard reports a machine with no ALSA playback device at all. It
// wraps ErrNoDevice.
var ErrNoSoundCard = fmt.Errorf("%w: no sound card", ErrNoDevice)

// The kernel's list of ALSA cards and its device nodes (variables for
// tests).
var (
	asoundCards = "/proc/asound/cards"
	sndDev      = "/dev/snd"
)

// playbackCards returns ErrNoSoundCard when the machine has no ALSA card
// to play to (the rules of drivers/mic, for playback nodes pcmC*D*p).
func playbackCards() error {
	if why := alsacards.Missing(asoundCards, sndDev, alsacards.Playback); why != "" {
		return fmt.Errorf("%w (%s, no playback device in %s)", ErrNoSoundCard, why, sndDev)
	}
	return nil
}

// Opened is the speaker a configuration chose.
type Opened struct {
	Output Output // nil: no speaker (the mixer keeps time alone)
	// Device is the short name for /api/state: "none", "synthetic" or
	// the ALSA device's name.
	Device string
	// Desc says what it is and why, for the log.
	Desc string
	// CardName is the ALSA card's name for a real device ("" otherwise):
	// what hardware echo cancellation is recognised by.
	CardName string
}

// Open opens the speaker spec names (config speaker.device): "none";
// "synthetic" (the simulated speaker); "auto" or "" (the default output;
// when there is none, the simulated speaker if fallback, else none); or
// a PortAudio/ALSA device name or a part of one ("hw:1,0", "USB",
// "Loopback"). A device named explicitly that cannot be opened is an
// error; later failures are retried with backoff.
func Open(spec string, fallback bool, log *slog.Logger) (Opened, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	switch spec {
	case "none":
		return Opened{Device: "none", Desc: "no speaker (speaker.device = none)"}, nil
	case "synthetic":
		return Opened{Output: NewSim(), Device: "synthetic", Desc: "simulated speaker"}, nil
	case "", "auto", "default":
		o, err := openReopening("", log)
		if err == nil {
			return Opened{Output: o, Device: o.name, CardName: o.name, Desc: fmt.Sprintf("ALSA speaker %q (PortAudio), %d Hz mono", o.name, Rate)}, nil
		}
		if fallback {
			return Opened{Output: NewSim(), Device: "synthetic", Desc: "simulated speaker (auto: no usable output: " + err.Error() + ")"}, nil
		}
		return Opened{Device: "none", Desc: "no speaker (auto: " + err.Error() + ")"}, nil
	default:
		o, err := openReopening(spec, log)
		if err != nil {
			return Opened{}, fmt.Errorf("speaker %q: %w", spec, err)
		}
		return Opened{Output: o, Device: o.name, CardName: o.name, Desc: fmt.Sprintf("ALSA speaker %q (PortAudio), %d Hz mono", o.name, Rate)}, nil
	}
}

// Backoff bounds for reopening a failed device.
const (
	MinBackoff = 100 * time.Millisecond
	MaxBackoff = 5 * time.Second
)

// reopening is a PortAudio output that reopens its device after a failure
// (a USB speakerphone unplugged and plugged back), with backoff; while the
// device is away, Write fails at once and the mixer keeps its own time.
type reopening struct {
	device  string // as configured ("" = default)
	name    string // the device PortAudio found
	log     *slog.Logger
	o       *paOutput
	backoff time.Duration
	nextTry time.Time
	latency time.Duration
	// onPlayed is the mixer's far-end tap, handed to each device opened.
	onPlayed func([]int16, time.Time)
}

func openReopening(device string, log *slog.Logger) (*reopening, error) {
	o, err := openPortAudio(device)
	if err != nil {
		return nil, err
	}
	return &reopening{device: device, name: o.name, log: log, o: o, backoff: MinBackoff, latency: o.Latency()}, nil
}

func (r *reopening) Write(frame []int16) error {
	return r.write(func(o *paOutput) error { return o.Write(frame) })
}

func (r *reopening) write(w func(*paOutput) error) error {
	if r.o == nil {
		if time.Now().Before(r.nextTry) {
			return fmt.Errorf("speaker %q: away, retrying in %v", r.name, time.Until(r.nextTry).Round(time.Millisecond))
		}
		o, err := openPortAudio(r.device)
		if err != nil {
			r.backoff = min(r.backoff*2, MaxBackoff)
			r.nextTry = time.Now().Add(r.backoff)
			return fmt.Errorf("speaker: reopen: %w", err)
		}
		r.o, r.backoff = o, MinBackoff
		if r.onPlayed != nil {
			o.OnPlayed(r.onPlayed)
		}
		r.log.Info("speaker back", "device", o.name)
	}
	if err := w(r.o); err != nil {
		r.o.Close()
		r.o = nil
		r.nextTry = time.Now().Add(r.backoff)
		return fmt.Errorf("speaker: write: %w", err)
	}
	return nil
}

// OnPlayed implements the mixer's playedOutput, for this device and the
// ones reopened after it.
func (r *reopening) OnPlayed(f func([]int16, time.Time)) {
	r.onPlayed = f
	if r.o != nil {
		r.o.OnPlayed(f)
	}
}

// Underruns counts buffers the current device played as silence because
// the mixer was late.
func (r *reopening) Underruns() uint64 {
	if r.o == nil {
		return 0
	}
	return r.o.Underruns()
}

func (r *reopening) Latency() time.Duration {
	if r.o == nil {
		return r.latency
	}
	r.latency = r.o.Latency()
	return r.latency
}

func (r *reopening) Close() error {
	if r.o == nil {
		return nil
	}
	err := r.o.Close()
	r.o = nil
	return err
}
