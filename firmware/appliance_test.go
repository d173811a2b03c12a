package firmware

import (
	"flag"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"testing"
)

// newTestAppliance is `callbox run`'s appliance before start: its flags
// parsed from args and its configuration loaded from configText ("" = no
// file), as cmdRun does.
func newTestAppliance(t *testing.T, configText string, args ...string) *appliance {
	t.Helper()
	a, err := parseTestAppliance(t, configText, args...)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// parseTestAppliance is newTestAppliance returning a bad command line's
// error.
func parseTestAppliance(t *testing.T, configText string, args ...string) (*appliance, error) {
	t.Helper()
	a := &appliance{log: slog.New(slog.DiscardHandler), mux: http.NewServeMux()}
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(testWriter{t})
	a.registerFlags(fs)
	if configText != "" {
		a.configPath = filepath.Join(t.TempDir(), "callbox.toml")
		if err := os.WriteFile(a.configPath, []byte(configText), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if err := a.loadConfig(); err != nil {
		return nil, err
	}
	return a, nil
}

// loadSlack multiplies the budgets of waits for readiness (a box
// registered, a call connected, a state reached): the suite runs on 2-core
// machines busy with other tests.
const loadSlack = 3

// authFunc is a pairing gate from a function.
type authFunc func(token string) error

func (f authFunc) Authorize(token string) error { return f(token) }

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }
