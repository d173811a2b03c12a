package browser

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/callbox/callbox/capture"
	"github.com/callbox/callbox/internal/testenv"
	"github.com/callbox/callbox/relay"
)

// The box's binary is built once per test run into a temporary directory.
var (
	buildOnce sync.Once
	buildDir  string
	buildBin  string
	buildErr  error
	npmOnce   sync.Once
	npmErr    error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// needNode returns node's path, installing playwright-core with `npm ci`
// (from package-lock.json) when node_modules is missing.
func needNode(t *testing.T, withPlaywright bool) string {
	t.Helper()
	node := testenv.LookPath(t, "node")
	if !withPlaywright {
		return node
	}
	npmOnce.Do(func() {
		if _, err := os.Stat(filepath.Join("node_modules", "playwright-core")); err == nil {
			return
		}
		npm, err := exec.LookPath("npm")
		if err != nil {
			npmErr = fmt.Errorf("npm not installed: %w", err)
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, npm, "ci", "--no-audit", "--no-fund").CombinedOutput()
		if err != nil {
			npmErr = fmt.Errorf("npm ci: %w\n%s", err, out)
		}
	})
	if npmErr != nil {
		testenv.Unavailable(t, "playwright-core: %v", npmErr)
	}
	return node
}

// callbox builds ./cmd/callbox once.
func callbox(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "callbox-browser-")
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

// box is one `callbox run` process serving on 127.0.0.1.
type box struct {
	addr string
	cmd  *exec.Cmd
	log  *bytes.Buffer
	out  *readyWriter // log, watched
	done chan struct{}
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

// startBox runs the appliance on synthetic sources, open (no pairing),
// without mDNS (tests send nothing beyond loopback) and without the relay's
// TCP listener (WebSocket only: no fixed port to collide on), and waits
// until it serves.
func startBox(t *testing.T, addr string) *box {
	t.Helper()
	return startBoxWith(t, addr, "--open")
}

// startBoxWith is startBox with other `callbox run` flags instead of --open.
func startBoxWith(t *testing.T, addr string, flags ...string) *box {
	t.Helper()
	b, err := launchBox(callbox(t), addr, t.TempDir(), flags...)
	if b != nil {
		t.Cleanup(b.kill)
	}
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// launchBox is startBox for any goroutine: it reports instead of failing.
func launchBox(bin, addr, dataDir string, flags ...string) (*box, error) {
	b := &box{addr: addr, log: new(bytes.Buffer), done: make(chan struct{})}
	// --codec jpeg: the tests of the page's WebSocket path keep the box on
	// JPEG only (codec auto would also send H.264, and the page would take
	// WebRTC); TestPageWebRTC gives its own --codec (a later flag wins).
	args := append([]string{"run", "--http", addr, "--mdns-name", "", "--relay", "",
		"--data", dataDir, "--camera", "synthetic", "--mic", "synthetic", "--codec", "jpeg"}, flags...)
	b.cmd = exec.Command(bin, args...)
	// The box prints "callbox: page at URL" once its HTTP server listens:
	// that line is the event to wait for.
	w := &readyWriter{buf: b.log, marker: []byte("callbox: page at "), ready: make(chan struct{}), changed: make(chan struct{})}
	b.out = w
	b.cmd.Stdout = w
	b.cmd.Stderr = w
	if err := b.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { b.cmd.Wait(); close(b.done) }()
	// A generous budget: the binary starts on a machine busy with other
	// tests (the synthetic camera's first frames take a core).
	const budget = 60 * time.Second
	select {
	case <-w.ready:
		return b, nil
	case <-b.done:
		return b, fmt.Errorf("callbox run exited early:\n%s", w)
	case <-time.After(budget):
		return b, fmt.Errorf("callbox run not serving on %s after %v:\n%s", addr, budget, w)
	}
}

// readyWriter keeps a process's output and closes ready once the output
// holds marker. exec.Cmd calls Write from one goroutine at a time when
// Stdout and Stderr are the same writer.
type readyWriter struct {
	mu      sync.Mutex
	buf     *bytes.Buffer
	marker  []byte
	ready   chan struct{}
	seen    bool
	changed chan struct{} // closed and replaced on every write
}

func (w *readyWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n, err := w.buf.Write(p)
	close(w.changed)
	w.changed = make(chan struct{})
	if !w.seen && bytes.Contains(w.buf.Bytes(), w.marker) {
		w.seen = true
		close(w.ready)
	}
	return n, err
}

// waitLog waits until the box's output holds s (a log line is the event),
// or fails after budget.
func (b *box) waitLog(s string, budget time.Duration) error {
	timeout := time.After(budget)
	for {
		b.out.mu.Lock()
		found := bytes.Contains(b.out.buf.Bytes(), []byte(s))
		changed := b.out.changed
		b.out.mu.Unlock()
		if found {
			return nil
		}
		select {
		case <-changed:
		case <-b.done:
			return fmt.Errorf("callbox run exited before %q:\n%s", s, b.out)
		case <-timeout:
			return fmt.Errorf("no %q from callbox run within %v:\n%s", s, budget, b.out)
		}
	}
}

func (w *readyWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// kill ends the box at once (SIGKILL): a power cut, not a shutdown.
func (b *box) kill() {
	select {
	case <-b.done:
		return
	default:
	}
	b.cmd.Process.Kill()
	<-b.done
}

// metric sums a Prometheus counter or gauge over the label sets matching
// every given label (e.g. `kind="video"`).
func (b *box) metric(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	r, err := http.Get("http://" + b.addr + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer r.Body.Close()
	if r.StatusCode != 200 {
		t.Fatalf("GET /metrics: %s", r.Status)
	}
	var sum float64
	found := false
	sc := bufio.NewScanner(r.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
lines:
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		for _, l := range labels {
			if !strings.Contains(line, l) {
				continue lines
			}
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		sum += v
		found = true
	}
	if !found {
		t.Fatalf("metric %s%v not exported by the box", name, labels)
	}
	return sum
}

// event is one line of scenario.mjs output.
type event map[string]any

func (e event) num(k string) float64 {
	v, ok := e[k].(float64)
	if !ok {
		return -1
	}
	return v
}

// scenario runs scenario.mjs and returns its result event; onEvent sees
// every event as it comes (the restart test acts on them).
func scenario(t *testing.T, name, url string, onEvent func(event), args ...string) event {
	t.Helper()
	art, _ := filepath.Abs("artifacts")
	return nodeScript(t, name, onEvent, append([]string{"scenario.mjs", name, "--url", url, "--artifacts", art, "--timeout", "120"}, args...)...)
}

// nodeScript runs a Node script that reports in JSON lines (scenario.mjs,
// cdp-pages.mjs) and returns its result event.
func nodeScript(t *testing.T, name string, onEvent func(event), args ...string) event {
	t.Helper()
	result, err := runNodeScript(t, name, onEvent, args...)
	if err != nil {
		t.Fatal(err)
	}
	return result
}

// runNodeScript is nodeScript that returns the scenario's failure instead of
// ending the test, for a caller that may measure again.
func runNodeScript(t *testing.T, name string, onEvent func(event), args ...string) (event, error) {
	t.Helper()
	node := needNode(t, true)
	testenv.LookPath(t, "chromium")
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, args...)
	// SIGTERM first: playwright then closes Chromium and its profile.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var result event
	var failures []string
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		var ev event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Logf("scenario: %s", sc.Text())
			continue
		}
		switch ev["event"] {
		case "result":
			result = ev
		case "error":
			failures = append(failures, fmt.Sprint(ev["error"]))
		case "pageerror", "console":
			t.Logf("page: %v", ev)
		default:
			t.Logf("scenario event: %v", ev)
		}
		if onEvent != nil {
			onEvent(ev)
		}
	}
	io.Copy(io.Discard, out)
	werr := cmd.Wait()
	if len(failures) > 0 || result == nil {
		return nil, fmt.Errorf("scenario %s failed (%v): %s\nstderr:\n%s", name, werr, strings.Join(failures, "\n"), stderr.String())
	}
	return result, nil
}

// overloaded tells whether the machine was so busy during a measurement
// (other test packages run beside this one) that timing figures from it say
// more about the machine than about the page: a 1-minute load average above
// the number of cores, before or after (one 720p30 page alone needs about
// half a core of Chromium on this kind of machine).
func overloaded(r event) bool {
	load, _ := r["load"].([]any)
	for _, l := range load {
		if f, ok := l.(float64); ok && f > float64(runtime.NumCPU()) {
			return true
		}
	}
	return false
}

func pageStats(t *testing.T, r event) event {
	t.Helper()
	pages, ok := r["pages"].([]any)
	if !ok || len(pages) == 0 {
		t.Fatalf("result without pages: %v", r)
	}
	p, _ := pages[0].(map[string]any)
	return event(p)
}

// TestPageUnit runs the Node unit tests of the page's modules.
func TestPageUnit(t *testing.T) {
	node := needNode(t, false)
	out, err := exec.Command(node, "--test", "unit/").CombinedOutput()
	if err != nil {
		t.Fatalf("node --test unit/: %v\n%s", err, out)
	}
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "# pass") || strings.HasPrefix(l, "# fail") {
			t.Log(l)
		}
	}
}

// TestJPEGRebuildDecodes sends real JPEG images through RFC 2435
// packetization and the page's depacketizer, and checks that a JPEG
// decoder (Go's) gets exactly the pixels of the original from the rebuilt
// headers: wrong tables or sampling would show as different pixels.
func TestJPEGRebuildDecodes(t *testing.T) {
	node := needNode(t, false)
	dir := t.TempDir()
	for _, q := range []int{50, 90, 100} {
		img := image.NewRGBA(image.Rect(0, 0, 160, 120))
		for y := 0; y < 120; y++ {
			for x := 0; x < 160; x++ {
				img.Set(x, y, color.RGBA{uint8(x * 255 / 160), uint8(y * 255 / 120), uint8((x ^ y) * 3), 255})
			}
		}
		var buf bytes.Buffer
		if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: q}); err != nil {
			t.Fatal(err)
		}
		in := filepath.Join(dir, fmt.Sprintf("in%d.jpg", q))
		outPath := filepath.Join(dir, fmt.Sprintf("out%d.jpg", q))
		if err := os.WriteFile(in, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(node, "unit/rebuild.mjs", in, outPath, "300").CombinedOutput()
		if err != nil {
			t.Fatalf("quality %d: rebuild.mjs: %v\n%s", q, err, out)
		}
		want := decodeFile(t, in)
		got := decodeFile(t, outPath)
		if got.Bounds() != want.Bounds() {
			t.Fatalf("quality %d: rebuilt image is %v, want %v", q, got.Bounds(), want.Bounds())
		}
		for y := 0; y < 120; y++ {
			for x := 0; x < 160; x++ {
				if got.At(x, y) != want.At(x, y) {
					t.Fatalf("quality %d: pixel (%d,%d) = %v, want %v", q, x, y, got.At(x, y), want.At(x, y))
				}
			}
		}
		t.Logf("quality %d: %s", q, strings.TrimSpace(string(out)))
	}
}

