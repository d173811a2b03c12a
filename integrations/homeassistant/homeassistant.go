// Package homeassistant puts the box into Home Assistant through MQTT
// discovery (https://www.home-assistant.io/integrations/mqtt/#mqtt-discovery):
// with `[mqtt] broker = "mqtt://..."` set, the box appears as one device
// with
//
//   - a camera (MQTT camera: a JPEG published to an image topic every
//     ImageEvery and at once on every button press, so a doorbell
//     automation shows who rang), and the RTSP and snapshot URLs as the
//     stream sensor's attributes and the device's configuration URL;
//   - event entities for the buttons: A, B, both, and "doorbell" (a press
//     of B, the call button, the one a visitor presses);
//   - sensors: LED pattern, call state, viewer count (and the box state);
//   - a switch: mute (the microphone, as button A's short press).
//
// Discovery messages are retained, so Home Assistant finds the box after
// its own restarts; availability is a retained "online" on connect and
// "offline" as the MQTT last will, so a box that loses power shows as
// unavailable; the client reconnects with exponential backoff (1 s to
// MaxReconnect) and publishes everything again on every connect, so a
// broker that restarts without persistence is repopulated.
//
// MQTT is github.com/eclipse/paho.mqtt.golang.
package homeassistant

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// State is what the box shows Home Assistant.
type State struct {
	State   string // "ready", "streaming", "in-call", ... (board.State)
	LED     string // the LED pattern's name
	Call    string // "idle", "ringing", "calling", "direct", "relayed"
	Viewers int
	Muted   bool
}

// Config configures the integration.
type Config struct {
	Broker          string // mqtt://host:port, mqtts://, tcp://, ssl://, ws://, wss://
	Username        string
	Password        string
	DiscoveryPrefix string // "" = "homeassistant"

	// NodeID is the device's stable unique id (letters, digits, _ and -):
	// every entity's unique_id and topic derives from it.
	NodeID string
	// Name is the device name Home Assistant shows.
	Name    string
	Version string

	// PageURL, RTSPURL and SnapshotURL are where Home Assistant (or a
	// person) finds the box's page and streams; "" leaves one out. They
	// carry no token: the user adds it (docs/integrations.md).
	PageURL, RTSPURL, SnapshotURL string

	// State reads the box's state; it is polled every Poll.
	State func() State
	// SetMuted is called for the mute switch's commands.
	SetMuted func(bool)
	// Image returns a JPEG of the camera for the MQTT camera; nil: no
	// camera entity.
	Image func(ctx context.Context) ([]byte, error)

	Poll         time.Duration // 0: 1 s
	ImageEvery   time.Duration // 0: 10 s
	MaxReconnect time.Duration // 0: 30 s
	Log          *slog.Logger
}

// Client is a running integration.
type Client struct {
	cfg    Config
	log    *slog.Logger
	c      mqtt.Client
	base   string // <node_id>'s topic root: callbox/<node_id>
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	imgReq chan struct{}

	mu   sync.Mutex
	last map[string]string // state topic -> payload last published
}

var nodeIDRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// Button event names, as Home Assistant's event entities carry them.
const (
	ButtonA    = "a"
	ButtonB    = "b"
	ButtonBoth = "both"
	Doorbell   = "doorbell"
)

