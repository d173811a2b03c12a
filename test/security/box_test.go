package security

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/callbox/callbox/capture"
	"github.com/callbox/callbox/internal/testenv"
	"github.com/callbox/callbox/relay/viewer"
)

// The box's binary is built once per test run.
var (
	buildOnce sync.Once
	buildDir  string
	buildBin  string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

func callbox(t *testing.T) string {
	t.Helper()
	// End to end against the host's callbox: not for the qemu-user runs
	// of scripts/cross.sh (-short), whose go build targets another arch.
	testenv.Short(t)
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "callbox-security-")
		if buildErr != nil {
			return
		}
		buildBin = filepath.Join(buildDir, "callbox")
		cmd := exec.Command("go", "build", "-o", buildBin, "./cmd/callbox")
		cmd.Dir = filepath.Join("..", "..")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %w\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildBin
}

// box is one `callbox run` process on the simulated board, serving on
// 127.0.0.1 with pairing on.
type box struct {
	addr string
	cmd  *exec.Cmd
	log  *syncBuffer
	done chan struct{}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startBox runs the box; before, when set, runs on the started process
// before the box serves (e.g. to lower its descriptor limit).
func startBox(t *testing.T, before func(pid int), flags ...string) *box {
	t.Helper()
	b := &box{addr: freeAddr(t), log: &syncBuffer{}, done: make(chan struct{})}
	args := append([]string{"run", "--http", b.addr, "--mdns-name", "", "--relay", "",
		"--data", t.TempDir(), "--camera", "synthetic", "--mic", "synthetic", "--board", "sim"}, flags...)
	b.cmd = exec.Command(callbox(t), args...)
	b.cmd.Stdout = b.log
	b.cmd.Stderr = b.log
	if err := b.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { b.cmd.Wait(); close(b.done) }()
	t.Cleanup(func() {
		b.cmd.Process.Kill()
		<-b.done
		if t.Failed() {
			t.Logf("box log:\n%s", b.log)
		}
	})
	if before != nil {
		before(b.cmd.Process.Pid)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		r, err := http.Get("http://" + b.addr + "/")
		if err == nil {
			r.Body.Close()
			if r.StatusCode == 200 {
				return b
			}
		}
		select {
		case <-b.done:
			t.Fatalf("callbox run exited early:\n%s", b.log)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("callbox run not serving on %s after 20 s:\n%s", b.addr, b.log)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// post sends a same-origin JSON POST, as the page does.
func (b *box) post(ctx context.Context, path, body string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+b.addr+path, strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Origin", "http://"+b.addr)
	return http.DefaultClient.Do(req)
}

func (b *box) press(t *testing.T, button string, ms int) {
	t.Helper()
	r, err := b.post(context.Background(), "/api/sim/button", fmt.Sprintf(`{"button":%q,"ms":%d}`, button, ms))
	if err != nil {
		t.Fatalf("press: %v", err)
	}
	io.Copy(io.Discard, r.Body)
	r.Body.Close()
	if r.StatusCode != 200 {
		t.Fatalf("press: %s", r.Status)
	}
}

// pairResult is one /api/pair/request's answer.
type pairResult struct {
	code  int
	token string
	err   error
}

// requestPairing starts one phone's pairing request (a long poll).
func (b *box) requestPairing(ctx context.Context) <-chan pairResult {
	out := make(chan pairResult, 1)
	go func() {
		r, err := b.post(ctx, "/api/pair/request", `{"name":"test phone"}`)
		if err != nil {
			out <- pairResult{code: -1, err: err}
			return
		}
		defer r.Body.Close()
		var body struct{ Token string }
		json.NewDecoder(r.Body).Decode(&body)
		out <- pairResult{code: r.StatusCode, token: body.Token}
	}()
	return out
}

// pair pairs one phone: it asks and the test presses both buttons until
// the phone has its token (a press admits the phones waiting at that
// moment: one made before the request arrives admits nobody).
func (b *box) pair(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res := b.requestPairing(ctx)
	for {
		select {
		case r := <-res:
			if r.code != 200 || r.token == "" {
				t.Fatalf("pairing: %+v", r)
			}
			return r.token
		case <-time.After(300 * time.Millisecond):
			b.press(t, "both", 300)
		}
	}
}

// memory reads the box's resident set now and its peak (kB).
func (b *box) memory(t *testing.T) (rssKB, peakKB int) {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", b.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		n, _ := strconv.Atoi(f[1])
		switch f[0] {
		case "VmRSS:":
			rssKB = n
		case "VmHWM:":
			peakKB = n
		}
	}
	return rssKB, peakKB
}

// openFiles is the number of descriptors the box holds.
func (b *box) openFiles(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", b.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// watcher is a paired phone receiving the box's video; frames counts the
// whole frames it got.
type watcher struct {
	frames atomic.Int64
	err    atomic.Value
	stop   context.CancelFunc
	done   chan struct{}
}

func (b *box) watch(t *testing.T, token string) *watcher {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	c, err := viewer.Dial(ctx, "ws://"+b.addr, capture.KindVideo, viewer.Options{Token: token})
	if err != nil {
		cancel()
		t.Fatalf("paired phone: %v", err)
	}
	w := &watcher{stop: cancel, done: make(chan struct{})}
	tr := viewer.NewTracker(capture.KindVideo, 0)
	go func() {
		defer close(w.done)
		defer c.Close()
		for {
			pkt, err := c.Next(ctx)
			if err != nil {
				if ctx.Err() == nil {
					w.err.Store(err)
				}
				return
			}
			if tr.Add(pkt, time.Now(), 0) {
				w.frames.Add(1)
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-w.done })
	return w
}

// waitFrames waits until the watcher has n more frames than now.
func (w *watcher) waitFrames(t *testing.T, n int64, within time.Duration, what string) {
	t.Helper()
	start := w.frames.Load()
	deadline := time.Now().Add(within)
	for w.frames.Load() < start+n {
		if err, _ := w.err.Load().(error); err != nil {
			t.Fatalf("%s: the paired phone lost its stream: %v", what, err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: the paired phone got %d frames in %v, want %d", what, w.frames.Load()-start, within, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// dialFrom connects from a loopback address of its own (Linux routes all
// of 127/8 to lo): the attacker is another host on the LAN.
func dialFrom(src, addr string) (net.Conn, error) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	return d.Dial("tcp", addr)
}

// readLine is a helper for raw HTTP exchanges.
func readStatus(c net.Conn) (int, error) {
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}
