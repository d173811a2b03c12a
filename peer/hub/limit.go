package hub

import (
	"net"
	"net/netip"
	"time"
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

// Limits bound what strangers can make the hub do (docs/security.md, "The
// hub"). Each "N per W" is a fixed window of length W counted in the store:
// the first event starts it, the N+1th within it is refused. Zero fields
// take the defaults in parentheses.
type Limits struct {
	// CodeTries wrong secrets for one pending code, whoever sends them,
	// and the hub withdraws it (3).
	CodeTries int
	// SessionTries wrong codes on one connection and the hub hangs up (5).
	SessionTries int
	// AddrGuesses joins per AddrGuessWindow from one source address (5
	// per 10 min); HubGuesses per HubGuessWindow from all (60 per minute):
	// beyond them a join is refused before its code is looked at.
	AddrGuesses     int
	AddrGuessWindow time.Duration
	HubGuesses      int
	HubGuessWindow  time.Duration
	// AddrCodes pairing codes per AddrCodeWindow from one address (10 per
	// 10 min): codes take slots.
	AddrCodes      int
	AddrCodeWindow time.Duration
	// AddrNewBoxes registrations of identities the hub does not know, per
	// AddrNewBoxWindow from one address (20 per hour): identities cost
	// nothing to make, records do.
	AddrNewBoxes     int
	AddrNewBoxWindow time.Duration
	// UnpairedTTL: a box that never paired and has not registered for
	// this long is forgotten (7 days).
	UnpairedTTL time.Duration
	// AddrPublishers fan-out publications open at once from one source
	// address, on one instance (4).
	AddrPublishers int
}

func (l *Limits) defaults() {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	defd := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	def(&l.CodeTries, 3)
	def(&l.SessionTries, 5)
	def(&l.AddrGuesses, 5)
	defd(&l.AddrGuessWindow, 10*time.Minute)
	def(&l.HubGuesses, 60)
	defd(&l.HubGuessWindow, time.Minute)
	def(&l.AddrCodes, 10)
	defd(&l.AddrCodeWindow, 10*time.Minute)
	def(&l.AddrNewBoxes, 20)
	defd(&l.AddrNewBoxWindow, time.Hour)
	defd(&l.UnpairedTTL, 7*24*time.Hour)
	def(&l.AddrPublishers, 4)
}
