package box

import (
	"context"
	"time"

	"github.com/callbox/callbox/peer/proto"
)

// PhoneOffer is a remote phone's WHEP offer, forwarded by the hub after it
// checked the phone's credential against this box's key (docs/peer.md,
// "Phones away from home"). The box checks the credential again, against
// its own key and its own list of paired phones.
type PhoneOffer struct {
	Request    string            // the hub's request ID
	Credential string            // the phone's credential (proto.IssuePhoneCredential)
	SDP        string            // the phone's offer
	ICE        []proto.ICEServer // this box's STUN/TURN for the session
}

// PhoneHandler answers a phone offer with an SDP answer, or refuses it
// (the error's text goes back to the hub, and to the phone).
type PhoneHandler func(ctx context.Context, o PhoneOffer) (answer string, err error)

// phoneAnswerBudget bounds one answer (the hub waits 10 s).
const phoneAnswerBudget = 9 * time.Second

// OnPhoneOffer sets what answers remote phones; nil refuses them.
func (c *Client) OnPhoneOffer(f PhoneHandler) {
	c.mu.Lock()
	c.onPhone = f
	c.mu.Unlock()
}

// IssuePhoneCredential signs a credential for the phone whose LAN token
// hashes to tokenID, valid until expires.
func (c *Client) IssuePhoneCredential(tokenID string, expires time.Time) string {
	return proto.IssuePhoneCredential(c.cfg.Identity, tokenID, expires)
}

// OnPhoneBye sets what ends a remote phone's session when the phone asks
// (its WHEP DELETE, forwarded by the hub): Request names the session's
// offer, Credential must be the one that opened it.
func (c *Client) OnPhoneBye(f func(o PhoneOffer)) {
	c.mu.Lock()
	c.onPhoneBye = f
	c.mu.Unlock()
}

func (c *Client) dispatchPhone(m *proto.Message) {
	if m.Type == proto.TypePhoneBye {
		c.mu.Lock()
		f := c.onPhoneBye
		c.mu.Unlock()
		if f != nil {
			go f(PhoneOffer{Request: m.Call, Credential: m.Token})
		}
		return
	}
	c.mu.Lock()
	f := c.onPhone
	c.mu.Unlock()
	go func() {
		ctx, cancel := context.WithTimeout(c.ctx, phoneAnswerBudget)
		defer cancel()
		a := proto.Message{Type: proto.TypePhoneAnswer, Call: m.Call}
		if f == nil {
			a.Error = "unpaired: this box does not take phones away from home"
		} else if sdp, err := f(ctx, PhoneOffer{Request: m.Call, Credential: m.Token, SDP: m.SDP, ICE: m.ICE}); err != nil {
			a.Error = err.Error()
			if len(a.Error) > 512 {
				a.Error = a.Error[:512]
			}
		} else {
			a.SDP = sdp
		}
		if err := c.send(ctx, &a); err != nil {
			c.cfg.Log.Warn("phone answer not sent", "err", err)
		}
	}()
}

// VerifyPhoneCredential checks that text is a credential this box signed
// and that it has not expired; whether the phone is still paired is the
// board's to say (its token list).
func (c *Client) VerifyPhoneCredential(text string) (proto.PhoneCredential, error) {
	return proto.VerifyPhoneCredential(c.cfg.Identity.ID, c.cfg.Identity.Pub, text, c.cfg.Now())
}
