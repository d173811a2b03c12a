package hub

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/callbox/callbox/peer/hub/cluster"
	"github.com/callbox/callbox/peer/hub/store"
	"github.com/callbox/callbox/peer/proto"
)

// Phones away from home (docs/peer.md): the hub serves the phone page at
// /box/<box id> and its WHEP-like signalling at /box/<box id>/whep. A POST
// carries the phone's SDP offer and, as its bearer token, the credential
// the box signed (proto.IssuePhoneCredential). The hub checks the
// signature against the box's registered key (it keeps no secret for
// phones), forwards the offer over the box's own hub connection with fresh
// TURN credentials for the box, and returns the box's answer. Media never
// passes through the hub except through its TURN relay, when ICE needs it.

// phoneAnswerTimeout bounds the wait for the box's answer (it gathers
// host, server-reflexive and relayed candidates before answering).
const phoneAnswerTimeout = 10 * time.Second

// maxPhoneOffers bounds the offers waiting for one box's answer.
const maxPhoneOffers = 8

// maxPhoneOffer bounds a phone's SDP offer (a browser's is 4-8 KB).
const maxPhoneOffer = 32 << 10

// phoneWaits are the offers forwarded to boxes on this instance, waiting
// for their answers: box ID -> request ID -> the waiter. A waiter is a
// phone on this instance (ch), or one on another instance of a cluster
// (inst: the answer is told to it); both count against maxPhoneOffers.
type phoneWaits struct {
	mu sync.Mutex
	m  map[string]map[string]*phoneWait
}

type phoneWait struct {
	ch   chan proto.Message // a phone waiting on this instance
	inst string             // or the instance a phone waits on
}

func (w *phoneWaits) put(box, id string, pw *phoneWait) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.m == nil {
		w.m = map[string]map[string]*phoneWait{}
	}
	if len(w.m[box]) >= maxPhoneOffers {
		return errors.New("too many phones connecting to this box at once")
	}
	if w.m[box] == nil {
		w.m[box] = map[string]*phoneWait{}
	}
	if _, dup := w.m[box][id]; dup {
		return errors.New("duplicate request ID")
	}
	w.m[box][id] = pw
	return nil
}

// add makes a waiter for a phone on this instance.
func (w *phoneWaits) add(box, id string) (chan proto.Message, error) {
	ch := make(chan proto.Message, 1)
	return ch, w.put(box, id, &phoneWait{ch: ch})
}

// addRemote makes a waiter for a phone on instance inst; it is forgotten
// after phoneAnswerTimeout, the longest that phone waits.
func (w *phoneWaits) addRemote(box, id, inst string) error {
	pw := &phoneWait{inst: inst}
	if err := w.put(box, id, pw); err != nil {
		return err
	}
	time.AfterFunc(phoneAnswerTimeout, func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		if w.m[box][id] == pw {
			w.removeLocked(box, id)
		}
	})
	return nil
}

func (w *phoneWaits) remove(box, id string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.removeLocked(box, id)
}

func (w *phoneWaits) removeLocked(box, id string) {
	delete(w.m[box], id)
	if len(w.m[box]) == 0 {
		delete(w.m, box)
	}
}

// take removes and returns the waiter for a box's phone_answer; nil when
// none waits (late, or a request ID the hub never made for this box).
func (w *phoneWaits) take(box, id string) *phoneWait {
	w.mu.Lock()
	defer w.mu.Unlock()
	pw := w.m[box][id]
	if pw != nil {
		w.removeLocked(box, id)
	}
	return pw
}

// deliver hands a phone_answer to a phone waiting on this instance; false
// when none waits here.
func (w *phoneWaits) deliver(box string, m proto.Message) bool {
	w.mu.Lock()
	pw := w.m[box][m.Call]
	if pw == nil || pw.ch == nil {
		w.mu.Unlock()
		return false
	}
	w.removeLocked(box, m.Call)
	w.mu.Unlock()
	pw.ch <- m
	return true
}

