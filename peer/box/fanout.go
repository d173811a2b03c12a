package box

import "fmt"

// FanoutMode says how a box sends its stream to its receivers (S7).
type FanoutMode int

const (
	// FanoutDirect sends one copy per receiver over each peer connection.
	FanoutDirect FanoutMode = iota
	// FanoutRelay sends one copy to a relay on the hub, which forwards it to
	// every receiver with the per-client Buffer and Health Check policy
	// (S9-S13) of the on-device relay.
	FanoutRelay
)

func (m FanoutMode) String() string {
	if m == FanoutRelay {
		return "relay"
	}
	return "direct"
}

// FanoutPolicy decides between FanoutDirect and FanoutRelay from the box's
// uplink. The seed's point (S7): a sender's uplink cannot carry N copies;
// past that, switch to the relay even when P2P works.
type FanoutPolicy struct {
	// UplinkBps is what the box can send, in bit/s: configured, or measured.
	UplinkBps float64
	// Headroom is the fraction of the uplink media may fill (default 0.8):
	// the rest is for retransmissions, signalling and the household's
	// other traffic.
	Headroom float64
	// Hysteresis keeps a box on the relay until the direct copies would fit
	// in (1-Hysteresis) of the budget (default 0.25), so a stream near the
	// limit does not flap between modes.
	Hysteresis float64
}

// FanoutDecision is a decision and the figures behind it.
type FanoutDecision struct {
	Mode      FanoutMode
	Copies    int     // streams the box uploads
	NeedBps   float64 // receivers x stream bitrate
	BudgetBps float64 // UplinkBps x Headroom
	Reason    string
}

// Decide returns how to send a stream of streamBps to receivers, given the
// mode in use now.
func (p FanoutPolicy) Decide(receivers int, streamBps float64, current FanoutMode) FanoutDecision {
	headroom, hyst := p.Headroom, p.Hysteresis
	if headroom <= 0 || headroom > 1 {
		headroom = 0.8
	}
	if hyst <= 0 || hyst >= 1 {
		hyst = 0.25
	}
	d := FanoutDecision{NeedBps: float64(max(receivers, 0)) * streamBps, BudgetBps: p.UplinkBps * headroom}
	direct := func(reason string) FanoutDecision {
		d.Mode, d.Copies, d.Reason = FanoutDirect, max(receivers, 0), reason
		return d
	}
	relay := func(reason string) FanoutDecision {
		d.Mode, d.Copies, d.Reason = FanoutRelay, 1, reason
		return d
	}
	switch {
	case receivers <= 0:
		return direct("no receivers")
	case receivers == 1:
		// A relay cannot make one copy cheaper, and the direct path is faster.
		if d.NeedBps > d.BudgetBps && p.UplinkBps > 0 {
			return direct("one receiver: the stream exceeds the uplink budget; only a lower bitrate helps")
		}
		return direct("one receiver")
	case p.UplinkBps <= 0:
		return direct("uplink unknown")
	case d.NeedBps > d.BudgetBps:
		if streamBps > d.BudgetBps {
			return relay("even one copy exceeds the uplink budget; relay, and lower the bitrate")
		}
		return relay(fmt.Sprintf("%d copies need %.0f kbit/s, budget %.0f kbit/s", receivers, d.NeedBps/1e3, d.BudgetBps/1e3))
	case current == FanoutRelay && d.NeedBps > d.BudgetBps*(1-hyst):
		return relay("within the hysteresis band: stay on the relay")
	}
	return direct(fmt.Sprintf("%d copies fit: %.0f of %.0f kbit/s", receivers, d.NeedBps/1e3, d.BudgetBps/1e3))
}
