package browser

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/callbox/callbox/capture/rtpext"
	"github.com/callbox/callbox/relay/wire"
	"github.com/coder/websocket"
)

// viewers are headless WebSocket clients that behave like pages towards
// the relay (hello, Health Checks every hc messages) without decoding
// anything. They load the box like extra phones do, while the test
// machine's CPU goes to the one Chromium page that measures.
type viewers struct {
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	packets atomic.Int64
	mu      sync.Mutex
	errs    []error
	// arrival holds, per complete video frame, capture -> last packet
	// received in ms: the box's share of the latency, with no browser in it.
	arrival []float64
}

func startViewers(addr string, n int) *viewers {
	ctx, cancel := context.WithCancel(context.Background())
	v := &viewers{cancel: cancel}
	for i := 0; i < n; i++ {
		for _, kind := range []string{"video", "audio"} {
			v.wg.Add(1)
			go func() {
				defer v.wg.Done()
				if err := v.view(ctx, "ws://"+addr+"/ws/"+kind); err != nil && ctx.Err() == nil {
					v.mu.Lock()
					v.errs = append(v.errs, fmt.Errorf("%s viewer: %w", kind, err))
					v.mu.Unlock()
				}
			}()
		}
	}
	return v
}

func (v *viewers) view(ctx context.Context, url string) error {
	c, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		return err
	}
	defer c.CloseNow()
	c.SetReadLimit(1 << 20)
	_, hello, err := c.Read(ctx)
	if err != nil {
		return err
	}
	var h struct {
		HC    int    `json:"hc"`
		Error string `json:"error"`
	}
	if err := json.Unmarshal(hello, &h); err != nil || h.Error != "" || h.HC <= 0 {
		return fmt.Errorf("hello %q: %v", hello, err)
	}
	var since, total uint32
	hc := make([]byte, 0, 32)
	var captured time.Time
	for {
		typ, msg, err := c.Read(ctx)
		if err != nil {
			return err
		}
		if typ != websocket.MessageBinary || len(msg) < 2 || msg[1] >= 192 && msg[1] <= 223 {
			continue // RTCP (time replies): not counted, as on the page
		}
		v.packets.Add(1)
		total++
		if ct, err := rtpext.AbsCaptureTime(msg); err == nil {
			captured = ct
		}
		if strings.HasSuffix(url, "/video") && len(msg) > 1 && msg[1]&0x80 != 0 && !captured.IsZero() {
			ms := float64(time.Since(captured).Microseconds()) / 1000
			v.mu.Lock()
			v.arrival = append(v.arrival, ms)
			v.mu.Unlock()
		}
		if since++; int(since) >= h.HC {
			hc = wire.AppendHealthCheck(hc[:0], since, total)
			wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			err := c.Write(wctx, websocket.MessageBinary, hc)
			cancel()
			if err != nil {
				return err
			}
			since = 0
		}
	}
}

func (v *viewers) stop() []error {
	v.cancel()
	v.wg.Wait()
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.errs
}

// arrivalPercentiles returns the p50 and p99 of the viewers' arrival
// latencies (nearest rank) and how many frames they cover.
func (v *viewers) arrivalPercentiles() (p50, p99 float64, n int) {
	v.mu.Lock()
	a := append([]float64(nil), v.arrival...)
	v.mu.Unlock()
	if len(a) == 0 {
		return -1, -1, 0
	}
	sort.Float64s(a)
	rank := func(p float64) float64 {
		i := int(p/100*float64(len(a))+0.999999) - 1
		return a[min(max(i, 0), len(a)-1)]
	}
	return rank(50), rank(99), len(a)
}
