package netguard

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"
)

// dialFrom connects to addr from the loopback address src (Linux routes
// all of 127/8 to lo, so tests can play several clients).
func dialFrom(t *testing.T, src, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial from %s: %v", src, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// refusedFrom reports whether a connection from src is closed by the
// server at once (or reset before the dial returns).
func refusedFrom(t *testing.T, src, addr string) bool {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return true
	}
	defer c.Close()
	return closedByServer(c)
}

// closedByServer reports whether the server closed c (EOF or reset) within
// 5 s (a second was not enough under qemu-arm in scripts/cross.sh).
func closedByServer(c net.Conn) bool {
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := c.Read(make([]byte, 1))
	var ne net.Error
	return err != nil && !(errors.As(err, &ne) && ne.Timeout())
}

func serve(t *testing.T, l Limits, h http.Handler) (*Listener, string) {
	t.Helper()
	ln, err := Listen("127.0.0.1:0", l)
	if err != nil {
		t.Fatal(err)
	}
	srv := Server(h, l)
	ln.Watch(srv)
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln, ln.Addr().String()
}

func get(t *testing.T, c net.Conn) int {
	t.Helper()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatalf("write: %v", err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// waitIdle waits until n of ln's connections are idle: the server marks a
// connection idle just after the client has its answer.
func waitIdle(t *testing.T, ln *Listener, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		idle := 0
		ln.mu.Lock()
		for _, set := range ln.byAddr {
			for c := range set {
				if st, _ := c.load(); st == http.StateIdle {
					idle++
				}
			}
		}
		ln.mu.Unlock()
		if idle == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d idle connections, want %d", idle, n)
		}
		time.Sleep(time.Millisecond)
	}
}

func ok(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") }

// TestPerAddrCap: one address cannot hold more than its share: a new
// connection from it replaces its oldest idle one; another address is not
// touched, and a closed connection frees its place.
func TestPerAddrCap(t *testing.T) {
	ln, addr := serve(t, Limits{MaxConnsPerAddr: 4, MaxConns: 100}, http.HandlerFunc(ok))
	other := dialFrom(t, "127.0.0.1", addr)
	get(t, other)
	var held []net.Conn
	for range 4 {
		c := dialFrom(t, "127.0.0.2", addr)
		if code := get(t, c); code != 200 { // now an idle keep-alive connection
			t.Fatalf("status %d", code)
		}
		held = append(held, c)
		waitIdle(t, ln, len(held)+1)
	}
	if code := get(t, dialFrom(t, "127.0.0.2", addr)); code != 200 {
		t.Fatalf("5th from one address: status %d", code)
	}
	if !closedByServer(held[0]) {
		t.Fatal("a 5th connection from one address did not replace its oldest idle one")
	}
	if ln.Open() != 5 || ln.Evicted() != 1 {
		t.Fatalf("open %d evicted %d, want 5 and 1", ln.Open(), ln.Evicted())
	}
	if code := get(t, other); code != 200 {
		t.Fatalf("the other address's connection: status %d", code)
	}
}

func TestTotalCap(t *testing.T) {
	ln, addr := serve(t, Limits{MaxConnsPerAddr: -1, MaxConns: 3}, http.HandlerFunc(ok))
	var held []net.Conn
	for i := range 3 {
		c := dialFrom(t, "127.0.0."+string(rune('2'+i)), addr)
		get(t, c)
		held = append(held, c)
		waitIdle(t, ln, i+1) // the order of idleness decides who goes first

	}
	if code := get(t, dialFrom(t, "127.0.0.9", addr)); code != 200 {
		t.Fatalf("status %d", code)
	}
	if !closedByServer(held[0]) || ln.Open() != 3 {
		t.Fatalf("over the total cap: the oldest idle connection was not replaced (open %d)", ln.Open())
	}
}

// TestHeaderBound: a header beyond MaxHeaderBytes is refused after the
// server has read about that much, not the megabyte the client sends.
func TestHeaderBound(t *testing.T) {
	_, addr := serve(t, Limits{MaxHeaderBytes: 8 << 10}, http.HandlerFunc(ok))
	c := dialFrom(t, "127.0.0.1", addr)
	c.SetDeadline(time.Now().Add(10 * time.Second))
	go func() {
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\nX-Flood: ")
		c.Write([]byte(strings.Repeat("a", 1<<20)))
	}()
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("status %d, want 431", resp.StatusCode)
	}
}

