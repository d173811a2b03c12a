package firmware

import (
	"flag"
	"fmt"
	"strings"

	"github.com/BurntSushi/toml"
)

// applyHubConfig reads the hub's configuration file: a [hub] table whose
// keys are the flags' names (store = "postgres://...", cluster =
// "nats://...", turn-url = ["turn:a...", "turn:b..."]). A flag given on the
// command line wins over the file. An unknown key is an error naming it,
// so a typo does not silently leave a setting at its default.
func applyHubConfig(fs *flag.FlagSet, path string) error {
	var f struct {
		Hub map[string]any `toml:"hub"`
	}
	md, err := toml.DecodeFile(path, &f)
	if err != nil {
		return fmt.Errorf("hub config %s: %w", path, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		return fmt.Errorf("hub config %s: unknown table or key %q (keys go in [hub])", path, und[0].String())
	}
	given := map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { given[fl.Name] = true })
	for k, v := range f.Hub {
		fl := fs.Lookup(k)
		if fl == nil || k == "config" {
			return fmt.Errorf("hub config %s: unknown key hub.%s (the keys are the flags of `callbox hub -h`)", path, k)
		}
		if given[k] {
			continue
		}
		var s string
		switch v := v.(type) {
		case []any: // a list, for the comma-separated flags (turn-url)
			parts := make([]string, len(v))
			for i, p := range v {
				parts[i] = fmt.Sprint(p)
			}
			s = strings.Join(parts, ",")
		default:
			s = fmt.Sprint(v)
		}
		if err := fs.Set(k, s); err != nil {
			return fmt.Errorf("hub config %s: hub.%s = %q: %w", path, k, s, err)
		}
	}
	return nil
}
