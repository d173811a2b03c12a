package config

import (
	"errors"
	"flag"
	"io"
	"strings"
	"testing"
	"time"
)

func parseFlags(t *testing.T, args ...string) (*Flags, error) {
	t.Helper()
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	f := RegisterFlags(fs)
	return f, fs.Parse(args)
}

// The file and the flags fill the same configuration; the flags win, and a
// key neither sets keeps its default.
func TestFlagsWinOverFile(t *testing.T) {
	cfg, err := Load([]byte("http = \"127.0.0.1:9999\"\n[relay]\nhealth_check = 4\nidle_limit = 12\n[camera]\nfps = 10\n"))
	if err != nil {
		t.Fatal(err)
	}
	f, err := parseFlags(t, "--relay-hc", "6", "--size", "640x480", "--open", "--relay-max-delay", "80ms")
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.HTTP != "127.0.0.1:9999" || cfg.Relay.IdleLimit != 12 || cfg.Camera.FPS != 10 {
		t.Errorf("file values lost: %+v %+v", cfg.HTTP, cfg.Relay)
	}
	if cfg.Relay.HealthCheck != 6 || cfg.Camera.Width != 640 || cfg.Camera.Height != 480 || !cfg.Pairing.Open || cfg.Relay.MaxDelay != 80*time.Millisecond {
		t.Errorf("flags not applied: %+v %+v %+v", cfg.Relay, cfg.Camera, cfg.Pairing)
	}
	if cfg.Relay.Batch != Default().Relay.Batch {
		t.Errorf("a key nobody set changed: batch %d", cfg.Relay.Batch)
	}
	if !f.Given("size") || f.Given("fps") {
		t.Error("Given does not follow the command line")
	}
}

// A bad flag value fails the command line, naming the flag's problem, with
// the same checks as the file.
func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--fps", "1000"},
		{"--board", "rpi9"},
		{"--size", "100x100"},
		{"--size", "big"},
		{"--hub", "https://x"},
		{"--relay-max-delay", "5"},
		{"--open=maybe"},
	} {
		if _, err := parseFlags(t, args...); err == nil {
			t.Errorf("%v: accepted", args)
		} else if !strings.Contains(err.Error(), strings.TrimLeft(strings.SplitN(args[0], "=", 2)[0], "-")) {
			t.Errorf("%v: %v does not name the flag", args, err)
		}
	}
	// A flag that breaks a rule between keys is an error at Apply.
	f, err := parseFlags(t, "--relay-hc", "30")
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Apply(Default()); !errors.Is(err, ErrRange) {
		t.Fatalf("--relay-hc 30 above idle_limit 24: %v", err)
	}
}

// Only the keys asked for get flags (callbox send takes the media ones).
func TestRegisterSomeFlags(t *testing.T) {
	fs := flag.NewFlagSet("send", flag.ContinueOnError)
	RegisterFlags(fs, "camera.", "audio.", "relay.packet_size")
	var names []string
	fs.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
	if strings.Join(names, " ") != "camera fps mic packet-size size" {
		t.Fatalf("flags %v", names)
	}
	if fs.Lookup("fps").DefValue != "30" || fs.Lookup("size").DefValue != "1280x720" {
		t.Fatalf("defaults %s %s", fs.Lookup("fps").DefValue, fs.Lookup("size").DefValue)
	}
}
