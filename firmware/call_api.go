package firmware

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/callbox/callbox/peer/box"
	"github.com/callbox/callbox/peer/proto"
)

// The call API (docs/peer.md, "Calls from the box"), for paired phones
// only (the token as ?token= or "Authorization: Bearer T"; anyone with
// --open):
//
//	GET    /api/call   the call and the paired boxes
//	POST   /api/call   call a paired box: optional body {"peer":"name or ID"}
//	                   (default --peer, or the only paired box)
//	DELETE /api/call   hang up, cancel a call being set up, or decline one
//	                   that rings
//	POST   /api/call/answer  take the incoming call that rings (409: none)
//	DELETE /api/call/missed  forget the missed calls the page lists
//	POST /api/call/pair  pair with another box through the hub: an empty
//	                   body asks for a 10-digit code ({"code","expires"}:
//	                   the other box enters it within 5 minutes), a body
//	                   {"code":"1234-567890"} enters the other box's code;
//	                   then both boxes show the same 6-digit "sas" in
//	                   /api/state's call.pairing
//	POST /api/call/pair/confirm  this box's owner saw the same SAS on both
//	                   boxes; the pairing holds once both boxes confirmed
//	DELETE /api/call/pair  cancel the pairing under way
//
// Every answer is the callAPIState after the request. /api/state carries
// the call's state too, for everyone, and the peer's name for paired tokens.

// callAPIState is /api/call's answer.
type callAPIState struct {
	// Enabled: the box has a hub (--hub); Registered: the hub welcomed it.
	Enabled    bool `json:"enabled"`
	Registered bool `json:"registered"`
	// State is idle, ringing, calling, direct or relayed (as /api/state's
	// call.state).
	State string `json:"state"`
	Peer  string `json:"peer,omitempty"`
	// Path is host, srflx or relay while connected: host and srflx are
	// direct (private addresses on one LAN; through the NATs).
	Path  string        `json:"path,omitempty"`
	Peers []callAPIPeer `json:"peers"`
	Error string        `json:"error,omitempty"`
	Last  *box.Summary  `json:"last,omitempty"` // the call in progress (its figures so far)
	// Missed are incoming calls nobody answered within call.ring_timeout.
	Missed []missedCall `json:"missed"`
}

type callAPIPeer struct {
	ID     string `json:"id"`
	Name   string `json:"name,omitempty"`
	Online bool   `json:"online"`
}

// callAPIRequest is POST /api/call's optional body.
type callAPIRequest struct {
	Peer string `json:"peer"`
}

func (p *peerPart) routes(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/call", p.handleCallGet)
	mux.HandleFunc("POST /api/call", p.handleCallStart)
	mux.HandleFunc("DELETE /api/call", p.handleCallEnd)
	mux.HandleFunc("POST /api/call/answer", p.handleCallAnswer)
	mux.HandleFunc("DELETE /api/call/missed", p.handleMissedClear)
	mux.HandleFunc("POST /api/call/pair", p.handleCallPair)
	mux.HandleFunc("POST /api/call/pair/confirm", p.handleCallPairConfirm)
	mux.HandleFunc("DELETE /api/call/pair", p.handleCallPairCancel)
	mux.HandleFunc("GET /api/remote", p.handleRemote)
}

// callAuthorized checks the request's token against the board's pairing.
func (p *peerPart) callAuthorized(w http.ResponseWriter, r *http.Request) bool {
	if p.board.Authorize(requestToken(r)) != nil {
		w.Header().Set("WWW-Authenticate", `Bearer realm="callbox"`)
		writeBoardJSON(w, http.StatusUnauthorized, map[string]string{"error": "not paired: pair this phone with the box first"})
		return false
	}
	return true
}

