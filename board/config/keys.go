package config

import (
	"strings"
	"time"

	"github.com/callbox/callbox/capture"
	"github.com/callbox/callbox/capture/rtpjpeg"
)

// Keys declares every configuration key, once: its dotted TOML name, the
// `callbox run` flag that overrides it (if any), its default, the range it
// accepts and one line of documentation. Default, Load, the command-line
// flags (RegisterFlags), docs/config.md and board/callbox.example.toml are
// all derived from this list; docs/config.md ("Adding a key") says how to
// add one.
var Keys = []Key{
	// Top level.
	stringKey("name", "", "device name shown on the page and announced to peers (1–64 bytes)",
		"callbox", func(c *Config) *string { return &c.Name }, nonEmpty, maxLen(64)),
	stringKey("http", "http", "address of the page, WebSocket and `/metrics`",
		":8080", func(c *Config) *string { return &c.HTTP }, nonEmpty),
	stringKey("data_dir", "data", "paired phones, button settings, the box's call identity; `\"\"` = `/data/callbox` on a box, the user cache dir (`~/.cache/callbox`) on the simulated board",
		"", func(c *Config) *string { return &c.DataDir }),

	// [camera]
	stringKey("camera.device", "camera", "`auto` (the camera if present, else the test pattern on a development machine; a missing camera on a real box is a fault), `synthetic`, or a V4L2 node such as `/dev/video0`",
		"auto", func(c *Config) *string { return &c.Camera.Device }, nonEmpty),
	blocksKey("camera.width", "", "frame width: a multiple of 8 (RFC 2435 counts in 8-pixel blocks, one byte)",
		1280, func(c *Config) *int { return &c.Camera.Width }),
	blocksKey("camera.height", "", "frame height, same rules",
		720, func(c *Config) *int { return &c.Camera.Height }),
	intKey("camera.fps", "fps", "frames per second",
		30, 1, 240, func(c *Config) *int { return &c.Camera.FPS }),

	// [video]
	stringKey("video.codec", "codec", "what the box sends: `auto` (H.264 when an encoder is found: the camera's own H.264, else the hardware encoder, else the software one; JPEG otherwise; `callbox run` keeps JPEG on the relay with `auto` and only shows what it found), `h264` (an error if there is no encoder) or `jpeg`. The page's WebSocket video stays JPEG",
		"auto", func(c *Config) *string { return &c.Video.Codec }, oneOf("auto", "h264", "jpeg")),
	intKey("video.bitrate", "bitrate", "H.264 target bitrate in kbit/s",
		2000, 50, 50000, func(c *Config) *int { return &c.Video.Bitrate }),
	intKey("video.gop", "gop", "H.264: frames from one IDR (keyframe) to the next; keyframes are also made on request",
		60, 1, 10000, func(c *Config) *int { return &c.Video.GOP }),
	stringKey("video.profile", "profile", "H.264 profile: `baseline` (constrained baseline, what every WebRTC endpoint decodes; the software encoder makes only this), `main` or `high`",
		"baseline", func(c *Config) *string { return &c.Video.Profile }, oneOf("baseline", "main", "high")),

	// [audio]
	stringKey("audio.device", "mic", "`auto` (the default input; on a development machine the test tone when there is none; a missing microphone on a real box is a fault), `synthetic`, or an ALSA device such as `hw:1,0`",
		"auto", func(c *Config) *string { return &c.Audio.Device }, nonEmpty),

	// [speaker]
	stringKey("speaker.device", "speaker", "`auto` (the default output; on a development machine the simulated speaker when there is none; a box without one has no speaker), `none`, `synthetic` (the simulated speaker), or an ALSA/PortAudio output such as `hw:1,0` or a part of its name (`USB`)",
		"auto", func(c *Config) *string { return &c.Speaker.Device }, nonEmpty),
	stringKey("speaker.echo_cancel", "echo-cancel", "echo cancellation of the speaker's sound in the microphone: `auto` (software, speexdsp, unless the speaker is a known speakerphone with its own, docs/audio.md), `software`, `hardware` (the speakerphone does it: software off) or `off`",
		"auto", func(c *Config) *string { return &c.Speaker.EchoCancel }, oneOf("auto", "software", "hardware", "off")),
	intKey("speaker.volume", "volume", "the speaker's volume in percent of full scale (the mixer's gain; the card's own mixer is left alone); `device = \"none\"` silences it",
		100, 1, 100, func(c *Config) *int { return &c.Speaker.Volume }),

	// [relay]
	stringKey("relay.tcp", "relay", "RFC 4571 TCP listener (docs/protocol.md); `\"\"` = WebSocket only",
		":4571", func(c *Config) *string { return &c.Relay.TCP }),
	intKey("relay.packet_size", "packet-size", "largest RTP packet in bytes, video and audio (design S8: no IP fragmentation)",
		capture.DefaultMaxPacketSize, rtpjpeg.MinPacketSize, 1472, func(c *Config) *int { return &c.Relay.PacketSize }),
	intKey("relay.health_check", "relay-hc", "video: a client sends a Health Check per this many packets (S13)",
		8, 1, 1024, func(c *Config) *int { return &c.Relay.HealthCheck }),
	intKey("relay.idle_limit", "relay-idle-limit", "video: packets in flight before a client counts as busy (S12); at least `health_check`",
		24, 1, 65536, func(c *Config) *int { return &c.Relay.IdleLimit }),
	intKey("relay.batch", "relay-batch", "video: most packets one write takes from a client's buffer (whole frames)",
		32, 1, 4096, func(c *Config) *int { return &c.Relay.Batch }),
	durationKey("relay.max_delay", "relay-max-delay", "video: media time a client's buffer may hold before it is flushed",
		66*time.Millisecond, time.Millisecond, time.Minute, func(c *Config) *time.Duration { return &c.Relay.MaxDelay }),
	durationKey("relay.audio_max_delay", "relay-audio-max-delay", "audio: media time a client's buffer may hold before it is flushed",
		150*time.Millisecond, time.Millisecond, time.Minute, func(c *Config) *time.Duration { return &c.Relay.AudioMaxDelay }),
	durationKey("relay.audio_keep", "relay-audio-keep", "audio: the newest media time an audio flush keeps",
		60*time.Millisecond, time.Millisecond, time.Minute, func(c *Config) *time.Duration { return &c.Relay.AudioKeep }),
	durationKey("relay.health_timeout", "relay-health-timeout", "disconnect a client owing a Health Check this long",
		2*time.Second, 100*time.Millisecond, time.Hour, func(c *Config) *time.Duration { return &c.Relay.HealthTimeout }),
	intKey("relay.max_flushes", "relay-max-flushes", "disconnect a client flushed this often within `flush_window`",
		40, 1, 1<<20, func(c *Config) *int { return &c.Relay.MaxFlushes }),
	durationKey("relay.flush_window", "relay-flush-window", "the window of `max_flushes`",
		5*time.Second, 100*time.Millisecond, time.Hour, func(c *Config) *time.Duration { return &c.Relay.FlushWindow }),
	boolKey("relay.video_nagle", "relay-video-nagle", "leave Nagle's algorithm on for video connections (S14; measured slower, docs/relay.md)",
		false, func(c *Config) *bool { return &c.Relay.VideoNagle }),

	// [board]
	stringKey("board.profile", "board", "the board: "+strings.Join(Profiles, ", "),
		"auto", func(c *Config) *string { return &c.Board.Profile }, oneOf(Profiles...)),
	stringKey("board.chip", "", "GPIO chip by label (`pinctrl-rp1`), name (`gpiochip0`) or path; `\"\"` = the profile's (found by label)",
		"", func(c *Config) *string { return &c.Board.Chip }),
	pinKey("board.button_a", "main button: mute, factory reset (Raspberry Pi default wiring: GPIO17)",
		func(c *Config) *int { return &c.Board.ButtonA }),
	pinKey("board.button_b", "call button (default wiring: GPIO27)",
		func(c *Config) *int { return &c.Board.ButtonB }),
	pinKey("board.led", "single-colour LED (default wiring: GPIO22)",
		func(c *Config) *int { return &c.Board.LED }),
	pinKey("board.led_red", "RGB LED: `led_red`, `led_green` and `led_blue` all three or none (e.g. 5, 6, 13); replaces the single LED unless `led` is set too",
		func(c *Config) *int { return &c.Board.LEDRed }),
	pinKey("board.led_green", "RGB LED, green",
		func(c *Config) *int { return &c.Board.LEDGreen }),
	pinKey("board.led_blue", "RGB LED, blue",
		func(c *Config) *int { return &c.Board.LEDBlue }),
	boolKey("board.led_active_low", "", "the LED lights on a low level (common-anode RGB LED wired to 3V3)",
		false, func(c *Config) *bool { return &c.Board.LEDActiveLow }),
	stringKey("board.button_bias", "", "`auto` (pull-up on the Raspberry Pi profiles, none on `generic`), `pull-up`, `none` (external resistors)",
		"auto", func(c *Config) *string { return &c.Board.ButtonBias }, oneOf("auto", "pull-up", "none")),
	durationKey("board.debounce", "", "contact bounce filter",
		30*time.Millisecond, time.Millisecond, 500*time.Millisecond, func(c *Config) *time.Duration { return &c.Board.Debounce }),
	durationKey("board.long_press", "", "a press at least this long is \"long\"; more than `debounce`",
		1500*time.Millisecond, 300*time.Millisecond, 30*time.Second, func(c *Config) *time.Duration { return &c.Board.LongPress }),
	durationKey("board.very_long_press", "", "a press at least this long is \"very long\" (factory reset); more than `long_press`",
		10*time.Second, time.Second, 2*time.Minute, func(c *Config) *time.Duration { return &c.Board.VeryLongPress }),

	// [pairing]
	boolKey("pairing.open", "open", "every client gets media without pairing (trusted networks only)",
		false, func(c *Config) *bool { return &c.Pairing.Open }),
	durationKey("pairing.window", "", "ignored since issue 12: A+B admits only the phones already waiting, no window stays open (docs/security.md); accepted so older files load",
		60*time.Second, 5*time.Second, time.Hour, func(c *Config) *time.Duration { return &c.Pairing.Window }),
	durationKey("pairing.request_timeout", "", "how long `POST /api/pair/request` waits for the buttons before 408",
		60*time.Second, time.Second, 10*time.Minute, func(c *Config) *time.Duration { return &c.Pairing.RequestTimeout }),
	durationKey("pairing.reset_confirm", "", "time to confirm a factory reset with a short press of A",
		15*time.Second, 3*time.Second, 5*time.Minute, func(c *Config) *time.Duration { return &c.Pairing.ResetConfirm }),

	// [call]
	stringKey("call.hub", "hub", "the hub's WebSocket URL, `wss://` (plain `ws://` only to a hub on this machine; e.g. `\"wss://hub.example.org/v1/ws\"`); `\"\"`: calls off",
		"", func(c *Config) *string { return &c.Call.Hub }, wsURL),
	stringKey("call.peer", "peer", "the paired box the call button calls, by name or ID; `\"\"`: the only paired box",
		"", func(c *Config) *string { return &c.Call.Peer }, maxLen(64)),
	intKey("call.fps", "call-fps", "most video frames per second sent in a call (the camera's rate is the upper bound; the call's step-down ladder may send fewer)",
		30, 1, 60, func(c *Config) *int { return &c.Call.FPS }),
	boolKey("call.auto_answer", "auto-answer", "answer calls from paired boxes at once, without anyone at the box consenting; off: an incoming call rings until answered (button B, the page, `POST /api/call/answer`) (docs/security.md)",
		false, func(c *Config) *bool { return &c.Call.AutoAnswer }),
	durationKey("call.ring_timeout", "ring-timeout", "how long an incoming call rings before it ends as missed",
		30*time.Second, 5*time.Second, 10*time.Minute, func(c *Config) *time.Duration { return &c.Call.RingTimeout }),
	intKey("call.uplink_kbps", "uplink-kbps", "the home's uplink in kbit/s, the cap of what the box measures from its remote phones' feedback; past 80% of it the remote phones take one copy from the hub's relay instead of one each from the box (S7, [peer.md](peer.md#s7-in-the-appliance)); `0`: measured only",
		0, 0, 10_000_000, func(c *Config) *int { return &c.Call.UplinkKbps }),
	boolKey("call.phones_via_hub", "phones-via-hub", "let remote phones take one copy through the hub's relay when the uplink cannot carry one each (S7); the hub can see that copy ([security.md](security.md#the-hub)); `false`: always a copy per phone from the box",
		true, func(c *Config) *bool { return &c.Call.PhonesViaHub }),

	// [rtsp]
	stringKey("rtsp.listen", "rtsp", "RTSP server address; the stream is `rtsp://<box>:8554/live`; `\"\"`: RTSP off",
		":8554", func(c *Config) *string { return &c.RTSP.Listen }),
	evenIntKey("rtsp.udp_port", "rtsp-udp-port", "the RTSP server's RTP port for UDP readers (RTCP is the next one); `0`: TCP only",
		8000, 0, 65534, func(c *Config) *int { return &c.RTSP.UDPPort }),

	// [mqtt]
	stringKey("mqtt.broker", "mqtt", "MQTT broker for Home Assistant discovery, e.g. `\"mqtt://192.168.1.10:1883\"`; `\"\"`: off",
		"", func(c *Config) *string { return &c.MQTT.Broker }, mqttURL),
	stringKey("mqtt.username", "", "MQTT user name (`\"\"`: none)",
		"", func(c *Config) *string { return &c.MQTT.Username }, maxLen(256)),
	stringKey("mqtt.password", "", "MQTT password",
		"", func(c *Config) *string { return &c.MQTT.Password }, maxLen(256)),
	stringKey("mqtt.discovery_prefix", "", "Home Assistant's MQTT discovery prefix",
		"homeassistant", func(c *Config) *string { return &c.MQTT.DiscoveryPrefix }, nonEmpty, maxLen(64)),
}

