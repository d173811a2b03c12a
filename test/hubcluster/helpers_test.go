package hubcluster

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/callbox/callbox/capture/synth"
	"github.com/callbox/callbox/firmware"
	"github.com/callbox/callbox/internal/testenv"
	"github.com/callbox/callbox/peer/box"
	"github.com/callbox/callbox/peer/hub"
)

// The hub instances run as processes of their own (this test binary run
// again as `callbox hub`), so "kill an instance" is a real SIGKILL.
const hubArgsEnv = "CALLBOX_TEST_HUB_ARGS"

func TestMain(m *testing.M) {
	if a := os.Getenv(hubArgsEnv); a != "" {
		var args []string
		if err := json.Unmarshal([]byte(a), &args); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		os.Exit(firmware.Main(append([]string{"hub"}, args...)))
	}
	os.Exit(m.Run())
}

// hubProc is one `callbox hub` process.
type hubProc struct {
	t    *testing.T
	name string
	cmd  *exec.Cmd
	ws   string // ws://127.0.0.1:PORT/v1/ws
	addr string // 127.0.0.1:PORT
	done chan struct{}
	mu   sync.Mutex
	log  strings.Builder
}

var listening = regexp.MustCompile(`signalling at ws://([0-9.]+:[0-9]+)/v1/ws`)

// startHub runs `callbox hub` with args (plus the flags every test hub
// needs) and returns once it listens.
func startHub(t *testing.T, name, listen string, args ...string) *hubProc {
	t.Helper()
	all := append([]string{"--listen", listen, "--public-ip", "127.0.0.1", "--stun-listen", "", "--drain", "500ms"}, args...)
	b, _ := json.Marshal(all)
	argv := testenv.Self("-test.run=^$")
	h := &hubProc{t: t, name: name, done: make(chan struct{})}
	h.cmd = exec.Command(argv[0], argv[1:]...)
	h.cmd.Env = append(os.Environ(), hubArgsEnv+"="+string(b), "CALLBOX_TURN_SECRET=test-secret")
	stdout, err := h.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	h.cmd.Stderr = &logWriter{h}
	if err := h.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = h.cmd.Wait(); close(h.done) }()
	t.Cleanup(h.kill)
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			h.logf("%s", sc.Text())
			if m := listening.FindStringSubmatch(sc.Text()); m != nil {
				addr <- m[1]
			}
		}
	}()
	select {
	case a := <-addr:
		h.addr = a
		h.ws = "ws://" + a + "/v1/ws"
	case <-h.done:
		t.Fatalf("hub %s exited: %s", name, h.output())
	case <-time.After(60 * time.Second):
		t.Fatalf("hub %s did not start: %s", name, h.output())
	}
	return h
}

type logWriter struct{ h *hubProc }

func (w *logWriter) Write(p []byte) (int, error) {
	w.h.mu.Lock()
	defer w.h.mu.Unlock()
	w.h.log.Write(p)
	return len(p), nil
}

func (h *hubProc) logf(format string, args ...any) {
	h.mu.Lock()
	defer h.mu.Unlock()
	fmt.Fprintf(&h.log, format+"\n", args...)
}

func (h *hubProc) output() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.log.String()
}

// term is SIGTERM: the instance drains, then exits.
func (h *hubProc) term() { _ = h.cmd.Process.Signal(syscall.SIGTERM) }

// kill is SIGKILL: the instance dies without a word (idempotent).
func (h *hubProc) kill() {
	select {
	case <-h.done:
		return
	default:
	}
	_ = h.cmd.Process.Signal(syscall.SIGKILL)
	<-h.done
}

// stats reads the instance's /v1/stats.
func (h *hubProc) stats(t *testing.T) hub.Stats {
	t.Helper()
	var st hub.Stats
	r, err := http.Get("http://" + h.addr + "/v1/stats")
	if err != nil {
		t.Fatalf("%s stats: %v", h.name, err)
	}
	defer r.Body.Close()
	if err := json.NewDecoder(r.Body).Decode(&st); err != nil {
		t.Fatalf("%s stats: %v", h.name, err)
	}
	return st
}

