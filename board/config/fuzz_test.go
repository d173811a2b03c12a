package config

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// FuzzLoadConfig feeds arbitrary files to the loader: it must never panic,
// must always hand back a configuration the box can run on (every value in
// range), and every line it names must exist in the file.
func FuzzLoadConfig(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/*.toml")
	seeds = append(seeds, filepath.Join("..", "callbox.example.toml"))
	for _, p := range seeds {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Load(data)
		if cfg == nil {
			t.Fatal("nil config")
		}
		if cerr := cfg.check(); cerr != nil {
			t.Fatalf("returned config is invalid: %v (load error: %v)", cerr, err)
		}
		nlines := bytes.Count(data, []byte("\n")) + 1
		for _, ke := range keyErrorsOf(err) {
			if ke.Line < 0 || ke.Line > nlines {
				t.Fatalf("error %q names line %d of a %d-line file", ke, ke.Line, nlines)
			}
		}
	})
}