// phoneAnswered routes a box's phone_answer to its waiter: a phone here,
// or the instance where the phone waits.
func (h *Hub) phoneAnswered(box string, m *proto.Message) {
	pw := h.phones.take(box, m.Call)
	switch {
	case pw == nil:
		h.cfg.Log.Debug("phone answer nobody waits for", "box", box, "request", m.Call)
	case pw.ch != nil:
		pw.ch <- *m
	case h.cluster != nil:
		b, err := json.Marshal(m)
		if err == nil {
			err = h.cluster.Tell(pw.inst, cluster.Msg{Kind: cluster.KindPhoneAnswer, Box: box, Body: b})
		}
		if err != nil {
			h.cfg.Log.Warn("cluster: phone answer", "box", box, "instance", pw.inst, "err", err)
		}
	}
}

// phoneToCluster hands a phone_offer or phone_bye for box, not connected
// here, to the instance that holds it: ErrOffline (wrapped) when none does.
func (h *Hub) phoneToCluster(ctx context.Context, box string, m *proto.Message) error {
	if h.cluster == nil {
		return fmt.Errorf("%w: %s", cluster.ErrOffline, box)
	}
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	_, err = h.cluster.Request(ctx, box, cluster.Msg{Kind: cluster.KindPhone, Body: b})
	return err
}

// phoneFromCluster takes a phone_offer or phone_bye another instance
// forwards for box (connected here): an offer's answer goes back to that
// instance. It runs on the cluster's dispatch goroutine: it must not block.
func (h *Hub) phoneFromCluster(box string, cm cluster.Msg) error {
	m, err := proto.ParseMessage(cm.Body)
	if err != nil {
		return fmt.Errorf("cluster %s: %w", cm.Kind, err)
	}
	if m.Type != proto.TypePhoneOffer && m.Type != proto.TypePhoneBye {
		return fmt.Errorf("%w: cluster %s carries a %q", proto.ErrBadMessage, cm.Kind, m.Type)
	}
	h.mu.Lock()
	s := h.sessions[box]
	h.mu.Unlock()
	if s == nil {
		return errNotHere
	}
	if m.Type == proto.TypePhoneOffer {
		if err := h.phones.addRemote(box, m.Call, cm.Instance); err != nil {
			return err
		}
	}
	if err := s.Send(m); err != nil {
		h.phones.remove(box, m.Call)
		return err
	}
	return nil
}

// PhoneHandler serves /box/ (mount it there): the page and its signalling.
func (h *Hub) PhoneHandler() http.Handler {
	return http.HandlerFunc(h.servePhone)
}

