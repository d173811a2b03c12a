package natlab

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
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/callbox/callbox/internal/testenv"
)

// lab is one topology: its namespaces, the processes running in them, and
// the callbox binary under test.
type lab struct {
	t   *testing.T
	pfx string // namespace name prefix, unique per test process and case
	bin string
	dir string

	// env is added to every process's environment (a test CA: SSL_CERT_FILE).
	env []string

	mu     sync.Mutex
	nss    []string
	procs  []*exec.Cmd
	stderr map[*exec.Cmd]*lockedWriter
}

// stderrOf is what cmd (started by start) has written to its stderr so far.
func (l *lab) stderrOf(cmd *exec.Cmd) string {
	l.mu.Lock()
	w := l.stderr[cmd]
	l.mu.Unlock()
	if w == nil {
		return ""
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.(*bytes.Buffer).String()
}

var (
	buildOnce sync.Once
	buildBin  string
	buildErr  error
)

// callboxBinary builds ./cmd/callbox once per test process.
func callboxBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "natlab-bin-")
		if err != nil {
			buildErr = err
			return
		}
		buildBin = filepath.Join(dir, "callbox")
		cmd := exec.Command("go", "build", "-o", buildBin, "github.com/callbox/callbox/cmd/callbox")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildBin
}

func newLab(t *testing.T, name string) *lab {
	t.Helper()
	testenv.Short(t)
	testenv.RequireRoot(t)
	testenv.LookPath(t, "ip")
	testenv.LookPath(t, "iptables")
	l := &lab{
		t:   t,
		pfx: fmt.Sprintf("cbnl%d%s-", os.Getpid()%100000, name),
		bin: callboxBinary(t),
		dir: t.TempDir(),
	}
	t.Cleanup(l.cleanup)
	return l
}

// cleanup stops the processes this lab started and deletes its namespaces.
func (l *lab) cleanup() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, p := range l.procs {
		if p.Process != nil && p.ProcessState == nil {
			_ = p.Process.Kill()
			_, _ = p.Process.Wait()
		}
	}
	for i := len(l.nss) - 1; i >= 0; i-- {
		if out, err := exec.Command("ip", "netns", "del", l.nss[i]).CombinedOutput(); err != nil {
			l.t.Logf("cleanup: ip netns del %s: %v %s", l.nss[i], err, out)
		}
	}
}

