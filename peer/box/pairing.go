package box

import (
	"context"
	"fmt"
	"time"

	"github.com/callbox/callbox/peer/proto"
)

// RequestPairCode asks the hub for a code the other box enters.
func (c *Client) RequestPairCode(ctx context.Context) (code string, expires time.Time, err error) {
	r, err := c.request(ctx, &proto.Message{Type: proto.TypePairCode}, proto.TypePairCode)
	if err != nil {
		return "", time.Time{}, err
	}
	return r.Code, time.Unix(r.Expires, 0), nil
}

// WaitPaired waits for the hub to report a new pairing.
func (c *Client) WaitPaired(ctx context.Context) (proto.PeerInfo, error) {
	ch := make(chan proto.Message, 1)
	c.mu.Lock()
	c.waiters[proto.TypePaired] = append(c.waiters[proto.TypePaired], ch)
	c.mu.Unlock()
	select {
	case r := <-ch:
		if len(r.Peers) == 0 {
			return proto.PeerInfo{}, fmt.Errorf("%w: paired without a peer", proto.ErrBadMessage)
		}
		return r.Peers[0], nil
	case <-ctx.Done():
		return proto.PeerInfo{}, fmt.Errorf("peer: waiting for pairing: %w", ctx.Err())
	}
}

// JoinPairCode enters the code another box got from RequestPairCode.
func (c *Client) JoinPairCode(ctx context.Context, code string) (proto.PeerInfo, error) {
	r, err := c.request(ctx, &proto.Message{Type: proto.TypePairJoin, Code: code}, proto.TypePaired)
	if err != nil {
		return proto.PeerInfo{}, err
	}
	if len(r.Peers) == 0 {
		return proto.PeerInfo{}, fmt.Errorf("%w: paired without a peer", proto.ErrBadMessage)
	}
	return r.Peers[0], nil
}

// PressPairButton reports a button press to the hub; it returns when
// another box's press within the hub's window has paired the two, or when
// ctx ends. The board calls it when the pairing button is held.
func (c *Client) PressPairButton(ctx context.Context) (proto.PeerInfo, error) {
	r, err := c.request(ctx, &proto.Message{Type: proto.TypePairButton}, proto.TypePaired)
	if err != nil {
		return proto.PeerInfo{}, err
	}
	if len(r.Peers) == 0 {
		return proto.PeerInfo{}, fmt.Errorf("%w: paired without a peer", proto.ErrBadMessage)
	}
	return r.Peers[0], nil
}
