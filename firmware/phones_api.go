package firmware

import (
	"errors"
	"net/http"
	"time"

	"github.com/callbox/callbox/board/pairing"
)

// The paired phones, for their owner (docs/security.md, "Unpairing one
// phone"):
//
//	GET    /api/phones       the paired phones: id, name, when paired, and
//	                         which one is asking ("this"); paired token only
//	DELETE /api/phones/{id}  unpair that phone: its LAN token and its
//	                         remote credential stop working at once, and
//	                         its live sessions (the box's media on the LAN
//	                         and away from home, the call's media) end
//
// A phone's id is the first 16 hex digits of its token's hash: enough to
// name one of a handful of phones, and not the whole hash a remote
// credential names. Any paired phone may unpair any other (they are the
// household's; the box's buttons pair them all alike); the page asks for a
// confirmation.

// phoneIDLen is the length of a phone's id in the API.
const phoneIDLen = 16

// phoneAPIEntry is one phone in GET /api/phones.
type phoneAPIEntry struct {
	ID     string    `json:"id"`
	Name   string    `json:"name,omitempty"`
	Paired time.Time `json:"paired"`
	This   bool      `json:"this,omitempty"` // the phone that asks
}

func (p *boardPart) phoneRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/phones", p.handlePhones)
	mux.HandleFunc("DELETE /api/phones/{id}", p.handlePhoneRevoke)
}

// phoneAuthorized admits paired tokens only (in open mode there are no
// phones to list: nobody is admitted either).
func (p *boardPart) phoneAuthorized(w http.ResponseWriter, r *http.Request) (string, bool) {
	tok := requestToken(r)
	if tok == "" || p.box == nil || p.box.Open() || p.box.AuthorizeHash(pairing.Hash(tok)) != nil {
		w.Header().Set("WWW-Authenticate", `Bearer realm="callbox"`)
		writeBoardJSON(w, http.StatusUnauthorized, map[string]string{"error": "not paired: pair this phone with the box first"})
		return "", false
	}
	return pairing.Hash(tok), true
}

func (p *boardPart) handlePhones(w http.ResponseWriter, r *http.Request) {
	me, ok := p.phoneAuthorized(w, r)
	if !ok {
		return
	}
	out := []phoneAPIEntry{}
	for _, t := range p.box.Phones() {
		out = append(out, phoneAPIEntry{ID: t.Hash[:phoneIDLen], Name: t.Name, Paired: t.Paired, This: t.Hash == me})
	}
	w.Header().Set("Cache-Control", "no-store")
	writeBoardJSON(w, http.StatusOK, map[string]any{"phones": out})
}

func (p *boardPart) handlePhoneRevoke(w http.ResponseWriter, r *http.Request) {
	if _, ok := p.phoneAuthorized(w, r); !ok {
		return
	}
	id := r.PathValue("id")
	hash := ""
	if len(id) == phoneIDLen {
		for _, t := range p.box.Phones() {
			if t.Hash[:phoneIDLen] == id {
				hash = t.Hash
			}
		}
	}
	if hash == "" {
		writeBoardJSON(w, http.StatusNotFound, map[string]string{"error": "no such paired phone"})
		return
	}
	t, err := p.box.RevokePhone(hash)
	if errors.Is(err, pairing.ErrNoSuchPhone) {
		writeBoardJSON(w, http.StatusNotFound, map[string]string{"error": "no such paired phone"})
		return
	}
	if err != nil {
		p.log.Error("board: unpairing a phone", "err", err)
		writeBoardJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
		return
	}
	ended := p.endPhone(hash)
	p.log.Info("board: phone unpaired by its owner", "phone", id, "name", t.Name, "sessions_ended", ended)
	writeBoardJSON(w, http.StatusOK, map[string]any{"id": id, "name": t.Name, "sessions_ended": ended})
}

// endPhone ends the live sessions of a phone just unpaired: the box's
// relay (TCP, WebSocket, WebRTC on the LAN and away from home), then the
// other parts' (onRevoke: the call's relay, the remote sessions' record).
// It returns how many sessions ended.
func (p *boardPart) endPhone(hash string) int {
	n := 0
	if p.relay != nil {
		n += p.relay.disconnectPhone(hash)
	}
	p.mu.Lock()
	more := p.revokeHooks
	p.mu.Unlock()
	for _, f := range more {
		n += f(hash)
	}
	return n
}

// onRevoke adds f to what ends an unpaired phone's sessions (it returns
// how many it ended).
func (p *boardPart) onRevoke(f func(hash string) int) {
	p.mu.Lock()
	p.revokeHooks = append(p.revokeHooks, f)
	p.mu.Unlock()
}
