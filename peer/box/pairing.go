package box

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"time"

	"github.com/callbox/callbox/peer/proto"
)

// Pairing with another box (docs/security.md, "The hub"): one box asks the
// hub for a code (RequestPairCode), its owner reads it to the other box's
// owner, who enters it (JoinPairCode). Both boxes then show the same short
// authentication string (Pairing.SAS), derived from both keys and both
// boxes' nonces; each owner checks that the two boxes show the same string
// and confirms (ConfirmPairing). The box pins the other's key only when the
// hub reports that both owners confirmed, and only for the pairing this box
// itself started: a "paired" message it did not ask for is ignored.

// PairStage is where this box's pairing is.
type PairStage string

const (
	PairNone      PairStage = ""          // no pairing under way
	PairWaiting   PairStage = "waiting"   // code shown (or entered): waiting for the other box
	PairCompare   PairStage = "compare"   // both boxes show the SAS: the owner confirms or cancels
	PairConfirmed PairStage = "confirmed" // this box's owner confirmed: waiting for the other's
	PairDone      PairStage = "paired"    // both confirmed: the other box is pinned
	PairFailed    PairStage = "failed"    // cancelled, expired, refused: Error says which
)

// Pairing is this box's pairing, as /api/state shows it.
type Pairing struct {
	Stage PairStage `json:"stage"`
	// Role is "code" on the box that showed the code, "join" on the box
	// where it was entered.
	Role    string    `json:"role,omitempty"`
	Code    string    `json:"code,omitempty"` // the code, on the box that shows it
	Expires time.Time `json:"expires,omitzero"`
	// PeerID and PeerName: the box on the other end, once the hub has
	// introduced it (its key is pinned only when both owners confirmed).
	PeerID   string `json:"peer_id,omitempty"`
	PeerName string `json:"peer_name,omitempty"`
	// SAS is the short authentication string both boxes show.
	SAS           string `json:"sas,omitempty"`
	PeerConfirmed bool   `json:"peer_confirmed,omitempty"`
	Error         string `json:"error,omitempty"`
}

// pairing is the Client's side of one pairing.
type pairing struct {
	Pairing
	nonce  []byte // this box's pairing nonce
	commit []byte // owner: the joiner's commitment
	peer   proto.PeerInfo
}

// Pairing returns the pairing under way (or the last one's outcome).
func (c *Client) Pairing() Pairing {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pair == nil {
		return Pairing{}
	}
	p := c.pair.Pairing
	if p.Stage != PairDone && p.Stage != PairFailed && !p.Expires.IsZero() && c.cfg.Now().After(p.Expires) {
		p.Stage, p.Error = PairFailed, "not confirmed on both boxes in time"
	}
	return p
}

// PairingChanged returns a channel closed at the next change of Pairing
// (take it before reading Pairing, so no change goes unseen).
func (c *Client) PairingChanged() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pairChange
}

// setPairLocked replaces the pairing and wakes whoever waits on a change.
func (c *Client) pairChangedLocked() {
	close(c.pairChange)
	c.pairChange = make(chan struct{})
}

func (c *Client) failPairLocked(why string) {
	if c.pair == nil || c.pair.Stage == PairDone || c.pair.Stage == PairFailed {
		return
	}
	c.pair.Stage, c.pair.Error = PairFailed, why
	c.cfg.Log.Warn("pairing failed", "err", why)
	c.pairChangedLocked()
}

func newPairNonce() ([]byte, error) {
	n := make([]byte, proto.NonceSize)
	if _, err := rand.Read(n); err != nil {
		return nil, fmt.Errorf("peer: pairing nonce: %w", err)
	}
	return n, nil
}

// RequestPairCode asks the hub for a code the other box enters. The
// pairing then goes on by itself until both boxes show the SAS
// (WaitPairStage(PairCompare)).
func (c *Client) RequestPairCode(ctx context.Context) (code string, expires time.Time, err error) {
	nonce, err := newPairNonce()
	if err != nil {
		return "", time.Time{}, err
	}
	c.mu.Lock()
	c.pair = &pairing{Pairing: Pairing{Stage: PairWaiting, Role: "code"}, nonce: nonce}
	c.pairChangedLocked()
	c.mu.Unlock()
	r, err := c.request(ctx, &proto.Message{Type: proto.TypePairCode}, proto.TypePairCode)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		c.failPairLocked(err.Error())
		return "", time.Time{}, err
	}
	if c.pair != nil && c.pair.Role == "code" && c.pair.Code == "" {
		c.pair.Code, c.pair.Expires = r.Code, time.Unix(r.Expires, 0)
		c.pairChangedLocked()
	}
	return r.Code, time.Unix(r.Expires, 0), nil
}

