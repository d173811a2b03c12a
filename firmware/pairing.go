package firmware

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"

	"github.com/callbox/callbox/board"
	"github.com/callbox/callbox/board/pairing"
	"github.com/callbox/callbox/media"
	"github.com/callbox/callbox/peer/box"
)

// The board's HTTP API, used by the phone page:
//
//	GET  /api/state            the box's state, LED pattern and error message
//	                           for a paired phone (token as "Authorization:
//	                           Bearer T" or ?token=T); a stranger gets only
//	                           {"state":"unpaired",...} (loopback and the
//	                           simulated board, whose page is its LED,
//	                           see all)
//	POST /api/pair/request     long poll until the box's buttons approve this
//	                           phone: 200 {"token":...}, 408 when nobody has
//	                           pressed them yet (the page asks again)
//	POST /api/sim/button       {"button":"a"|"b"|"both","ms":N}; only on the
//	                           simulated board, 404 on real hardware
//
// The approval rule (docs/board.md, docs/security.md): a waiting phone
// makes the LED show "pairing", a short blue flash per waiting phone; pressing
// both buttons together admits the phones waiting at that moment, and no
// later one (there is no pairing window). At most two requests per
// address wait at once. Nothing here reveals media or tokens to an
// unpaired client.

// maxBoardAPIBody bounds request bodies: the largest legitimate one is a few
// dozen bytes.
const maxBoardAPIBody = 4 << 10

// boardAPIState is the /api/state answer.
type boardAPIState struct {
	State     string `json:"state"`
	LED       string `json:"led"`
	Message   string `json:"message"`
	Name      string `json:"name"`
	Simulated bool   `json:"simulated"`
	Paired    bool   `json:"paired"`
	Viewers   int    `json:"viewers"`
	// Beyond the page's contract, for people and scripts.
	Muted   bool `json:"muted"`
	Waiting int  `json:"waiting"` // phones waiting to pair (the LED's short blue flashes)
	Open    bool `json:"open"`    // pairing is off (open access)
	// Call is the call to another box (docs/peer.md, "Calls from the box").
	Call boardCallState `json:"call"`
	// Video is the codec the box sends, where it comes from and why
	// (docs/h264.md).
	Video *media.VideoChoice `json:"video,omitempty"`
	// Speaker is the box's own speaker and its echo cancellation
	// (docs/audio.md).
	Speaker *speakerAPIState `json:"speaker,omitempty"`
	// TalkBack is remote phones' push-to-talk on the speaker
	// (docs/webrtc.md, "Talk-back").
	TalkBack *talkBackState `json:"talkback,omitempty"`
	// Remote is S7 for phones away from home: the uplink estimate, the
	// remote phones, and whether they take one copy from the hub's relay
	// (docs/peer.md, "S7 in the appliance"); absent without a hub.
	Remote *remoteAPIState `json:"remote,omitempty"`
}

// boardCallState is /api/state's "call": idle, calling (also while a lost
// path is being re-established), direct or relayed, and the other box's
// name (only for a paired token: who the box talks to is not for
// strangers).
type boardCallState struct {
	State string `json:"state"`
	Peer  string `json:"peer,omitempty"`
	// Enabled: the box has a hub (--hub), so the page offers a call button.
	Enabled bool `json:"enabled"`
	// Pairing is the pairing with another box under way (for a paired
	// token only): the code to read out, the SAS both boxes show, whether
	// each owner confirmed (POST /api/call/pair/confirm).
	Pairing *box.Pairing `json:"pairing,omitempty"`
	// Missed are incoming calls nobody answered (for a paired token only).
	Missed []missedCall `json:"missed,omitempty"`
	// Peers are the paired boxes (for a paired token only): the page lets
	// the phone choose whom to call when there are several.
	Peers []callAPIPeer `json:"peers,omitempty"`
}

// callStateNames are boardCallState.State by board.Call.
var callStateNames = map[board.Call]string{
	board.CallIdle:    "idle",
	board.CallDialing: "calling",
	board.CallDirect:  "direct",
	board.CallRelayed: "relayed",
	board.CallRinging: "ringing",
}

func (p *boardPart) routes(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/state", p.handleState)
	mux.HandleFunc("POST /api/pair/request", p.handlePair)
	mux.HandleFunc("POST /api/sim/button", p.handleSimButton)
	p.phoneRoutes(mux)
}

// state is /api/state's answer for a request with token; local: from the
// box itself (loopback).
func (p *boardPart) state(token string, local bool) boardAPIState {
	st := p.box.Status()
	paired := p.box.Authorize(token) == nil
	if !paired && !p.netButtons && !local {
		// A stranger learns only that it must pair: not who watches, not
		// whether a call is on, not the configuration's errors, not
		// whether phones wait. (The box itself, on loopback, sees all, as
		// /metrics; so does everyone on the simulated board, whose page is
		// the board: anyone can press its buttons.)
		return boardAPIState{State: "unpaired", Message: "pair this phone: press both buttons on the box together"}
	}
	call := boardCallState{State: callStateNames[st.Call], Enabled: p.calls != nil && p.calls.callsEnabled()}
	if paired && st.Call != board.CallIdle && p.calls != nil {
		call.Peer = p.calls.peerLabel()
	}
	if paired && p.calls != nil {
		call.Pairing = p.calls.pairing()
		call.Missed = p.calls.missedCalls()
		call.Peers = p.calls.peers()
	}
	return boardAPIState{
		State:     st.State.String(),
		LED:       st.LED.Name,
		Message:   st.Message,
		Name:      p.cfg.Name,
		Simulated: p.netButtons, // the page offers its button row only where presses work
		Paired:    paired,
		Viewers:   st.Viewers,
		Muted:     st.Muted,
		Waiting:   st.Waiting,
		Open:      p.box.Open(),
		Call:      call,
		Video:     p.videoState(),
		Speaker:   p.speakerState(),
		TalkBack:  p.talk.apiState(),
		Remote:    p.remoteState(),
	}
}