func (h *Hub) servePhone(w http.ResponseWriter, r *http.Request) {
	rest, ok := strings.CutPrefix(r.URL.Path, "/box/")
	if !ok {
		http.NotFound(w, r)
		return
	}
	parts := strings.Split(strings.TrimSuffix(rest, "/"), "/")
	if !proto.ValidBoxID(parts[0]) {
		http.Error(w, "no such box", http.StatusNotFound)
		return
	}
	box := parts[0]
	switch {
	case len(parts) == 1:
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		h.phonePage(w, box)
	case len(parts) == 2 && parts[1] == "whep":
		switch r.Method {
		case http.MethodOptions:
			h.phoneOptions(w)
		case http.MethodPost:
			h.phoneOffer(w, r, box)
		default:
			w.Header().Set("Allow", "POST, OPTIONS")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		}
	case len(parts) >= 2 && (parts[1] == "media" || parts[1] == "hub"):
		h.servePhoneFanout(w, r, box, parts[1:]) // S7: phone_fanout.go
	case len(parts) == 3 && parts[1] == "whep":
		w.Header().Set("Allow", "DELETE")
		if r.Method != http.MethodDelete {
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		h.phoneBye(w, r, box, parts[2])
	default:
		http.NotFound(w, r)
	}
}

// phoneOptions answers the WHEP client's OPTIONS: the hub's clock and its
// STUN servers as ice-server links (RFC 9725 section 4.6).
func (h *Hub) phoneOptions(w http.ResponseWriter) {
	w.Header().Set("Callbox-Time", strconv.FormatInt(time.Now().UnixNano(), 10))
	w.Header().Set("Accept-Post", "application/sdp")
	for _, u := range h.cfg.STUNURLs {
		w.Header().Add("Link", "<"+u+`>; rel="ice-server"`)
	}
	w.WriteHeader(http.StatusNoContent)
}

// phoneCredential checks the bearer credential of r for box.
func (h *Hub) phoneCredential(r *http.Request, box string) (proto.PhoneCredential, int, error) {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || tok == "" {
		return proto.PhoneCredential{}, http.StatusUnauthorized, errors.New("pair at home first: no credential")
	}
	ctx, cancel := storeCtx()
	defer cancel()
	rec, err := h.store.GetBox(ctx, box)
	if errors.Is(err, store.ErrNotFound) {
		return proto.PhoneCredential{}, http.StatusUnauthorized, errors.New("pair at home first: unknown box")
	}
	if err != nil {
		return proto.PhoneCredential{}, http.StatusServiceUnavailable, err
	}
	c, err := proto.VerifyPhoneCredential(box, rec.Key, strings.TrimSpace(tok), h.cfg.Now())
	if err != nil {
		return proto.PhoneCredential{}, http.StatusUnauthorized, fmt.Errorf("pair at home first: %w", err)
	}
	return c, 0, nil
}

func (h *Hub) phoneOffer(w http.ResponseWriter, r *http.Request, box string) {
	ct, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || ct != "application/sdp" {
		http.Error(w, "want Content-Type: application/sdp", http.StatusUnsupportedMediaType)
		return
	}
	cred, code, err := h.phoneCredential(r, box)
	if err != nil {
		h.cfg.Log.Info("phone refused", "box", box, "remote", r.RemoteAddr, "err", err)
		if code == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", `Bearer realm="callbox"`)
		}
		http.Error(w, err.Error(), code)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxPhoneOffer+1))
	if err != nil || len(body) == 0 || len(body) > maxPhoneOffer {
		http.Error(w, "unreadable, empty or too large offer", http.StatusBadRequest)
		return
	}
	var idb [12]byte
	_, _ = rand.Read(idb[:])
	id := "ph-" + hex.EncodeToString(idb[:])
	ch, err := h.phones.add(box, id)
	if err != nil {
		w.Header().Set("Retry-After", "2")
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	defer h.phones.remove(box, id)
	// The hub checked the phone: the box gets TURN credentials for it even
	// without a pairing with another box.
	m := proto.Message{Type: proto.TypePhoneOffer, Call: id, Token: r.Header.Get("Authorization")[len("Bearer "):], SDP: string(body), ICE: h.iceServers(box, true)}
	m.Token = strings.TrimSpace(m.Token)
	if err := m.Validate(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), phoneAnswerTimeout)
	defer cancel()
	h.mu.Lock()
	s := h.sessions[box]
	h.mu.Unlock()
	if s != nil {
		err = s.Send(m)
	} else {
		// With a cluster the box may be on another instance: NATS takes
		// the offer there, and the answer comes back to this one.
		// (The instance holding it applies the same bound on offers
		// waiting for the box, local and forwarded together.)
		err = h.phoneToCluster(ctx, box, &m)
	}
	if err != nil {
		w.Header().Set("Retry-After", "5")
		http.Error(w, "the box is not reachable: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	select {
	case a := <-ch:
		if a.Error != "" {
			h.cfg.Log.Info("box refused a phone", "box", box, "phone", cred.TokenID[:8], "err", a.Error)
			code := http.StatusServiceUnavailable
			if strings.HasPrefix(a.Error, "unpaired") {
				code = http.StatusUnauthorized
			} else if strings.HasPrefix(a.Error, "bad offer") {
				code = http.StatusBadRequest
			}
			http.Error(w, a.Error, code)
			return
		}
		h.cfg.Log.Info("phone session", "box", box, "phone", cred.TokenID[:8], "remote", r.RemoteAddr)
		w.Header().Set("Content-Type", "application/sdp")
		w.Header().Set("Location", "/box/"+box+"/whep/"+id)
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, a.SDP)
	case <-ctx.Done():
		http.Error(w, "the box did not answer in time", http.StatusGatewayTimeout)
	}
}

