package relay

// DisconnectAll ends every client session, with reason as the eject reason
// in logs and metrics. The board calls it after a factory reset: every
// token is revoked then, and a client already streaming must not keep its
// media; it reconnects and is refused as unpaired like any new client.
func (r *Relay) DisconnectAll(reason string) int {
	ss := r.snapshot(nil)
	for _, s := range ss {
		s.end(&EjectError{Reason: reason})
	}
	return len(ss)
}

// DisconnectOwner ends the sessions of one phone (Config.Owner of its
// token, or AttachOptions.Owner) and returns how many: the owner revoked
// that phone alone. An empty owner matches nothing.
func (r *Relay) DisconnectOwner(owner, reason string) int {
	if owner == "" {
		return 0
	}
	n := 0
	for _, s := range r.snapshot(nil) {
		if s.owner == owner {
			s.end(&EjectError{Reason: reason})
			n++
		}
	}
	return n
}

// ownerOf is Config.Owner of token ("" without one, or no token).
func (r *Relay) ownerOf(token string) string {
	if r.cfg.Owner == nil || token == "" {
		return ""
	}
	return r.cfg.Owner(token)
}
