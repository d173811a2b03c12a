package firmware

import (
	"context"
	"image/jpeg"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/callbox/callbox/board"
	"github.com/callbox/callbox/capture"
	"github.com/callbox/callbox/integrations/homeassistant"
	"github.com/callbox/callbox/internal/testenv"
)

// TestOutputsEndToEnd: the appliance's parts with the outputs on: a phone
// pairs with the box's (simulated) buttons; /snapshot.jpg refuses a
// request without the token and gives the camera's picture with it; ffmpeg
// plays rtsp://.../live with the token as the password (any user name),
// and gets 401 without it.
func TestOutputsEndToEnd(t *testing.T) {
	testenv.Short(t)
	ff := testenv.LookPath(t, "ffmpeg")
	f := startBoard(t, "", "--relay", "", "--rtsp", "127.0.0.1:0", "--rtsp-udp-port", "0", "--size", "640x480")
	a := f.a
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, p := range []part{a.relay, a.media, a.outputs} {
		if err := p.start(ctx); err != nil {
			t.Fatal(err)
		}
		defer p.stop()
	}
	if a.outputs.rtsp == nil {
		t.Fatal("RTSP server not started")
	}

	res := f.pair(t)
	eventually(t, "the phone to wait", func() bool { return f.state(t, "").Waiting == 1 })
	f.press(t, `{"button":"both","ms":200}`)
	tok := (<-res).body["token"]
	if tok == "" {
		t.Fatal("no token")
	}

	// ffmpeg first: Digest works with the token the pairing handed out,
	// before any other request has shown it to the box.
	url := "rtsp://" + a.outputs.rtsp.Addr().String() + "/live"
	run := func(u string) (string, error) {
		c, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		out, err := exec.CommandContext(c, ff, "-hide_banner", "-nostdin", "-rtsp_transport", "tcp", "-i", u,
			"-frames:v", "30", "-f", "null", "-").CombinedOutput()
		return string(out), err
	}
	if out, err := run(strings.Replace(url, "rtsp://", "rtsp://admin:"+tok+"@", 1)); err != nil || !strings.Contains(out, "frame=   30") {
		t.Fatalf("ffmpeg with the token: %v\n%s", err, out)
	}
	if out, err := run(url); err == nil || !strings.Contains(out, "401") {
		t.Fatalf("ffmpeg without a token: %v\n%s", err, out)
	}

	resp, err := http.Get(f.srv.URL + "/snapshot.jpg")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatalf("snapshot without a token: %s", resp.Status)
	}
	resp, err = http.Get(f.srv.URL + "/snapshot.jpg?token=" + tok)
	if err != nil {
		t.Fatal(err)
	}
	img, err := jpeg.Decode(resp.Body)
	resp.Body.Close()
	if err != nil || img.Bounds().Dx() != 640 || img.Bounds().Dy() != 480 {
		t.Fatalf("snapshot: %v %v", err, img)
	}
}

// TestPressEvent: the board's gestures as Home Assistant's event entities
// name them.
func TestPressEvent(t *testing.T) {
	for _, c := range []struct {
		p             board.Press
		button, event string
	}{
		{board.Press{Button: board.ButtonA, Gesture: board.Short}, homeassistant.ButtonA, "press"},
		{board.Press{Button: board.ButtonA, Gesture: board.Long}, homeassistant.ButtonA, "long_press"},
		{board.Press{Button: board.ButtonB, Gesture: board.Short}, homeassistant.ButtonB, "press"},
		{board.Press{Button: board.ButtonB, Gesture: board.VeryLong}, homeassistant.ButtonB, "very_long_press"},
		{board.Press{Button: board.ButtonA, Gesture: board.Both}, homeassistant.ButtonBoth, "press"},
	} {
		if b, e := pressEvent(c.p); b != c.button || e != c.event {
			t.Errorf("%v: %s %s, want %s %s", c.p, b, e, c.button, c.event)
		}
	}
}

// TestOutputsRTSPH264: with the H.264 encoder on (--codec h264), the RTSP
// stream is H.264 (the description follows the relay's codec) and ffmpeg
// decodes it.
func TestOutputsRTSPH264(t *testing.T) {
	testenv.Short(t)
	ff := testenv.LookPath(t, "ffmpeg")
	f := startBoard(t, "", "--relay", "", "--rtsp", "127.0.0.1:0", "--rtsp-udp-port", "0", "--size", "640x480", "--codec", "h264", "--open")
	a := f.a
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, p := range []part{a.relay, a.media, a.outputs} {
		if err := p.start(ctx); err != nil {
			testenv.Unavailable(t, "no H.264 encoder here: %v", err)
		}
		defer p.stop()
	}
	eventually(t, "H.264 on the relay", func() bool { return a.relay.current().VideoCodec() == capture.CodecH264 })
	url := "rtsp://" + a.outputs.rtsp.Addr().String() + "/live"
	out, err := exec.CommandContext(ctx, ff, "-hide_banner", "-nostdin", "-rtsp_transport", "tcp", "-i", url,
		"-frames:v", "30", "-f", "null", "-").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "frame=   30") || !strings.Contains(string(out), "Video: h264") {
		t.Fatalf("ffmpeg on the H.264 stream: %v\n%s", err, out)
	}
}