// phoneBye forwards a phone's DELETE of its session to the box, which ends
// it if the credential is the one that opened it.
func (h *Hub) phoneBye(w http.ResponseWriter, r *http.Request, box, id string) {
	if _, code, err := h.phoneCredential(r, box); err != nil {
		http.Error(w, err.Error(), code)
		return
	}
	h.mu.Lock()
	s := h.sessions[box]
	h.mu.Unlock()
	tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	m := proto.Message{Type: proto.TypePhoneBye, Call: id, Token: strings.TrimSpace(tok)}
	if err := m.Validate(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var err error
	if s != nil {
		err = s.Send(m)
	} else {
		ctx, cancel := context.WithTimeout(r.Context(), phoneAnswerTimeout)
		defer cancel()
		err = h.phoneToCluster(ctx, box, &m)
		if errors.Is(err, cluster.ErrOffline) {
			// The box is gone: so is the session (its ICE ends it).
			w.WriteHeader(http.StatusNoContent)
			return
		}
	}
	if err != nil {
		http.Error(w, "the box is not reachable: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	w.WriteHeader(http.StatusOK)
}

func (h *Hub) phonePage(w http.ResponseWriter, box string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Referrer-Policy", "no-referrer")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; media-src 'self' blob:")
	stun := "[]"
	if len(h.cfg.STUNURLs) > 0 {
		stun = `["` + strings.Join(h.cfg.STUNURLs, `","`) + `"]`
	}
	_ = phonePageTmpl.Execute(w, map[string]any{"Box": box, "STUN": template.JS(stun)})
}

// The phone page: the credential arrives in the URL's fragment (never
// sent to the hub in the request line, never in its logs) from the box's
// LAN page, and is kept in the phone's localStorage for this box. Without
// one, or when the hub or the box refuses it, the page says to pair at
// home first.
var phonePageTmpl = template.Must(template.New("phone").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>callbox</title>
<style>body{font-family:sans-serif;margin:0;background:#111;color:#eee;text-align:center}video{width:100%;max-height:90vh;background:#000}#msg{padding:1em}
#talk{font-size:1.2em;padding:.8em 2em;border-radius:2em;border:0;background:#2a6;color:#fff;touch-action:none;user-select:none;-webkit-user-select:none}#talk[data-state=talking]{background:#c33}#talk[hidden]{display:none}</style>
</head><body>
<video id="v" autoplay playsinline muted controls></video>
<video id="vnext" autoplay playsinline muted style="position:absolute;width:2px;height:2px;opacity:0;pointer-events:none"></video>
<div id="msg">connecting…</div>
<button id="talk" type="button" hidden data-state="idle">Hold to talk</button>
<script>
// Push-to-talk (docs/webrtc.md, "Talk-back"): only on a secure page (the
// hub's HTTPS: browsers give the microphone to no other), the session's
// audio is offered sendrecv; while the button is held the microphone
// (the browser's echo cancellation on) is the sender's track, and on
// release the track is taken away (replaceTrack, no renegotiation): the
// box hears nothing and stops playing.
var callboxTalk = (function(){
  var ok = window.isSecureContext && !!(navigator.mediaDevices && navigator.mediaDevices.getUserMedia);
  var t = {ok: ok, presses: 0, releases: 0, sending: false, error: ""};
  t.attach = function(sender){
    if (!ok) return;
    var btn = document.getElementById("talk"), mic = null, held = false;
    function set(st, text){ btn.dataset.state = st; btn.textContent = text; }
    function press(e){ if (e) e.preventDefault(); if (held) return; held = true; t.presses++;
      set("starting", "Talking…");
      (mic ? Promise.resolve(mic) : navigator.mediaDevices.getUserMedia({audio: {echoCancellation: true, noiseSuppression: true, autoGainControl: true}})
        .then(function(s){ mic = s.getAudioTracks()[0]; return mic; }))
      .then(function(m){ if (!held) return; m.enabled = true; return sender.replaceTrack(m).then(function(){ if (held) { t.sending = true; set("talking", "Talking… (release to stop)"); } }); })
      .catch(function(err){ held = false; t.error = String(err && err.name || err); set("idle", "Hold to talk (microphone: " + t.error + ")"); }); }
    function release(e){ if (e) e.preventDefault(); if (!held) return; held = false; t.releases++; t.sending = false;
      if (mic) mic.enabled = false;
      sender.replaceTrack(null).catch(function(){}); set("idle", "Hold to talk"); }
    btn.addEventListener("pointerdown", press);
    ["pointerup", "pointercancel", "pointerleave"].forEach(function(ev){ btn.addEventListener(ev, release); });
    btn.addEventListener("keydown", function(e){ if (e.key === " " || e.key === "Enter") press(e); });
    btn.addEventListener("keyup", function(e){ if (e.key === " " || e.key === "Enter") release(e); });
    btn.addEventListener("contextmenu", function(e){ e.preventDefault(); });
    window.addEventListener("blur", function(){ release(); });
    document.addEventListener("visibilitychange", function(){ if (document.hidden) release(); });
    t.press = press; t.release = release;
    btn.hidden = false;
  };
  return t;
})();
</script>
<script>
(function(){
  var box = "{{.Box}}", stun = {{.STUN}};
  var key = "callbox-remote-" + box, msg = document.getElementById("msg");
  var m = /[#&]c=([0-9a-f]{64}\.[0-9]+\.[A-Za-z0-9_-]+)/.exec(location.hash);
  if (m) { localStorage.setItem(key, m[1]); history.replaceState(null, "", location.pathname); }
  var cred = localStorage.getItem(key);
  function pairFirst(){ document.getElementById("v").style.display="none"; document.getElementById("talk").hidden = true;
    msg.textContent = "This phone is not paired with this box. Pair at home first: open the box's page on its Wi-Fi, pair, then use its \"away from home\" link."; }
  if (!cred) { pairFirst(); return; }
  // Where the media is (S7, docs/peer.md): the box's own copy ("direct"),
  // or, when its uplink cannot carry a copy per phone, the hub's fan-out
  // relay ("hub"). The hub says so on a long poll; a move is
  // make-before-break: the new session plays in a hidden element until
  // its first frame, then takes the screen and the old one is let go.
  var v = document.getElementById("v"), next = document.getElementById("vnext");
  var cur = null, mode = "", ver = 0, auth = {"Authorization": "Bearer " + cred};
  window.callboxS7 = {mode: "", moves: []};
  if (callboxTalk.ok) callboxTalk.attach({replaceTrack: function(t){ return cur ? cur.audio.replaceTrack(t) : Promise.resolve(); }});
  function session(path, talk){
    var s = {pc: new RTCPeerConnection({iceServers: stun.length ? [{urls: stun}] : []}), stream: new MediaStream(), resource: ""};
    s.pc.addTransceiver("video", {direction: "recvonly"});
    s.audio = s.pc.addTransceiver("audio", {direction: talk ? "sendrecv" : "recvonly"}).sender;
    s.pc.ontrack = function(e){ s.stream.addTrack(e.track); };
    s.pc.onconnectionstatechange = function(){ if (s !== cur) return;
      if (s.pc.connectionState === "connected") setTimeout(function(){ showPath(s); }, 200);
      else if (s.pc.connectionState !== "connecting") msg.textContent = s.pc.connectionState; };
    s.ready = s.pc.createOffer().then(function(o){ return s.pc.setLocalDescription(o); }).then(function(){
      return new Promise(function(ok){ if (s.pc.iceGatheringState === "complete") return ok();
        s.pc.onicegatheringstatechange = function(){ if (s.pc.iceGatheringState === "complete") ok(); };
        setTimeout(ok, 3000); });
    }).then(function(){
      return fetch(path, {method: "POST", headers: {"Content-Type": "application/sdp", "Authorization": auth.Authorization}, body: s.pc.localDescription.sdp});
    }).then(function(r){
      if (r.status === 401) { localStorage.removeItem(key); pairFirst(); throw null; }
      if (r.status !== 201) return r.text().then(function(t){ throw new Error(t || r.status); });
      s.resource = r.headers.get("Location") || "";
      return r.text();
    }).then(function(sdp){ return s.pc.setRemoteDescription({type: "answer", sdp: sdp}); });
    return s;
  }
  function bye(s){ s.pc.close(); if (s.resource) fetch(s.resource, {method: "DELETE", headers: auth}).catch(function(){}); }
  // firstFrame resolves once el has shown a frame of s's video.
  function firstFrame(s, el){ el.srcObject = s.stream; var p = el.play(); if (p) p.catch(function(){});
    return new Promise(function(ok, fail){ var t0 = Date.now();
      (function check(){ var q = el.getVideoPlaybackQuality && el.getVideoPlaybackQuality();
        if (el.videoWidth > 0 && (!q || q.totalVideoFrames > 0)) return ok();
        if (Date.now() - t0 > 10000) return fail(new Error("no picture from the new path"));
        setTimeout(check, 30); })(); }); }
  // The path, as the badge. Through the hub's TURN relay the media is still
  // DTLS-SRTP between this phone and the box (the hub forwards ciphertext);
  // through the hub's fan-out relay the hub decrypts and re-encrypts it: it
  // could see it (docs/security.md).
  function showPath(s){ if (mode === "hub") { msg.textContent = "live, via hub (one copy through the hub's relay, which can see it)"; msg.dataset.path = "hub"; return; }
    s.pc.getStats().then(function(st){ if (s !== cur) return; var pair = null;
    st.forEach(function(r){ if (r.type === "candidate-pair" && r.nominated && r.state === "succeeded") pair = r; });
    var loc = pair && st.get(pair.localCandidateId), rem = pair && st.get(pair.remoteCandidateId);
    var relayed = (loc && loc.candidateType === "relay") || (rem && rem.candidateType === "relay");
    msg.textContent = pair ? (relayed ? "live, via the hub's relay (encrypted end to end)" : "live, direct") : "live";
    msg.dataset.path = pair ? (relayed ? "relay" : "direct") : ""; }); }
  function move(to, path){ var t0 = Date.now();
    // Talk-back goes to the box only: not through the hub's fan-out relay.
    var s = session(path, to !== "hub" && callboxTalk.ok);
    return s.ready.then(function(){ return firstFrame(s, cur ? next : v); }).then(function(){
      var old = cur; cur = s; mode = to; window.callboxS7.mode = to;
      window.callboxS7.moves.push({mode: to, ms: Date.now() - t0});
      if (old) { v.srcObject = s.stream; v.play().catch(function(){}); next.srcObject = null; bye(old); }
      document.getElementById("talk").hidden = to === "hub" || !callboxTalk.ok;
      showPath(s);
    }, function(e){ bye(s); throw e; }); }
  (function poll(){
    fetch("/box/" + box + "/media?v=" + ver, {headers: auth}).then(function(r){
      if (r.status === 401) { localStorage.removeItem(key); pairFirst(); throw null; }
      if (!r.ok) throw new Error("hub: " + r.status);
      return r.json();
    }).then(function(m){ ver = m.v; if (m.mode === mode) return;
      return move(m.mode, m.whep).catch(function(e){ if (e === null) throw e; ver = 0;
        msg.textContent = "could not connect: " + (e && e.message); return new Promise(function(ok){ setTimeout(ok, 1000); }); });
    }).then(poll, function(e){ if (e !== null) setTimeout(poll, 2000); });
  })();
})();
</script></body></html>
`))
