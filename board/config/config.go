// Package config reads the box's one configuration file: a TOML file on the
// SD card's boot partition, so a person can edit it from any computer.
//
// The file is optional and every key has a default. Loading never fails in a
// way that stops the box: Load always returns a usable *Config (the defaults,
// with every key that was valid applied) together with an error that names
// each bad key and its line, so the appliance can boot, show the error state
// on its LED and print the message on the page.
//
// Every key is declared once, in Keys (keys.go): name, type, default,
// range, flag and one line of doc. The defaults, the file's checks, the
// command-line flags (RegisterFlags), docs/config.md and
// board/callbox.example.toml all come from that declaration
// (`make config-docs` writes the two files; a test fails when they drift).
package config

import (
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// MaxFileSize bounds the configuration file; a real one is a few kilobytes,
// and a boot partition full of garbage must not exhaust the box's memory.
const MaxFileSize = 1 << 20

// Config is the whole configuration. The zero value is not useful: start
// from Default.
type Config struct {
	Name    string // device name shown on the page and announced to peers
	HTTP    string // HTTP listen address (page, WebSocket, /metrics)
	DataDir string // persistent state (tokens, settings); "" = the appliance's default

	Camera  Camera
	Video   Video
	Audio   Audio
	Speaker Speaker
	Relay   Relay
	Board   Board
	Pairing Pairing
	Call    Call
	RTSP    RTSP
	MQTT    MQTT

	// set holds the keys the file gave a valid value, so callers can let
	// the file override only what it actually says.
	set map[string]bool
}

// IsSet reports whether the file gave key (dotted, e.g. "camera.fps") a
// valid value.
func (c *Config) IsSet(key string) bool { return c.set[key] }

// Camera selects and shapes the video source.
type Camera struct {
	Device string // "auto" (the camera if present, else the test pattern), "synthetic", or a V4L2 node
	Width  int    // multiples of 8 (RFC 2435 sizes are in 8-pixel blocks), at most 2040
	Height int
	FPS    int
}

// Video chooses the codec the box sends and the H.264 encoder's settings.
type Video struct {
	Codec   string // "auto", "h264" or "jpeg"
	Bitrate int    // H.264 target, kbit/s
	GOP     int    // H.264 frames between IDRs
	Profile string // "baseline" (constrained), "main" or "high"
}

// Audio selects the microphone.
type Audio struct {
	Device string // "auto", "synthetic", or an ALSA device name
}

// Speaker selects the box's speaker and its echo cancellation
// (docs/audio.md).
type Speaker struct {
	Device     string // "auto", "none", "synthetic", or an ALSA/PortAudio output
	EchoCancel string // "auto", "software", "hardware" or "off"
	Volume     int    // percent, 1..100
}

// Relay carries the on-device relay's per-client policy (design S9-S15);
// the video values apply to video connections, the audio_ ones to audio.
type Relay struct {
	TCP           string        // listen address of the RFC 4571 TCP transport; "" turns it off
	PacketSize    int           // largest RTP packet in bytes (design S8)
	HealthCheck   int           // video: packets per client Health Check (S13)
	IdleLimit     int           // video: unacknowledged packets before a client counts as busy (S12)
	Batch         int           // video: most packets one write takes from a client's buffer
	MaxDelay      time.Duration // video: media time a client's buffer may hold before a flush
	AudioMaxDelay time.Duration // audio: the same for audio
	AudioKeep     time.Duration // audio: newest media time an audio flush keeps
	HealthTimeout time.Duration // disconnect a client owing a Health Check this long
	MaxFlushes    int           // disconnect a client flushed this often within FlushWindow
	FlushWindow   time.Duration
	VideoNagle    bool // leave Nagle's algorithm on for video (S14; measured slower)
}

// RTSP is the RTSP server for VLC, NVRs and Home Assistant
// (docs/integrations.md).
type RTSP struct {
	Listen  string // TCP listen address; "" turns RTSP off
	UDPPort int    // the server's RTP port for the UDP transport (even; RTCP is the next); 0: TCP only
}

// MQTT is Home Assistant's MQTT discovery (docs/integrations.md).
type MQTT struct {
	Broker          string // mqtt://host:port (or tcp://, ws://); "" turns MQTT off
	Username        string
	Password        string
	DiscoveryPrefix string // Home Assistant's discovery prefix
}

// NoPin marks an unused GPIO line in Board.
const NoPin = -1

// Board selects the board profile and, for the generic profile or to
// override a profile, the GPIO lines.
type Board struct {
	Profile       string // "auto", "sim", "rpi3", "rpi4", "rpi5", "rpizero2w", "generic"
	Chip          string // GPIO chip label or /dev path; "" = the profile's
	ButtonA       int    // GPIO line numbers on Chip; NoPin = the profile's
	ButtonB       int
	LED           int // single-colour LED
	LEDRed        int // RGB LED (all three or none)
	LEDGreen      int
	LEDBlue       int
	LEDActiveLow  bool   // LED lit when the line is low (common-anode RGB LEDs)
	ButtonBias    string // "auto" (the profile's), "pull-up" or "none" (external resistors)
	Debounce      time.Duration
	LongPress     time.Duration
	VeryLongPress time.Duration
}

// Pairing decides which phones may receive media.
type Pairing struct {
	Open           bool          // every client gets media without pairing (trusted networks only)
	Window         time.Duration // ignored: no pairing window stays open (docs/security.md); accepted so older files load
	RequestTimeout time.Duration // how long a phone's pairing request waits for the button
	ResetConfirm   time.Duration // how long the box waits for the factory reset confirmation
}

// Call configures calls to other boxes (docs/peer.md, "Calls from the box").
type Call struct {
	Hub  string // the hub's WebSocket URL (ws:// or wss://); "" = calls off
	Peer string // the paired box the call button calls; "" = the only one
	FPS  int    // most video frames per second sent in a call
	// AutoAnswer takes calls from paired boxes without anyone at the box
	// consenting; off (the default), an incoming call rings until answered.
	AutoAnswer bool
	// RingTimeout ends an unanswered incoming call (shown as missed).
	RingTimeout time.Duration
	// UplinkKbps caps the uplink the box measures for S7 (0: measured only).
	UplinkKbps int
	// PhonesViaHub lets S7 move remote phones to the hub's relay.
	PhonesViaHub bool
}

// Profiles lists the accepted values of board.profile.
var Profiles = []string{"auto", "sim", "rpi3", "rpi4", "rpi5", "rpizero2w", "generic"}

// KeyError is one bad key: which, where, and why.
type KeyError struct {
	Key  string // dotted key, e.g. "camera.width"
	Line int    // 1-based line in the file; 0 when unknown
	Err  error
}

func (e *KeyError) Error() string {
	switch {
	case e.Key == "" && e.Line > 0:
		return fmt.Sprintf("line %d: %v", e.Line, e.Err)
	case e.Key == "":
		return e.Err.Error()
	case e.Line > 0:
		return fmt.Sprintf("line %d: %s: %v", e.Line, e.Key, e.Err)
	}
	return fmt.Sprintf("%s: %v", e.Key, e.Err)
}

func (e *KeyError) Unwrap() error { return e.Err }

// Sentinel errors a KeyError wraps, for callers and tests that check kinds.
var (
	ErrUnknownKey = errors.New("unknown key")
	ErrType       = errors.New("wrong type")
	ErrRange      = errors.New("out of range")
	ErrSyntax     = errors.New("TOML syntax error")
)

// LoadFile reads and validates the file at path. See Load.
func LoadFile(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return Default(), fmt.Errorf("config %s: %w", path, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return Default(), fmt.Errorf("config %s: %w", path, err)
	}
	cfg, err := Load(data)
	if err != nil {
		return cfg, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, nil
}

// Load parses and validates a configuration file's contents. It always
// returns a usable configuration: on a syntax error the defaults, otherwise
// the defaults with every valid key applied. The error, if any, joins one
// *KeyError per problem, in line order.
func Load(data []byte) (*Config, error) {
	cfg := Default()
	if len(data) > MaxFileSize {
		return cfg, fmt.Errorf("%w: file larger than %d bytes", ErrSyntax, MaxFileSize)
	}
	var raw map[string]any
	if _, err := toml.Decode(string(data), &raw); err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			line := pe.Position.Line
			// An error found at a line's end (a missing "]") is positioned
			// on its newline, which the library counts as the next line.
			if s := pe.Position.Start; s > 0 && s < len(data) && data[s] == '\n' && line > 1 {
				line--
			}
			return cfg, &KeyError{Key: pe.LastKey, Line: line, Err: fmt.Errorf("%w: %s", ErrSyntax, pe.Message)}
		}
		return cfg, fmt.Errorf("%w: %w", ErrSyntax, err)
	}
	lines := keyLines(string(data))
	d := &decoder{lines: lines, set: map[string]bool{}}
	d.table(cfg, "", raw)
	cfg.crossCheck(d)
	for _, e := range d.errs {
		delete(d.set, e.Key) // reset to its default by a cross-key rule
	}
	if len(d.set) > 0 {
		cfg.set = d.set
	}
	if len(d.errs) == 0 {
		return cfg, nil
	}
	slices.SortStableFunc(d.errs, func(a, b *KeyError) int { return a.Line - b.Line })
	errs := make([]error, len(d.errs))
	for i, e := range d.errs {
		errs[i] = e
	}
	return cfg, errors.Join(errs...)
}

