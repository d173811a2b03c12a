package box

import (
	"net"
	"sort"
	"strings"
	"time"

	transport "github.com/pion/transport/v5"
)

// addrWatchEvery is how often a call looks at the box's addresses. A new or
// vanished address (DHCP, another access point, a cable) restarts ICE at
// once instead of after the disconnected timeout.
const addrWatchEvery = 500 * time.Millisecond

// localAddrs lists the box's IPv4 addresses (the ones calls use), sorted,
// as one string to compare. With n nil it asks the OS each time (pion's
// stdnet caches the interface list).
func localAddrs(n transport.Net) string {
	type iface struct {
		flags net.Flags
		addrs func() ([]net.Addr, error)
	}
	var ifs []iface
	if n == nil {
		list, err := net.Interfaces()
		if err != nil {
			return ""
		}
		for i := range list {
			ifc := list[i]
			ifs = append(ifs, iface{ifc.Flags, ifc.Addrs})
		}
	} else {
		list, err := n.Interfaces()
		if err != nil {
			return ""
		}
		for _, ifc := range list {
			ifs = append(ifs, iface{ifc.Flags, ifc.Addrs})
		}
	}
	var out []string
	for _, ifc := range ifs {
		if ifc.flags&net.FlagUp == 0 || ifc.flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, err := ifc.addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			var ip net.IP
			switch v := a.(type) {
			case *net.IPNet:
				ip = v.IP
			case *net.IPAddr:
				ip = v.IP
			}
			if ip4 := ip.To4(); ip4 != nil {
				out = append(out, ip4.String())
			}
		}
	}
	sort.Strings(out)
	return strings.Join(out, ",")
}

// watchAddrs restarts the call when the box's addresses change.
func (call *Call) watchAddrs() {
	n := call.caller.cfg.Net
	last := localAddrs(n)
	t := time.NewTicker(addrWatchEvery)
	defer t.Stop()
	for {
		select {
		case <-call.ctx.Done():
			return
		case <-t.C:
		}
		now := localAddrs(n)
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
