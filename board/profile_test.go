package board

import (
	"errors"
	"strings"
	"testing"

	"github.com/callbox/callbox/board/config"
)

func TestDetectProfile(t *testing.T) {
	tests := map[string]string{
		"Raspberry Pi 5 Model B Rev 1.0\x00":    "rpi5",
		"Raspberry Pi 4 Model B Rev 1.4":        "rpi4",
		"Raspberry Pi 400 Rev 1.0":              "rpi4",
		"Raspberry Pi Compute Module 4 Rev 1.0": "rpi4",
		"Raspberry Pi 3 Model B Plus Rev 1.3":   "rpi3",
		"Raspberry Pi Zero 2 W Rev 1.0":         "rpizero2w",
		"Raspberry Pi Zero W Rev 1.1":           "",
		"QEMU Virt Machine":                     "",
		"":                                      "",
	}
	for model, want := range tests {
		p, ok := DetectProfile(model)
		if want == "" && ok || want != "" && p.Name != want {
			t.Errorf("%q: got %q %v, want %q", model, p.Name, ok, want)
		}
	}
}

func TestResolve(t *testing.T) {
	pi5old := []Chip{{"gpiochip0", "gpio-brcmstb@107d508500"}, {"gpiochip4", "pinctrl-rp1"}, {"gpiochip10", "raspberrypi-exp-gpio"}}
	pi5new := []Chip{{"gpiochip0", "pinctrl-rp1"}, {"gpiochip10", "gpio-brcmstb@107d508500"}}
	pi4 := []Chip{{"gpiochip0", "pinctrl-bcm2711"}, {"gpiochip1", "raspberrypi-exp-gpio"}}
	sim := []Chip{{"gpiochip0", "gpio-sim.0-node0"}}
	def := config.Default().Board
	generic := def
	generic.Profile, generic.ButtonA, generic.ButtonB, generic.LEDRed, generic.LEDGreen, generic.LEDBlue = "generic", 1, 2, 3, 4, 5
	rgbPi := def
	rgbPi.LEDRed, rgbPi.LEDGreen, rgbPi.LEDBlue = 5, 6, 13
	noneBias := def
	noneBias.ButtonBias = "none"
	tests := []struct {
		name  string
		cfg   config.Board
		model string
		chips []Chip
		want  Wiring
		err   string
	}{
		{"pi5 old kernel", def, "Raspberry Pi 5 Model B Rev 1.0", pi5old,
			Wiring{Profile: "rpi5", Chip: "gpiochip4", ButtonA: 17, ButtonB: 27, LED: 22, RGB: [3]int{-1, -1, -1}, PullUp: true}, ""},
		{"pi5 new kernel", def, "Raspberry Pi 5 Model B Rev 1.0", pi5new,
			Wiring{Profile: "rpi5", Chip: "gpiochip0", ButtonA: 17, ButtonB: 27, LED: 22, RGB: [3]int{-1, -1, -1}, PullUp: true}, ""},
		{"pi4 rgb", rgbPi, "Raspberry Pi 4 Model B Rev 1.4", pi4,
			Wiring{Profile: "rpi4", Chip: "gpiochip0", ButtonA: 17, ButtonB: 27, LED: -1, RGB: [3]int{5, 6, 13}, PullUp: true}, ""},
		{"pi4 external pull-ups", noneBias, "Raspberry Pi 4 Model B", pi4,
			Wiring{Profile: "rpi4", Chip: "gpiochip0", ButtonA: 17, ButtonB: 27, LED: 22, RGB: [3]int{-1, -1, -1}}, ""},
		{"generic on gpio-sim", generic, "", sim,
			Wiring{Profile: "generic", Chip: "gpiochip0", ButtonA: 1, ButtonB: 2, LED: -1, RGB: [3]int{3, 4, 5}}, ""},
		{"pc", def, "", nil, Wiring{}, "no device-tree model"},
		{"pi without gpio", def, "Raspberry Pi 3 Model B", nil, Wiring{}, "no GPIO chips"},
		{"wrong chip", def, "Raspberry Pi 5", pi4, Wiring{}, "no GPIO chip labelled pinctrl-rp1"},
		{"sim forced", config.Board{Profile: "sim"}, "Raspberry Pi 4", pi4, Wiring{}, "sim"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, err := Resolve(tt.cfg, tt.model, tt.chips)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) || !errors.Is(err, ErrNoBoard) {
					t.Fatalf("err = %v, want ErrNoBoard mentioning %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if w != tt.want {
				t.Fatalf("got  %+v\nwant %+v", w, tt.want)
			}
		})
	}
}

func TestResolveConfigErrors(t *testing.T) {
	def := config.Default().Board
	g := def
	g.Profile = "generic"
	if _, err := Resolve(g, "", []Chip{{"gpiochip0", "x"}}); err == nil || !strings.Contains(err.Error(), "button_a") {
		t.Fatalf("generic without pins: %v", err)
	}
	g.ButtonA, g.ButtonB, g.LED = 1, 2, 3
	if _, err := Resolve(g, "", []Chip{{"gpiochip0", "x"}, {"gpiochip1", "y"}}); err == nil || !strings.Contains(err.Error(), "board.chip") {
		t.Fatalf("generic with two chips: %v", err)
	}
	g.Chip = "y"
	if w, err := Resolve(g, "", []Chip{{"gpiochip0", "x"}, {"gpiochip1", "y"}}); err != nil || w.Chip != "gpiochip1" {
		t.Fatalf("chip by label: %+v %v", w, err)
	}
	g.Chip = "nope"
	if _, err := Resolve(g, "", []Chip{{"gpiochip0", "x"}}); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Fatalf("missing chip: %v", err)
	}
}

func FuzzDetectProfile(f *testing.F) {
	f.Add("Raspberry Pi 5 Model B Rev 1.0\x00")
	f.Add("Raspberry Pi Zero 2 W Rev 1.0")
	f.Fuzz(func(t *testing.T, model string) {
		p, ok := DetectProfile(model)
		if ok && !strings.HasPrefix(strings.TrimSpace(strings.TrimRight(model, "\x00")), "Raspberry Pi") {
			t.Fatalf("%q detected as %s", model, p.Name)
		}
	})
}

// The configuration accepts exactly the profiles this package knows.
func TestProfileNamesAgree(t *testing.T) {
	var names []string
	for _, p := range Profiles {
		names = append(names, p.Name)
	}
	for _, n := range config.Profiles {
		if n == "auto" || n == "sim" {
			continue
		}
		if _, ok := ProfileByName(n); !ok {
			t.Errorf("config accepts profile %q, board has none", n)
		}
	}
	for _, n := range names {
		found := false
		for _, c := range config.Profiles {
			found = found || c == n
		}
		if !found {
			t.Errorf("board profile %q not accepted by the configuration", n)
		}
	}
}