// boardSpeaker is the speaker's state for /api/state.
type boardSpeaker interface{ state() *speakerAPIState }

func (p *boardPart) speakerState() *speakerAPIState {
	if p.speaker == nil {
		return nil
	}
	return p.speaker.state()
}

func (p *boardPart) remoteState() *remoteAPIState {
	if p.remote == nil {
		return nil
	}
	return p.remote.remoteState()
}

func (p *boardPart) videoState() *media.VideoChoice {
	if p.video == nil {
		return nil
	}
	v := p.video.videoChoice()
	if v.Name == "" {
		return nil // media not started yet
	}
	return &v
}

func (p *boardPart) handleState(w http.ResponseWriter, r *http.Request) {
	writeBoardJSON(w, http.StatusOK, p.state(requestToken(r), isLoopback(r.RemoteAddr)))
}

// requestToken is a request's pairing token: "Authorization: Bearer T"
// (the page), else ?token=T (scripts; a token in a URL can end up in
// histories and logs, so the page never puts it there).
func requestToken(r *http.Request) string {
	if h := r.Header.Get("Authorization"); h != "" {
		if t, ok := strings.CutPrefix(h, "Bearer "); ok {
			return strings.TrimSpace(t)
		}
	}
	return r.URL.Query().Get("token")
}

// boardPairRequest is the optional body of /api/pair/request.
type boardPairRequest struct {
	Name string `json:"name"` // how the owner will recognise the phone in logs
}

// parseBoardPairRequest decodes the optional body; an empty body is fine.
func parseBoardPairRequest(body []byte) (boardPairRequest, error) {
	var req boardPairRequest
	if strings.TrimSpace(string(body)) == "" {
		return req, nil
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return boardPairRequest{}, err
	}
	if len(req.Name) > pairing.MaxNameLen {
		return boardPairRequest{}, errors.New("name longer than 64 bytes")
	}
	return req, nil
}

func (p *boardPart) handlePair(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBoardAPIBody+1))
	if err != nil || len(body) > maxBoardAPIBody {
		writeBoardJSON(w, http.StatusBadRequest, map[string]string{"error": "unreadable or too large body"})
		return
	}
	req, err := parseBoardPairRequest(body)
	if err != nil {
		writeBoardJSON(w, http.StatusBadRequest, map[string]string{"error": "bad request: " + err.Error()})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), p.cfg.Pairing.RequestTimeout)
	defer cancel()
	// A long poll must not hold up the appliance's shutdown.
	defer context.AfterFunc(p.ctx, cancel)()
	// At most a couple of waiting requests per address (pairing.MaxWaitingPerAddr).
	host, _, herr := net.SplitHostPort(r.RemoteAddr)
	if herr != nil {
		host = r.RemoteAddr
	}
	tok, err := p.box.RequestPairing(ctx, req.Name, host)
	switch {
	case err == nil:
		if p.onToken != nil {
			p.onToken(tok) // the outputs: RTSP Digest needs the token in clear
		}
		writeBoardJSON(w, http.StatusOK, map[string]string{"token": tok})
	case errors.Is(err, context.DeadlineExceeded) && r.Context().Err() == nil:
		writeBoardJSON(w, http.StatusRequestTimeout, map[string]string{"error": "not approved yet: press both buttons on the box together"})
	case errors.Is(err, pairing.ErrTooMany):
		writeBoardJSON(w, http.StatusTooManyRequests, map[string]string{"error": err.Error()})
	case r.Context().Err() != nil:
		// The phone went away; nobody reads an answer.
	case p.ctx.Err() != nil:
		writeBoardJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "the box is shutting down"})
	default:
		writeBoardJSON(w, http.StatusConflict, map[string]string{"error": err.Error()})
	}
}

func (p *boardPart) handleSimButton(w http.ResponseWriter, r *http.Request) {
	if p.sim == nil || !p.netButtons {
		// Real buttons only: the page must not be able to press them.
		http.NotFound(w, r)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBoardAPIBody+1))
	if err != nil || len(body) > maxBoardAPIBody {
		writeBoardJSON(w, http.StatusBadRequest, map[string]string{"error": "unreadable or too large body"})
		return
	}
	press, err := board.ParseSimPress(body)
	if err != nil {
		writeBoardJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	if err := p.sim.Push(press); err != nil {
		writeBoardJSON(w, http.StatusServiceUnavailable, map[string]string{"error": err.Error()})
		return
	}
	writeBoardJSON(w, http.StatusOK, p.state(requestToken(r), isLoopback(r.RemoteAddr)))
}

func writeBoardJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}
