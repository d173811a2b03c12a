// Command hubbench measures `callbox hub` under load (make bench-hub):
//
//   - registrations per second and the hub's RSS per connected box, with
//     1,000, 10,000 and 50,000 simulated boxes on one hub on SQLite;
//   - signals per second and their latency between two hub instances
//     through NATS (box -> instance 1 -> NATS -> instance 2 -> box).
//
// The hub is the real binary (bin/callbox); the simulated boxes run in a
// process of their own (this binary, "hubbench boxes" / "hubbench pairs"),
// speaking the real protocol: signed hellos, pairing codes, signals.
// Results are printed as a Markdown table (docs/hub.md).
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "boxes":
			os.Exit(runBoxes(os.Args[2:]))
		case "pairs":
			os.Exit(runPairs(os.Args[2:]))
		}
	}
	os.Exit(orchestrate(os.Args[1:]))
}

func orchestrate(args []string) int {
	fs := flag.NewFlagSet("hubbench", flag.ContinueOnError)
	callbox := fs.String("callbox", "bin/callbox", "the callbox binary to run as the hub")
	counts := fs.String("boxes", "1000,10000,50000", "numbers of simulated boxes, one run each (\"\": none)")
	conc := fs.Int("concurrency", 64, "registrations in flight")
	pairs := fs.Int("pairs", 50, "box pairs across the two instances for the signal runs (the hub takes 60 pairing joins a minute)")
	rates := fs.String("rates", "1000,5000,10000", "signal rates (per second, in total) to measure latency at (\"\": no signal runs)")
	dur := fs.Duration("duration", 5*time.Second, "length of each signal run")
	natsBin := fs.String("nats-server", "nats-server", "the NATS server binary")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	raiseFileLimit()
	dir, err := os.MkdirTemp("", "hubbench")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	cpu := cpuName()
	limit := fileLimit()
	fmt.Printf("hubbench on %s, %d CPUs, load average %s, open-file limit %d\n\n", cpu, numCPU(), loadAvg(), limit)
	fmt.Println("| boxes | registrations/s | hub CPU per registration | boxes' CPU per registration | hub RSS idle | hub RSS with the boxes | RSS per box | boxes process RSS |")
	fmt.Println("|---:|---:|---:|---:|---:|---:|---:|---:|")
	var last struct {
		n       int
		idle    int
		perBox  float64
		perCore float64
	}
	for _, s := range strings.Split(*counts, ",") {
		if strings.TrimSpace(s) == "" {
			continue // -boxes "": the signal runs only
		}
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		// Each box is a socket in the hub and one in the boxes process;
		// a process may not hold more than the open-file limit.
		if max := int(limit) - 512; n > max {
			fmt.Printf("| %d | not here: the open-file limit is %d (no CAP_SYS_RESOURCE to raise it); measuring %d instead | | | | | | |\n", n, limit, max)
			n = max
		}
		r, err := benchBoxes(*callbox, dir, n, *conc)
		if err != nil {
			fmt.Fprintf(os.Stderr, "hubbench: %d boxes: %v\n", n, err)
			return 1
		}
		last.n, last.idle, last.perBox, last.perCore = n, r.idleKB, r.perBoxKB, r.perCore
	}
	if last.n > 0 {
		fmt.Printf("\nProjected from the %d-box run: 50,000 boxes would take %.0f MB of hub RSS (idle + 50,000 x %.1f KB); one core of hub registers %.0f boxes/s.\n",
			last.n, (float64(last.idle)+50000*last.perBox)/1024, last.perBox, last.perCore)
	}
	fmt.Println()
	if *rates == "" {
		return 0
	}
	if err := benchSignals(*callbox, *natsBin, dir, *pairs, *rates, *dur); err != nil {
		fmt.Fprintf(os.Stderr, "hubbench: signals: %v\n", err)
		return 1
	}
	return 0
}

// raiseFileLimit lifts the open-file limit (each box is a socket on both
// sides): to 1M when allowed (root), else to the hard limit. Children
// inherit it.
func raiseFileLimit() {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return
	}
	want := syscall.Rlimit{Cur: 1 << 20, Max: 1 << 20}
	if syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want) != nil {
		l.Cur = l.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
	}
}

