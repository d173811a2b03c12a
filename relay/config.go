package relay

import (
	"fmt"
	"time"

	"github.com/callbox/callbox/capture"
)

// KindConfig is the per-client pacing policy for one media kind (design
// S12-S13). Counts are in messages: one message is one RTP packet.
type KindConfig struct {
	// HealthInterval is N of S13: the client sends a Health Check after
	// every N messages it receives. Announced in the handshake.
	HealthInterval int
	// IdleLimit: the session is busy while idle (messages sent, not yet
	// covered by a Health Check) has reached this. It bounds what sits in
	// kernel buffers and on the air, so it bounds a slow client's delay.
	IdleLimit int
	// Batch is the most messages one write round takes from the Buffer,
	// rounded up to whole units (a unit is never split).
	Batch int
	// MaxUnits, MaxBytes and MaxDelay bound the Buffer: passing any of them
	// flushes it. MaxDelay is media time, newest minus oldest capture time.
	MaxUnits int
	MaxBytes int
	MaxDelay time.Duration
	// Keep is the media time an audio flush keeps (the newest chunks).
	// Video flushes keep nothing queued.
	Keep time.Duration
	// Nagle leaves Nagle's algorithm on (TCP_NODELAY off) for this kind's
	// TCP connections. Design S14 suggests it for video, for efficiency;
	// the zero value (TCP_NODELAY on) is the measured default for both
	// kinds: see DefaultConfig.
	Nagle bool
}

// Config holds every relay parameter. The zero value of a field means its
// default; DefaultConfig documents them and docs/relay.md gives the
// measurements behind them.
type Config struct {
	Video KindConfig
	Audio KindConfig

	// HealthTimeout ejects a client that owes a Health Check (idle has
	// reached HealthInterval) and has sent none for this long.
	HealthTimeout time.Duration
	// WriteTimeout ejects a client whose write has been in flight this long.
	WriteTimeout time.Duration
	// MaxFlushes flushes within FlushWindow eject a client: the link is not
	// temporarily slow but unusable. Only flushes after which the client
	// completed nothing since the previous flush count: a slow link is
	// flushed about once per MaxDelay whatever its speed, so plain flush
	// counts cannot tell a usable slow link from a useless one.
	MaxFlushes  int
	FlushWindow time.Duration
	// MinFrames: a client flushed MaxFlushes times within FlushWindow is
	// ejected only if it received fewer than MinFrames whole units per
	// FlushWindow over the time those flushes span (at most 64). A client on a slow or saturated link that still gets whole
	// frames stays; one that gets next to nothing goes.
	MinFrames int
	// KeyframeInterval is the shortest time between two keyframe requests
	// to one publisher (flushed sessions, PLI/FIR from clients); requests
	// in between are merged into one made when it has passed.
	KeyframeInterval time.Duration
	// HandshakeTimeout bounds the handshake of a new connection.
	HandshakeTimeout time.Duration
	// MaxClients bounds concurrent sessions (all kinds); more are refused.
	MaxClients int
	// CheckEvery is how often the relay checks the timeouts.
	CheckEvery time.Duration

	// VideoCodec is announced in handshakes until the first published
	// video packet shows the actual payload type.
	VideoCodec capture.Codec

	// Authorize checks a client's token; nil accepts everyone. A refused
	// client learns only "unpaired".
	Authorize func(token string) error
	// Owner names the phone a token belongs to (the firmware: the token's
	// hash, what the pairing registry stores); each session keeps its
	// client's, so DisconnectOwner ends one phone's sessions when the
	// owner revokes it. Nil: sessions have no owner.
	Owner func(token string) string

	// Now is the clock; nil means time.Now. Tests inject a fake.
	Now func() time.Time
}

// DefaultConfig returns the defaults (see docs/relay.md for the numbers
// that chose them).
func DefaultConfig() Config {
	return Config{
		Video: KindConfig{
			HealthInterval: 8,
			IdleLimit:      24,
			Batch:          32,
			MaxUnits:       8,
			MaxBytes:       256 << 10,
			MaxDelay:       66 * time.Millisecond,
			// S14 suggests Nagle for video, for efficiency. The relay
			// already writes whole frames with one writev, so Nagle has
			// nothing to coalesce and only holds each frame's tail until
			// the previous frame is acknowledged: measured on loopback,
			// frame latency p99 168 ms with it, under 10 ms without
			// (docs/relay.md).
			Nagle: false,
		},
		Audio: KindConfig{
			HealthInterval: 5,
			IdleLimit:      10,
			Batch:          10,
			MaxUnits:       10,
			MaxBytes:       16 << 10,
			MaxDelay:       150 * time.Millisecond,
			Keep:           60 * time.Millisecond,
			Nagle:          false, // audio wants latency (S14)
		},
		HealthTimeout:    2 * time.Second,
		WriteTimeout:     2 * time.Second,
		MaxFlushes:       40,
		MinFrames:        5,
		FlushWindow:      5 * time.Second,
		HandshakeTimeout: 5 * time.Second,
		KeyframeInterval: 500 * time.Millisecond,
		MaxClients:       1024,
		CheckEvery:       200 * time.Millisecond,
		VideoCodec:       capture.CodecJPEG,
	}
}

