package webrtc

import (
	pion "github.com/pion/webrtc/v4"
)

// RemoteOptions are a session's own settings beyond the offer: who it
// belongs to (AnswerRemoteWith; a LAN session's owner comes from
// Config.Owner).
type RemoteOptions struct {
	// Owner is the phone the session belongs to (for a phone away from
	// home, the token ID its credential names): CloseOwner ends its
	// sessions, and the relay's DisconnectOwner its relay sessions.
	Owner string
	// TalkBack, when set, takes the phone's microphone (talk-back from a
	// paired phone away from home: docs/webrtc.md): a phone that offers
	// its audio as sendrecv gets a sendrecv answer, and TalkBack runs
	// with the phone's audio track once its first packet arrives, on a
	// goroutine of its own, reading until the track ends (the session
	// closed). Without it, whatever a phone sends is read and dropped.
	TalkBack func(track *pion.TrackRemote)
}

// incoming handles a track the phone sends: its microphone goes to
// talkBack when there is one; anything else is read and dropped (pion
// would otherwise buffer it).
func (p *peer) incoming(tr *pion.TrackRemote, talkBack func(*pion.TrackRemote)) {
	if tr.Kind() == pion.RTPCodecTypeAudio && talkBack != nil {
		p.srv.log.Info("webrtc: talk-back track", "peer", p.id, "remote", p.remote, "codec", tr.Codec().MimeType)
		talkBack(tr)
		return
	}
	buf := make([]byte, 1500)
	for {
		if _, _, err := tr.Read(buf); err != nil {
			return
		}
	}
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
