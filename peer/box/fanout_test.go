package box

import "testing"

func TestFanoutDecide(t *testing.T) {
	const mbit = 1e6
	p := FanoutPolicy{UplinkBps: 10 * mbit} // budget 8 Mbit/s with the default headroom
	cases := []struct {
		name      string
		receivers int
		stream    float64
		current   FanoutMode
		want      FanoutMode
		copies    int
	}{
		{"no receivers", 0, 2 * mbit, FanoutDirect, FanoutDirect, 0},
		{"one receiver", 1, 2 * mbit, FanoutDirect, FanoutDirect, 1},
		{"one receiver, stream too big: relay does not help", 1, 20 * mbit, FanoutDirect, FanoutDirect, 1},
		{"three copies fit", 3, 2 * mbit, FanoutDirect, FanoutDirect, 3},
		{"four copies exactly at the budget", 4, 2 * mbit, FanoutDirect, FanoutDirect, 4},
		{"five copies exceed the budget", 5, 2 * mbit, FanoutDirect, FanoutRelay, 1},
		{"even one copy exceeds, many receivers", 3, 9 * mbit, FanoutDirect, FanoutRelay, 1},
		{"on relay, inside the hysteresis band", 4, 2 * mbit, FanoutRelay, FanoutRelay, 1},
		{"on relay, clearly below: back to direct", 3, 2 * mbit, FanoutRelay, FanoutDirect, 3},
	}
	for _, tc := range cases {
		d := p.Decide(tc.receivers, tc.stream, tc.current)
		if d.Mode != tc.want || d.Copies != tc.copies {
			t.Errorf("%s: got %s x%d (%s), want %s x%d", tc.name, d.Mode, d.Copies, d.Reason, tc.want, tc.copies)
		}
		if d.Reason == "" {
			t.Errorf("%s: no reason given", tc.name)
		}
	}
	// Unknown uplink: no basis for leaving the direct path.
	if d := (FanoutPolicy{}).Decide(8, 2*mbit, FanoutDirect); d.Mode != FanoutDirect {
		t.Errorf("unknown uplink: %s", d.Mode)
	}
	// Receivers x bitrate is what is compared: halving the bitrate doubles
	// the receivers that fit.
	for n := 1; n <= 16; n++ {
		d := p.Decide(n, 1*mbit, FanoutDirect)
		if want := n > 8; (d.Mode == FanoutRelay) != want {
			t.Errorf("%d receivers at 1 Mbit/s: %s", n, d.Mode)
		}
	}
}
