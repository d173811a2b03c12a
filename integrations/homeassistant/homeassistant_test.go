package homeassistant

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/callbox/callbox/internal/testenv"
)

// broker is a real mosquitto on a loopback port, started by the test.
type broker struct {
	t    *testing.T
	bin  string
	conf string
	port int
	cmd  *exec.Cmd
}

func startBroker(t *testing.T) *broker {
	t.Helper()
	bin := "/usr/sbin/mosquitto"
	if _, err := os.Stat(bin); err != nil {
		bin = testenv.LookPath(t, "mosquitto")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	conf := filepath.Join(t.TempDir(), "mosquitto.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous true\npersistence false\n", port)), 0o600); err != nil {
		t.Fatal(err)
	}
	b := &broker{t: t, bin: bin, conf: conf, port: port}
	b.start()
	t.Cleanup(b.kill)
	return b
}

func (b *broker) start() {
	b.t.Helper()
	b.cmd = exec.Command(b.bin, "-c", b.conf)
	if err := b.cmd.Start(); err != nil {
		b.t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", b.addr())
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("mosquitto not listening on %s: %v", b.addr(), err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// kill ends the broker at once (SIGKILL: no goodbye to the clients).
func (b *broker) kill() {
	if b.cmd != nil && b.cmd.Process != nil {
		_ = b.cmd.Process.Kill()
		_ = b.cmd.Wait()
		b.cmd = nil
	}
}

func (b *broker) addr() string { return "127.0.0.1:" + strconv.Itoa(b.port) }

// watcher is Home Assistant's side: it subscribes to discovery and the
// box's topics and keeps every message.
type watcher struct {
	c    mqtt.Client
	mu   sync.Mutex
	msgs map[string][]mqtt.Message
	note chan struct{}
}

func watch(t *testing.T, addr, id string) *watcher {
	w := &watcher{msgs: map[string][]mqtt.Message{}, note: make(chan struct{}, 1)}
	o := mqtt.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(id).
		SetAutoReconnect(true).SetConnectRetry(true).SetConnectRetryInterval(200 * time.Millisecond).
		SetMaxReconnectInterval(time.Second)
	o.SetOnConnectHandler(func(c mqtt.Client) {
		c.Subscribe("homeassistant/#", 1, w.add)
		c.Subscribe("callbox/#", 1, w.add)
	})
	w.c = mqtt.NewClient(o)
	if tok := w.c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("watcher connect: %v", tok.Error())
	}
	t.Cleanup(func() { w.c.Disconnect(100) })
	return w
}

func (w *watcher) add(_ mqtt.Client, m mqtt.Message) {
	w.mu.Lock()
	w.msgs[m.Topic()] = append(w.msgs[m.Topic()], m)
	w.mu.Unlock()
	select {
	case w.note <- struct{}{}:
	default:
	}
}

// wait returns the first message on topic after index from that satisfies ok.
func (w *watcher) wait(t *testing.T, topic string, from int, ok func(mqtt.Message) bool) (mqtt.Message, int) {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		w.mu.Lock()
		ms := w.msgs[topic]
		for i := from; i < len(ms); i++ {
			if ok == nil || ok(ms[i]) {
				w.mu.Unlock()
				return ms[i], i
			}
		}
		w.mu.Unlock()
		select {
		case <-w.note:
		case <-deadline:
			t.Fatalf("no matching message on %s", topic)
		}
	}
}

func (w *watcher) count(topic string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.msgs[topic])
}

func payloadIs(s string) func(mqtt.Message) bool {
	return func(m mqtt.Message) bool { return string(m.Payload()) == s }
}