func (p *peerPart) apiState(errMsg string) callAPIState {
	client, caller := p.current()
	st := callAPIState{Enabled: p.hubURL != "", Registered: client != nil, State: callStateNames[p.board.callState()],
		Peers: []callAPIPeer{}, Error: errMsg, Missed: p.missedCalls()}
	if st.Missed == nil {
		st.Missed = []missedCall{}
	}
	st.Peers = append(st.Peers, p.peers()...)
	if caller != nil {
		if cur := caller.Current(); cur != nil {
			cs := cur.State()
			st.Peer = peerLabel(cs.Name, cs.Peer)
			st.Path = string(cs.Path)
			sum := cur.Summary()
			st.Last = &sum
		}
	}
	return st
}

// peers are the paired boxes (none before the hub welcomed the box).
func (p *peerPart) peers() []callAPIPeer {
	client, _ := p.current()
	if client == nil {
		return nil
	}
	var out []callAPIPeer
	for _, pi := range client.Peers() {
		out = append(out, callAPIPeer{ID: pi.ID, Name: pi.Name, Online: pi.Online})
	}
	return out
}

func (p *peerPart) handleCallGet(w http.ResponseWriter, r *http.Request) {
	if !p.callAuthorized(w, r) {
		return
	}
	writeBoardJSON(w, http.StatusOK, p.apiState(""))
}

func (p *peerPart) handleCallStart(w http.ResponseWriter, r *http.Request) {
	if !p.callAuthorized(w, r) {
		return
	}
	var req callAPIRequest
	if !readOptionalJSON(w, r, &req) {
		return
	}
	err := p.call(req.Peer)
	code := http.StatusOK
	switch {
	case err == nil:
	case errors.Is(err, errNoHub), errors.Is(err, errHubDown), errors.Is(err, errCallsOff):
		code = http.StatusServiceUnavailable
	case errors.Is(err, proto.ErrUnknownPeer):
		code = http.StatusNotFound
	case errors.Is(err, errNoPeer):
		code = http.StatusBadRequest
	case errors.Is(err, errBusy):
		code = http.StatusConflict
	default:
		code = http.StatusInternalServerError
	}
	msg := ""
	if err != nil {
		msg = err.Error()
		p.log.Warn("call from the API", "err", err)
	}
	writeBoardJSON(w, code, p.apiState(msg))
}

func (p *peerPart) handleCallEnd(w http.ResponseWriter, r *http.Request) {
	if !p.callAuthorized(w, r) {
		return
	}
	p.hangUp()
	writeBoardJSON(w, http.StatusOK, p.apiState(""))
}

func (p *peerPart) handleCallAnswer(w http.ResponseWriter, r *http.Request) {
	if !p.callAuthorized(w, r) {
		return
	}
	if !readOptionalJSON(w, r, &struct{}{}) {
		return
	}
	if err := p.answer(); err != nil {
		writeBoardJSON(w, http.StatusConflict, p.apiState(err.Error()))
		return
	}
	writeBoardJSON(w, http.StatusOK, p.apiState(""))
}

func (p *peerPart) handleMissedClear(w http.ResponseWriter, r *http.Request) {
	if !p.callAuthorized(w, r) {
		return
	}
	p.clearMissed()
	writeBoardJSON(w, http.StatusOK, p.apiState(""))
}

// callPairRequest is POST /api/call/pair's optional body.
type callPairRequest struct {
	Code string `json:"code"`
}

