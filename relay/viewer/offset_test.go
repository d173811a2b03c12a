package viewer

import (
	"testing"
	"time"

	"github.com/callbox/callbox/relay/wire"
)

// TestOffsetFromUplink: on a saturated link the reply waits in the
// downlink queue, so half the round trip is no measure of the way there;
// the estimate must stay within the uplink's base delay of the truth.
func TestOffsetFromUplink(t *testing.T) {
	const truth = 3 * time.Second // the box's clock runs 3 s ahead
	base := time.Unix(1_800_000_000, 0)
	c := &Client{}
	reply := func(sent time.Time, up, down time.Duration) {
		box := sent.Add(up).Add(truth)
		c.control(wire.AppendTimeReply(nil, wire.NTP(sent), wire.NTP(box)), sent.Add(up+down))
	}
	// Every sample queued 150-400 ms on the way back, 0.5 ms on the way there.
	for i, down := range []time.Duration{400, 150, 250, 300} {
		reply(base.Add(time.Duration(i)*time.Second), 500*time.Microsecond, down*time.Millisecond)
	}
	off, ok := c.Offset()
	if !ok {
		t.Fatal("no estimate")
	}
	if err := off - truth; err < -2*time.Millisecond || err > time.Millisecond {
		t.Fatalf("offset %v, truth %v: error %v (half the best round trip would be off by -75 ms)", off, truth, err)
	}
	// A quiet, symmetric sample makes it exact.
	reply(base.Add(10*time.Second), 200*time.Microsecond, 200*time.Microsecond)
	off, _ = c.Offset()
	if err := off - truth; err < -50*time.Microsecond || err > 50*time.Microsecond {
		t.Fatalf("after a quiet sample: offset error %v", err)
	}
}