// crossCheck validates relations between keys. A violated relation resets
// the keys involved to their defaults, so the box still gets a consistent
// configuration.
func (c *Config) crossCheck(d *decoder) {
	def := Default()
	b := &c.Board
	rgb := []int{b.LEDRed, b.LEDGreen, b.LEDBlue}
	set := 0
	for _, p := range rgb {
		if p != NoPin {
			set++
		}
	}
	if set != 0 && set != 3 {
		d.fail("board.led_red", fmt.Errorf("%w: an RGB LED needs led_red, led_green and led_blue together", ErrRange))
		b.LEDRed, b.LEDGreen, b.LEDBlue = NoPin, NoPin, NoPin
		d.unset("board.led_red", "board.led_green", "board.led_blue")
	}
	if b.VeryLongPress <= b.LongPress {
		d.fail(d.blame("board.very_long_press", "board.long_press"), fmt.Errorf("%w: must be longer than board.long_press (%v)", ErrRange, b.LongPress))
		b.LongPress, b.VeryLongPress = def.Board.LongPress, def.Board.VeryLongPress
		d.unset("board.long_press", "board.very_long_press")
	}
	if b.LongPress <= b.Debounce {
		d.fail(d.blame("board.long_press", "board.debounce"), fmt.Errorf("%w: must be longer than board.debounce (%v)", ErrRange, b.Debounce))
		b.LongPress, b.Debounce = def.Board.LongPress, def.Board.Debounce
		d.unset("board.long_press", "board.debounce")
	}
	// Two roles on one line would make a button press light the LED, or
	// the LED's output drive fight a button.
	pins := []struct {
		key string
		p   *int
	}{
		{"board.button_a", &b.ButtonA}, {"board.button_b", &b.ButtonB}, {"board.led", &b.LED},
		{"board.led_red", &b.LEDRed}, {"board.led_green", &b.LEDGreen}, {"board.led_blue", &b.LEDBlue},
	}
	seen := map[int]string{}
	for _, x := range pins {
		if *x.p == NoPin {
			continue
		}
		if other, ok := seen[*x.p]; ok {
			d.fail(x.key, fmt.Errorf("%w: GPIO %d is already used by %s", ErrRange, *x.p, other))
			*x.p = NoPin
			continue
		}
		seen[*x.p] = x.key
	}
	if c.Relay.IdleLimit < c.Relay.HealthCheck {
		// A client acknowledges only after health_check packets: a
		// smaller limit would stall every connection.
		d.fail(d.blame("relay.idle_limit", "relay.health_check"), fmt.Errorf("%w: relay.idle_limit (%d) must be at least relay.health_check (%d)", ErrRange, c.Relay.IdleLimit, c.Relay.HealthCheck))
		c.Relay.IdleLimit, c.Relay.HealthCheck = def.Relay.IdleLimit, def.Relay.HealthCheck
		d.unset("relay.idle_limit", "relay.health_check")
	}
}

