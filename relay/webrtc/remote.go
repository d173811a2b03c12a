package webrtc

// RemoteOptions are a session's own settings beyond the offer: who it
// belongs to (AnswerRemoteWith; a LAN session's owner comes from
// Config.Owner).
type RemoteOptions struct {
	// Owner is the phone the session belongs to (for a phone away from
	// home, the token ID its credential names): CloseOwner ends its
	// sessions, and the relay's DisconnectOwner its relay sessions.
	Owner string
}

// CloseOwner ends every session of one phone (connected or still
// connecting) and returns how many: the owner revoked it.
func (s *Server) CloseOwner(owner, why string) int {
	if owner == "" {
		return 0
	}
	s.mu.Lock()
	var ps []*peer
	for _, p := range s.peers {
		if p.owner == owner {
			ps = append(ps, p)
		}
	}
	s.mu.Unlock()
	for _, p := range ps {
		p.close(why)
	}
	return len(ps)
}
