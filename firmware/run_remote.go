package firmware

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/callbox/callbox/board/pairing"
	"github.com/callbox/callbox/peer/box"
	rwebrtc "github.com/callbox/callbox/relay/webrtc"
	pion "github.com/pion/webrtc/v4"
	qrcode "github.com/skip2/go-qrcode"
)

// Phones away from home (docs/peer.md): a phone paired on the LAN asks the
// box for its remote link (GET /api/remote); the link is the hub's page
// for this box with a credential the box signed in its fragment. The hub
// forwards the phone's offer over the box's hub connection, and the box
// answers it here with a session of the relay's WebRTC transport.

// remoteAnswerer answers a remote phone's offer (the relay part).
type remoteAnswerer interface {
	AnswerRemote(ctx context.Context, remote, offer string, ice []pion.ICEServer, opt rwebrtc.RemoteOptions) (id, answer string, err error)
	CloseRemote(id string) bool
}

// remoteSession is a remote phone's session, by the hub's request ID: the
// phone's DELETE names that ID, and only the same credential ends it.
type remoteSession struct {
	id      string // the relay's session ID
	tokenID string
	at      time.Time
}

// maxRemoteSessions bounds the remembered sessions (the oldest go first;
// a forgotten one still ends when its ICE goes away).
const maxRemoteSessions = 64

func (p *peerPart) rememberRemote(req string, s remoteSession) {
	p.remoteMu.Lock()
	defer p.remoteMu.Unlock()
	if p.remoteSessions == nil {
		p.remoteSessions = map[string]remoteSession{}
	}
	for len(p.remoteSessions) >= maxRemoteSessions {
		oldest := ""
		for k, v := range p.remoteSessions {
			if oldest == "" || v.at.Before(p.remoteSessions[oldest].at) {
				oldest = k
			}
		}
		delete(p.remoteSessions, oldest)
	}
	p.remoteSessions[req] = s
}

// phoneBye ends a remote phone's session at its request, forwarded by the
// hub, if the credential is the one that opened it.
func (p *peerPart) phoneBye(o box.PhoneOffer) {
	client, _ := p.current()
	if client == nil || p.phones == nil {
		return
	}
	cred, err := client.VerifyPhoneCredential(o.Credential)
	if err != nil {
		p.log.Info("remote phone bye refused", "err", err)
		return
	}
	p.remoteMu.Lock()
	s, ok := p.remoteSessions[o.Request]
	if ok && s.tokenID == cred.TokenID {
		delete(p.remoteSessions, o.Request)
	}
	p.remoteMu.Unlock()
	if ok && s.tokenID == cred.TokenID {
		p.phones.CloseRemote(s.id)
	}
}

// phoneRevoked ends an unpaired phone's viewing of the call's media and
// forgets its remote sessions (the relay part has ended them).
func (p *peerPart) phoneRevoked(hash string) int {
	n := 0
	if p.callWHEP != nil {
		n += p.callWHEP.CloseOwner(hash, "unpaired")
	}
	if p.remote != nil {
		n += p.remote.DisconnectOwner(hash, "unpaired")
	}
	p.remoteMu.Lock()
	for req, s := range p.remoteSessions {
		if s.tokenID == hash {
			delete(p.remoteSessions, req)
		}
	}
	p.remoteMu.Unlock()
	return n
}

// remoteOptions are a remote phone's session's: it belongs to the phone
// (unpairing it ends the session), and the phone may talk on the box's
// speaker while it holds its page's button (it was just checked as
// paired: answerPhone).
func (p *peerPart) remoteOptions(tokenID string) rwebrtc.RemoteOptions {
	return rwebrtc.RemoteOptions{Owner: tokenID, TalkBack: p.talk.forPhone(tokenID)}
}

// remoteCredentialTTL is how long a remote link stays valid; a factory
// reset ends it sooner (new identity, no tokens).
const remoteCredentialTTL = 90 * 24 * time.Hour

