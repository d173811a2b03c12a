package box

import (
	"time"

	"github.com/callbox/callbox/internal/netmon"
	transport "github.com/pion/transport/v5"
)

// NetMonitor is what a call needs of a network monitor (netmon.Monitor):
// the current addresses and a callback on every change.
type NetMonitor interface {
	Current() netmon.State
	RegisterChangeCallback(f func(old, new netmon.State)) (unregister func())
}

// netSource lists a pion/transport network's interfaces for netmon; nil
// is the OS (pion's stdnet caches the interface list, the OS's does not).
func netSource(n transport.Net) netmon.Source {
	if n == nil {
		return netmon.OS
	}
	return func() ([]netmon.Interface, error) {
		list, err := n.Interfaces()
		if err != nil {
			return nil, err
		}
		out := make([]netmon.Interface, 0, len(list))
		for _, ifc := range list {
			addrs, err := ifc.Addrs()
			if err != nil {
				continue
			}
			out = append(out, netmon.Interface{Name: ifc.Name, Flags: ifc.Flags, Addrs: addrs})
		}
		return out, nil
	}
}

// watchAddrs restarts the call when the box's addresses change.
// Calls use IPv4 only, so only a change of the IPv4 addresses counts.
func (call *Call) watchAddrs() {
	mon := call.caller.cfg.NetMonitor
	changed := make(chan struct{}, 1)
	unregister := mon.RegisterChangeCallback(func(_, _ netmon.State) {
		select {
		case changed <- struct{}{}:
		default:
		}
	})
	defer unregister()
	last := mon.Current().IPv4()
	for {
		select {
		case <-call.ctx.Done():
			return
		case <-changed:
		}
		now := mon.Current().IPv4()
		if now == last {
			continue
		}
		call.caller.cfg.Log.Info("addresses changed; restarting the call's ICE", "was", last, "now", now)
		last = now
		if !call.connectedOnce.Load() {
			continue
		}
		call.lostAt.CompareAndSwap(0, call.since())
		call.setState(PhaseReconnecting, PathNone, nil)
		call.mu.Lock()
		offerer := call.offerer
		call.restartAt = time.Now()
		call.mu.Unlock()
		// The hub connection most likely died with the old address.
		_ = call.caller.cfg.Client.Check(time.Second)
		if offerer {
			call.offer(true)
		} else {
			call.ring()
		}
	}
}