// JoinPairCode enters the code another box got from RequestPairCode
// (spaces and dashes are ignored). It returns once both boxes show the
// SAS: the owner compares it with the other box's and confirms.
func (c *Client) JoinPairCode(ctx context.Context, code string) (Pairing, error) {
	code = proto.NormalizePairCode(code)
	if !proto.ValidPairCode(code) {
		return Pairing{}, fmt.Errorf("%w: a pairing code is %d digits", proto.ErrBadCode, proto.PairCodeLen)
	}
	nonce, err := newPairNonce()
	if err != nil {
		return Pairing{}, err
	}
	c.mu.Lock()
	c.pair = &pairing{Pairing: Pairing{Stage: PairWaiting, Role: "join"}, nonce: nonce}
	c.pairChangedLocked()
	c.mu.Unlock()
	m := proto.Message{Type: proto.TypePairJoin, Code: code, Commit: proto.PairCommit(c.cfg.Identity.Pub, nonce)}
	if _, err := c.request(ctx, &m, proto.TypePairNonce); err != nil {
		c.mu.Lock()
		c.failPairLocked(err.Error())
		c.mu.Unlock()
		return Pairing{}, err
	}
	return c.WaitPairStage(ctx, PairCompare)
}

// WaitPairStage waits until the pairing has reached stage (or a later
// one); a failed pairing returns its error.
func (c *Client) WaitPairStage(ctx context.Context, stage PairStage) (Pairing, error) {
	order := map[PairStage]int{PairNone: 0, PairWaiting: 1, PairCompare: 2, PairConfirmed: 3, PairDone: 4}
	for {
		p := c.Pairing()
		c.mu.Lock()
		ch := c.pairChange
		c.mu.Unlock()
		if p.Stage == PairFailed {
			return p, fmt.Errorf("peer: pairing: %s", p.Error)
		}
		if p.Stage != PairNone && order[p.Stage] >= order[stage] {
			return p, nil
		}
		var expire <-chan time.Time
		if !p.Expires.IsZero() {
			t := time.NewTimer(time.Until(p.Expires) + 10*time.Millisecond)
			defer t.Stop()
			expire = t.C
		}
		select {
		case <-ch:
		case <-expire:
		case <-ctx.Done():
			return p, fmt.Errorf("peer: waiting for pairing: %w", ctx.Err())
		}
	}
}

