package hub

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/callbox/callbox/peer/proto"
	"github.com/callbox/callbox/relay"
	rwebrtc "github.com/callbox/callbox/relay/webrtc"
	"github.com/coder/websocket"
)

// S7 for phones away from home (docs/peer.md, "S7 in the appliance"). A
// box whose uplink cannot carry one copy per remote phone publishes one
// copy to its fan-out relay here and says so on its publish connection
// (proto.FanoutControl, Phones "hub"). The phones learn it from the hub,
// which is already their signalling server:
//
//	GET  /box/<id>/media?v=N     long poll: {"v","mode","whep"} as soon as it differs from version N (25 s at most)
//	POST /box/<id>/hub/whep      WHEP offer, answered by the hub's relay (relay/webrtc over the box's relay.Relay)
//	DELETE /box/<id>/hub/whep/<session>
//
// Every request carries the phone's credential, checked as for
// /box/<id>/whep. Why a long poll on the hub rather than a message on the
// media session (a data channel): the phone must learn of a move whichever
// session it has, the box's or the hub's, and the hub is the one party on
// both paths; it also keeps SCTP out of the box's and the hub's WebRTC
// sessions, and works in every browser with a plain fetch.

// phoneMediaPoll bounds one long poll (below common proxies' idle limits).
const phoneMediaPoll = 25 * time.Second

// phoneRecent is how long after a phone's last poll its box may publish
// to the fan-out relay without a pairing with another box.
const phoneRecent = 10 * time.Minute

// phoneMedia is where each box's phones take its media now, versioned for
// the long polls.
type phoneMedia struct {
	mu sync.Mutex
	m  map[string]*phoneMediaState
}

type phoneMediaState struct {
	v       uint64
	hub     bool
	changed chan struct{} // closed at the next change
	seen    time.Time     // a phone's last poll
}

// PhoneMedia is the answer of GET /box/<id>/media.
type PhoneMedia struct {
	V    uint64 `json:"v"`
	Mode string `json:"mode"` // proto.PhonesDirect or proto.PhonesHub
	WHEP string `json:"whep"` // where a phone offers now (path on the hub)
}

func (p *phoneMedia) state(box string, create bool) *phoneMediaState {
	if p.m == nil {
		p.m = map[string]*phoneMediaState{}
	}
	s := p.m[box]
	if s == nil && create {
		s = &phoneMediaState{v: 1, changed: make(chan struct{})}
		p.m[box] = s
	}
	return s
}

// set records where box wants its phones: mode, but the hub only when its
// relay has video to give them (ready).
func (p *phoneMedia) set(box, mode string, ready bool) {
	hub := mode == proto.PhonesHub && ready
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.state(box, hub)
	if s == nil || s.hub == hub {
		return
	}
	s.hub = hub
	s.v++
	close(s.changed)
	s.changed = make(chan struct{})
}

// recent reports whether a phone of box polled lately.
func (p *phoneMedia) recent(box string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.state(box, false)
	return s != nil && time.Since(s.seen) < phoneRecent
}

// wait returns box's state once its version differs from v, or when ctx
// ends.
func (p *phoneMedia) wait(ctx context.Context, box string, v uint64) PhoneMedia {
	for {
		p.mu.Lock()
		s := p.state(box, true)
		s.seen = time.Now()
		cur, hub, ch := s.v, s.hub, s.changed
		p.mu.Unlock()
		if cur != v || ctx.Err() != nil {
			m := PhoneMedia{V: cur, Mode: proto.PhonesDirect, WHEP: "/box/" + box + "/whep"}
			if hub {
				m.Mode, m.WHEP = proto.PhonesHub, "/box/"+box+"/hub/whep"
			}
			return m
		}
		select {
		case <-ch:
		case <-ctx.Done():
		}
	}
}

