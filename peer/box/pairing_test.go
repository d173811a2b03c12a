package box

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/callbox/callbox/peer/proto"
	"github.com/coder/websocket"
)

// lyingHub is a hub that welcomes any box and then sends it what the test
// says: a hub that lies, or anyone in the middle of plain ws://.
type lyingHub struct {
	t    *testing.T
	conn chan *websocket.Conn
}

func newLyingHub(t *testing.T) (*lyingHub, string) {
	h := &lyingHub{t: t, conn: make(chan *websocket.Conn, 1)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		_, b, err := c.Read(r.Context())
		if err != nil {
			return
		}
		hello, err := proto.ParseMessage(b)
		if err != nil {
			return
		}
		welcome, _ := json.Marshal(proto.Message{Type: proto.TypeWelcome, Box: hello.Box})
		if c.Write(r.Context(), websocket.MessageText, welcome) != nil {
			return
		}
		h.conn <- c
		for { // reading answers pings and the client's close
			if _, _, err := c.Read(r.Context()); err != nil {
				return
			}
		}
	}))
	t.Cleanup(srv.Close)
	return h, "ws" + strings.TrimPrefix(srv.URL, "http")
}

func (h *lyingHub) send(c *websocket.Conn, m proto.Message) {
	h.t.Helper()
	b, _ := json.Marshal(m)
	if err := c.Write(context.Background(), websocket.MessageText, b); err != nil {
		h.t.Fatal(err)
	}
}

// Item 9 of the security review: the box pinned any "paired" message the
// hub sent, asked for or not. Now a "paired" pins only in answer to this
// box's own pairing, confirmed by its owner, with the key the SAS was
// computed from.
func TestUnsolicitedPairedIsIgnored(t *testing.T) {
	h, url := newLyingHub(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dir := t.TempDir()
	c, err := Dial(ctx, ClientConfig{HubURL: url, Identity: mustIdentity(t), DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	conn := <-h.conn
	attacker := mustIdentity(t)
	paired := proto.Message{Type: proto.TypePaired, Peers: []proto.PeerInfo{{ID: attacker.ID, Key: attacker.Pub, Name: "grandma"}}}

	// Out of the blue.
	h.send(conn, paired)
	// During a pairing this box started, before its owner confirmed.
	go c.RequestPairCode(ctx)
	waitStage(t, c, PairWaiting)
	h.send(conn, paired)
	// An introduction, then "paired" with another key than introduced.
	other := mustIdentity(t)
	h.send(conn, proto.Message{Type: proto.TypePairRequest, From: other.ID, Commit: make([]byte, proto.CommitSize),
		Peers: []proto.PeerInfo{{ID: other.ID, Key: other.Pub}}})
	h.send(conn, paired)

	// Messages are handled in order: once this presence is seen, the
	// client has handled everything sent before it.
	marker := mustIdentity(t)
	h.send(conn, proto.Message{Type: proto.TypePresence, Peers: []proto.PeerInfo{{ID: marker.ID, Key: marker.Pub, Online: true}}})
	for !c.Online(marker.ID) {
		if ctx.Err() != nil {
			t.Fatal("the client did not read the hub's messages")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := c.Resolve(attacker.ID); err == nil {
		t.Fatal("the box pinned a box the hub made up")
	}
	if len(c.Peers()) != 0 {
		t.Fatalf("pinned %+v", c.Peers())
	}
	if st := c.Pairing().Stage; st == PairDone {
		t.Fatalf("pairing stage %q", st)
	}
	// Nothing was written to peers.json either: a restart pins nothing.
	c2, err := Dial(ctx, ClientConfig{HubURL: url, Identity: mustIdentity(t), DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	<-h.conn
	if len(c2.Peers()) != 0 {
		t.Fatalf("peers.json holds %+v", c2.Peers())
	}
}

func waitStage(t *testing.T, c *Client, want PairStage) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.WaitPairStage(ctx, want); err != nil {
		t.Fatal(err)
	}
}

// Plain ws:// only to a hub on this machine (or with InsecureHub).
func TestHubURLNeedsTLS(t *testing.T) {
	for _, c := range []struct {
		url      string
		insecure bool
		ok       bool
	}{
		{"wss://hub.example.org/v1/ws", false, true},
		{"ws://127.0.0.1:8443/v1/ws", false, true},
		{"ws://localhost:8443/v1/ws", false, true},
		{"ws://[::1]:8443/v1/ws", false, true},
		{"ws://hub.example.org/v1/ws", false, false},
		{"ws://198.51.100.10:8443/v1/ws", false, false},
		{"ws://198.51.100.10:8443/v1/ws", true, true},
		{"http://hub.example.org/v1/ws", false, false},
	} {
		if err := CheckHubURL(c.url, c.insecure); (err == nil) != c.ok {
			t.Errorf("%s (insecure %v): %v", c.url, c.insecure, err)
		}
	}
	if _, err := Dial(context.Background(), ClientConfig{HubURL: "ws://hub.example.org/v1/ws", Identity: mustIdentity(t)}); err == nil || !strings.Contains(err.Error(), "wss://") {
		t.Fatalf("Dial to a plain remote hub: %v", err)
	}
}