// Start connects (in the background: an unreachable broker is retried
// with backoff, never an error here) and publishes discovery.
func Start(cfg Config) (*Client, error) {
	if cfg.DiscoveryPrefix == "" {
		cfg.DiscoveryPrefix = "homeassistant"
	}
	if cfg.Poll <= 0 {
		cfg.Poll = time.Second
	}
	if cfg.ImageEvery <= 0 {
		cfg.ImageEvery = 10 * time.Second
	}
	if cfg.MaxReconnect <= 0 {
		cfg.MaxReconnect = 30 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if !nodeIDRE.MatchString(cfg.NodeID) {
		return nil, fmt.Errorf("homeassistant: node id %q: want 1-64 letters, digits, _ or -", cfg.NodeID)
	}
	if cfg.State == nil {
		return nil, errors.New("homeassistant: no State")
	}
	broker, err := brokerURL(cfg.Broker)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	hc := &Client{cfg: cfg, log: cfg.Log, base: "callbox/" + cfg.NodeID, ctx: ctx, cancel: cancel,
		imgReq: make(chan struct{}, 1), last: map[string]string{}}

	o := mqtt.NewClientOptions()
	o.AddBroker(broker)
	o.SetClientID("callbox-" + cfg.NodeID)
	o.SetUsername(cfg.Username)
	o.SetPassword(cfg.Password)
	o.SetCleanSession(true)
	o.SetKeepAlive(15 * time.Second)
	o.SetPingTimeout(5 * time.Second)
	o.SetConnectTimeout(5 * time.Second)
	o.SetWill(hc.availability(), "offline", 1, true)
	o.SetAutoReconnect(true)
	o.SetConnectRetry(true) // the first connection too: a broker that boots after the box
	o.SetConnectRetryInterval(time.Second)
	o.SetMaxReconnectInterval(cfg.MaxReconnect) // paho doubles from 1 s up to this
	o.SetOrderMatters(false)
	o.SetOnConnectHandler(hc.onConnect)
	o.SetConnectionLostHandler(func(_ mqtt.Client, err error) {
		hc.log.Warn("mqtt: connection lost; reconnecting", "broker", cfg.Broker, "err", err)
	})
	hc.c = mqtt.NewClient(o)
	hc.c.Connect() // returns at once with ConnectRetry; onConnect publishes
	hc.wg.Add(1)
	go hc.loop()
	return hc, nil
}

// brokerURL maps mqtt:// and mqtts:// to the schemes every paho version
// knows and checks the URL.
func brokerURL(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("homeassistant: broker %q is not a URL like mqtt://host:1883", s)
	}
	switch u.Scheme {
	case "mqtt", "tcp":
		u.Scheme = "tcp"
		if u.Port() == "" {
			u.Host += ":1883"
		}
	case "mqtts", "ssl", "tls":
		u.Scheme = "ssl"
		if u.Port() == "" {
			u.Host += ":8883"
		}
	case "ws", "wss":
	default:
		return "", fmt.Errorf("homeassistant: broker %q: scheme must be mqtt, mqtts, ws or wss", s)
	}
	return u.String(), nil
}

// Close publishes "offline" (a clean goodbye: the last will is for crashes)
// and disconnects.
func (hc *Client) Close() {
	hc.cancel()
	hc.wg.Wait()
	if hc.c.IsConnectionOpen() {
		t := hc.c.Publish(hc.availability(), 1, true, "offline")
		t.WaitTimeout(2 * time.Second)
	}
	hc.c.Disconnect(250)
}

func (hc *Client) availability() string { return hc.base + "/availability" }

// Topics, relative to base.
const (
	topicState   = "/state"    // JSON: state, led, call, viewers, muted
	topicMuteSet = "/mute/set" // ON / OFF from Home Assistant
	topicImage   = "/camera"   // JPEG
	topicEvent   = "/event/"   // + a, b, both, doorbell: JSON {"event_type": ...}
	topicStream  = "/stream"   // JSON attributes: the URLs
)

