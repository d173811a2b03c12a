package hub

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"math/big"
	"time"

	"github.com/callbox/callbox/peer/hub/store"
	"github.com/callbox/callbox/peer/proto"
)

// Pairing on the hub (docs/security.md, "The hub").
//
// A code is proto.PairCodeLen digits: the first proto.PairSlotLen name a
// slot, the rest are the slot's secret. A join that names a live slot with
// a wrong secret counts against that code, whoever sends it: after
// Limits.CodeTries the code is withdrawn and its owner told. Every join
// also counts against its source address and against the hub: beyond
// those limits a join is refused before its code is looked at, so no
// number of identities or connections buys more guesses.
//
// A right code does not pair the boxes. It starts a pending pairing (in
// the store, so the two boxes may be on different instances): the hub
// introduces the two boxes, forwards the nonce/reveal exchange from which
// each derives the same short authentication string (proto.SAS), and
// records the pair only when both owners have confirmed within the code's
// lifetime.

// ErrLimited reports a request refused by one of the hub's limits: the
// box (or its address) has to wait before asking again.
var ErrLimited = errors.New("peer: hub limit")

// The progress bits of a pending pairing (store.Pairing.Flags).
const (
	flagNonce         = 1 << iota // the owner's nonce went to the joiner
	flagRevealed                  // the joiner's nonce went to the owner
	flagOwnerConfirm              // the owner's owner confirmed the SAS
	flagJoinerConfirm             // the joiner's owner confirmed the SAS
)

// limit counts one event under key and refuses it beyond max per window.
func (h *Hub) limit(ctx context.Context, key string, max int, window time.Duration) error {
	n, err := h.store.Hit(ctx, "limit:"+key, h.cfg.Now(), window)
	if err != nil {
		return err
	}
	if n > max {
		return ErrLimited
	}
	return nil
}

