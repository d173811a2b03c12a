package firmware

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/callbox/callbox/capture"
	"github.com/callbox/callbox/capture/rtpext"
	"github.com/callbox/callbox/relay"
	"github.com/pion/rtp"
)

// burst makes a one-packet JPEG frame or a PCMU chunk captured at t.
func testBurst(t *testing.T, kind capture.Kind, seq uint16, at time.Time) capture.Burst {
	h := rtp.Header{Version: 2, PayloadType: capture.PayloadTypeJPEG, SequenceNumber: seq, Timestamp: uint32(seq) * 3000, SSRC: 1, Marker: true}
	// RFC 2435: type 1, Q 255 with the two 64-byte tables in-band.
	payload := append([]byte{0, 0, 0, 0, 1, 255, 160, 90, 0, 0, 0, 128}, make([]byte, 1128)...)
	for i := 12; i < 12+128; i++ {
		payload[i] = 1
	}
	if kind == capture.KindAudio {
		h.PayloadType, h.Marker, payload = capture.PayloadTypePCMU, false, make([]byte, 160)
	}
	var ext [rtpext.AbsCaptureTimeSize]byte
	if err := rtpext.SetAbsCaptureTime(&h, &ext, at); err != nil {
		t.Fatal(err)
	}
	p := rtp.Packet{Header: h, Payload: payload}
	b, err := p.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return capture.Burst{Kind: kind, Packets: [][]byte{b}, Keyframe: true, CaptureTime: at}
}

// TestRelayPartAndView starts the appliance's relay part and views it with
// `callbox view`'s code over TCP and WebSocket, with pairing.
func TestRelayPartAndView(t *testing.T) {
	a := newTestAppliance(t, "", "--relay", "127.0.0.1:0")
	p := a.relay
	p.auth = authFunc(func(tok string) error {
		if tok != "paired" {
			return relay.ErrUnpaired
		}
		return nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := p.start(ctx); err != nil {
		t.Fatal(err)
	}
	defer p.stop()
	srv := httptest.NewServer(a.mux)
	defer srv.Close()
	if _, ok := any(p).(interface{ Publish(capture.Burst) }); !ok {
		t.Fatal("relayPart does not offer Publish to the media pipeline")
	}
	go func() {
		tk := time.NewTicker(20 * time.Millisecond)
		defer tk.Stop()
		for seq := uint16(0); ; seq++ {
			select {
			case <-ctx.Done():
				return
			case now := <-tk.C:
				p.Publish(testBurst(t, capture.KindAudio, seq, now))
				if seq%2 == 0 {
					p.Publish(testBurst(t, capture.KindVideo, seq/2, now))
				}
			}
		}
	}()
	for _, addr := range []string{p.Addr().String(), "ws" + strings.TrimPrefix(srv.URL, "http")} {
		vctx, vcancel := context.WithTimeout(ctx, 700*time.Millisecond)
		if _, err := view(vctx, addr, "wrong", 0, nil); err == nil || !strings.Contains(err.Error(), "unpaired") {
			t.Errorf("%s with a wrong token: %v", addr, err)
		}
		sum, err := view(vctx, addr, "paired", 0, nil)
		vcancel()
		if err != nil {
			t.Fatalf("%s: %v", addr, err)
		}
		if sum.FramesWhole < 10 || sum.FramesIncomplete != 0 || sum.Audio.Whole < 20 || sum.HealthChecks == 0 {
			t.Errorf("%s: %+v", addr, sum)
		}
		if sum.JPEGFrames == 0 {
			t.Errorf("%s: the RFC 2435 depacketizer reassembled no frame", addr)
		}
	}
	for deadline := time.Now().Add(3 * time.Second); p.Viewers() != 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d viewers after they left", p.Viewers())
		}
	}
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "callbox_relay_sent_packets_total") {
		t.Error("/metrics lacks the relay's metrics")
	}
}