// discovery returns the retained config messages: topic -> payload.
func (hc *Client) discovery() map[string]any {
	cfg := hc.cfg
	dev := map[string]any{
		"identifiers":  []string{cfg.NodeID},
		"name":         cfg.Name,
		"manufacturer": "callbox",
		"model":        "callbox",
	}
	if cfg.Version != "" {
		dev["sw_version"] = cfg.Version
	}
	if cfg.PageURL != "" {
		dev["configuration_url"] = cfg.PageURL
	}
	avail := []map[string]string{{"topic": hc.availability()}}
	ent := func(object, name string, extra map[string]any) map[string]any {
		m := map[string]any{
			"name":         name,
			"unique_id":    cfg.NodeID + "_" + object,
			"device":       dev,
			"availability": avail,
		}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	p := cfg.DiscoveryPrefix + "/"
	node := "/" + cfg.NodeID + "/"
	st := hc.base + topicState
	msgs := map[string]any{
		p + "sensor" + node + "led/config": ent("led", "LED", map[string]any{
			"state_topic": st, "value_template": "{{ value_json.led }}", "icon": "mdi:led-on"}),
		p + "sensor" + node + "call/config": ent("call", "Call", map[string]any{
			"state_topic": st, "value_template": "{{ value_json.call }}", "icon": "mdi:phone",
			"device_class": "enum", "options": []string{"idle", "ringing", "calling", "direct", "relayed"}}),
		p + "sensor" + node + "viewers/config": ent("viewers", "Viewers", map[string]any{
			"state_topic": st, "value_template": "{{ value_json.viewers }}", "icon": "mdi:eye",
			"state_class": "measurement"}),
		p + "sensor" + node + "state/config": ent("state", "State", map[string]any{
			"state_topic": st, "value_template": "{{ value_json.state }}", "icon": "mdi:information-outline"}),
		p + "switch" + node + "mute/config": ent("mute", "Mute", map[string]any{
			"state_topic": st, "value_template": "{{ 'ON' if value_json.muted else 'OFF' }}",
			"command_topic": hc.base + topicMuteSet, "payload_on": "ON", "payload_off": "OFF",
			"icon": "mdi:microphone-off"}),
		p + "sensor" + node + "stream/config": ent("stream", "Stream", map[string]any{
			"state_topic": hc.base + topicStream, "value_template": "{{ value_json.rtsp }}",
			"json_attributes_topic": hc.base + topicStream, "icon": "mdi:cctv"}),
	}
	buttons := []struct{ id, name string }{
		{ButtonA, "Button A"}, {ButtonB, "Button B"}, {ButtonBoth, "Buttons A and B"}, {Doorbell, "Doorbell"},
	}
	for _, b := range buttons {
		types := []string{"press", "long_press", "very_long_press"}
		extra := map[string]any{"state_topic": hc.base + topicEvent + b.id, "event_types": types}
		switch b.id {
		case ButtonBoth:
			extra["event_types"] = []string{"press"}
		case Doorbell:
			extra["event_types"] = []string{"ring"}
			extra["device_class"] = "doorbell"
		default:
			extra["device_class"] = "button"
		}
		msgs[p+"event"+node+"button_"+b.id+"/config"] = ent("button_"+b.id, b.name, extra)
	}
	if cfg.Image != nil {
		msgs[p+"camera"+node+"camera/config"] = ent("camera", "Camera", map[string]any{
			"topic": hc.base + topicImage})
	}
	return msgs
}

func (hc *Client) onConnect(c mqtt.Client) {
	hc.log.Info("mqtt: connected; publishing Home Assistant discovery", "broker", hc.cfg.Broker)
	for topic, msg := range hc.discovery() {
		b, _ := json.Marshal(msg)
		c.Publish(topic, 1, true, b)
	}
	c.Subscribe(hc.base+topicMuteSet, 1, func(_ mqtt.Client, m mqtt.Message) {
		on := strings.EqualFold(strings.TrimSpace(string(m.Payload())), "ON")
		off := strings.EqualFold(strings.TrimSpace(string(m.Payload())), "OFF")
		if (on || off) && hc.cfg.SetMuted != nil {
			hc.cfg.SetMuted(on)
			hc.publishState(true)
		}
	})
	stream, _ := json.Marshal(map[string]string{"rtsp": hc.cfg.RTSPURL, "snapshot": hc.cfg.SnapshotURL, "page": hc.cfg.PageURL})
	c.Publish(hc.base+topicStream, 1, true, stream)
	c.Publish(hc.availability(), 1, true, "online")
	hc.publishState(true)
	hc.requestImage()
}

// publishState publishes the state if it changed (or always with force).
func (hc *Client) publishState(force bool) {
	st := hc.cfg.State()
	b, _ := json.Marshal(map[string]any{"state": st.State, "led": st.LED, "call": st.Call,
		"viewers": st.Viewers, "muted": st.Muted})
	topic := hc.base + topicState
	hc.mu.Lock()
	same := hc.last[topic] == string(b)
	hc.last[topic] = string(b)
	hc.mu.Unlock()
	if same && !force {
		return
	}
	if hc.c.IsConnectionOpen() {
		hc.c.Publish(topic, 1, true, b)
	}
}

// Press publishes a button event: ButtonA, ButtonB, ButtonBoth or
// Doorbell, with the gesture's event type ("press", "long_press",
// "very_long_press", "ring"). Events are not retained: a restart must not
// replay a ring. A press also refreshes the camera image.
func (hc *Client) Press(button, eventType string) {
	b, _ := json.Marshal(map[string]string{"event_type": eventType})
	if hc.c.IsConnectionOpen() {
		hc.c.Publish(hc.base+topicEvent+button, 1, false, b)
	}
	hc.requestImage()
}

// Changed asks for the state to be published now (a button changed it).
func (hc *Client) Changed() { hc.publishState(false) }

func (hc *Client) requestImage() {
	select {
	case hc.imgReq <- struct{}{}:
	default:
	}
}

// loop polls the state and publishes camera images.
func (hc *Client) loop() {
	defer hc.wg.Done()
	poll := time.NewTicker(hc.cfg.Poll)
	defer poll.Stop()
	img := time.NewTicker(hc.cfg.ImageEvery)
	defer img.Stop()
	for {
		select {
		case <-hc.ctx.Done():
			return
		case <-poll.C:
			hc.publishState(false)
		case <-img.C:
			hc.publishImage()
		case <-hc.imgReq:
			hc.publishImage()
		}
	}
}

func (hc *Client) publishImage() {
	if hc.cfg.Image == nil || !hc.c.IsConnectionOpen() {
		return
	}
	ctx, cancel := context.WithTimeout(hc.ctx, 3*time.Second)
	defer cancel()
	b, err := hc.cfg.Image(ctx)
	if err != nil {
		hc.log.Debug("mqtt: no camera image", "err", err)
		return
	}
	hc.c.Publish(hc.base+topicImage, 0, false, b)
}