// tbox is a box: a hub client and a caller with synthetic media that
// gathers loopback candidates only.
type tbox struct {
	name   string
	client *box.Client
	caller *box.Caller
}

func newBox(t *testing.T, hubURL, name string) *tbox {
	t.Helper()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})).With("box", name)
	id, err := protoIdentity()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := box.Dial(ctx, box.ClientConfig{HubURL: hubURL, Identity: id, Name: name, DataDir: t.TempDir(), Log: log})
	if err != nil {
		t.Fatal(err)
	}
	b := &tbox{name: name, client: c}
	b.caller, err = box.NewCaller(box.CallerConfig{
		Client:       c,
		Media:        box.SynthMedia(synth.CameraConfig{Width: 160, Height: 120, FPS: 15}, synth.MicConfig{Rate: 8000}),
		LoopbackOnly: true,
		Log:          log,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		b.caller.Close()
		c.Close()
	})
	return b
}

// pair pairs a and b with a code a asks for and b enters; both show the
// same confirmation and both owners confirm (the steps may cross
// instances).
func pair(t *testing.T, a, b *tbox) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	code, _, err := a.client.RequestPairCode(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pb, err := b.client.JoinPairCode(ctx, code)
	if err != nil {
		t.Fatalf("%s joins %s's code: %v", b.name, a.name, err)
	}
	pa, err := a.client.WaitPairStage(ctx, box.PairCompare)
	if err != nil || pa.SAS != pb.SAS {
		t.Fatalf("%s shows %q, %s %q (%v)", a.name, pa.SAS, b.name, pb.SAS, err)
	}
	for _, x := range []*tbox{a, b} {
		if err := x.client.ConfirmPairing(ctx); err != nil {
			t.Fatalf("%s confirms: %v", x.name, err)
		}
	}
	for _, x := range []*tbox{a, b} {
		if _, err := x.client.WaitPaired(ctx); err != nil {
			t.Fatalf("%s: %v", x.name, err)
		}
	}
}

// waitFor polls cond (every 20 ms) until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > d {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start)
}

// frontProxy is a minimal TCP load balancer on loopback: each connection
// goes to the first backend that accepts it, so when the first dies its
// boxes land on the next.
type frontProxy struct {
	ln       net.Listener
	wg       sync.WaitGroup
	mu       sync.Mutex
	backends []string
}

// add puts another backend at the end of the list.
func (p *frontProxy) add(addr string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.backends = append(p.backends, addr)
}

// pick is the first backend whose /readyz answers 200, as a load
// balancer's health check would choose.
func (p *frontProxy) pick() string {
	p.mu.Lock()
	bs := append([]string(nil), p.backends...)
	p.mu.Unlock()
	cl := http.Client{Timeout: time.Second}
	for _, b := range bs {
		r, err := cl.Get("http://" + b + "/readyz")
		if err != nil {
			continue
		}
		r.Body.Close()
		if r.StatusCode == http.StatusOK {
			return b
		}
	}
	return ""
}

func newFrontProxy(t *testing.T, backends ...string) *frontProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &frontProxy{ln: ln, backends: backends}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(func() { ln.Close(); p.wg.Wait() })
	return p
}

func (p *frontProxy) url() string { return "ws://" + p.ln.Addr().String() + "/v1/ws" }

func (p *frontProxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			b := p.pick()
			if b == "" {
				return
			}
			up, err := net.DialTimeout("tcp", b, time.Second)
			if err != nil {
				return
			}
			defer up.Close()
			done := make(chan struct{}, 2)
			go func() { _, _ = io.Copy(up, c); done <- struct{}{} }()
			go func() { _, _ = io.Copy(c, up); done <- struct{}{} }()
			<-done
		}()
	}
}