type decoder struct {
	set   map[string]bool // keys applied; nil when only checking
	lines map[string]int
	errs  []*KeyError
}

func (d *decoder) fail(key string, err error) {
	d.errs = append(d.errs, &KeyError{Key: key, Line: d.line(key), Err: err})
}

// unset forgets that the file set keys a cross-key rule reset.
func (d *decoder) unset(keys ...string) {
	for _, k := range keys {
		delete(d.set, k)
	}
}

// blame picks the first of keys that the file sets, so an error about a
// relation points at a line the person actually wrote.
func (d *decoder) blame(keys ...string) string {
	for _, k := range keys {
		if _, ok := d.lines[k]; ok {
			return k
		}
	}
	return keys[0]
}

// line finds the key's line, or that of its nearest enclosing table (a key
// written inside an inline table shares that table's line).
func (d *decoder) line(key string) int {
	for k := key; k != ""; {
		if l, ok := d.lines[k]; ok {
			return l
		}
		i := strings.LastIndexByte(k, '.')
		if i < 0 {
			break
		}
		k = k[:i]
	}
	return 0
}

// table applies a decoded TOML table whose dotted name is prefix ("" for
// the document), key by key through the declaration.
func (d *decoder) table(c *Config, prefix string, raw map[string]any) {
	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		v := raw[k]
		full := quoteKey(k)
		if prefix != "" {
			full = prefix + "." + full
		}
		if sections[full] {
			sub, ok := v.(map[string]any)
			if !ok {
				d.fail(full, fmt.Errorf("%w: must be a table ([%s])", ErrType, full))
				continue
			}
			d.table(c, full, sub)
			continue
		}
		key := keyByName[full]
		if key == nil {
			d.fail(full, ErrUnknownKey)
			continue
		}
		if err := key.v.fromTOML(c, v); err != nil {
			d.fail(full, err)
			continue
		}
		if d.set != nil {
			d.set[full] = true
		}
	}
}