func decodeFile(t *testing.T, path string) image.Image {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := jpeg.Decode(f)
	if err != nil {
		t.Fatalf("decode %s: %v", path, err)
	}
	return img
}

// TestPagePlays: ten seconds of play in Chromium on loopback.
func TestPagePlays(t *testing.T) {
	testenv.Short(t)
	testenv.LookPath(t, "chromium")
	addr := freeAddr(t)
	b := startBox(t, addr)
	var p, r event
	for attempt := 1; ; attempt++ {
		r = scenario(t, "play", "http://"+addr+"/", nil, "--seconds", "10")
		p = pageStats(t, r)
		t.Logf("10 s of play: %.1f fps, %v incomplete, latency p50 %.1f ms p99 %.1f ms max %.1f ms (%v samples), audio %v frames played (%v in, %v underruns), %v Health Checks sent (video %v, audio %v), %.0f kbps, clock offset %.2f ms rtt %.2f ms; Chromium used %.2f cores; load average %v",
			p.num("fps"), p["framesIncomplete"], p.num("latencyP50"), p.num("latencyP99"), p.num("latencyMax"), p["latencySamples"],
			p["audioFramesPlayed"], p["audioFramesIn"], p["audioUnderruns"], p["healthChecksSent"], p["healthChecksVideo"], p["healthChecksAudio"],
			p.num("kbps"), p.num("clockOffsetMs"), p.num("clockRttMs"), r.num("chromiumCores"), r["load"])
		var slow []string
		if fps := p.num("fps"); fps < 25 {
			slow = append(slow, fmt.Sprintf("drew %.1f fps, want >= 25", fps))
		}
		// 10 s of 20 ms packets is 500; the jitter buffer's start and the
		// report period (250 ms) keep a few out of the count.
		if n := p.num("audioFramesPlayed"); n < 400 {
			slow = append(slow, fmt.Sprintf("the worklet played %v audio frames in 10 s, want >= 400", n))
		}
		if lat := p.num("latencyP99"); lat < 0 || lat >= 100 {
			slow = append(slow, fmt.Sprintf("latency p99 %.1f ms, want < 100 ms on loopback", lat))
		}
		if len(slow) > 0 && attempt < 3 && overloaded(r) {
			t.Logf("attempt %d: %s; the machine is overloaded (load average %v on %d cores): measuring again", attempt, strings.Join(slow, "; "), r["load"], runtime.NumCPU())
			continue
		}
		for _, m := range slow {
			t.Error(m)
		}
		break
	}
	t.Logf("a tap on the picture: %v", r["fullScreen"])
	if fs := r["fullScreen"]; fs != "fullscreen" && fs != "immersive" {
		t.Errorf("a tap on the picture neither went full screen nor hid the overlays (%v)", fs)
	}
	// Never excused by load: a frame drawn half is a bug, not slowness.
	if n := p.num("framesIncomplete"); n != 0 {
		t.Errorf("%v incomplete frames, want 0", n)
	}
	hcV := b.metric(t, "callbox_relay_health_checks_total", `kind="video"`)
	hcA := b.metric(t, "callbox_relay_health_checks_total", `kind="audio"`)
	t.Logf("the box counted %v video and %v audio Health Checks", hcV, hcA)
	if hcV < p.num("healthChecksVideo")*0.9 || hcV == 0 {
		t.Errorf("box counted %v video Health Checks, the page sent %v", hcV, p["healthChecksVideo"])
	}
	if hcA < p.num("healthChecksAudio")*0.9 || hcA == 0 {
		t.Errorf("box counted %v audio Health Checks, the page sent %v", hcA, p["healthChecksAudio"])
	}
}

