package config

import (
	"flag"
	"fmt"
	"strings"
)

// Flags are the command-line flags of a set of keys, registered on a
// flag.FlagSet by RegisterFlags. A flag's value is parsed and range-checked
// by the same code as the file's (so a bad flag fails the command line at
// once, naming the flag), and kept until Apply writes it over a loaded
// configuration: the command line wins over the file.
type Flags struct {
	set []flagSetting // in command-line order
}

type flagSetting struct {
	flag  string
	apply func(c *Config) error
}

// RegisterFlags registers on fs the flags of the keys (and aliases) whose
// name starts with one of prefixes ("camera.", "relay.packet_size"); no
// prefix means every key. Each flag's default is the key's default.
func RegisterFlags(fs *flag.FlagSet, prefixes ...string) *Flags {
	f := &Flags{}
	def := Default()
	want := func(name string) bool {
		if len(prefixes) == 0 {
			return true
		}
		for _, p := range prefixes {
			if strings.HasPrefix(name, p) {
				return true
			}
		}
		return false
	}
	for i := range Keys {
		k := &Keys[i]
		if k.Flag == "" || !want(k.Name) {
			continue
		}
		usage := k.Doc
		if r := k.v.rangeDoc(); r != "" {
			usage += " (" + r + ")"
		}
		usage = strings.ReplaceAll(usage, "`", "") + " [config " + k.Name + "]"
		fs.Var(&flagValue{f: f, name: k.Flag, def: flagDefault(k, def), bool: k.v.isBool(), set: k.v.fromFlag}, k.Flag, usage)
	}
	for _, a := range Aliases {
		if !want(a.Keys[0]) {
			continue
		}
		usage := strings.ReplaceAll(a.Doc, "`", "") + " [config " + strings.Join(a.Keys, ", ") + "]"
		var parts []string
		for _, k := range a.Keys {
			parts = append(parts, fmt.Sprint(keyByName[k].v.toml(def)))
		}
		fs.Var(&flagValue{f: f, name: a.Flag, def: strings.Join(parts, "x"), set: a.parse}, a.Flag, usage)
	}
	return f
}

// flagDefault is the default as a person types it on the command line.
func flagDefault(k *Key, c *Config) string {
	return fmt.Sprint(k.v.toml(c))
}

// Apply writes the values given on the command line over c, then checks
// the rules between keys. A flag that breaks one (--relay-hc above the
// file's relay.idle_limit) is an error: unlike a bad file, the command line
// is typed by someone who can be told at once.
func (f *Flags) Apply(c *Config) error {
	if f == nil {
		return nil
	}
	for _, s := range f.set {
		if err := s.apply(c); err != nil {
			return fmt.Errorf("--%s: %w", s.flag, err)
		}
	}
	if len(f.set) == 0 {
		return nil
	}
	return c.Validate()
}

// Given reports whether the flag named name was given on the command line.
func (f *Flags) Given(name string) bool {
	if f == nil {
		return false
	}
	for _, s := range f.set {
		if s.flag == name {
			return true
		}
	}
	return false
}

// flagValue is one key's flag.Value.
type flagValue struct {
	f    *Flags
	name string
	def  string
	cur  string
	bool bool
	set  func(c *Config, s string) error
}

func (v *flagValue) String() string {
	if v == nil || v.f == nil {
		return ""
	}
	if v.cur != "" {
		return v.cur
	}
	return v.def
}

func (v *flagValue) Set(s string) error {
	// Check now, on a scratch configuration, so that a bad value is a
	// command-line error naming the flag.
	if err := v.set(Default(), s); err != nil {
		return err
	}
	v.cur = s
	set := v.set
	v.f.set = append(v.f.set, flagSetting{flag: v.name, apply: func(c *Config) error { return set(c, s) }})
	return nil
}

func (v *flagValue) IsBoolFlag() bool { return v != nil && v.bool }
