package hub

import (
	"bytes"
	"context"
	"errors"
	"image/jpeg"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callbox/callbox/capture"
	"github.com/callbox/callbox/capture/rtpjpeg"
	"github.com/callbox/callbox/capture/synth"
	"github.com/callbox/callbox/peer/box"
	"github.com/callbox/callbox/relay/viewer"
)

// TestFanoutThroughHub is S7 end to end: the box measures its stream, the
// policy finds that three copies do not fit its uplink, so the box uploads
// one copy to the hub's relay, and three receivers each get every frame,
// decodable, while the box uploaded a third of what they received.
func TestFanoutThroughHub(t *testing.T) {
	testenvShort(t)
	hub := newTestHub(t, time.Now)
	fh := NewFanoutRelay(hub, nil)
	t.Cleanup(fh.Close)
	mux := http.NewServeMux()
	mux.Handle("/v1/ws", hub)
	mux.Handle("/v1/publish", fh)
	mux.Handle("/v1/fanout/", fh)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	hubURL := "ws" + strings.TrimPrefix(srv.URL, "http") + "/v1/ws"

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	media, err := box.SynthMedia(synth.CameraConfig{Width: 320, Height: 240, FPS: 15}, synth.MicConfig{Rate: 8000})(box.MaxRTPPacket(box.DefaultMaxDatagram))
	if err != nil {
		t.Fatal(err)
	}
	defer media.Close()

	// Measure the stream: a second of frames, as the box would.
	var streamBytes int
	start := time.Now()
	for time.Since(start) < time.Second {
		f, err := media.Video.ReadFrame(ctx)
		if err != nil {
			t.Fatal(err)
		}
		b, err := media.VideoPacketizer.Packetize(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range b.Packets {
			streamBytes += len(p)
		}
	}
	bps := float64(streamBytes*8) / time.Since(start).Seconds()
	const receivers = 3
	policy := box.FanoutPolicy{UplinkBps: 2.5 * bps} // room for two copies, not three
	d := policy.Decide(receivers, bps, box.FanoutDirect)
	t.Logf("stream %.0f kbit/s, %d receivers: %s (%s)", bps/1e3, receivers, d.Mode, d.Reason)
	if d.Mode != box.FanoutRelay {
		t.Fatalf("policy chose %s", d.Mode)
	}

	// Only a box with a pairing may publish (the relay is for its paired
	// receivers).
	publisher, other := mustIdentity(t), mustIdentity(t)
	if _, err := box.PublishToHub(ctx, hubURL, publisher, nil); err == nil || !strings.Contains(err.Error(), "no pairing") {
		t.Fatalf("an unpaired box's publication: %v", err)
	}
	var fa, fb fakeSession
	sa, sb := register(t, hub, publisher, &fa), register(t, hub, other, &fb)
	pairByCode(t, hub, sa, &fa, sb, &fb)
	pub, err := box.PublishToHub(ctx, hubURL, publisher, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()

	// A receiver without the token is refused.
	if bad, err := viewer.Dial(ctx, strings.Replace(pub.ViewerURL(capture.KindVideo), pub.Token(), "wrong", 1), capture.KindVideo, viewer.Options{}); err == nil {
		bad.Close()
		t.Error("a receiver with a wrong token was accepted")
	}

	const want = 20
	var wg sync.WaitGroup
	got := make([]int, receivers)
	received := make([]int, receivers)
	for i := 0; i < receivers; i++ {
		v, err := viewer.Dial(ctx, pub.ViewerURL(capture.KindVideo), capture.KindVideo, viewer.Options{})
		if err != nil {
			t.Fatalf("receiver %d: %v", i, err)
		}
		defer v.Close()
		wg.Add(1)
		go func(i int, v *viewer.Client) {
			defer wg.Done()
			d := rtpjpeg.NewDepacketizer()
			for got[i] < want {
				pkt, err := v.Next(ctx)
				if err != nil {
					return
				}
				received[i] += len(pkt)
				f, ok, _ := d.Push(pkt)
				if !ok {
					continue
				}
				if _, err := jpeg.Decode(bytes.NewReader(f.Data)); err != nil {
					t.Errorf("receiver %d: frame does not decode: %v", i, err)
					return
				}
				got[i]++
			}
		}(i, v)
	}
	// Publish live frames until every receiver has its frames.
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for {
		select {
		case <-done:
		case <-ctx.Done():
			t.Fatalf("receivers got %v frames", got)
		default:
			f, err := media.Video.ReadFrame(ctx)
			if err != nil {
				t.Fatal(err)
			}
			b, err := media.VideoPacketizer.Packetize(f)
			if err != nil {
				t.Fatal(err)
			}
			if err := pub.Publish(ctx, b); err != nil && !errors.Is(err, context.Canceled) {
				t.Fatal(err)
			}
			continue
		}
		break
	}
	total := 0
	for i := range got {
		if got[i] < want {
			t.Errorf("receiver %d decoded %d frames, want %d", i, got[i], want)
		}
		total += received[i]
	}
	t.Logf("box uploaded %d bytes; receivers got %d bytes in total", pub.BytesSent(), total)
	if up := pub.BytesSent(); up == 0 || uint64(total) < 2*up {
		t.Errorf("uploaded %d bytes for %d received: not one copy for %d receivers", up, total, receivers)
	}
}

// One address opens a few publications at most (each is a relay on the hub).
func TestFanoutPublishersPerAddress(t *testing.T) {
	h := newTestHub(t, time.Now)
	fh := NewFanoutRelay(h, nil)
	t.Cleanup(fh.Close)
	srv := httptest.NewServer(fh)
	t.Cleanup(srv.Close)
	hubURL := "ws" + strings.TrimPrefix(srv.URL, "http") + "/v1/ws"
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	max := h.cfg.Limits.AddrPublishers
	for i := 0; i <= max; i++ {
		id, other := mustIdentity(t), mustIdentity(t)
		var fa, fb fakeSession
		sa, sb := register(t, h, id, &fa), register(t, h, other, &fb)
		pairByCode(t, h, sa, &fa, sb, &fb)
		pub, err := box.PublishToHub(ctx, hubURL, id, nil)
		if i < max {
			if err != nil {
				t.Fatalf("publication %d: %v", i, err)
			}
			defer pub.Close()
			continue
		}
		if err == nil || !strings.Contains(err.Error(), "publications from") {
			t.Fatalf("publication %d from one address: %v, want a refusal", i, err)
		}
	}
}