// TestPageRecoversAfterBoxRestart kills the box under a live page and
// starts it again on the same port: the page must go live by itself.
func TestPageRecoversAfterBoxRestart(t *testing.T) {
	testenv.Short(t)
	testenv.LookPath(t, "chromium")
	addr := freeAddr(t)
	b := startBox(t, addr)
	bin := callbox(t)
	data := t.TempDir()
	var killed time.Time
	restarted := make(chan struct{})
	var b2 *box
	var restartErr error
	t.Cleanup(func() {
		if !killed.IsZero() {
			<-restarted
		}
		if b2 != nil {
			b2.kill()
		}
	})
	r := scenario(t, "restart", "http://"+addr+"/", func(ev event) {
		if ev["event"] != "live" || !killed.IsZero() {
			return
		}
		b.kill()
		killed = time.Now()
		// The box stays away for a second, as a reboot would (shorter).
		go func() {
			defer close(restarted)
			time.Sleep(time.Second)
			b2, restartErr = launchBox(bin, addr, data, "--open")
		}()
	})
	<-restarted
	if restartErr != nil {
		t.Fatalf("restarting the box: %v", restartErr)
	}
	t.Logf("page state while the box was down: %v; live again %.0f ms after it noticed; %v reconnects; %v incomplete frames",
		r["lostState"], r.num("recoveredAfterMs"), r["reconnects"], r["framesIncomplete"])
	if r["state"] != "live" {
		t.Errorf("page state %v after the restart, want live", r["state"])
	}
	if n := r.num("framesIncomplete"); n != 0 {
		t.Errorf("%v incomplete frames across the restart, want 0", n)
	}
}