// pairCode hands s a new code (replacing any code s had).
func (h *Hub) pairCode(s *Session, now time.Time) error {
	ctx, cancel := storeCtx()
	defer cancel()
	l := h.cfg.Limits
	if err := h.limit(ctx, "code:"+s.Addr, l.AddrCodes, l.AddrCodeWindow); err != nil {
		return fmt.Errorf("%w: too many pairing codes asked for from %s; try again in a few minutes", err, s.Addr)
	}
	if err := h.store.DeletePairing(ctx, s.Box); err != nil {
		return err
	}
	exp := now.Add(h.cfg.PairCodeTTL)
	// A slot another code holds is drawn again: with codes limited per
	// address, a few tries find a free one.
	for try := 0; ; try++ {
		code, err := randomDigits(proto.PairCodeLen)
		if err != nil {
			return err
		}
		slot, _ := proto.CodeSlot(code)
		if _, err := h.store.CodeWithPrefix(ctx, slot, now); err == nil {
			if try >= 20 {
				return fmt.Errorf("%w: no free pairing code slot; try again in a few minutes", ErrLimited)
			}
			continue
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		err = h.store.PutCode(ctx, store.Code{Code: code, Box: s.Box, Expires: exp}, now)
		if err == nil {
			return s.Send(proto.Message{Type: proto.TypePairCode, Code: code, Expires: exp.Unix()})
		}
		if !errors.Is(err, store.ErrCodeTaken) || try >= 20 {
			return err
		}
	}
}

// pairJoin checks a code entered on s's box, within the limits, and
// introduces the two boxes when it is right.
func (h *Hub) pairJoin(s *Session, m *proto.Message, now time.Time) error {
	ctx, cancel := storeCtx()
	defer cancel()
	l := h.cfg.Limits
	h.mu.Lock()
	tries := h.tries[s]
	h.mu.Unlock()
	if tries >= l.SessionTries {
		return fmt.Errorf("%w: %w", errTooManyTries, proto.ErrBadCode)
	}
	// Counted before the code is looked at: beyond the limits the hub is
	// no oracle at all.
	for _, lim := range []struct {
		key    string
		max    int
		window time.Duration
		why    string
	}{
		{"guess:" + s.Addr, l.AddrGuesses, l.AddrGuessWindow, "from " + s.Addr + "; try again in a few minutes"},
		{"guess:hub", l.HubGuesses, l.HubGuessWindow, "on the hub; try again in a minute"},
	} {
		if err := h.limit(ctx, lim.key, lim.max, lim.window); err != nil {
			h.rejected.Add(1)
			h.wrong(s)
			return fmt.Errorf("%w: too many pairing codes entered %s", err, lim.why)
		}
	}
	h.checked.Add(1)
	c, err := h.store.TakeCode(ctx, m.Code, now)
	if err == nil && c.Box == s.Box {
		// A box entering its own code: put it back for the real joiner.
		if err = h.store.PutCode(ctx, c, now); err == nil {
			err = store.ErrNotFound
		}
	}
	if errors.Is(err, store.ErrNotFound) {
		slot, _ := proto.CodeSlot(m.Code)
		if live, err := h.store.CodeWithPrefix(ctx, slot, now); err == nil && live.Box != s.Box {
			h.wrongSecret(ctx, live, now)
		}
		return h.wrong(s)
	}
	if err != nil {
		return err
	}
	r, err := h.store.GetBox(ctx, s.Box)
	if err != nil {
		return err
	}
	if err := h.store.PutPairing(ctx, store.Pairing{Owner: c.Box, Joiner: s.Box, Expires: c.Expires}); err != nil {
		return err
	}
	h.matched.Add(1)
	h.cfg.Log.Info("pairing code matched; waiting for both owners to confirm", "owner", c.Box, "joiner", s.Box)
	req := proto.Message{Type: proto.TypePairRequest, From: s.Box, Commit: m.Commit,
		Peers: []proto.PeerInfo{{ID: s.Box, Key: r.Key, Name: r.Name}}, Expires: c.Expires.Unix()}
	if err := h.forward(c.Box, &req); err != nil {
		_ = h.store.DeletePairing(ctx, s.Box)
		return fmt.Errorf("%w: the box that showed this code is not connected", proto.ErrOffline)
	}
	return nil
}

// wrong counts a wrong code against s's connection.
func (h *Hub) wrong(s *Session) error {
	h.mu.Lock()
	h.tries[s]++
	n := h.tries[s]
	h.mu.Unlock()
	if n >= h.cfg.Limits.SessionTries {
		return fmt.Errorf("%w: %w", errTooManyTries, proto.ErrBadCode)
	}
	return proto.ErrBadCode
}

// wrongSecret counts a wrong secret against the live code c and withdraws
// it after Limits.CodeTries, telling its owner.
func (h *Hub) wrongSecret(ctx context.Context, c store.Code, now time.Time) {
	n, err := h.store.Hit(ctx, "limit:codewrong:"+c.Code, now, h.cfg.PairCodeTTL)
	if err != nil || n < h.cfg.Limits.CodeTries {
		return
	}
	if err := h.store.DeleteCode(ctx, c.Code); err != nil {
		h.cfg.Log.Warn("hub store", "err", err)
		return
	}
	h.cfg.Log.Warn("pairing code withdrawn after wrong tries", "box", c.Box, "tries", n)
	_ = h.forward(c.Box, &proto.Message{Type: proto.TypeError, Ref: proto.TypePairCode,
		Error: fmt.Sprintf("%v: your pairing code was withdrawn after %d wrong tries; ask for a new one", proto.ErrBadCode, n)})
}

// pairStep forwards one step of a pending pairing between its two boxes,
// in order, and records the pair when both owners have confirmed.
func (h *Hub) pairStep(s *Session, m *proto.Message, now time.Time) error {
	ctx, cancel := storeCtx()
	defer cancel()
	p, err := h.store.GetPairing(ctx, s.Box, now)
	other := p.Owner
	if s.Box == p.Owner {
		other = p.Joiner
	}
	if errors.Is(err, store.ErrNotFound) || err == nil && m.To != other {
		if m.Type == proto.TypePairCancel {
			return nil // nothing to cancel (it expired, or the other box cancelled first)
		}
		return fmt.Errorf("%w: no pending pairing with %s", proto.ErrNotPaired, m.To)
	}
	if err != nil {
		return err
	}
	owner := s.Box == p.Owner
	fwd := proto.Message{Type: m.Type, From: s.Box}
	mark := func(f int) (int, error) { return h.store.MarkPairing(ctx, p.Owner, p.Joiner, f, now) }
	switch m.Type {
	case proto.TypePairNonce:
		if !owner || p.Flags&flagNonce != 0 {
			return fmt.Errorf("%w: pair_nonce out of turn", proto.ErrBadMessage)
		}
		if _, err := mark(flagNonce); err != nil {
			return err
		}
		r, err := h.store.GetBox(ctx, s.Box)
		if err != nil {
			return err
		}
		fwd.Nonce, fwd.Expires = m.Nonce, p.Expires.Unix()
		fwd.Peers = []proto.PeerInfo{{ID: s.Box, Key: r.Key, Name: r.Name}}
	case proto.TypePairReveal:
		if owner || p.Flags&flagNonce == 0 || p.Flags&flagRevealed != 0 {
			return fmt.Errorf("%w: pair_reveal out of turn", proto.ErrBadMessage)
		}
		if _, err := mark(flagRevealed); err != nil {
			return err
		}
		fwd.Nonce = m.Nonce
	case proto.TypePairConfirm:
		if p.Flags&flagRevealed == 0 {
			return fmt.Errorf("%w: pair_confirm before both boxes could show the code", proto.ErrBadMessage)
		}
		mine := flagJoinerConfirm
		if owner {
			mine = flagOwnerConfirm
		}
		flags, err := mark(mine)
		if err != nil {
			return err
		}
		if flags&flagOwnerConfirm != 0 && flags&flagJoinerConfirm != 0 {
			if err := h.store.DeletePairing(ctx, s.Box); err != nil {
				return err
			}
			return h.pair(p.Owner, p.Joiner)
		}
	case proto.TypePairCancel:
		if err := h.store.DeletePairing(ctx, s.Box); err != nil {
			return err
		}
		fwd.Error = "the other box cancelled the pairing"
	}
	return h.forward(other, &fwd)
}

// forward hands m to box, on this instance or through the cluster.
func (h *Hub) forward(box string, m *proto.Message) error {
	h.mu.Lock()
	dst := h.sessions[box]
	h.mu.Unlock()
	if dst == nil {
		return h.signalRemote(box, m)
	}
	if err := dst.Send(*m); err != nil {
		return fmt.Errorf("%w: %s: %w", proto.ErrOffline, box, err)
	}
	return nil
}

// PairingStats counts pairing joins on this instance since it started.
type PairingStats struct {
	Checked  int64 `json:"checked"`  // joins whose code was looked at
	Rejected int64 `json:"rejected"` // joins refused unchecked (a limit)
	Matched  int64 `json:"matched"`  // joins with a right code
}

// PairingStats reports the pairing counters (tests and /v1/stats).
func (h *Hub) PairingStats() PairingStats {
	return PairingStats{Checked: h.checked.Load(), Rejected: h.rejected.Load(), Matched: h.matched.Load()}
}

func randomDigits(n int) (string, error) {
	b := make([]byte, n)
	for i := range b {
		d, err := rand.Int(rand.Reader, big.NewInt(10))
		if err != nil {
			return "", fmt.Errorf("peer: pairing code: %w", err)
		}
		b[i] = byte('0' + d.Int64())
	}
	return string(b), nil
}