// proc is a child process whose stdout lines we read.
type proc struct {
	cmd   *exec.Cmd
	lines chan string
	stdin interface{ Close() error }
}

func start(name string, args []string, env ...string) (*proc, error) {
	return startLogged(name, args, os.Stderr, env...)
}

// startLogged is start with the child's stderr going to stderr.
func startLogged(name string, args []string, stderr io.Writer, env ...string) (*proc, error) {
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &proc{cmd: cmd, lines: make(chan string, 1024), stdin: in}
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
		close(p.lines)
	}()
	return p, nil
}

// wait reads lines until one matches re, and returns its submatches.
func (p *proc) wait(re *regexp.Regexp, d time.Duration) ([]string, error) {
	deadline := time.After(d)
	for {
		select {
		case l, ok := <-p.lines:
			if !ok {
				return nil, fmt.Errorf("%s exited", p.cmd.Path)
			}
			if m := re.FindStringSubmatch(l); m != nil {
				return m, nil
			}
		case <-deadline:
			return nil, fmt.Errorf("%s: no line matching %s after %v", p.cmd.Path, re, d)
		}
	}
}

func (p *proc) stop() {
	_ = p.stdin.Close()
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	_ = p.cmd.Wait()
}

var hubListening = regexp.MustCompile(`signalling at ws://([0-9.]+:[0-9]+)/v1/ws`)

func startHub(callbox, dir string, extra ...string) (*proc, string, error) {
	// --max-conns: the default (4096) protects a small hub; this one is
	// meant to hold every box the run connects.
	args := append([]string{"hub", "--listen", "127.0.0.1:0", "--public-ip", "127.0.0.1", "--stun-listen", "", "--data", dir, "--drain", "1ms",
		"--max-conns", "200000"}, extra...)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, "", err
	}
	// The hub's log goes to a file beside its store (it logs every box
	// that connects or leaves at debug level only, but pairings and warnings).
	logf, err := os.Create(filepath.Join(dir, "hub.log"))
	if err != nil {
		return nil, "", err
	}
	p, err := startLogged(callbox, args, logf, "CALLBOX_TURN_SECRET=bench-secret")
	if err != nil {
		return nil, "", err
	}
	m, err := p.wait(hubListening, 60*time.Second)
	if err != nil {
		p.stop()
		return nil, "", err
	}
	go func() { // keep draining its output
		for range p.lines {
		}
	}()
	return p, "ws://" + m[1] + "/v1/ws", nil
}

// rssKB reads a process's resident set size.
func rssKB(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			f := strings.Fields(l)
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	return 0
}

type boxesReport struct {
	Registered int     `json:"registered"`
	Seconds    float64 `json:"seconds"`
	Failed     int     `json:"failed"`
	FirstError string  `json:"first_error,omitempty"`
}

type boxesResult struct {
	idleKB   int
	perBoxKB float64
	perCore  float64 // registrations per CPU-second of the hub
}

func benchBoxes(callbox, dir string, n, conc int) (boxesResult, error) {
	var res boxesResult
	hubDir := filepath.Join(dir, fmt.Sprintf("hub-%d", n))
	hub, url, err := startHub(callbox, hubDir)
	if err != nil {
		return res, err
	}
	defer hub.stop()
	time.Sleep(time.Second) // let the idle hub settle before its baseline
	pid := hub.cmd.Process.Pid
	idle := rssKB(pid)
	cpu0 := cpuSeconds(pid)
	self, _ := os.Executable()
	boxes, err := start(self, []string{"boxes", "-url", url, "-n", strconv.Itoa(n), "-concurrency", strconv.Itoa(conc)})
	if err != nil {
		return res, err
	}
	defer boxes.stop()
	m, err := boxes.wait(regexp.MustCompile(`^(\{.*"registered".*\})$`), 30*time.Minute)
	if err != nil {
		return res, err
	}
	cpu := cpuSeconds(pid) - cpu0
	boxesCPU := cpuSeconds(boxes.cmd.Process.Pid)
	var r boxesReport
	if err := json.Unmarshal([]byte(m[1]), &r); err != nil {
		return res, err
	}
	if r.Failed > 0 {
		return res, fmt.Errorf("%d registrations failed, first: %s", r.Failed, r.FirstError)
	}
	// Let the hub settle with every box connected (a GC cycle and the
	// scavenger returning the registrations' garbage), then read RSS.
	time.Sleep(10 * time.Second)
	full := rssKB(pid)
	res = boxesResult{idleKB: idle, perBoxKB: float64(full-idle) / float64(n), perCore: float64(n) / cpu}
	fmt.Printf("| %d | %.0f | %.2f ms | %.2f ms | %.1f MB | %.1f MB | %.1f KB | %.1f MB |\n", n, float64(r.Registered)/r.Seconds, 1000*cpu/float64(n), 1000*boxesCPU/float64(n),
		float64(idle)/1024, float64(full)/1024, res.perBoxKB, float64(rssKB(boxes.cmd.Process.Pid))/1024)
	return res, nil
}