// withDefaults fills zero fields from DefaultConfig.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	c.Video = c.Video.WithDefaults(d.Video)
	c.Audio = c.Audio.WithDefaults(d.Audio)
	def := func(v *time.Duration, dv time.Duration) {
		if *v == 0 {
			*v = dv
		}
	}
	def(&c.HealthTimeout, d.HealthTimeout)
	def(&c.WriteTimeout, d.WriteTimeout)
	def(&c.FlushWindow, d.FlushWindow)
	def(&c.HandshakeTimeout, d.HandshakeTimeout)
	def(&c.KeyframeInterval, d.KeyframeInterval)
	def(&c.CheckEvery, d.CheckEvery)
	if c.MaxFlushes == 0 {
		c.MaxFlushes = d.MaxFlushes
	}
	if c.MinFrames == 0 {
		c.MinFrames = d.MinFrames
	}
	if c.MaxClients == 0 {
		c.MaxClients = d.MaxClients
	}
	if c.VideoCodec == 0 {
		c.VideoCodec = d.VideoCodec
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// WithDefaults fills k's zero fields from d (used by the relay's own
// Config and by transports with defaults of their own, e.g. relay/webrtc).
func (k KindConfig) WithDefaults(d KindConfig) KindConfig {
	if k.HealthInterval == 0 {
		k.HealthInterval = d.HealthInterval
	}
	if k.IdleLimit == 0 {
		k.IdleLimit = d.IdleLimit
	}
	if k.Batch == 0 {
		k.Batch = d.Batch
	}
	if k.MaxUnits == 0 {
		k.MaxUnits = d.MaxUnits
	}
	if k.MaxBytes == 0 {
		k.MaxBytes = d.MaxBytes
	}
	if k.MaxDelay == 0 {
		k.MaxDelay = d.MaxDelay
	}
	if k.Keep == 0 {
		k.Keep = d.Keep
	}
	return k
}

// Validate reports a Config that cannot work, after defaults are applied.
func (c Config) Validate() error {
	c = c.withDefaults()
	for _, k := range []struct {
		name string
		k    KindConfig
	}{{"video", c.Video}, {"audio", c.Audio}} {
		switch {
		case k.k.HealthInterval < 1 || k.k.IdleLimit < 1 || k.k.Batch < 1 || k.k.MaxUnits < 1 || k.k.MaxBytes < 1:
			return fmt.Errorf("%w: %s: counts must be positive", ErrConfig, k.name)
		case k.k.IdleLimit < k.k.HealthInterval:
			// The client acknowledges only after HealthInterval messages: a
			// smaller limit would stall every session forever.
			return fmt.Errorf("%w: %s: idle limit %d below health interval %d", ErrConfig, k.name, k.k.IdleLimit, k.k.HealthInterval)
		case k.k.MaxUnits > 4096:
			return fmt.Errorf("%w: %s: max units %d above 4096", ErrConfig, k.name, k.k.MaxUnits)
		case k.k.MaxDelay < 0 || k.k.Keep < 0:
			return fmt.Errorf("%w: %s: negative duration", ErrConfig, k.name)
		}
	}
	if c.MinFrames < 0 || c.MinFrames > doneRing {
		return fmt.Errorf("%w: min frames %d outside 0..%d", ErrConfig, c.MinFrames, doneRing)
	}
	if c.MaxFlushes < 1 || c.HealthTimeout < 0 || c.WriteTimeout < 0 || c.FlushWindow < 0 {
		return fmt.Errorf("%w: disconnect rules must be positive", ErrConfig)
	}
	return nil
}

func (c *Config) kind(k capture.Kind) *KindConfig {
	if k == capture.KindAudio {
		return &c.Audio
	}
	return &c.Video
}