// sh runs a command in the root namespace (only ip, which creates objects
// inside the lab's namespaces).
func (l *lab) sh(args ...string) {
	l.t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		l.t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// in runs a command inside namespace ns.
func (l *lab) in(ns string, args ...string) {
	l.t.Helper()
	l.sh(append([]string{"ip", "netns", "exec", l.pfx + ns}, args...)...)
}

func (l *lab) addNS(names ...string) {
	for _, n := range names {
		full := l.pfx + n
		l.sh("ip", "netns", "add", full)
		l.mu.Lock()
		l.nss = append(l.nss, full)
		l.mu.Unlock()
		l.sh("ip", "-n", full, "link", "set", "lo", "up")
	}
}

// link makes a veth pair: ifA in namespace a, ifB in namespace b.
func (l *lab) link(a, ifA, b, ifB string) {
	l.sh("ip", "link", "add", ifA, "netns", l.pfx+a, "type", "veth", "peer", "name", ifB, "netns", l.pfx+b)
	l.sh("ip", "-n", l.pfx+a, "link", "set", ifA, "up")
	l.sh("ip", "-n", l.pfx+b, "link", "set", ifB, "up")
}

func (l *lab) addr(ns, dev, cidr string) { l.sh("ip", "-n", l.pfx+ns, "addr", "add", cidr, "dev", dev) }

// public builds the public segment: a bridge in "pub" and the hub at .10.
func (l *lab) public() {
	l.addNS("pub", "hub")
	l.sh("ip", "-n", l.pfx+"pub", "link", "add", "br0", "type", "bridge")
	l.sh("ip", "-n", l.pfx+"pub", "link", "set", "br0", "up")
	l.plugPublic("hub", hubIP)
}

func (l *lab) plugPublic(ns, ip string) {
	l.link(ns, "wan", "pub", "p-"+ns)
	l.sh("ip", "-n", l.pfx+"pub", "link", "set", "p-"+ns, "master", "br0")
	l.addr(ns, "wan", ip+"/24")
}

const hubIP = "198.51.100.10"

// router adds a NAT router with WAN address wanIP and LAN 10.201.<n>.0/24
// on a bridge. symmetric selects MASQUERADE --random-fully.
func (l *lab) router(name, wanIP string, n int, symmetric bool) {
	l.addNS(name)
	l.plugPublic(name, wanIP)
	l.sh("ip", "-n", l.pfx+name, "link", "add", "lan", "type", "bridge")
	l.sh("ip", "-n", l.pfx+name, "link", "set", "lan", "up")
	l.addr(name, "lan", fmt.Sprintf("10.201.%d.1/24", n))
	l.in(name, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	// A home router: replies to what the LAN sent may come in, nothing else.
	for _, chain := range []string{"INPUT", "FORWARD"} {
		l.in(name, "iptables", "-A", chain, "-i", "wan", "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT")
		l.in(name, "iptables", "-A", chain, "-i", "wan", "-j", "DROP")
	}
	masq := []string{"iptables", "-t", "nat", "-A", "POSTROUTING", "-o", "wan", "-j", "MASQUERADE"}
	if symmetric {
		masq = append(masq, "--random-fully")
	}
	l.in(name, masq...)
}

// host adds a box namespace on router's LAN with address 10.201.<n>.<h>.
func (l *lab) host(name, router string, n, h int) {
	l.addNS(name)
	l.link(name, "eth0", router, "h-"+name)
	l.sh("ip", "-n", l.pfx+router, "link", "set", "h-"+name, "master", "lan")
	l.addr(name, "eth0", fmt.Sprintf("10.201.%d.%d/24", n, h))
	l.sh("ip", "-n", l.pfx+name, "route", "add", "default", "via", fmt.Sprintf("10.201.%d.1", n))
}

// start runs the callbox binary in namespace ns.
func (l *lab) start(ns string, stdout io.Writer, args ...string) *exec.Cmd {
	l.t.Helper()
	return l.startIn(ns, nil, stdout, args...)
}

// startIn is start with the process's standard input read from stdin.
func (l *lab) startIn(ns string, stdin io.Reader, stdout io.Writer, args ...string) *exec.Cmd {
	l.t.Helper()
	cmd := exec.Command("ip", append([]string{"netns", "exec", l.pfx + ns, l.bin}, args...)...)
	cmd.Env = append(append(os.Environ(), "CALLBOX_TURN_SECRET=natlab-secret"), l.env...)
	cmd.Stdin = stdin
	cmd.Stdout = stdout
	stderr := &lockedWriter{w: &bytes.Buffer{}}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		l.t.Fatal(err)
	}
	l.mu.Lock()
	l.procs = append(l.procs, cmd)
	if l.stderr == nil {
		l.stderr = map[*exec.Cmd]*lockedWriter{}
	}
	l.stderr[cmd] = stderr
	l.mu.Unlock()
	l.t.Cleanup(func() {
		if s := l.stderrOf(cmd); (l.t.Failed() || os.Getenv("NATLAB_STDERR") != "") && s != "" {
			l.t.Logf("stderr of %s in %s:\n%s", args[0], ns, tail(s, 3000))
		}
	})
	return cmd
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(p)
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// startHub runs the hub and waits until it listens.
func (l *lab) startHub(extra ...string) {
	pr, pw := io.Pipe()
	l.start("hub", pw, append([]string{"hub", "--listen", hubIP + ":8443", "--stun-listen", hubIP + ":3478",
		"--public-ip", hubIP, "--data", filepath.Join(l.dir, "hub")}, extra...)...)
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "signalling at") {
				close(ready)
				break
			}
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	select {
	case <-ready:
	case <-time.After(10 * time.Second):
		l.t.Fatal("hub did not start")
	}
}

const hubURL = "ws://" + hubIP + ":8443/v1/ws"

// pair pairs the boxes in namespaces a and b (data dirs named after them)
// as two owners would: a shows a code, b enters it, both show a short
// confirmation, and each owner types in the confirmation the other box
// shows (the hub is plain ws:// here, hence --insecure-hub).
func (l *lab) pair(a, b string) {
	l.t.Helper()
	type line struct{ Code, SAS string }
	run := func(ns string, extra ...string) (lines chan line, stdin io.WriteCloser, cmd *exec.Cmd) {
		pr, pw := io.Pipe()
		inR, inW := io.Pipe()
		args := append([]string{"call", "--hub", hubURL, "--insecure-hub", "--data", filepath.Join(l.dir, ns), "--name", ns, "--json"}, extra...)
		cmd = l.startIn(ns, inR, pw, args...)
		lines = make(chan line, 4)
		go func() {
			sc := bufio.NewScanner(pr)
			for sc.Scan() {
				var m line
				if json.Unmarshal(sc.Bytes(), &m) == nil && (m.Code != "" || m.SAS != "") {
					lines <- m
				}
			}
		}()
		l.t.Cleanup(func() { pw.Close(); inW.Close() })
		return lines, inW, cmd
	}
	next := func(c chan line, what string) line {
		select {
		case m := <-c:
			return m
		case <-time.After(10 * time.Second):
			l.t.Fatalf("no %s", what)
		}
		return line{}
	}
	la, ina, pa := run(a, "--pair")
	code := next(la, "pairing code").Code
	lb, inb, pb := run(b, "--join", code)
	sasB := next(lb, "confirmation on "+b).SAS
	sasA := next(la, "confirmation on "+a).SAS
	if sasA == "" || sasA != sasB {
		l.t.Fatalf("the boxes show different confirmations: %q and %q", sasA, sasB)
	}
	// Each owner types what the other box shows. (Closing stdin lets
	// Wait return: exec copies into the process until EOF.)
	fmt.Fprintln(ina, sasB)
	fmt.Fprintln(inb, sasA)
	ina.Close()
	inb.Close()
	if err := pb.Wait(); err != nil {
		l.t.Fatalf("join: %v", err)
	}
	if err := pa.Wait(); err != nil {
		l.t.Fatalf("pair: %v", err)
	}
}

// summary is what `callbox call --json` prints at the end (box.Summary).
type summary struct {
	Peer            string  `json:"peer"`
	Path            string  `json:"path"`
	LocalCandidate  string  `json:"local_candidate"`
	RemoteCandidate string  `json:"remote_candidate"`
	ConnectMS       float64 `json:"connect_ms"`
	FirstMediaMS    float64 `json:"first_media_ms"`
	FirstFrameMS    float64 `json:"first_frame_ms"`
	FramesSent      uint64  `json:"frames_sent"`
	FramesDecoded   uint64  `json:"frames_decoded"`
	AudioReceived   uint64  `json:"audio_received"`
	BytesViaRelay   uint64  `json:"bytes_via_relay"`
	LastFrameMS     float64 `json:"last_frame_ms"`
	MaxRTPPacket    int     `json:"max_rtp_packet"`
	Restarts        int     `json:"ice_restarts"`
	RecoveryMS      float64 `json:"recovery_ms"`
	Error           string  `json:"error"`

	FramesReceived    uint64  `json:"frames_received"`
	FramesUndecodable uint64  `json:"frames_undecodable"`
	VideoSent         string  `json:"video_sent"`
	VideoReceived     string  `json:"video_received"`
	AudioSentCodec    string  `json:"audio_sent_codec"`
	Step              string  `json:"step"`
	LowestStep        string  `json:"lowest_step"`
	StepDowns         int     `json:"step_downs"`
	Estimate          int     `json:"estimate_bps"`
	EncoderBitrate    int     `json:"encoder_bps"`
	KeyframesSent     uint64  `json:"keyframes_sent"`
	PLIsSent          uint64  `json:"plis_sent"`
	LatencyFrames     int     `json:"latency_frames"`
	LatencyP50MS      float64 `json:"latency_p50_ms"`
	LatencyP99MS      float64 `json:"latency_p99_ms"`
	SteadyP99MS       float64 `json:"steady_p99_ms"`
	VideoKbps         float64 `json:"video_kbps"`
	ReceivedFPS       float64 `json:"received_fps"`
	DurationMS        float64 `json:"duration_ms"`
}

// call runs `callbox call` in a and b at the same time, each calling the
// other, and returns their summaries.
func (l *lab) call(a, b string, d time.Duration, extra ...string) (summary, summary) {
	return l.callWith(a, b, d, extra, extra)
}

// callWith is call with extra flags for a's and b's callbox.
func (l *lab) callWith(a, b string, d time.Duration, extraA, extraB []string) (summary, summary) {
	l.t.Helper()
	var outA, outB bytes.Buffer
	args := func(self, peer string) []string {
		a := []string{"call", "--hub", hubURL, "--insecure-hub", "--data", filepath.Join(l.dir, self), peer,
			"--duration", d.String(), "--setup-timeout", "10s", "--json"}
		if self == b {
			a = append(a, extraB...)
		} else {
			a = append(a, extraA...)
		}
		if os.Getenv("NATLAB_STDERR") != "" {
			a = append(a, "-v") // the call's progress in its log
		}
		return a
	}
	pa := l.start(a, &lockedWriter{w: &outA}, args(a, b)...)
	pb := l.start(b, &lockedWriter{w: &outB}, args(b, a)...)
	errA, errB := pa.Wait(), pb.Wait()
	parse := func(name string, out *bytes.Buffer, err error) summary {
		var s summary
		lines := strings.Split(strings.TrimSpace(out.String()), "\n")
		if jerr := json.Unmarshal([]byte(lines[len(lines)-1]), &s); jerr != nil {
			l.t.Fatalf("%s: no summary (exit %v): %q", name, err, out.String())
		}
		if err != nil {
			l.t.Errorf("%s exited with %v: %+v", name, err, s)
		}
		l.t.Logf("%s summary: %s", name, lines[len(lines)-1])
		return s
	}
	return parse(a, &outA, errA), parse(b, &outB, errB)
}

// hubStats reads the hub's /v1/stats from inside the hub's namespace.
func (l *lab) hubStats() (relayed uint64, err error) {
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return dialInNetns(l.pfx+"hub", network, addr)
		},
	}}
	resp, err := client.Get("http://" + hubIP + ":8443/v1/stats")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var st struct {
		RelayedBytes uint64 `json:"relayed_bytes"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return 0, err
	}
	return st.RelayedBytes, nil
}

// dialInNetns opens a connection from inside a network namespace: the
// socket is created by a thread that has joined the namespace, and keeps
// belonging to it. The thread stays locked and is discarded when the
// goroutine ends, so no other goroutine ever runs in the lab's namespace.
func dialInNetns(ns, network, addr string) (net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with this goroutine
		fd, err := unix.Open("/run/netns/"+ns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			ch <- result{err: fmt.Errorf("open netns %s: %w", ns, err)}
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			ch <- result{err: fmt.Errorf("setns %s: %w", ns, err)}
			return
		}
		c, err := net.DialTimeout(network, addr, 2*time.Second)
		ch <- result{c, err}
	}()
	r := <-ch
	return r.c, r.err
}