// TestPageThrottled gives the page a link far slower than the stream
// (DevTools network emulation, which applies to WebSockets): the relay's
// Health Check pacing must keep what the page shows fresh, i.e. no older
// than the relay's bound. A frame waits in the page's Buffer at most
// MaxDelay (plus one frame interval: the bound is checked when a frame
// arrives), then behind what is in flight: at most IdleLimit packets plus
// one whole frame (a write round never splits a frame), then takes its own
// transfer time; 100 ms more cover the page's own decoding and drawing.
func TestPageThrottled(t *testing.T) {
	testenv.Short(t)
	testenv.LookPath(t, "chromium")
	addr := freeAddr(t)
	b := startBox(t, addr)
	const kbps = 4000
	r := scenario(t, "throttle", "http://"+addr+"/", nil, "--seconds", "6", "--throttle-kbps", strconv.Itoa(kbps), "--latency-ms", "10")
	p := pageStats(t, r)
	cfg := relay.DefaultConfig()
	got := p.num("kbps")
	if got <= 0 || got > kbps*1.1 {
		t.Fatalf("page received %v kbps on a %d kbps link: throttling did not apply", got, kbps)
	}
	fps := math.Max(p.num("fps"), 1)
	frameBytes := got * 1000 / 8 / fps
	inFlight := float64(cfg.Video.IdleLimit*capture.DefaultMaxPacketSize) + 2*frameBytes
	bound := float64(cfg.Video.MaxDelay.Milliseconds()) + 1000.0/30 + inFlight*8/got + 100
	flushes := b.metric(t, "callbox_relay_flushes_total", `kind="video"`)
	t.Logf("throttled to %d kbps: page got %v kbps, %.1f fps, latency p50 %.0f ms p99 %.0f ms max %.0f ms (bound %.0f ms), %v reconnects; relay flushed the video %v times",
		kbps, got, p.num("fps"), p.num("latencyP50"), p.num("latencyP99"), p.num("latencyMax"), bound, p["reconnects"], flushes)
	if p.num("framesDrawn") < 5 {
		t.Errorf("only %v frames drawn in 6 s on the slow link", p["framesDrawn"])
	}
	if m := p.num("latencyMax"); m < 0 || m > bound {
		t.Errorf("oldest frame shown was %.0f ms old, want <= %.0f ms", m, bound)
	}
	if n := p.num("framesIncomplete"); n != 0 {
		t.Errorf("%v incomplete frames, want 0", n)
	}
}

