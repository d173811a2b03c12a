package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestDefaultsWhenEmpty(t *testing.T) {
	cfg, err := Load(nil)
	if err != nil {
		t.Fatalf("empty file: %v", err)
	}
	if !reflect.DeepEqual(cfg, Default()) {
		t.Fatalf("empty file did not give the defaults:\n%+v", cfg)
	}
}

// The example shipped in board/ must load cleanly and match the defaults it
// claims to show.
func TestExampleIsDefaults(t *testing.T) {
	cfg, err := LoadFile(filepath.Join("..", "callbox.example.toml"))
	if err != nil {
		t.Fatalf("example: %v", err)
	}
	want := Default()
	if !cfg.IsSet("camera.fps") || !cfg.IsSet("pairing.open") || cfg.IsSet("camera") {
		t.Error("IsSet does not follow the file")
	}
	cfg.set = nil
	if !reflect.DeepEqual(cfg, want) {
		t.Fatalf("example differs from defaults:\n got %+v\nwant %+v", cfg, want)
	}
}

func TestGoodFile(t *testing.T) {
	cfg, err := LoadFile("testdata/good.toml")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Name != "kitchen" || cfg.Camera.Width != 320 || cfg.Camera.FPS != 10 || cfg.Camera.Device != "synthetic" {
		t.Errorf("camera/name not applied: %+v %+v", cfg.Name, cfg.Camera)
	}
	if cfg.Board.Profile != "generic" || cfg.Board.ButtonA != 5 || cfg.Board.LEDBlue != 21 || !cfg.Board.LEDActiveLow {
		t.Errorf("board not applied: %+v", cfg.Board)
	}
	if !cfg.Pairing.Open {
		t.Error("pairing.open not applied")
	}
	if cfg.Camera.Height != 240 || cfg.Relay.PacketSize != 1200 {
		t.Errorf("unrelated keys changed: %+v %+v", cfg.Camera, cfg.Relay)
	}
}

// keyErrors unpacks Load's joined error.
func keyErrors(t *testing.T, err error) []*KeyError {
	t.Helper()
	if err == nil {
		t.Fatal("want an error, got none")
	}
	var out []*KeyError
	var walk func(error)
	walk = func(e error) {
		if ke, ok := e.(*KeyError); ok {
			out = append(out, ke)
			return
		}
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			for _, x := range j.Unwrap() {
				walk(x)
			}
			return
		}
		if u := errors.Unwrap(e); u != nil {
			walk(u)
		}
	}
	walk(err)
	return out
}

type wantErr struct {
	key  string
	line int
	kind error
}

func checkErrors(t *testing.T, err error, want []wantErr) {
	t.Helper()
	got := keyErrors(t, err)
	if len(got) != len(want) {
		t.Fatalf("got %d errors, want %d: %v", len(got), len(want), err)
	}
	for i, w := range want {
		g := got[i]
		if g.Key != w.key || g.Line != w.line || !errors.Is(g, w.kind) {
			t.Errorf("error %d = %q (key %q line %d), want key %q line %d kind %v", i, g, g.Key, g.Line, w.key, w.line, w.kind)
		}
		// The message a person reads names both.
		if !strings.Contains(g.Error(), w.key) || (w.line > 0 && !strings.Contains(g.Error(), "line ")) {
			t.Errorf("message %q does not name key and line", g.Error())
		}
	}
}

func TestErrorsNameKeyAndLine(t *testing.T) {
	tests := []struct {
		file string
		want []wantErr
	}{
		{"bad_range.toml", []wantErr{
			{"camera.width", 3, ErrRange},
			{"camera.fps", 4, ErrType},
			{"board.button_b", 7, ErrRange},
		}},
		{"unknown.toml", []wantErr{
			{"camera.widht", 2, ErrUnknownKey},
			{"relya", 3, ErrUnknownKey},
		}},
		{"syntax.toml", []wantErr{
			{"", 2, ErrSyntax},
		}},
		{"inline.toml", []wantErr{
			{"camera.bogus", 1, ErrUnknownKey},
			{"board.led", 2, ErrType},
			{"relay.max_delay", 3, ErrType},
			{"pairing", 5, ErrType},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := Load(data)
			if cfg == nil {
				t.Fatal("nil config")
			}
			checkErrors(t, err, tt.want)
		})
	}
}