// newPhoneWHEP is the WHEP endpoint of a box's fan-out relay for its
// phones: the same WebRTC transport and per-client policy as the box's
// own (the hub checks the credential before it passes a request on).
func (f *FanoutRelay) newPhoneWHEP(r *relay.Relay, box string) (*rwebrtc.Server, error) {
	return rwebrtc.New(r, rwebrtc.Config{NAT1To1IPs: f.hub.cfg.PublicIPs, MaxPeers: 64, Path: "/box/" + box + "/hub/whep",
		// A session belongs to the phone whose credential opened it (its
		// token ID), so a phone the box unpairs is cut off (setAllowed).
		Owner: func(cred string) string { id, _, _ := strings.Cut(cred, "."); return id },
		Log:   f.log.With("fanout-phones", box)})
}

// setAllowed takes the box's list of paired phones and ends the sessions
// of those no longer on it.
func (f *FanoutRelay) setAllowed(box string, room *fanoutRoom, ids []string) {
	next := make(map[string]bool, len(ids))
	for _, id := range ids {
		next[id] = true
	}
	f.mu.Lock()
	prev := room.allowed
	room.allowed = next
	f.mu.Unlock()
	for id := range prev {
		if !next[id] {
			if n := room.whep.CloseOwner(id, "unpaired by the box"); n > 0 {
				f.log.Info("fan-out: a phone the box unpaired was cut off", "box", box, "phone", id[:8], "sessions", n)
			}
		}
	}
}

// admits reports whether the box lists phone as paired.
func (f *FanoutRelay) admits(room *fanoutRoom, phone string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return room.allowed[phone]
}

// phoneControl tells the box, on its publish connection, how many phones
// the hub's relay serves (the box's S7 decision counts them) and when
// one needs a keyframe.
func (f *FanoutRelay) phoneControl(ctx context.Context, c *websocket.Conn, room *fanoutRoom, keyReq <-chan struct{}) {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	last := -1
	send := func(m proto.FanoutControl) bool {
		b, _ := json.Marshal(m)
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		return c.Write(wctx, websocket.MessageText, b) == nil
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-keyReq:
			if !send(proto.FanoutControl{Keyframe: true}) {
				return
			}
		case <-t.C:
			n := room.whep.Peers()
			if n == last {
				continue
			}
			if !send(proto.FanoutControl{Viewers: &n}) {
				return
			}
			last = n
		}
	}
}

func (f *FanoutRelay) room(box string) *fanoutRoom {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.rooms[box]
}

// servePhoneFanout serves /box/<id>/media and /box/<id>/hub/whep[/<session>].
func (h *Hub) servePhoneFanout(w http.ResponseWriter, r *http.Request, box string, rest []string) {
	f := h.fanout
	if f == nil {
		http.NotFound(w, r)
		return
	}
	media := len(rest) == 1 && rest[0] == "media"
	whep := rest[0] == "hub" && len(rest) >= 2 && len(rest) <= 3 && rest[1] == "whep"
	if !media && !whep {
		http.NotFound(w, r)
		return
	}
	if whep && r.Method == http.MethodOptions {
		h.phoneOptions(w)
		return
	}
	if media && r.Method != http.MethodGet {
		w.Header().Set("Allow", "GET")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	cred, code, err := h.phoneCredential(r, box)
	if err != nil {
		if code == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", `Bearer realm="callbox"`)
		}
		http.Error(w, err.Error(), code)
		return
	}
	if media {
		v, _ := strconv.ParseUint(r.URL.Query().Get("v"), 10, 64)
		ctx, cancel := context.WithTimeout(r.Context(), phoneMediaPoll)
		defer cancel()
		m := f.phones.wait(ctx, box, v)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_ = json.NewEncoder(w).Encode(m)
		return
	}
	room := f.room(box)
	if room == nil {
		w.Header().Set("Retry-After", "1")
		http.Error(w, "the box is not publishing to the hub: use /box/"+box+"/whep", http.StatusServiceUnavailable)
		return
	}
	if !f.admits(room, cred.TokenID) {
		// Signed by the box, but the box no longer lists it (unpaired).
		w.Header().Set("WWW-Authenticate", `Bearer realm="callbox"`)
		http.Error(w, "unpaired: pair at home first", http.StatusUnauthorized)
		return
	}
	room.whep.ServeHTTP(w, r)
}
