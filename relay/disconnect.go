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