// A bad key keeps its default while the good keys around it still apply, so
// a typo in one place does not undo a custom wiring elsewhere.
func TestBadKeyKeepsDefaultOthersApply(t *testing.T) {
	cfg, err := Load([]byte("[camera]\nwidth = 5\nheight = 240\n[board]\nbutton_a = 4\nled_red = 1\nlong_press = \"20s\"\n"))
	def := Default()
	if cfg.Camera.Width != def.Camera.Width || cfg.Camera.Height != 240 {
		t.Errorf("camera = %+v", cfg.Camera)
	}
	if cfg.Board.ButtonA != 4 {
		t.Errorf("button_a = %d, want 4", cfg.Board.ButtonA)
	}
	if !cfg.IsSet("camera.height") || cfg.IsSet("camera.width") || cfg.IsSet("board.led_red") || cfg.IsSet("board.long_press") {
		t.Errorf("IsSet: keys reset to defaults still count as set: %v", cfg.set)
	}
	if cfg.Board.LEDRed != NoPin || cfg.Board.LongPress != def.Board.LongPress || cfg.Board.VeryLongPress != def.Board.VeryLongPress {
		t.Errorf("inconsistent keys were not reset: %+v", cfg.Board)
	}
	checkErrors(t, err, []wantErr{
		{"camera.width", 2, ErrRange},
		{"board.led_red", 6, ErrRange},
		{"board.long_press", 7, ErrRange},
	})
	if err := cfg.check(); err != nil {
		t.Fatal(err)
	}
}

func TestMissingFile(t *testing.T) {
	cfg, err := LoadFile(filepath.Join(t.TempDir(), "nope.toml"))
	if err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("err = %v, want not-exist", err)
	}
	if !reflect.DeepEqual(cfg, Default()) {
		t.Fatal("missing file did not give defaults")
	}
}

func TestDurationsAndTypes(t *testing.T) {
	cfg, err := Load([]byte("[board]\ndebounce = \"10ms\"\nlong_press = \"2s\"\nvery_long_press = \"1m\"\n[pairing]\nwindow = 30\n"))
	if cfg.Board.Debounce != 10*time.Millisecond || cfg.Board.LongPress != 2*time.Second || cfg.Board.VeryLongPress != time.Minute {
		t.Errorf("durations: %+v", cfg.Board)
	}
	checkErrors(t, err, []wantErr{{"pairing.window", 6, ErrType}})
}

func TestCallKeys(t *testing.T) {
	cfg, err := Load([]byte("[call]\nhub = \"wss://hub.example.org/v1/ws\"\npeer = \"attic\"\nfps = 10\n"))
	if err != nil || cfg.Call != (Call{Hub: "wss://hub.example.org/v1/ws", Peer: "attic", FPS: 10, RingTimeout: 30 * time.Second, PhonesViaHub: true}) {
		t.Fatalf("call = %+v, %v", cfg.Call, err)
	}
	cfg, err = Load([]byte("[call]\nhub = \"https://hub.example.org\"\nfps = 100\n"))
	if cfg.Call != Default().Call || cfg.IsSet("call.hub") {
		t.Errorf("bad call keys applied: %+v", cfg.Call)
	}
	checkErrors(t, err, []wantErr{{"call.hub", 2, ErrRange}, {"call.fps", 3, ErrRange}})
}

// docs/config.md and the example file are generated from Keys: a key added,
// changed or removed without `make config-docs` fails here.
func TestGeneratedDocsUpToDate(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "config.md"))
	if err != nil {
		t.Fatal(err)
	}
	want, err := SpliceDocs(string(doc))
	if err != nil {
		t.Fatal(err)
	}
	if string(doc) != want {
		t.Error("docs/config.md is out of date with board/config/keys.go: run `make config-docs`")
	}
	ex, err := os.ReadFile(filepath.Join("..", "callbox.example.toml"))
	if err != nil {
		t.Fatal(err)
	}
	if string(ex) != ExampleTOML() {
		t.Error("board/callbox.example.toml is out of date with board/config/keys.go: run `make config-docs`")
	}
}
