package hub

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/callbox/callbox/peer/proto"
)

// TestHelloPipelinedWithUpgrade: a box whose hello arrives in the same TCP
// segment as its upgrade request (the HTTP server has then buffered it
// before the hijack) still gets its welcome: the small session buffers
// keep those bytes.
func TestHelloPipelinedWithUpgrade(t *testing.T) {
	h := newTestHub(t, time.Now)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	id := mustIdentity(t)
	hello := proto.NewHello(id, "kitchen", time.Now().UnixMilli(), nonce(t))
	payload, _ := json.Marshal(&hello)

	var req strings.Builder
	req.WriteString("GET / HTTP/1.1\r\nHost: hub\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n")
	req.WriteString("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
	// A masked text frame (RFC 6455 section 5.2) with the hello.
	frame := []byte{0x81, 0x80 | 126, 0, 0}
	binary.BigEndian.PutUint16(frame[2:], uint16(len(payload)))
	mask := []byte{1, 2, 3, 4}
	frame = append(frame, mask...)
	for i, b := range payload {
		frame = append(frame, b^mask[i%4])
	}
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write(append([]byte(req.String()), frame...)); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	hdr := make([]byte, 2)
	if _, err := io.ReadFull(br, hdr); err != nil {
		t.Fatal(err)
	}
	n := int(hdr[1] & 0x7f)
	switch n {
	case 126:
		ext := make([]byte, 2)
		io.ReadFull(br, ext)
		n = int(binary.BigEndian.Uint16(ext))
	case 127:
		ext := make([]byte, 8)
		io.ReadFull(br, ext)
		n = int(binary.BigEndian.Uint64(ext))
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(br, body); err != nil {
		t.Fatal(err)
	}
	if hdr[0]&0x0f != 1 {
		t.Fatalf("first frame opcode %d (%q), want a text frame with the welcome", hdr[0]&0x0f, body)
	}
	m, err := proto.ParseMessage(body)
	if err != nil || m.Type != proto.TypeWelcome || m.Box != id.ID {
		t.Fatalf("got %q, %v; want the welcome", body, err)
	}
}
