package box

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"

	"github.com/callbox/callbox/peer/proto"
)

// pinLocked records a peer this box paired with (the hub's peer list is only
// used for names and online state).
func (c *Client) pinLocked(p proto.PeerInfo) {
	if proto.BoxID(p.Key) != p.ID {
		return
	}
	c.peers[p.ID] = proto.PeerInfo{ID: p.ID, Key: p.Key, Name: p.Name}
	if err := c.savePeersLocked(); err != nil {
		c.cfg.Log.Warn("peers not saved", "err", err)
	}
}

// unpin drops boxes that forgot this one (the hub tells: a factory reset
// over there). Only the pinned key's owner is dropped: a hub can make a box
// forget a peer, which it could deny anyway by not forwarding, but never
// swap a key.
func (c *Client) unpin(gone []proto.PeerInfo) {
	c.mu.Lock()
	var dropped []string
	for _, g := range gone {
		if p, ok := c.peers[g.ID]; ok && bytes.Equal(p.Key, g.Key) {
			delete(c.peers, g.ID)
			dropped = append(dropped, g.ID)
		}
	}
	if len(dropped) > 0 {
		if err := c.savePeersLocked(); err != nil {
			c.cfg.Log.Warn("peers not saved", "err", err)
		}
	}
	c.mu.Unlock()
	for _, id := range dropped {
		c.cfg.Log.Info("a paired box was reset and forgot this one", "peer", id)
		c.setOnline(id, false)
	}
}

func (c *Client) peersPath() string {
	if c.cfg.DataDir == "" {
		return ""
	}
	return filepath.Join(c.cfg.DataDir, "peers.json")
}

func (c *Client) loadPeers() error {
	p := c.peersPath()
	if p == "" {
		return nil
	}
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("peer: %w", err)
	}
	var list []proto.PeerInfo
	if err := json.Unmarshal(b, &list); err != nil {
		return fmt.Errorf("peer: %s: %w", p, err)
	}
	for _, pi := range list {
		if proto.BoxID(pi.Key) == pi.ID {
			c.peers[pi.ID] = pi
		}
	}
	return nil
}

func (c *Client) savePeersLocked() error {
	p := c.peersPath()
	if p == "" {
		return nil
	}
	list := make([]proto.PeerInfo, 0, len(c.peers))
	for _, pi := range c.peers {
		list = append(list, pi)
	}
	sort.Slice(list, func(i, j int) bool { return list[i].ID < list[j].ID })
	b, err := json.MarshalIndent(list, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(c.cfg.DataDir, 0o700); err != nil {
		return err
	}
	if err := os.WriteFile(p+".tmp", b, 0o600); err != nil {
		return err
	}
	return os.Rename(p+".tmp", p)
}

// Peers lists the boxes this box has paired with, with the hub's online
// state where the hub knows them.
func (c *Client) Peers() []proto.PeerInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]proto.PeerInfo, 0, len(c.peers))
	for _, p := range c.peers {
		p.Online = c.online[p.ID]
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Resolve finds a paired box by ID or name.
func (c *Client) Resolve(peer string) (proto.PeerInfo, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p, ok := c.peers[peer]; ok {
		return p, nil
	}
	var found []proto.PeerInfo
	for _, p := range c.peers {
		if p.Name == peer {
			found = append(found, p)
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		return proto.PeerInfo{}, fmt.Errorf("%w: %q", proto.ErrUnknownPeer, peer)
	}
	return proto.PeerInfo{}, fmt.Errorf("%w: %q names %d boxes; use the ID", proto.ErrUnknownPeer, peer, len(found))
}

// PeerKey returns the pinned key of a paired box.
func (c *Client) PeerKey(id string) (ed25519.PublicKey, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.peers[id]
	return p.Key, ok
}