func TestHomeAssistantDiscovery(t *testing.T) {
	testenv.Short(t)
	b := startBroker(t)
	var muted atomic.Bool
	hc, err := Start(Config{
		Broker: "mqtt://" + b.addr(), NodeID: "callbox_0123abcd", Name: "Front door", Version: "test",
		PageURL: "http://callbox.local:8080/", RTSPURL: "rtsp://callbox.local:8554/live",
		SnapshotURL: "http://callbox.local:8080/snapshot.jpg",
		State: func() State {
			return State{State: "ready", LED: "ready", Call: "idle", Viewers: 2, Muted: muted.Load()}
		},
		SetMuted:     func(on bool) { muted.Store(on) },
		Image:        func(context.Context) ([]byte, error) { return []byte("\xff\xd8jpeg\xff\xd9"), nil },
		MaxReconnect: time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer hc.Close()
	early := watch(t, b.addr(), "ha-early")
	avail := "callbox/callbox_0123abcd/availability"
	early.wait(t, avail, 0, payloadIs("online"))
	// Home Assistant connecting after the box: everything it needs comes
	// from the broker's retained messages.
	w := watch(t, b.addr(), "ha-late")

	// Discovery, as Home Assistant reads it: <prefix>/<component>/<node>/<object>/config,
	// retained, JSON with a unique unique_id, the device block and availability.
	want := map[string]string{
		"sensor/callbox_0123abcd/led": "", "sensor/callbox_0123abcd/call": "", "sensor/callbox_0123abcd/viewers": "",
		"sensor/callbox_0123abcd/state": "", "sensor/callbox_0123abcd/stream": "", "switch/callbox_0123abcd/mute": "",
		"event/callbox_0123abcd/button_a": "", "event/callbox_0123abcd/button_b": "",
		"event/callbox_0123abcd/button_both": "", "event/callbox_0123abcd/button_doorbell": "",
		"camera/callbox_0123abcd/camera": "",
	}
	topicRE := regexp.MustCompile(`^homeassistant/(sensor|switch|event|camera)/[A-Za-z0-9_-]+/[A-Za-z0-9_-]+/config$`)
	ids := map[string]bool{}
	for obj := range want {
		m, _ := w.wait(t, "homeassistant/"+obj+"/config", 0, nil)
		if !topicRE.MatchString(m.Topic()) {
			t.Errorf("topic %s is not a discovery topic", m.Topic())
		}
		if !m.Retained() {
			t.Errorf("%s not retained", m.Topic())
		}
		var cfg struct {
			Name         string              `json:"name"`
			UniqueID     string              `json:"unique_id"`
			Device       map[string]any      `json:"device"`
			Availability []map[string]string `json:"availability"`
			StateTopic   string              `json:"state_topic"`
			CommandTopic string              `json:"command_topic"`
			Topic        string              `json:"topic"`
			EventTypes   []string            `json:"event_types"`
		}
		if err := json.Unmarshal(m.Payload(), &cfg); err != nil {
			t.Fatalf("%s: %v", m.Topic(), err)
		}
		if cfg.UniqueID == "" || ids[cfg.UniqueID] {
			t.Errorf("%s: unique_id %q missing or repeated", m.Topic(), cfg.UniqueID)
		}
		ids[cfg.UniqueID] = true
		idents, _ := cfg.Device["identifiers"].([]any)
		if len(idents) != 1 || idents[0] != "callbox_0123abcd" || cfg.Device["name"] != "Front door" {
			t.Errorf("%s: device block %v", m.Topic(), cfg.Device)
		}
		if len(cfg.Availability) != 1 || cfg.Availability[0]["topic"] != avail {
			t.Errorf("%s: availability %v", m.Topic(), cfg.Availability)
		}
		switch {
		case strings.HasPrefix(obj, "event/"):
			if cfg.StateTopic == "" || len(cfg.EventTypes) == 0 {
				t.Errorf("%s: event entity without state_topic or event_types", m.Topic())
			}
		case strings.HasPrefix(obj, "switch/"):
			if cfg.CommandTopic == "" || cfg.StateTopic == "" {
				t.Errorf("%s: switch without command or state topic", m.Topic())
			}
		case strings.HasPrefix(obj, "camera/"):
			if cfg.Topic == "" {
				t.Errorf("%s: camera without an image topic", m.Topic())
			}
		default:
			if cfg.StateTopic == "" {
				t.Errorf("%s: sensor without a state topic", m.Topic())
			}
		}
	}

	// State: viewers, LED and call in the JSON the sensors' templates read.
	st, _ := w.wait(t, "callbox/callbox_0123abcd/state", 0, nil)
	var state map[string]any
	if err := json.Unmarshal(st.Payload(), &state); err != nil || state["viewers"] != 2.0 || state["led"] != "ready" || state["call"] != "idle" {
		t.Fatalf("state %s (%v)", st.Payload(), err)
	}

	// A button press publishes an event (not retained), and a camera image.
	hc.Press(Doorbell, "ring")
	ev, _ := w.wait(t, "callbox/callbox_0123abcd/event/doorbell", 0, nil)
	if string(ev.Payload()) != `{"event_type":"ring"}` || ev.Retained() {
		t.Fatalf("doorbell event %s retained %v", ev.Payload(), ev.Retained())
	}
	w.wait(t, "callbox/callbox_0123abcd/camera", 0, nil)

	// The mute switch: Home Assistant's command mutes the box, the state follows.
	if tok := w.c.Publish("callbox/callbox_0123abcd/mute/set", 1, false, "ON"); !tok.WaitTimeout(5 * time.Second) {
		t.Fatal("publish mute command")
	}
	w.wait(t, "callbox/callbox_0123abcd/state", 0, func(m mqtt.Message) bool {
		return strings.Contains(string(m.Payload()), `"muted":true`)
	})
	if !muted.Load() {
		t.Fatal("the mute command did not reach the box")
	}

	// Kill the broker (SIGKILL) and start it again: the box reconnects
	// and is available again, with its discovery republished (the broker
	// kept nothing: no persistence).
	n := w.count(avail)
	b.kill()
	b.start()
	w.wait(t, avail, n, payloadIs("online"))
	w.wait(t, "homeassistant/switch/callbox_0123abcd/mute/config", 1, nil)
}

// TestBrokerURL maps the schemes.
func TestBrokerURL(t *testing.T) {
	for in, want := range map[string]string{
		"mqtt://10.0.0.2":  "tcp://10.0.0.2:1883",
		"mqtt://h:1884":    "tcp://h:1884",
		"mqtts://h":        "ssl://h:8883",
		"ws://h:9001/mqtt": "ws://h:9001/mqtt",
		"http://h":         "",
		"not a url":        "",
	} {
		got, err := brokerURL(in)
		if (err != nil) != (want == "") || got != want {
			t.Errorf("brokerURL(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}