// Sections are the file's tables, in the order docs/config.md and the
// example file show them, each with the paragraph that introduces it.
var Sections = []Section{
	{Name: "", Title: "Top level"},
	{Name: "camera"},
	{Name: "video", Doc: "H.264 or JPEG, and the H.264 encoder's settings ([h264.md](h264.md))."},
	{Name: "audio"},
	{Name: "speaker", Doc: "The box's own speaker: a call's far-end audio and the ring tone, mixed, with echo cancellation in the microphone ([audio.md](audio.md))."},
	{Name: "relay", Doc: "The on-device relay's per-client policy (design S9–S15; docs/relay.md has the " +
		"measurements behind the defaults, which are the relay's own: a test in firmware checks they agree). " +
		"Any combination the relay would refuse resets the whole `[relay]` section to its defaults and is reported, " +
		"instead of stopping the relay.\n\n" +
		"**The call's relay.** During a call the other box's media reaches the phones through a second relay " +
		"(`/ws/call/video`, `/ws/call/audio`, `/whep/call`). It serves the same phones on the same network, so it takes the same " +
		"per-client policy: `health_check`, `idle_limit`, `batch`, `max_delay`, `audio_max_delay`, `audio_keep`, " +
		"`health_timeout`, `max_flushes`, `flush_window` and `video_nagle`. It does not take `tcp` (it has no TCP " +
		"listener: the page plays calls over WebRTC, `/whep/call`, or WebSocket) nor `packet_size` (the other box packetizes for the call's " +
		"datagram limit)."},
	{Name: "board", Doc: "See [board.md](board.md) for the wiring and what the buttons do. GPIO numbers are the " +
		"chip's line offsets (BCM numbers on a Raspberry Pi); `-1` means \"not set\" (the profile's default). " +
		"The `generic` profile needs `button_a`, `button_b` and an LED; `chip` may be left empty when the machine " +
		"has exactly one GPIO chip. On a Raspberry Pi profile, the pin keys override the default wiring one by " +
		"one. Two roles on one GPIO line are an error."},
	{Name: "pairing"},
	{Name: "call", Doc: "Calls between boxes ([peer.md](peer.md#calls-from-the-box))."},
	{Name: "rtsp", Doc: "The stream for VLC, ffmpeg, NVRs and Home Assistant ([integrations.md](integrations.md)): " +
		"`rtsp://<box>:8554/live`, a pairing token as the password (any user name) unless `pairing.open`."},
	{Name: "mqtt", Doc: "Home Assistant through MQTT discovery ([integrations.md](integrations.md#home-assistant-mqtt)): " +
		"the box appears as one device with its camera, buttons, LED, call state, viewer count and mute."},
}

// Aliases are command-line flags that set several keys at once.
var Aliases = []Alias{
	{Flag: "size", Keys: []string{"camera.width", "camera.height"}, Doc: "video frame size `WxH` (camera.width and camera.height)",
		parse: parseSize},
}
