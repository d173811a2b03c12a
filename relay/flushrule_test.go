package relay

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/callbox/callbox/capture"
	"github.com/callbox/callbox/internal/testenv"
	"github.com/callbox/callbox/relay/viewer"
)

// TestFlushRuleKeepsSlowEjectsUseless runs a client at a quarter of the
// stream's rate (7 fps of whole frames: worth keeping) beside one at a
// thirty-second (under 1 fps, seconds behind: not). Both are flushed about
// once per MaxDelay; only the second goes long stretches without completing
// anything between flushes, and the repeated-flush rule ejects only it.
func TestFlushRuleKeepsSlowEjectsUseless(t *testing.T) {
	testenv.Short(t)
	r, addr := startRelay(t, Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	var sum [2]viewer.Summary
	var errs [2]error
	for i, div := range []int{4, 32} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sum[i], errs[i] = view(ctx, addr, capture.KindVideo, viewer.Options{Throttle: streamRate / div})
		}()
	}
	waitViewers(t, r, 2)
	go publishLive(ctx, r, 16000)
	wg.Wait()
	t.Logf("1/4: %.1f fps, p99 %.0f ms, %d flushes seen, err %v", sum[0].Rate, sum[0].LatencyP99Ms, sum[0].Gaps, errs[0])
	t.Logf("1/32: %.1f fps, p99 %.0f ms, %d flushes seen, err %v", sum[1].Rate, sum[1].LatencyP99Ms, sum[1].Gaps, errs[1])
	if errs[0] != nil || sum[0].Incomplete != 0 || sum[0].Whole < 20 {
		t.Errorf("the quarter-rate client: %+v, %v; want it kept, with whole frames", sum[0], errs[0])
	}
	if errs[1] == nil || sum[1].Incomplete != 0 {
		t.Errorf("the 1/32-rate client: %+v, %v; want it ejected, whole frames until then", sum[1], errs[1])
	}
	r.tot.mu.Lock()
	defer r.tot.mu.Unlock()
	if r.tot.disconnects["flushes"] != 1 {
		t.Errorf("disconnects %v, want one for flushes", r.tot.disconnects)
	}
}