// TestTenPagesLatency measures capture -> drawn-on-canvas latency with
// ten viewers at 720p30 on loopback, two ways: one Chromium page plus nine
// headless viewers (the box serves ten, one measures), and ten Chromium
// pages (the test machine's CPU then decodes ten streams). The
// numbers go to the log and to artifacts/latency-10.json.
func TestTenPagesLatency(t *testing.T) {
	testenv.Short(t)
	testenv.LookPath(t, "chromium")
	addr := freeAddr(t)
	startBox(t, addr)
	out := map[string]any{}

	var one event
	for attempt := 1; ; attempt++ {
		v := startViewers(addr, 9)
		one = nodeScript(t, "cdp-pages", nil, "--experimental-websocket", "cdp-pages.mjs",
			"--url", "http://"+addr+"/", "--pages", "1", "--seconds", "8")
		pkts := v.packets.Load()
		if errs := v.stop(); len(errs) > 0 {
			t.Errorf("headless viewers: %v", errs)
		}
		a50, a99, an := v.arrivalPercentiles()
		t.Logf("9 headless viewers: capture -> whole frame received p50 %.1f ms p99 %.1f ms (%d frames)", a50, a99, an)
		one["viewersArrivalP50"], one["viewersArrivalP99"], one["viewersFrames"] = a50, a99, an
		p := pageStats(t, one)
		t.Logf("1 page + 9 headless viewers: latency p50 %.1f ms p99 %.1f ms (%v frames), %.1f fps; viewers got %d packets; Chromium used %.2f cores; load average %v",
			one.num("latencyP50"), one.num("latencyP99"), one["latencySamples"], p.num("fps"), pkts, one.num("chromiumCores"), one["load"])
		if pkts == 0 {
			t.Errorf("the headless viewers received nothing")
		}
		if p.num("framesIncomplete") != 0 {
			t.Errorf("with 9 viewers besides: %v incomplete frames", p["framesIncomplete"])
		}
		if p.num("fps") < 25 {
			if attempt < 2 && overloaded(one) {
				t.Logf("attempt %d: %.1f fps on an overloaded machine: measuring again", attempt, p.num("fps"))
				continue
			}
			t.Errorf("with 9 viewers besides: %.1f fps, want >= 25", p.num("fps"))
		}
		break
	}
	out["onePagePlusNineViewers"] = one

	// Ten pages over plain DevTools protocol: see cdp-pages.mjs for why not
	// through playwright-core here.
	// Ten Chromium pages decoding 720p30 JPEG take both cores of the test
	// machine: on a machine busy with more than that, a page can miss its
	// budget to go live. That is measured once more before it fails, with
	// the pages' own states in the log.
	var ten event
	for attempt := 1; ; attempt++ {
		r, err := runNodeScript(t, "cdp-pages", nil, "--experimental-websocket", "cdp-pages.mjs",
			"--url", "http://"+addr+"/", "--pages", "10", "--seconds", "8")
		if err == nil {
			ten = r
			break
		}
		if attempt >= 2 {
			t.Fatal(err)
		}
		t.Logf("attempt %d with ten pages failed, measuring again: %v", attempt, err)
	}
	pages, _ := ten["pages"].([]any)
	minFPS := math.Inf(1)
	for _, x := range pages {
		pg := event(x.(map[string]any))
		minFPS = math.Min(minFPS, pg.num("fps"))
		if pg.num("framesIncomplete") != 0 {
			t.Errorf("a page drew incomplete frames: %v", pg["framesIncomplete"])
		}
	}
	t.Logf("10 pages: latency p50 %.1f ms p99 %.1f ms (%v frames), slowest page %.1f fps; Chromium used %.2f cores; load average %v on %v",
		ten.num("latencyP50"), ten.num("latencyP99"), ten["latencySamples"], minFPS, ten.num("chromiumCores"), ten["load"], ten["cpu"])
	out["tenPages"] = ten
	if len(pages) != 10 || minFPS < 1 {
		t.Errorf("%d pages, slowest at %.1f fps: every page must stay live", len(pages), minFPS)
	}
	if j, err := json.MarshalIndent(out, "", " "); err == nil {
		os.MkdirAll("artifacts", 0o755)
		os.WriteFile(filepath.Join("artifacts", "latency-10.json"), j, 0o644)
	}
}