// WaitPaired waits until both owners have confirmed the pairing and this
// box has pinned the other.
func (c *Client) WaitPaired(ctx context.Context) (proto.PeerInfo, error) {
	if _, err := c.WaitPairStage(ctx, PairDone); err != nil {
		return proto.PeerInfo{}, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pair.peer, nil
}

// ConfirmPairing records that this box's owner saw the same SAS on both
// boxes (the page's confirm, the buttons' gesture, POST
// /api/call/pair/confirm).
func (c *Client) ConfirmPairing(ctx context.Context) error {
	c.mu.Lock()
	p := c.pair
	if p == nil || p.Stage != PairCompare {
		stage := PairNone
		if p != nil {
			stage = p.Stage
		}
		c.mu.Unlock()
		return fmt.Errorf("%w: no pairing to confirm (stage %q)", ErrNoPairing, stage)
	}
	p.Stage = PairConfirmed
	to := p.peer.ID
	c.pairChangedLocked()
	c.mu.Unlock()
	if err := c.send(ctx, &proto.Message{Type: proto.TypePairConfirm, To: to}); err != nil {
		c.mu.Lock()
		c.failPairLocked(err.Error())
		c.mu.Unlock()
		return err
	}
	return nil
}

// CancelPairing ends the pairing under way (telling the other box).
func (c *Client) CancelPairing(ctx context.Context) error {
	c.mu.Lock()
	p := c.pair
	if p == nil || p.Stage == PairDone || p.Stage == PairFailed {
		c.mu.Unlock()
		return nil
	}
	to := p.peer.ID
	c.failPairLocked("cancelled on this box")
	c.mu.Unlock()
	if to == "" {
		return nil // the hub drops the code when it expires or a new one is asked for
	}
	return c.send(ctx, &proto.Message{Type: proto.TypePairCancel, To: to})
}

// ErrNoPairing reports a confirmation with no pairing waiting for one.
var ErrNoPairing = fmt.Errorf("peer: no pairing waiting")

// dispatchPairing handles the pairing messages from the hub (from the read
// loop: what it sends goes out on its own goroutine).
func (c *Client) dispatchPairing(m *proto.Message) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.pair
	active := p != nil && p.Stage != PairDone && p.Stage != PairFailed
	switch m.Type {
	case proto.TypePairRequest:
		// The hub says a box entered our code. Answer with our nonce: the
		// joiner committed to its own before it could see it.
		if !active || p.Role != "code" || p.Stage != PairWaiting || p.peer.ID != "" || m.Peers[0].ID != m.From {
			c.cfg.Log.Warn("pairing request ignored: no code of this box waiting for it", "from", m.From)
			return
		}
		p.peer, p.commit = m.Peers[0], bytes.Clone(m.Commit)
		p.PeerID, p.PeerName = p.peer.ID, p.peer.Name
		c.pairChangedLocked()
		c.sendAsync(proto.Message{Type: proto.TypePairNonce, To: p.peer.ID, Nonce: p.nonce})
	case proto.TypePairNonce:
		// The owner's nonce, with the owner's key as the hub knows it.
		if !active || p.Role != "join" || p.Stage != PairWaiting || len(m.Peers) != 1 || m.Peers[0].ID != m.From {
			c.cfg.Log.Warn("pairing nonce ignored: this box entered no code", "from", m.From)
			return
		}
		p.peer = m.Peers[0]
		p.PeerID, p.PeerName = p.peer.ID, p.peer.Name
		if m.Expires != 0 {
			p.Expires = time.Unix(m.Expires, 0)
		}
		p.SAS = proto.SAS(p.peer.Key, c.cfg.Identity.Pub, m.Nonce, p.nonce)
		p.Stage = PairCompare
		c.pairChangedLocked()
		c.sendAsync(proto.Message{Type: proto.TypePairReveal, To: p.peer.ID, Nonce: p.nonce})
	case proto.TypePairReveal:
		if !active || p.Role != "code" || p.Stage != PairWaiting || p.peer.ID == "" || m.From != p.peer.ID {
			c.cfg.Log.Warn("pairing reveal ignored", "from", m.From)
			return
		}
		if !proto.CheckCommit(p.commit, p.peer.Key, m.Nonce) {
			// Someone changed the joiner's nonce after seeing ours.
			c.failPairLocked("the other box's nonce does not match its commitment")
			c.sendAsync(proto.Message{Type: proto.TypePairCancel, To: p.peer.ID})
			return
		}
		p.SAS = proto.SAS(c.cfg.Identity.Pub, p.peer.Key, p.nonce, m.Nonce)
		p.Stage = PairCompare
		c.pairChangedLocked()
	case proto.TypePairConfirm:
		if active && m.From == p.peer.ID {
			p.PeerConfirmed = true
			c.pairChangedLocked()
		}
	case proto.TypePairCancel:
		if active && (p.peer.ID == "" || m.From == p.peer.ID) {
			why := m.Error
			if why == "" {
				why = "the other box cancelled the pairing"
			}
			c.failPairLocked(why)
		}
	case proto.TypePaired:
		// Pinned only in answer to this box's own pairing, confirmed here,
		// with the very key the SAS was computed from.
		if !active || p.Stage != PairConfirmed || len(m.Peers) != 1 || m.Peers[0].ID != p.peer.ID || !bytes.Equal(m.Peers[0].Key, p.peer.Key) {
			c.cfg.Log.Warn("unsolicited pairing from the hub ignored", "peers", len(m.Peers))
			return
		}
		p.Stage = PairDone
		if len(m.ICE) > 0 {
			c.welcome.ICE = m.ICE // with a pairing come TURN credentials
		}
		c.pairChangedLocked()
		c.pinLocked(p.peer)
	case proto.TypeError:
		if active && (m.Ref == proto.TypePairCode && p.Role == "code" || m.Ref == proto.TypePairJoin && p.Role == "join") {
			c.failPairLocked(m.Error)
		}
	}
}

// sendAsync sends m without holding up the read loop.
func (c *Client) sendAsync(m proto.Message) {
	go func() {
		ctx, cancel := context.WithTimeout(c.ctx, 10*time.Second)
		defer cancel()
		if err := c.send(ctx, &m); err != nil {
			c.cfg.Log.Warn("pairing message not sent", "type", m.Type, "err", err)
		}
	}()
}
