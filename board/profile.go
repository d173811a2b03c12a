package board

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/callbox/callbox/board/config"
)

// Profile is a supported board and its default wiring. Every Raspberry Pi
// here has the same 40-pin header, so the default wiring is the same BCM
// GPIO numbers on all of them; what differs is the GPIO chip, which is found
// by its label because its number changes between kernels (the Pi 5's RP1
// was gpiochip4 before Linux 6.6.45 and is gpiochip0 since).
type Profile struct {
	Name        string   // configuration value of board.profile
	Model       string   // for people
	ModelPrefix []string // prefixes of /proc/device-tree/model
	ChipLabels  []string // GPIO chip labels to look for, in order
	ButtonA     int      // BCM GPIO numbers
	ButtonB     int
	LED         int
	// PullUp: the SoC's pull-up resistors can be enabled by the line
	// request, so buttons need no external resistor.
	PullUp bool
}

// Default wiring (docs/board.md has the diagram): buttons between GPIO17
// (header pin 11) / GPIO27 (pin 13) and ground, LED with a resistor from
// GPIO22 (pin 15) to ground. An RGB LED goes on GPIO5/6/13 (pins 29/31/33)
// when configured.
const (
	DefaultButtonA  = 17
	DefaultButtonB  = 27
	DefaultLED      = 22
	DefaultLEDRed   = 5
	DefaultLEDGreen = 6
	DefaultLEDBlue  = 13
)

// Profiles lists the supported boards; "generic" takes its wiring from the
// configuration.
var Profiles = []Profile{
	{
		Name: "rpi5", Model: "Raspberry Pi 5",
		ModelPrefix: []string{"Raspberry Pi 5", "Raspberry Pi 500", "Raspberry Pi Compute Module 5"},
		ChipLabels:  []string{"pinctrl-rp1"},
		ButtonA:     DefaultButtonA, ButtonB: DefaultButtonB, LED: DefaultLED, PullUp: true,
	},
	{
		Name: "rpi4", Model: "Raspberry Pi 4",
		ModelPrefix: []string{"Raspberry Pi 4", "Raspberry Pi 400", "Raspberry Pi Compute Module 4"},
		// Raspberry Pi kernels label the BCM2711 controller pinctrl-bcm2711;
		// some older and mainline kernels reuse the bcm2835 driver's label.
		ChipLabels: []string{"pinctrl-bcm2711", "pinctrl-bcm2835"},
		ButtonA:    DefaultButtonA, ButtonB: DefaultButtonB, LED: DefaultLED, PullUp: true,
	},
	{
		Name: "rpi3", Model: "Raspberry Pi 3",
		ModelPrefix: []string{"Raspberry Pi 3", "Raspberry Pi Compute Module 3"},
		ChipLabels:  []string{"pinctrl-bcm2835"},
		ButtonA:     DefaultButtonA, ButtonB: DefaultButtonB, LED: DefaultLED, PullUp: true,
	},
	{
		Name: "rpizero2w", Model: "Raspberry Pi Zero 2 W",
		ModelPrefix: []string{"Raspberry Pi Zero 2"},
		ChipLabels:  []string{"pinctrl-bcm2835"},
		ButtonA:     DefaultButtonA, ButtonB: DefaultButtonB, LED: DefaultLED, PullUp: true,
	},
	{
		Name: "generic", Model: "generic Linux board (wiring from the configuration)",
		ButtonA: config.NoPin, ButtonB: config.NoPin, LED: config.NoPin,
	},
}

// ProfileByName finds a profile.
func ProfileByName(name string) (Profile, bool) {
	for _, p := range Profiles {
		if p.Name == name {
			return p, true
		}
	}
	return Profile{}, false
}

// DetectProfile picks the profile for a device-tree model string.
func DetectProfile(model string) (Profile, bool) {
	model = strings.TrimSpace(strings.TrimRight(model, "\x00"))
	for _, p := range Profiles {
		for _, pre := range p.ModelPrefix {
			if strings.HasPrefix(model, pre) {
				return p, true
			}
		}
	}
	return Profile{}, false
}

// ReadModel returns the board's device-tree model ("" when there is none,
// as on a PC).
func ReadModel() string {
	for _, p := range []string{"/proc/device-tree/model", "/sys/firmware/devicetree/base/model"} {
		b, err := os.ReadFile(p)
		if err == nil && len(b) <= 256 {
			return strings.TrimSpace(strings.TrimRight(string(b), "\x00"))
		}
	}
	return ""
}

// Chip is a GPIO chip present on this machine.
type Chip struct {
	Name  string // gpiochipN
	Label string
}

