package hub

import (
	"net"
	"net/netip"
)

// AddrKey is the key the hub's per-address limits count under: the IPv4
// address, or the IPv6 /64 (a host picks addresses in its /64 at will).
// remote is an http.Request's RemoteAddr ("host:port") or a bare address.
func AddrKey(remote string) string {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	a = a.Unmap()
	if a.Is4() {
		return a.String()
	}
	p, _ := a.Prefix(64)
	return p.String()
}
