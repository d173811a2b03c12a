package hub

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/callbox/callbox/peer/hub/cluster"
	"github.com/callbox/callbox/peer/hub/store"
	"github.com/callbox/callbox/peer/proto"
)

// The hub's side of a cluster (package cluster): what it tells the other
// instances, and what it does with what they tell it. Without a cluster
// every function here is a no-op: the box is either connected here or
// offline.

// remoteOnline asks the cluster which of boxes (not connected here) are
// connected to another instance, in parallel, and remembers where.
func (h *Hub) remoteOnline(ctx context.Context, boxes []store.Box) map[string]bool {
	out := map[string]bool{}
	if h.cluster == nil || len(boxes) == 0 {
		return out
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, b := range boxes {
		h.mu.Lock()
		local := h.sessions[b.ID] != nil
		h.mu.Unlock()
		if local {
			continue
		}
		wg.Add(1)
		go func(id string) {
			defer wg.Done()
			inst, err := h.cluster.Where(ctx, id)
			if err != nil {
				if !errors.Is(err, cluster.ErrOffline) {
					h.cfg.Log.Warn("cluster: where", "box", id, "err", err)
				}
				return
			}
			h.cluster.Track(id, inst)
			mu.Lock()
			out[id] = true
			mu.Unlock()
		}(b.ID)
	}
	wg.Wait()
	return out
}

// online reports whether box is connected here or to another instance.
func (h *Hub) online(ctx context.Context, box string) bool {
	h.mu.Lock()
	local := h.sessions[box] != nil
	h.mu.Unlock()
	return local || h.remoteOnline(ctx, []store.Box{{ID: box}})[box]
}

// announce tells s's peers on other instances that s came or went; the
// peers connected here heard it from presenceLocked. It also makes s's box
// reachable from (or no longer from) the other instances.
func (h *Hub) announce(s *Session, peers []store.Box, online bool) {
	if h.cluster == nil {
		return
	}
	if online {
		if err := h.cluster.Attach(s.Box); err != nil {
			h.cfg.Log.Warn("cluster: attach", "box", s.Box, "err", err)
		}
	} else {
		h.cluster.Detach(s.Box)
	}
	h.notifyPresence(s, peers, online)
}

// notifyPresence publishes s's presence to its peers not connected here.
func (h *Hub) notifyPresence(s *Session, peers []store.Box, online bool) {
	info, _ := json.Marshal(proto.PeerInfo{ID: s.Box, Key: s.key, Name: s.name, Online: online})
	for _, p := range peers {
		h.mu.Lock()
		local := h.sessions[p.ID] != nil
		h.mu.Unlock()
		if local {
			continue
		}
		if err := h.cluster.Notify(p.ID, cluster.Msg{Kind: cluster.KindPresence, Box: s.Box, Online: online, Body: info}); err != nil {
			h.cfg.Log.Warn("cluster: presence", "box", s.Box, "err", err)
		}
	}
}

// reannounce tells the peers on other instances of every box connected
// here that it is online: after a NATS outage (or a partition) they may
// have declared this instance dead and its boxes offline. The
// subscriptions themselves come back with the connection.
func (h *Hub) reannounce() {
	type entry struct {
		s     *Session
		peers []store.Box
	}
	h.mu.Lock()
	all := make([]entry, 0, len(h.sessions))
	for _, s := range h.sessions {
		e := entry{s: s}
		for id := range s.peers {
			if h.sessions[id] == nil {
				e.peers = append(e.peers, store.Box{ID: id})
			}
		}
		all = append(all, e)
	}
	h.mu.Unlock()
	for _, e := range all {
		h.notifyPresence(e.s, e.peers, true)
	}
	if len(all) > 0 {
		h.cfg.Log.Info("cluster: boxes announced again", "boxes", len(all))
	}
}

// notifyPaired tells box, connected elsewhere (or nowhere), that it is now
// paired with peer; peerHere says peer is connected to this instance.
func (h *Hub) notifyPaired(box string, peer proto.PeerInfo, peerHere bool) {
	if h.cluster == nil {
		return
	}
	info, _ := json.Marshal(peer)
	if err := h.cluster.Notify(box, cluster.Msg{Kind: cluster.KindPaired, Box: peer.ID, Online: peerHere, Body: info}); err != nil {
		h.cfg.Log.Warn("cluster: paired", "box", box, "err", err)
	}
}

// notifyUnpaired tells boxes connected elsewhere (or nowhere) that gone
// forgot itself.
func (h *Hub) notifyUnpaired(boxes []string, gone proto.PeerInfo) {
	if h.cluster == nil {
		return
	}
	info, _ := json.Marshal(gone)
	for _, b := range boxes {
		if err := h.cluster.Notify(b, cluster.Msg{Kind: cluster.KindUnpaired, Box: gone.ID, Body: info}); err != nil {
			h.cfg.Log.Warn("cluster: unpaired", "box", b, "err", err)
		}
	}
}

// signalRemote hands a signal to the instance that has the box.
func (h *Hub) signalRemote(to string, m *proto.Message) error {
	if h.cluster == nil {
		return fmt.Errorf("%w: %s", proto.ErrOffline, to)
	}
	b, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("peer: encode signal: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	if _, err := h.cluster.Request(ctx, to, cluster.Msg{Kind: cluster.KindSignal, Body: b}); err != nil {
		return fmt.Errorf("%w: %s: %w", proto.ErrOffline, to, err)
	}
	return nil
}

// errNotHere answers another instance about a box this one does not have.
var errNotHere = errors.New("box not connected to this instance")

// deliver handles a message from another instance for box to. It runs on
// the cluster's one dispatch goroutine: it must not block.
func (h *Hub) deliver(to string, m cluster.Msg) error {
	switch m.Kind {
	case cluster.KindKick:
		// The box registered on m.Instance: drop this older connection,
		// quietly (the box is not offline, it moved), and remember where
		// it went for the peers connected here.
		h.mu.Lock()
		s := h.sessions[to]
		if s != nil {
			delete(h.sessions, to)
		}
		h.mu.Unlock()
		if s != nil && s.Close != nil {
			s.Close()
		}
		h.cluster.Track(to, m.Instance)
		return nil
	case cluster.KindOnline:
		h.mu.Lock()
		defer h.mu.Unlock()
		if h.sessions[to] == nil {
			return errNotHere
		}
		return nil
	case cluster.KindSignal:
		sig, err := noticeMessage(m)
		if err != nil {
			return err
		}
		h.mu.Lock()
		s := h.sessions[to]
		h.mu.Unlock()
		if s == nil {
			return errNotHere
		}
		return s.Send(sig)
	case cluster.KindPhone:
		return h.phoneFromCluster(to, m)
	case cluster.KindPhoneAnswer:
		a, err := proto.ParseMessage(m.Body)
		if err != nil || a.Type != proto.TypePhoneAnswer {
			return fmt.Errorf("%w: cluster %s", proto.ErrBadMessage, m.Kind)
		}
		if !h.phones.deliver(to, a) {
			h.cfg.Log.Debug("phone answer nobody waits for", "box", to, "request", a.Call)
		}
		return nil
	case cluster.KindPresence:
		info, err := noticePeer(m)
		if err != nil {
			return err
		}
		h.mu.Lock()
		defer h.mu.Unlock()
		if m.Online {
			h.cluster.Track(m.Box, m.Instance)
		} else if h.sessions[m.Box] != nil || !h.cluster.Untrack(m.Box, m.Instance) {
			return nil // it left that instance for this one, or for another
		}
		if s := h.sessions[to]; s != nil && s.peers[m.Box] {
			return s.Send(proto.Message{Type: proto.TypePresence, Peers: []proto.PeerInfo{info}})
		}
		return nil
	case cluster.KindPaired:
		info, err := noticePeer(m)
		if err != nil {
			return err
		}
		if m.Online {
			h.cluster.Track(m.Box, m.Instance)
		}
		h.mu.Lock()
		defer h.mu.Unlock()
		s := h.sessions[to]
		if s == nil {
			return nil // it will read its peers from the store when it registers
		}
		s.peers[info.ID] = true
		info.Online = info.Online || h.sessions[info.ID] != nil
		return s.Send(proto.Message{Type: proto.TypePaired, ICE: h.iceServers(to, true), Peers: []proto.PeerInfo{info}})
	case cluster.KindUnpaired:
		info, err := noticePeer(m)
		if err != nil {
			return err
		}
		h.mu.Lock()
		defer h.mu.Unlock()
		s := h.sessions[to]
		if s == nil {
			return nil // the store no longer lists the pair when it registers
		}
		delete(s.peers, info.ID)
		return s.Send(proto.Message{Type: proto.TypeUnpaired, Peers: []proto.PeerInfo{info}})
	}
	return fmt.Errorf("%w: cluster message %q", proto.ErrBadMessage, m.Kind)
}

// noticeMessage decodes a message another instance hands over for a box
// here: it is checked as if the box's own connection had brought it.
func noticeMessage(m cluster.Msg) (proto.Message, error) {
	msg, err := proto.ParseMessage(m.Body)
	if err != nil {
		return proto.Message{}, fmt.Errorf("cluster %s: %w", m.Kind, err)
	}
	if !forwardable(&msg) {
		return proto.Message{}, fmt.Errorf("%w: cluster %s carries a %q", proto.ErrBadMessage, m.Kind, msg.Type)
	}
	return msg, nil
}

// noticePeer decodes the box a presence or pairing notice is about: its ID
// must be the notice's and belong to its key (the box checks it again).
func noticePeer(m cluster.Msg) (proto.PeerInfo, error) {
	var info proto.PeerInfo
	if err := json.Unmarshal(m.Body, &info); err != nil {
		return info, fmt.Errorf("%w: cluster %s: %v", proto.ErrBadMessage, m.Kind, err)
	}
	if info.ID != m.Box || !proto.ValidBoxID(info.ID) || len(info.Key) != ed25519.PublicKeySize || proto.BoxID(info.Key) != info.ID {
		return proto.PeerInfo{}, fmt.Errorf("%w: cluster %s about %q: ID and key do not match", proto.ErrBadMessage, m.Kind, m.Box)
	}
	return info, nil
}

// forwardable: what one instance hands another for a box connected there:
// signals, and the steps of a pending pairing (with From set by the
// instance that took them from a box).
func forwardable(m *proto.Message) bool {
	switch m.Type {
	case proto.TypeSignal, proto.TypePairRequest, proto.TypePairNonce, proto.TypePairReveal, proto.TypePairConfirm, proto.TypePairCancel:
		return true
	case proto.TypeError:
		return m.Ref == proto.TypePairCode // a code withdrawn after wrong tries
	}
	return false
}

// gone hears that box's instance died: its peers here learn it is offline.
func (h *Hub) gone(box string) {
	ctx, cancel := storeCtx()
	defer cancel()
	r, err := h.store.GetBox(ctx, box) // a presence carries the key: the box checks it
	if err != nil {
		h.cfg.Log.Warn("hub store", "box", box, "err", err)
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.sessions[box] != nil {
		return // it has already reconnected here
	}
	for _, s := range h.sessions {
		if s.peers[box] {
			_ = s.Send(proto.Message{Type: proto.TypePresence, Peers: []proto.PeerInfo{{ID: box, Key: r.Key, Name: r.Name, Online: false}}})
		}
	}
}