// answerPhone checks a remote phone's credential (this box's signature,
// not expired, the phone still paired) and answers its offer.
func (p *peerPart) answerPhone(ctx context.Context, o box.PhoneOffer) (string, error) {
	client, _ := p.current()
	if client == nil {
		return "", errHubDown
	}
	cred, err := client.VerifyPhoneCredential(o.Credential)
	if err != nil {
		return "", fmt.Errorf("unpaired: %w", err)
	}
	if err := p.board.authorizeHash(cred.TokenID); err != nil {
		return "", fmt.Errorf("unpaired: the box no longer knows this phone (factory reset?): %w", err)
	}
	if p.phones == nil {
		return "", errors.New("no WebRTC transport")
	}
	ice := make([]pion.ICEServer, 0, len(o.ICE))
	for _, s := range o.ICE {
		ice = append(ice, pion.ICEServer{URLs: s.URLs, Username: s.Username, Credential: s.Credential})
	}
	id, answer, err := p.phones.AnswerRemote(ctx, "remote phone "+cred.TokenID[:8], o.SDP, ice, p.remoteOptions(cred.TokenID))
	if err != nil {
		return "", err
	}
	p.rememberRemote(o.Request, remoteSession{id: id, tokenID: cred.TokenID, at: time.Now()})
	p.log.Info("remote phone session", "phone", cred.TokenID[:8])
	return answer, nil
}

// remoteLink is /api/remote's answer.
type remoteLink struct {
	URL     string `json:"url"`
	Expires int64  `json:"expires"` // Unix seconds
	// QR is the link as a QR code, a PNG in a data: URL: the LAN page
	// shows it, so a page opened on a laptop hands the link to the phone
	// that paired (the credential is that phone's token's).
	QR string `json:"qr,omitempty"`
}

// handleRemote answers GET /api/remote: the calling phone's link to the
// hub's page, for paired tokens only (the credential names the token's
// hash, so a factory reset revokes it).
func (p *peerPart) handleRemote(w http.ResponseWriter, r *http.Request) {
	tok := requestToken(r)
	if tok == "" || p.board.Authorize(tok) != nil || p.board.authorizeHash(pairing.Hash(tok)) != nil {
		w.Header().Set("WWW-Authenticate", `Bearer realm="callbox"`)
		writeBoardJSON(w, http.StatusUnauthorized, map[string]string{"error": "pair this phone first"})
		return
	}
	client, _ := p.current()
	if client == nil {
		err := errNoHub
		if p.hubURL != "" {
			err = errHubDown
		}
		writeBoardJSON(w, http.StatusServiceUnavailable, map[string]string{"error": err.Error()})
		return
	}
	base, err := hubPageBase(p.hubURL)
	if err != nil {
		writeBoardJSON(w, http.StatusServiceUnavailable, map[string]string{"error": err.Error()})
		return
	}
	exp := time.Now().Add(remoteCredentialTTL)
	cred := client.IssuePhoneCredential(pairing.Hash(tok), exp)
	w.Header().Set("Cache-Control", "no-store")
	link := remoteLink{URL: base + "/box/" + client.ID() + "#c=" + cred, Expires: exp.Unix()}
	if png, err := qrcode.Encode(link.URL, qrcode.Medium, 256); err == nil {
		link.QR = "data:image/png;base64," + base64.StdEncoding.EncodeToString(png)
	} else {
		p.log.Warn("remote link: QR code", "err", err)
	}
	writeBoardJSON(w, http.StatusOK, link)
}

// hubPageBase turns the hub's signalling URL (wss://host/v1/ws) into the
// base of its pages (https://host).
func hubPageBase(hubURL string) (string, error) {
	u, err := url.Parse(hubURL)
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("hub URL %q: not a URL", hubURL)
	}
	switch strings.ToLower(u.Scheme) {
	case "wss":
		return "https://" + u.Host, nil
	case "ws":
		return "http://" + u.Host, nil // network labs only (--insecure-hub)
	}
	return "", fmt.Errorf("hub URL %q: want wss://", hubURL)
}