// TestPagePairing runs the pairing flow on a box that is not open: the page
// says to press the button, the (simulated) buttons approve it, the page
// goes live with its token, and a reload stays paired.
func TestPagePairing(t *testing.T) {
	testenv.Short(t)
	testenv.LookPath(t, "chromium")
	addr := freeAddr(t)
	startBoxWith(t, addr)
	r := scenario(t, "pair", "http://"+addr+"/", nil)
	t.Logf("unpaired notice %q; live %.0f ms after the press; live %.0f ms after a reload",
		r["notice"], r.num("pairedMs"), r.num("liveAfterReloadMs"))
	if n, _ := r["notice"].(string); !strings.Contains(n, "Press the button on the box") {
		t.Errorf("unpaired page says %q, want it to ask for the button", n)
	}
	if r["tokenStored"] != true {
		t.Errorf("no token in localStorage after pairing")
	}
	if n := r.num("framesIncomplete"); n != 0 {
		t.Errorf("%v incomplete frames", n)
	}
}

// TestPageInsecureContext loads the page the way phones do, over plain
// http from a name that is not localhost: browsers then withhold what needs
// a secure context (ImageDecoder, AudioWorklet), and the page must play
// through its fallbacks (createImageBitmap, ScriptProcessorNode).
func TestPageInsecureContext(t *testing.T) {
	testenv.Short(t)
	testenv.LookPath(t, "chromium")
	addr := freeAddr(t)
	startBox(t, addr)
	r := scenario(t, "insecure", "http://"+addr+"/", nil, "--seconds", "6")
	p := pageStats(t, r)
	t.Logf("insecure context %v: decoded with %v, sound through %v; %.1f fps, %v incomplete, latency p50 %.1f ms p99 %.1f ms, %v audio frames played (%v in, %v underruns); load average %v",
		r["secureContext"] == false, r["decodePath"], r["audioPath"], p.num("fps"), p["framesIncomplete"],
		p.num("latencyP50"), p.num("latencyP99"), p["audioFramesPlayed"], p["audioFramesIn"], p["audioUnderruns"], r["load"])
	if r["secureContext"] != false {
		t.Fatalf("the page was a secure context (%v): the test checks nothing", r["secureContext"])
	}
	if r["decodePath"] != "createImageBitmap" || r["audioPath"] != "ScriptProcessorNode" {
		t.Errorf("decoded with %v and played with %v, want createImageBitmap and ScriptProcessorNode", r["decodePath"], r["audioPath"])
	}
	if p.num("framesIncomplete") != 0 || p.num("decodeErrors") != 0 {
		t.Errorf("%v incomplete frames, %v decode errors; want 0", p["framesIncomplete"], p["decodeErrors"])
	}
	// 6 s is 300 packets of 20 ms; a compatibility check, loose on timing.
	if p.num("fps") < 15 || p.num("audioFramesPlayed") < 200 {
		t.Errorf("%.1f fps and %v audio frames played in 6 s; want >= 15 and >= 200", p.num("fps"), p["audioFramesPlayed"])
	}
}