func quoteKey(k string) string {
	for _, r := range k {
		if !isBareKeyChar(r) {
			return fmt.Sprintf("%q", k)
		}
	}
	if k == "" {
		return `""`
	}
	return k
}

func typeName(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case int64:
		return "an integer"
	case float64:
		return "a float"
	case bool:
		return "a boolean"
	case []any, []map[string]any:
		return "an array"
	case map[string]any:
		return "a table"
	default:
		return "a date/time"
	}
}

type strCheck func(string) error

func nonEmpty(s string) error {
	if s == "" {
		return fmt.Errorf("%w: must not be empty", ErrRange)
	}
	return nil
}

// wsURL accepts "" (off) or a ws:// or wss:// URL with a host.
func wsURL(s string) error {
	if s == "" {
		return nil
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "ws" && u.Scheme != "wss") || u.Host == "" {
		return fmt.Errorf("%w: %q is not a ws:// or wss:// URL", ErrRange, s)
	}
	return nil
}

// mqttURL accepts "" (off) or an mqtt://, mqtts://, tcp://, ssl://, ws://
// or wss:// URL with a host.
func mqttURL(s string) error {
	if s == "" {
		return nil
	}
	u, err := url.Parse(s)
	if err != nil || !slices.Contains([]string{"mqtt", "mqtts", "tcp", "ssl", "tls", "ws", "wss"}, u.Scheme) || u.Host == "" {
		return fmt.Errorf("%w: %q is not an mqtt:// URL with a host", ErrRange, s)
	}
	return nil
}

// evenPort accepts 0 (off) or an even port: RTCP takes the next one.
func evenPort(n int) error {
	if n%2 != 0 {
		return fmt.Errorf("%w: must be even (RTCP uses the next port), got %d", ErrRange, n)
	}
	return nil
}

func maxLen(n int) strCheck {
	return func(s string) error {
		if len(s) > n {
			return fmt.Errorf("%w: longer than %d bytes", ErrRange, n)
		}
		return nil
	}
}

func oneOf(values ...string) strCheck {
	return func(s string) error {
		if !slices.Contains(values, s) {
			return fmt.Errorf("%w: %q is not one of %s", ErrRange, s, strings.Join(values, ", "))
		}
		return nil
	}
}

// Validate checks a finished configuration: every key's own range plus
// the rules between keys. Load never returns a configuration failing it;
// Flags.Apply uses it on the command line's values.
func (c *Config) Validate() error {
	d := &decoder{}
	for _, k := range Keys {
		if err := k.v.fromTOML(Default(), k.v.toml(c)); err != nil {
			d.fail(k.Name, err)
		}
	}
	cp := *c
	cp.crossCheck(d)
	if len(d.errs) > 0 {
		return d.errs[0]
	}
	return nil
}

// check is Validate, for the tests.
func (c *Config) check() error { return c.Validate() }

// keyErrorsOf lists the *KeyError values inside a Load error.
func keyErrorsOf(err error) []*KeyError {
	var out []*KeyError
	var walk func(error)
	walk = func(e error) {
		if e == nil {
			return
		}
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
		walk(errors.Unwrap(e))
	}
	walk(err)
	return out
}