// TestReadHeaderTimeout: a client that never finishes its header is cut.
func TestReadHeaderTimeout(t *testing.T) {
	_, addr := serve(t, Limits{ReadHeaderTimeout: 200 * time.Millisecond}, http.HandlerFunc(ok))
	c := dialFrom(t, "127.0.0.1", addr)
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\nX-Slow: a")
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := io.ReadAll(c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("the server kept a never-ending header for 5 s")
	}
}

func TestAddrKey(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"192.0.2.7:80", "192.0.2.7"},
		{"[::ffff:192.0.2.7]:80", "192.0.2.7"},
		{"[2001:db8:1:2:aaaa:bbbb:cccc:dddd]:443", "2001:db8:1:2::"},
		{"[2001:db8:1:2::1]:1", "2001:db8:1:2::"},
	} {
		ap := netip.MustParseAddrPort(tc.in)
		got := addrKey(net.TCPAddrFromAddrPort(ap))
		if got.String() != tc.want {
			t.Errorf("addrKey(%s) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

func TestTCPConnUnwraps(t *testing.T) {
	ln, addr := serve(t, Limits{}, http.HandlerFunc(ok))
	_ = ln
	c := dialFrom(t, "127.0.0.1", addr)
	g := &Conn{Conn: c}
	if TCPConn(g) == nil {
		t.Fatal("TCPConn did not find the socket under a Conn")
	}
}

// TestIdleEvicted: at the cap, a new connection takes the place of the
// oldest idle one (from the address holding the most), never of a busy one.
func TestIdleEvicted(t *testing.T) {
	release := make(chan struct{})
	ln, addr := func() (*Listener, string) {
		l := Limits{MaxConnsPerAddr: 3, MaxConns: 3}
		ln, err := Listen("127.0.0.1:0", l)
		if err != nil {
			t.Fatal(err)
		}
		srv := Server(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/slow" {
				<-release
			}
			io.WriteString(w, "ok")
		}), l)
		ln.Watch(srv)
		go srv.Serve(ln)
		t.Cleanup(func() { close(release); srv.Close() })
		return ln, ln.Addr().String()
	}()
	// One busy connection from .2, then two idle ones and one that never
	// sends its request.
	busy := dialFrom(t, "127.0.0.2", addr)
	io.WriteString(busy, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
	idle1 := dialFrom(t, "127.0.0.2", addr)
	get(t, idle1)
	waitIdle(t, ln, 1)
	idle2 := dialFrom(t, "127.0.0.2", addr)
	get(t, idle2)
	waitIdle(t, ln, 2)
	// .2 is at its cap: a 4th from .2 evicts idle1 (the oldest idle).
	mute := dialFrom(t, "127.0.0.2", addr)
	if !closedByServer(idle1) {
		t.Fatal("the oldest idle connection was not closed for a new one")
	}
	// The total cap (3) is reached: a client from .1 takes an idle place
	// from .2, and gets its answer.
	if code := get(t, dialFrom(t, "127.0.0.1", addr)); code != 200 {
		t.Fatalf("status %d", code)
	}
	_ = mute
	if ln.Evicted() != 2 || ln.Refused() != 0 {
		t.Fatalf("evicted %d refused %d, want 2 and 0", ln.Evicted(), ln.Refused())
	}
	// The busy request is still there.
	busy.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if _, err := busy.Read(make([]byte, 1)); err == nil || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the busy connection was touched: %v", err)
	}
}

// TestUnwatchedNeverEvicts: without an HTTP server's states (the relay's
// TCP listener) every connection is busy: over the cap, new ones are
// refused and the streams stay.
func TestUnwatchedNeverEvicts(t *testing.T) {
	ln, err := Listen("127.0.0.1:0", Limits{MaxConnsPerAddr: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 10)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	a := dialFrom(t, "127.0.0.2", ln.Addr().String())
	dialFrom(t, "127.0.0.2", ln.Addr().String())
	<-accepted
	<-accepted
	if !refusedFrom(t, "127.0.0.2", ln.Addr().String()) {
		t.Fatal("a third connection was kept")
	}
	a.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if _, err := a.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("an admitted stream was closed: %v", err)
	}
	if ln.Refused() != 1 || ln.Evicted() != 0 {
		t.Fatalf("refused %d evicted %d", ln.Refused(), ln.Evicted())
	}
}
