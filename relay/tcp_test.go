package relay

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callbox/callbox/capture"
	"github.com/callbox/callbox/relay/wire"
)

// TestTCPWriteAllocatesNothing writes whole frames (one writev per round)
// over a real loopback connection.
func TestTCPWriteAllocatesNothing(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under the race detector")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			io.Copy(io.Discard, c)
			c.Close()
		}
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tr := &tcpTransport{c: c}
	us := []*unit{mkUnit(capture.KindVideo, 14, 1200, 0, true), mkUnit(capture.KindVideo, 14, 1200, 33, true)}
	ctrl := wire.AppendTimeReply(nil, 1, 2)
	tr.tc = c.(*net.TCPConn)
	for _, n := range []int{1, 2} {
		if a := minAllocs(200, func() {
			if err := tr.write(us[:n], ctrl); err != nil {
				t.Fatal(err)
			}
		}); a != 0 {
			t.Fatalf("%.1f allocations per write of %d frames", a, n)
		}
		tr.tryWrite(us[:n], ctrl) // obtain the raw conn once
		if a := minAllocs(200, func() {
			done, err := tr.tryWrite(us[:n], ctrl)
			if err != nil {
				t.Fatal(err)
			}
			if !done {
				if err := tr.finish(); err != nil {
					t.Fatal(err)
				}
			}
		}); a != 0 {
			t.Fatalf("%.1f allocations per non-blocking write of %d frames", a, n)
		}
	}
}

// timeWaitOn counts sockets in TIME_WAIT whose local port is port.
func timeWaitOn(t *testing.T, port int) int {
	n := 0
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			fs := strings.Fields(line)
			if len(fs) < 4 || fs[3] != "06" {
				continue
			}
			i := strings.LastIndexByte(fs[1], ':')
			if p, err := strconv.ParseUint(fs[1][i+1:], 16, 16); err == nil && int(p) == port {
				n++
			}
		}
	}
	return n
}

func openFDs() int {
	es, _ := os.ReadDir("/proc/self/fd")
	return len(es)
}

// TestChurn connects and disconnects 10,000 clients: half close themselves,
// half are ejected by the relay for sending garbage. Afterwards no
// goroutine or descriptor is left over and no socket of the relay's port
// sits in TIME_WAIT (SO_LINGER 0, design S15).
func TestChurn(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("counts sockets in /proc")
	}
	cycles := 10000
	if testing.Short() {
		cycles = 1000
	}
	r, addr := startRelay(t, Config{})
	_, ps, _ := net.SplitHostPort(addr)
	port, _ := strconv.Atoi(ps)
	baseG, baseFD := runtime.NumGoroutine(), openFDs()
	hello := map[capture.Kind][]byte{}
	for _, k := range []capture.Kind{capture.KindVideo, capture.KindAudio} {
		hello[k], _ = wire.AppendFrame(nil, wire.Hello{Kind: k}.Append(nil))
	}
	garbage, _ := wire.AppendFrame(nil, []byte{0x80, 0xcc, 0, 0}) // RTCP length beyond the packet
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	const workers = 8
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 512)
			for i := w; i < cycles; i += workers {
				if err := cycle(addr, hello[capture.Kind(1+i%2)], garbage, i%2 == 0, buf); err != nil {
					errs <- fmt.Errorf("cycle %d: %w", i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	waitFor(t, "sessions to end", func() bool { return r.Viewers() == 0 })
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > baseG || openFDs() > baseFD {
		if time.Now().After(deadline) {
			t.Fatalf("after %d cycles: %d goroutines (was %d), %d fds (was %d)", cycles, runtime.NumGoroutine(), baseG, openFDs(), baseFD)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n := timeWaitOn(t, port); n != 0 {
		t.Fatalf("%d sockets of the relay's port in TIME_WAIT after %d cycles", n, cycles)
	}
	r.tot.mu.Lock()
	t.Logf("disconnects after %d cycles: %v", cycles, r.tot.disconnects)
	r.tot.mu.Unlock()
}

// cycle is one client: handshake, then either close or send garbage and
// wait to be thrown out.
func cycle(addr string, hello, garbage []byte, misbehave bool, buf []byte) error {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write(hello); err != nil {
		return err
	}
	br := bufio.NewReader(c)
	body, err := wire.ReadFrame(br, buf)
	if err != nil || !strings.HasPrefix(string(body), "OK ") {
		return fmt.Errorf("handshake: %q %v", body, err)
	}
	if !misbehave {
		return nil
	}
	if _, err := c.Write(garbage); err != nil {
		return err
	}
	if _, err := io.Copy(io.Discard, br); err == nil || !isReset(err) {
		return fmt.Errorf("after garbage: %v; want a reset (SO_LINGER 0)", err)
	}
	return nil
}

// TestAnswerBeforeMedia: the handshake answer is always the first message;
// a session joins the fan-out only after it is written. The hook publishes
// right before the answer goes out.
func TestAnswerBeforeMedia(t *testing.T) {
	b := mkBurst(capture.KindAudio, 1, 172, 0, true)
	testHookBeforeAnswer = func(r *Relay) { r.Publish(b) }
	defer func() { testHookBeforeAnswer = nil }()
	_, addr := startRelay(t, Config{})
	hello, _ := wire.AppendFrame(nil, wire.Hello{Kind: capture.KindAudio}.Append(nil))
	buf := make([]byte, 512)
	for i := 0; i < 20; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		c.Write(hello)
		body, err := wire.ReadFrame(c, buf)
		c.Close()
		if err != nil || !strings.HasPrefix(string(body), "OK ") {
			t.Fatalf("connection %d: first message %q, %v", i, body, err)
		}
	}
}
