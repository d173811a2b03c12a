// Package natlab tests calls between callbox boxes across real NAT: Linux
// network namespaces joined by veth pairs and a bridge, NAT routers made of
// iptables MASQUERADE rules, the hub on a "public" segment (TEST-NET-2,
// 198.51.100.0/24, which exists only inside the namespaces), and the boxes
// as separate `callbox call` processes.
//
// The routers behave like home routers: they drop unsolicited inbound
// packets in INPUT and FORWARD. Without the INPUT drop the kernel confirms a
// conntrack entry for the peer's first probe, NAT then has to pick another
// port for the box's own packets to that peer, and a cone NAT turns
// symmetric for that flow: hole punching fails where it should work.
// MASQUERADE keeps the source port when it can (an endpoint-independent
// mapping, "cone"); MASQUERADE --random-fully picks a port per destination
// ("symmetric").
//
// The tests need root, ip and iptables; outside CI they skip loudly when
// those are missing (internal/testenv).
package natlab