// TestPageHiddenPauses: a page in the background closes its sockets after
// a grace period (the box then serves nobody) and goes live again when it
// is visible.
func TestPageHiddenPauses(t *testing.T) {
	testenv.Short(t)
	testenv.LookPath(t, "chromium")
	addr := freeAddr(t)
	b := startBox(t, addr)
	viewersWhileHidden := -1.0
	r := scenario(t, "hidden", "http://"+addr+"/", func(ev event) {
		if ev["event"] != "hidden" {
			return
		}
		// The relay notices a closed socket on its next read or write.
		for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			viewersWhileHidden = b.metric(t, "callbox_relay_clients")
			if viewersWhileHidden == 0 || time.Now().After(deadline) {
				return
			}
		}
	})
	t.Logf("hidden: sockets closed after %.0f ms (grace 500 ms), box sessions then %v; live %.0f ms after visible again",
		r.num("pausedAfterMs"), viewersWhileHidden, r.num("liveAgainMs"))
	if viewersWhileHidden != 0 {
		t.Errorf("the box still had %v sessions while the page was hidden, want 0", viewersWhileHidden)
	}
	if r.num("hiddenPauses") != 1 || r.num("framesIncomplete") != 0 {
		t.Errorf("%v pauses and %v incomplete frames, want 1 and 0", r["hiddenPauses"], r["framesIncomplete"])
	}
}
