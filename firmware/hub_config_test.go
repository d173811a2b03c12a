package firmware

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func hubFlags() (*flag.FlagSet, *string, *string, *string) {
	fs := flag.NewFlagSet("hub", flag.ContinueOnError)
	st := fs.String("store", "", "")
	cl := fs.String("cluster", "", "")
	tu := fs.String("turn-url", "", "")
	fs.String("config", "", "")
	fs.Duration("drain", 0, "")
	return fs, st, cl, tu
}

func TestHubConfigFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hub.toml")
	conf := `[hub]
store = "postgres://hub@db/hub"
cluster = "nats://db:4222"
turn-url = ["turn:a.example:3478?transport=udp", "turn:b.example:3478?transport=udp"]
drain = "2s"
`
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	fs, st, cl, tu := hubFlags()
	if err := fs.Parse([]string{"--cluster", "nats://other:4222"}); err != nil {
		t.Fatal(err)
	}
	if err := applyHubConfig(fs, path); err != nil {
		t.Fatal(err)
	}
	if *st != "postgres://hub@db/hub" {
		t.Errorf("store = %q, want the file's", *st)
	}
	if *cl != "nats://other:4222" {
		t.Errorf("cluster = %q, want the command line's", *cl)
	}
	if *tu != "turn:a.example:3478?transport=udp,turn:b.example:3478?transport=udp" {
		t.Errorf("turn-url = %q", *tu)
	}
	for bad, want := range map[string]string{
		"[hub]\nstor = \"x\"\n":   "unknown key hub.stor",
		"[hubb]\nstore = \"x\"\n": "unknown table or key",
		"[hub]\ndrain = \"x\"\n":  "hub.drain",
		"[hub\n":                  "hub config",
	} {
		if err := os.WriteFile(path, []byte(bad), 0o600); err != nil {
			t.Fatal(err)
		}
		fs, _, _, _ := hubFlags()
		if err := applyHubConfig(fs, path); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: err = %v, want one naming %q", bad, err, want)
		}
	}
}
