package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Key is one configuration key (see Keys). Its typed behaviour (how a TOML
// value or a flag string becomes the field's value, and which values it
// accepts) is private: the parts of the box read the typed fields of
// Config, never strings.
type Key struct {
	Name string // dotted TOML key, e.g. "camera.fps"
	Flag string // the `callbox run` flag that overrides it; "" = the file only
	Doc  string // one line: docs/config.md, the example file and -h
	v    value
}

// Section is one table of the file ("" for the top level).
type Section struct {
	Name  string
	Title string // heading in docs/config.md; default "[Name]"
	Doc   string // paragraph before the table
}

// Alias is a command-line flag that sets several keys at once (--size).
type Alias struct {
	Flag  string
	Keys  []string
	Doc   string
	parse func(c *Config, s string) error
}

// value is a key's typed behaviour; field[T] implements it once for every
// type.
type value interface {
	setDefault(c *Config)
	fromTOML(c *Config, v any) error // type and range check, then store
	fromFlag(c *Config, s string) error
	toml(c *Config) any       // the value as the TOML decoder would give it
	literal(c *Config) string // TOML literal, for the docs and the example
	rangeDoc() string         // accepted values, for the docs ("" if Doc says it)
	isBool() bool
}

type field[T any] struct {
	ptr    func(*Config) *T
	def    T
	conv   func(any) (T, error)    // TOML value -> T (type check only)
	parse  func(string) (T, error) // flag string -> T
	encode func(T) any             // T -> TOML value
	lit    func(T) string
	check  func(T) error // range check; nil accepts all
	rng    string
}

func (f field[T]) setDefault(c *Config) { *f.ptr(c) = f.def }

func (f field[T]) store(c *Config, x T) error {
	if f.check != nil {
		if err := f.check(x); err != nil {
			return err
		}
	}
	*f.ptr(c) = x
	return nil
}

func (f field[T]) fromTOML(c *Config, v any) error {
	x, err := f.conv(v)
	if err != nil {
		return err
	}
	return f.store(c, x)
}

func (f field[T]) fromFlag(c *Config, s string) error {
	x, err := f.parse(s)
	if err != nil {
		return err
	}
	return f.store(c, x)
}

func (f field[T]) toml(c *Config) any       { return f.encode(*f.ptr(c)) }
func (f field[T]) literal(c *Config) string { return f.lit(*f.ptr(c)) }
func (f field[T]) rangeDoc() string         { return f.rng }
func (f field[T]) isBool() bool             { _, ok := any(f.def).(bool); return ok }

func stringKey(name, flag, doc, def string, ptr func(*Config) *string, checks ...strCheck) Key {
	return Key{Name: name, Flag: flag, Doc: doc, v: field[string]{
		ptr: ptr, def: def,
		conv: func(v any) (string, error) {
			s, ok := v.(string)
			if !ok {
				return "", fmt.Errorf("%w: want a string, got %s", ErrType, typeName(v))
			}
			return s, nil
		},
		parse:  func(s string) (string, error) { return s, nil },
		encode: func(s string) any { return s },
		lit:    strconv.Quote,
		check: func(s string) error {
			for _, c := range checks {
				if err := c(s); err != nil {
					return err
				}
			}
			return nil
		},
	}}
}

func intField(def int, lo, hi int64, ptr func(*Config) *int) field[int] {
	return field[int]{
		ptr: ptr, def: def,
		conv: func(v any) (int, error) {
			n, ok := v.(int64)
			if !ok {
				return 0, fmt.Errorf("%w: want an integer, got %s", ErrType, typeName(v))
			}
			if n < lo || n > hi {
				return 0, fmt.Errorf("%w: must be between %d and %d, got %d", ErrRange, lo, hi, n)
			}
			return int(n), nil
		},
		parse: func(s string) (int, error) {
			n, err := strconv.ParseInt(s, 0, 64)
			if err != nil {
				return 0, fmt.Errorf("%w: %q is not an integer", ErrType, s)
			}
			if n < lo || n > hi {
				return 0, fmt.Errorf("%w: must be between %d and %d, got %d", ErrRange, lo, hi, n)
			}
			return int(n), nil
		},
		encode: func(n int) any { return int64(n) },
		lit:    strconv.Itoa,
		rng:    fmt.Sprintf("%d–%d", lo, hi),
	}
}

func intKey(name, flag, doc string, def int, lo, hi int64, ptr func(*Config) *int) Key {
	return Key{Name: name, Flag: flag, Doc: doc, v: intField(def, lo, hi, ptr)}
}

// evenIntKey is an int that must be even (an RTP port: RTCP takes the next).
func evenIntKey(name, flag, doc string, def int, lo, hi int64, ptr func(*Config) *int) Key {
	f := intField(def, lo, hi, ptr)
	f.check = evenPort
	f.rng = fmt.Sprintf("%d–%d, even", lo, hi)
	return Key{Name: name, Flag: flag, Doc: doc, v: f}
}

// blocksKey is a frame dimension: RFC 2435 carries sizes in 8-pixel
// blocks in one byte, so multiples of 8 up to 2040.
func blocksKey(name, flag, doc string, def int, ptr func(*Config) *int) Key {
	f := intField(def, 16, 2040, ptr)
	f.check = func(n int) error {
		if n%8 != 0 {
			return fmt.Errorf("%w: must be a multiple of 8, got %d", ErrRange, n)
		}
		return nil
	}
	f.rng = "16–2040, a multiple of 8"
	return Key{Name: name, Flag: flag, Doc: doc, v: f}
}

// pinKey is a GPIO line number, or -1 for "none / the profile's".
func pinKey(name, doc string, ptr func(*Config) *int) Key {
	f := intField(NoPin, NoPin, 1023, ptr)
	f.rng = "-1–1023"
	return Key{Name: name, Doc: doc, v: f}
}

func boolKey(name, flag, doc string, def bool, ptr func(*Config) *bool) Key {
	return Key{Name: name, Flag: flag, Doc: doc, v: field[bool]{
		ptr: ptr, def: def,
		conv: func(v any) (bool, error) {
			b, ok := v.(bool)
			if !ok {
				return false, fmt.Errorf("%w: want true or false, got %s", ErrType, typeName(v))
			}
			return b, nil
		},
		parse: func(s string) (bool, error) {
			b, err := strconv.ParseBool(s)
			if err != nil {
				return false, fmt.Errorf("%w: %q is not true or false", ErrType, s)
			}
			return b, nil
		},
		encode: func(b bool) any { return b },
		lit:    strconv.FormatBool,
	}}
}

// durationKey accepts Go duration strings ("30ms", "1.5s", "2m"): TOML has
// no duration type, and a bare number would leave the unit to guesswork.
func durationKey(name, flag, doc string, def, lo, hi time.Duration, ptr func(*Config) *time.Duration) Key {
	parse := func(s string) (time.Duration, error) {
		d, err := time.ParseDuration(s)
		if err != nil {
			return 0, fmt.Errorf("%w: %w", ErrType, err)
		}
		return d, nil
	}
	return Key{Name: name, Flag: flag, Doc: doc, v: field[time.Duration]{
		ptr: ptr, def: def,
		conv: func(v any) (time.Duration, error) {
			s, ok := v.(string)
			if !ok {
				return 0, fmt.Errorf("%w: want a duration string such as \"1.5s\", got %s", ErrType, typeName(v))
			}
			return parse(s)
		},
		parse:  parse,
		encode: func(d time.Duration) any { return d.String() },
		lit:    func(d time.Duration) string { return strconv.Quote(shortDuration(d)) },
		check: func(d time.Duration) error {
			if d < lo || d > hi {
				return fmt.Errorf("%w: must be between %v and %v, got %v", ErrRange, lo, hi, d)
			}
			return nil
		},
		rng: shortDuration(lo) + "–" + shortDuration(hi),
	}}
}

// shortDuration writes d as a person would ("1m", "1.5s"), not "1m0s".
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// parseSize is --size WxH.
func parseSize(c *Config, s string) error {
	ws, hs, ok := strings.Cut(strings.ToLower(s), "x")
	w, err1 := strconv.Atoi(ws)
	h, err2 := strconv.Atoi(hs)
	if !ok || err1 != nil || err2 != nil || w <= 0 || h <= 0 {
		return fmt.Errorf("%w: %q is not a size like 1280x720", ErrType, s)
	}
	if err := keyByName["camera.width"].v.fromFlag(c, ws); err != nil {
		return fmt.Errorf("width: %w", err)
	}
	if err := keyByName["camera.height"].v.fromFlag(c, hs); err != nil {
		return fmt.Errorf("height: %w", err)
	}
	return nil
}

// keyByName indexes Keys; sections lists the tables that hold keys.
var (
	keyByName = map[string]*Key{}
	sections  = map[string]bool{}
)

func init() {
	for i := range Keys {
		k := &Keys[i]
		if keyByName[k.Name] != nil {
			panic("config: key " + k.Name + " declared twice")
		}
		keyByName[k.Name] = k
		if i := strings.LastIndexByte(k.Name, '.'); i > 0 {
			sections[k.Name[:i]] = true
		}
	}
}

// Lookup returns the declared key named name (dotted), or nil.
func Lookup(name string) *Key { return keyByName[name] }

// Default returns the configuration a box uses when the file is absent:
// every key's declared default.
func Default() *Config {
	c := &Config{}
	for _, k := range Keys {
		k.v.setDefault(c)
	}
	return c
}
