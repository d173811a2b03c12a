package hub

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/callbox/callbox/peer/hub/cluster"
	"github.com/callbox/callbox/peer/proto"
)

// FuzzClusterNotice: whatever another instance (or anyone who can publish
// on NATS) sends, decoding it never panics, and what decodes is what a box
// could have sent: a valid, forwardable message, or a peer whose ID is its
// key's.
func FuzzClusterNotice(f *testing.F) {
	id, err := proto.NewIdentity()
	if err != nil {
		f.Fatal(err)
	}
	info, _ := json.Marshal(proto.PeerInfo{ID: id.ID, Key: id.Pub, Name: "kitchen", Online: true})
	f.Add(cluster.KindPresence, id.ID, info)
	f.Add(cluster.KindPaired, id.ID, info)
	sig := proto.Message{Type: proto.TypeSignal, To: id.ID, From: id.ID, Call: "c1", Kind: proto.KindOffer, SDP: "v=0\r\n", TS: time.Now().UnixMilli()}
	proto.SignSignal(id, &sig)
	b, _ := json.Marshal(&sig)
	f.Add(cluster.KindSignal, id.ID, b)
	f.Add(cluster.KindSignal, id.ID, []byte(`{"type":"welcome","box":"x"}`))
	f.Add(cluster.KindPresence, "aaaaaaaaaaaaaaaa", []byte(`{"id":"aaaaaaaaaaaaaaaa","key":"AAAA"}`))
	f.Fuzz(func(t *testing.T, kind, box string, body []byte) {
		m := cluster.Msg{Kind: kind, Box: box, Body: body}
		if msg, err := noticeMessage(m); err == nil {
			if !forwardable(&msg) || msg.Validate() != nil {
				t.Fatalf("accepted %+v", msg)
			}
		}
		if p, err := noticePeer(m); err == nil {
			if p.ID != box || proto.BoxID(p.Key) != p.ID {
				t.Fatalf("accepted peer %+v for %q", p, box)
			}
		}
	})
}