// handleCallPair pairs this box with another through the hub, while the
// appliance runs: its registration is the box's identity, so a second
// process (`callbox call --pair`) with the same identity would take its
// place on the hub.
func (p *peerPart) handleCallPair(w http.ResponseWriter, r *http.Request) {
	if !p.callAuthorized(w, r) {
		return
	}
	var req callPairRequest
	if !readOptionalJSON(w, r, &req) {
		return
	}
	client, _ := p.current()
	switch {
	case p.hubURL == "":
		writeBoardJSON(w, http.StatusServiceUnavailable, map[string]string{"error": errNoHub.Error()})
		return
	case client == nil:
		writeBoardJSON(w, http.StatusServiceUnavailable, map[string]string{"error": errHubDown.Error()})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	if req.Code == "" {
		// The box pins the other one when the hub reports the pairing,
		// whoever is waiting for it.
		code, exp, err := client.RequestPairCode(ctx)
		if err != nil {
			writeBoardJSON(w, http.StatusBadGateway, map[string]string{"error": err.Error()})
			return
		}
		p.log.Info("pairing code for another box", "expires", exp.UTC().Format(time.RFC3339))
		writeBoardJSON(w, http.StatusOK, map[string]string{"code": code, "expires": exp.UTC().Format(time.RFC3339)})
		return
	}
	code := proto.NormalizePairCode(req.Code)
	if !proto.ValidPairCode(code) {
		// The hub drops a malformed code unanswered: say so now.
		writeBoardJSON(w, http.StatusBadRequest, map[string]string{"error": fmt.Sprintf("a pairing code is %d digits", proto.PairCodeLen)})
		return
	}
	pi, err := client.JoinPairCode(ctx, code)
	if err != nil {
		// The hub refuses a wrong or expired code, and limits wrong codes
		// per connection, per address and hub-wide.
		writeBoardJSON(w, http.StatusConflict, map[string]string{"error": err.Error()})
		return
	}
	p.log.Info("pairing code accepted; compare the codes on both boxes", "peer", peerLabel(pi.PeerName, pi.PeerID))
	writeBoardJSON(w, http.StatusOK, map[string]any{"pairing": pi})
}

// handleCallPairConfirm is the owner's "both boxes show the same code".
func (p *peerPart) handleCallPairConfirm(w http.ResponseWriter, r *http.Request) {
	if !p.callAuthorized(w, r) {
		return
	}
	if !readOptionalJSON(w, r, &struct{}{}) {
		return
	}
	client, _ := p.current()
	if client == nil {
		writeBoardJSON(w, http.StatusServiceUnavailable, map[string]string{"error": errHubDown.Error()})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	if err := client.ConfirmPairing(ctx); err != nil {
		code := http.StatusBadGateway
		if errors.Is(err, box.ErrNoPairing) {
			code = http.StatusConflict
		}
		writeBoardJSON(w, code, map[string]string{"error": err.Error()})
		return
	}
	pi := client.Pairing()
	p.log.Info("pairing confirmed on this box", "peer", peerLabel(pi.PeerName, pi.PeerID))
	writeBoardJSON(w, http.StatusOK, map[string]any{"pairing": pi})
}

// handleCallPairCancel drops the pairing under way.
func (p *peerPart) handleCallPairCancel(w http.ResponseWriter, r *http.Request) {
	if !p.callAuthorized(w, r) {
		return
	}
	client, _ := p.current()
	if client == nil {
		writeBoardJSON(w, http.StatusServiceUnavailable, map[string]string{"error": errHubDown.Error()})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	if err := client.CancelPairing(ctx); err != nil {
		writeBoardJSON(w, http.StatusBadGateway, map[string]string{"error": err.Error()})
		return
	}
	writeBoardJSON(w, http.StatusOK, map[string]any{"pairing": client.Pairing()})
}

// pairing is the pairing under way, for /api/state (nil: none).
func (p *peerPart) pairing() *box.Pairing {
	client, _ := p.current()
	if client == nil {
		return nil
	}
	pi := client.Pairing()
	if pi.Stage == box.PairNone {
		return nil
	}
	return &pi
}

// readOptionalJSON decodes r's body, if it has one, into v; on a bad body it
// answers 400 and returns false.
func readOptionalJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBoardAPIBody+1))
	if err != nil || len(body) > maxBoardAPIBody {
		writeBoardJSON(w, http.StatusBadRequest, map[string]string{"error": "unreadable or too large body"})
		return false
	}
	if strings.TrimSpace(string(body)) == "" {
		return true
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeBoardJSON(w, http.StatusBadRequest, map[string]string{"error": "bad request: " + err.Error()})
		return false
	}
	return true
}