// Wiring is the resolved set of lines the firmware opens. Lines are
// offsets on Chip; an LED field is config.NoPin when unused.
type Wiring struct {
	Profile string
	Chip    string // gpiochipN, or the configured label or path
	ButtonA int
	ButtonB int
	LED     int
	RGB     [3]int // red, green, blue; all config.NoPin when unused
	// LEDActiveLow: the LED is lit by a low level (common anode).
	LEDActiveLow bool
	// PullUp: request the kernel's pull-up on the button lines.
	PullUp bool
}

// ErrNoBoard means this machine has no board the firmware can drive (no
// GPIO, or an unknown board without a configured wiring): the appliance
// then runs the simulated board.
var ErrNoBoard = errors.New("no supported GPIO board found")

// Resolve decides the wiring from the configuration, the device-tree model
// and the GPIO chips present. An explicitly configured profile that cannot
// be satisfied is an error naming why; "auto" on an unknown machine is
// ErrNoBoard.
func Resolve(cfg config.Board, model string, chips []Chip) (Wiring, error) {
	var prof Profile
	switch cfg.Profile {
	case "sim":
		return Wiring{}, fmt.Errorf("board.profile is sim: %w", ErrNoBoard)
	case "auto", "":
		p, ok := DetectProfile(model)
		switch {
		case ok:
			prof = p
		case cfg.ButtonA != config.NoPin && cfg.ButtonB != config.NoPin:
			// An unknown board with its wiring configured.
			prof, _ = ProfileByName("generic")
		default:
			if model == "" {
				model = "no device-tree model"
			}
			return Wiring{}, fmt.Errorf("%s: %w", model, ErrNoBoard)
		}
	default:
		p, ok := ProfileByName(cfg.Profile)
		if !ok {
			return Wiring{}, fmt.Errorf("board.profile %q: unknown profile", cfg.Profile)
		}
		prof = p
	}
	if len(chips) == 0 {
		return Wiring{}, fmt.Errorf("%s: no GPIO chips (/dev/gpiochip*): %w", prof.Model, ErrNoBoard)
	}
	w := Wiring{
		Profile:      prof.Name,
		ButtonA:      pick(cfg.ButtonA, prof.ButtonA),
		ButtonB:      pick(cfg.ButtonB, prof.ButtonB),
		LED:          pick(cfg.LED, prof.LED),
		RGB:          [3]int{cfg.LEDRed, cfg.LEDGreen, cfg.LEDBlue},
		LEDActiveLow: cfg.LEDActiveLow,
		PullUp:       prof.PullUp,
	}
	switch cfg.ButtonBias {
	case "pull-up":
		w.PullUp = true
	case "none":
		w.PullUp = false
	}
	if w.RGB[0] != config.NoPin && cfg.LED == config.NoPin {
		// An RGB LED replaces the profile's single LED unless both are
		// configured explicitly.
		w.LED = config.NoPin
	}
	if w.ButtonA == config.NoPin || w.ButtonB == config.NoPin {
		return Wiring{}, fmt.Errorf("board.profile %s needs board.button_a and board.button_b", prof.Name)
	}
	if w.LED == config.NoPin && w.RGB[0] == config.NoPin {
		return Wiring{}, fmt.Errorf("board.profile %s needs board.led or board.led_red/green/blue", prof.Name)
	}
	chip, err := findChip(cfg.Chip, prof, chips)
	if err != nil {
		return Wiring{}, err
	}
	w.Chip = chip
	return w, nil
}

func pick(configured, def int) int {
	if configured != config.NoPin {
		return configured
	}
	return def
}

func findChip(configured string, prof Profile, chips []Chip) (string, error) {
	if configured != "" {
		for _, c := range chips {
			if c.Name == configured || c.Label == configured || "/dev/"+c.Name == configured {
				return c.Name, nil
			}
		}
		return "", fmt.Errorf("board.chip %q: no such GPIO chip (have %s)", configured, chipList(chips))
	}
	for _, label := range prof.ChipLabels {
		for _, c := range chips {
			if c.Label == label {
				return c.Name, nil
			}
		}
	}
	if len(prof.ChipLabels) == 0 && len(chips) == 1 {
		return chips[0].Name, nil
	}
	if len(prof.ChipLabels) == 0 {
		return "", fmt.Errorf("board.chip: several GPIO chips (%s); name one", chipList(chips))
	}
	return "", fmt.Errorf("%s: no GPIO chip labelled %s (have %s): %w", prof.Model,
		strings.Join(prof.ChipLabels, " or "), chipList(chips), ErrNoBoard)
}

func chipList(chips []Chip) string {
	s := make([]string, len(chips))
	for i, c := range chips {
		s[i] = c.Name + " (" + c.Label + ")"
	}
	slices.Sort(s)
	return strings.Join(s, ", ")
}