// cpuSeconds is a process's user+system CPU time (/proc/PID/stat).
func cpuSeconds(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name (field 2) may hold spaces; fields count from after it.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100 // USER_HZ
}

func fileLimit() uint64 {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 0
	}
	return l.Cur
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Join(strings.Fields(string(b))[:3], " ")
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

type pairsReport struct {
	Rate     int     `json:"rate"`
	Sent     int     `json:"sent"`
	Received int     `json:"received"`
	Seconds  float64 `json:"seconds"`
	P50MS    float64 `json:"p50_ms"`
	P99MS    float64 `json:"p99_ms"`
	MaxMS    float64 `json:"max_ms"`
}

func benchSignals(callbox, natsBin, dir string, pairs int, rates string, dur time.Duration) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	nats, err := start(natsBin, []string{"-a", "127.0.0.1", "-p", strconv.Itoa(port)})
	if err != nil {
		return fmt.Errorf("nats-server: %w", err)
	}
	defer nats.stop()
	natsURL := fmt.Sprintf("nats://127.0.0.1:%d", port)
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nats-server not listening: %w", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Two instances on one store. Signals never touch the store (pairs are
	// cached per connection), so one SQLite file shared by two processes
	// stands in for PostgreSQL here.
	db := "sqlite:" + filepath.Join(dir, "signals.db")
	h1, url1, err := startHub(callbox, filepath.Join(dir, "one"), "--store", db, "--cluster", natsURL, "--instance", "one")
	if err != nil {
		return err
	}
	defer h1.stop()
	h2, url2, err := startHub(callbox, filepath.Join(dir, "two"), "--store", db, "--cluster", natsURL, "--instance", "two")
	if err != nil {
		return err
	}
	defer h2.stop()
	self, _ := os.Executable()
	p, err := start(self, []string{"pairs", "-a", url1, "-b", url2, "-pairs", strconv.Itoa(pairs), "-rates", rates, "-duration", dur.String()})
	if err != nil {
		return err
	}
	defer p.stop()
	fmt.Printf("Load average now %s.\n\n", loadAvg())
	fmt.Printf("Signals between two hub instances through NATS (%d box pairs, each signal box -> instance one -> NATS -> instance two -> box, an offer of ~1.2 KB):\n\n", pairs)
	fmt.Println("| offered signals/s | delivered signals/s | p50 | p99 | max |")
	fmt.Println("|---:|---:|---:|---:|---:|")
	n := len(strings.Split(rates, ","))
	for i := 0; i < n; i++ {
		m, err := p.wait(regexp.MustCompile(`^(\{.*"p99_ms".*\})$`), 10*time.Minute)
		if err != nil {
			return err
		}
		var r pairsReport
		if err := json.Unmarshal([]byte(m[1]), &r); err != nil {
			return err
		}
		fmt.Printf("| %d | %.0f | %.2f ms | %.2f ms | %.2f ms |\n", r.Rate, float64(r.Received)/r.Seconds, r.P50MS, r.P99MS, r.MaxMS)
		if r.Received < r.Sent {
			fmt.Printf("(%d of %d signals not delivered)\n", r.Sent-r.Received, r.Sent)
		}
	}
	return nil
}

func cpuName() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "model name") {
			if _, v, ok := strings.Cut(l, ":"); ok {
				return strings.TrimSpace(v)
			}
		}
	}
	return "unknown CPU"
}

func numCPU() int {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return 0
	}
	return strings.Count(string(b), "processor\t:")
}
