// Command relaybench measures the relay (make bench-relay): one publisher
// of 1280x720 30 fps MJPEG (frames of about 16 KB, about 4 Mbit/s) plus PCMU
// audio, fanned out over loopback TCP to N clients, each receiving video and
// audio on their own connections; then the same with one more client that
// reads at a quarter of the stream's bitrate; then a client that stalls.
//
// The relay (with the publisher, which is the box) and the clients run in
// separate processes, so the relay's CPU time (from /proc/<pid>/stat) is its
// own. It prints a Markdown table: relay CPU seconds per delivered Gbit,
// the fast clients' latency p50/p99 (capture to whole frame received, from
// abs-capture-time), the slow client's p99 and worst delay, and relay RSS.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/callbox/callbox/capture"
	"github.com/callbox/callbox/relay"
	"github.com/callbox/callbox/relay/internal/gen"
	"github.com/callbox/callbox/relay/viewer"
)

const (
	frameBytes = 16 << 10
	fps        = 30
	// streamRate is the video and audio bytes per second on the wire.
	streamRate = frameBytes*fps + 50*(28+160)
)

func main() {
	role := flag.String("role", "bench", "bench, relay or clients (the latter two are started by bench)")
	ns := flag.String("n", "1,10,50,100,200,400", "client counts")
	dur := flag.Duration("d", 4*time.Second, "measurement window per run")
	warm := flag.Duration("warmup", time.Second, "warm-up before each window")
	relayArgs := flag.String("relay-args", "", "extra flags for the relay process, e.g. \"-max-delay 100ms -idle-limit 32\"")
	repeat := flag.Int("repeat", 3, "runs per row; the row shows the run with the median fast p99 (the machine is shared: one run can land on a burst of someone else's load)")
	addr := flag.String("addr", "", "relay address (clients role)")
	n := flag.Int("clients", 0, "fast clients (clients role)")
	slowRate := flag.Int("slow", 0, "bytes per second of one extra slow client (clients role)")
	stall := flag.Bool("stall", false, "one extra client that stops reading (clients role)")
	nagle := flag.Bool("video-nagle", false, "leave Nagle on for video (relay role)")
	cpuProfile := flag.String("cpuprofile", "", "write the relay's CPU profile here (relay role)")
	idleLimit := flag.Int("idle-limit", 0, "video idle limit (relay role; 0: default)")
	hc := flag.Int("hc", 0, "video Health Check interval (relay role; 0: default)")
	maxDelay := flag.Duration("max-delay", 0, "video buffer media-time bound (relay role; 0: default)")
	scan := flag.Bool("scan", false, "instead of the table, scan the video policy parameters with 10 fast clients and one at a quarter rate")
	points := flag.String("points", "16/8/66ms,20/8/66ms,24/8/66ms,32/8/66ms,48/8/66ms,24/4/66ms,32/16/66ms,24/8/100ms,24/8/150ms,24/8/66ms/nagle",
		"scan points: idle-limit/hc/max-delay[/nagle], comma separated")
	flag.Parse()
	var err error
	switch *role {
	case "relay":
		err = runRelay(*nagle, *cpuProfile, *idleLimit, *hc, *maxDelay)
	case "clients":
		err = runClients(*addr, *n, *slowRate, *stall)
	case "bench":
		if *scan {
			err = runScan(*dur, *warm, *points)
		} else {
			err = runBench(*ns, *dur, *warm, *nagle, max(1, *repeat), strings.Fields(*relayArgs))
		}
	default:
		err = fmt.Errorf("unknown role %q", *role)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "relaybench:", err)
		os.Exit(1)
	}
}

// runRelay is the box: a relay on a loopback port and the publisher. It
// runs until its standard input closes.
func runRelay(nagle bool, cpuProfile string, idleLimit, hc int, maxDelay time.Duration) error {
	if cpuProfile != "" {
		f, err := os.Create(cpuProfile)
		if err != nil {
			return err
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	cfg := relay.DefaultConfig()
	cfg.Video.Nagle = nagle
	cfg.MaxClients = 4096
	if idleLimit > 0 {
		cfg.Video.IdleLimit = idleLimit
	}
	if hc > 0 {
		cfg.Video.HealthInterval = hc
	}
	if maxDelay > 0 {
		cfg.Video.MaxDelay = maxDelay
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	r := relay.New(cfg, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	go r.ServeTCP(ln)
	fmt.Printf("LISTEN %s\n", ln.Addr())
	ctx, cancel := context.WithCancel(context.Background())
	go func() { io.Copy(io.Discard, os.Stdin); cancel() }()
	v := gen.Video(frameBytes, capture.DefaultMaxPacketSize, 1)
	a := gen.Audio(1)
	vt := time.NewTicker(time.Second / fps)
	at := time.NewTicker(capture.ChunkDuration)
	for {
		select {
		case <-ctx.Done():
			r.Close()
			return nil
		case now := <-vt.C:
			r.Publish(v.Next(now))
		case now := <-at.C:
			r.Publish(a.Next(now))
		}
	}
}

// client is one viewer's video and audio connections.
type client struct {
	mu     sync.Mutex
	v, a   *viewer.Tracker
	closed time.Time // when the relay closed the video connection
}

type clientsResult struct {
	Fast          int     `json:"fast"`
	FastFrames    uint64  `json:"fast_frames"`
	FastIncompl   uint64  `json:"fast_incomplete"`
	FastGaps      uint64  `json:"fast_gaps"`
	FastP50       float64 `json:"fast_p50_ms"`
	FastP99       float64 `json:"fast_p99_ms"`
	FastMax       float64 `json:"fast_max_ms"`
	AudioP99      float64 `json:"audio_p99_ms"`
	Bytes         uint64  `json:"bytes"` // RTP bytes received in the window, all clients
	Packets       uint64  `json:"packets"`
	Slow          *viewer.Summary
	StallEjectSec float64 `json:"stall_eject_s,omitempty"`
	Errors        int     `json:"errors"`
}

// runClients connects the clients, then follows commands on stdin: START
// resets the counters, STOP prints the JSON result.
func runClients(addr string, n, slowRate int, stall bool) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	errs := 0
	cs := make([]*client, n)
	var slow *client
	dial := func(c *client, opt viewer.Options) error {
		for _, kind := range []capture.Kind{capture.KindVideo, capture.KindAudio} {
			vc, err := viewer.Dial(ctx, addr, kind, opt)
			if err != nil {
				return err
			}
			tr := c.v
			if kind == capture.KindAudio {
				tr = c.a
			}
			go func() {
				defer vc.Close()
				for {
					pkt, err := vc.Next(ctx)
					if err != nil {
						if ctx.Err() == nil {
							mu.Lock()
							errs++
							mu.Unlock()
						}
						return
					}
					now := time.Now()
					c.mu.Lock()
					tr.Add(pkt, now, 0) // one machine, one clock
					c.mu.Unlock()
				}
			}()
		}
		return nil
	}
	newClient := func() *client {
		return &client{v: viewer.NewTracker(capture.KindVideo, 4096), a: viewer.NewTracker(capture.KindAudio, 4096)}
	}
	noTQ := viewer.Options{TimeQueryEvery: -1}
	for i := range cs {
		cs[i] = newClient()
		if err := dial(cs[i], noTQ); err != nil {
			return err
		}
	}
	if slowRate > 0 {
		slow = newClient()
		opt := noTQ
		opt.Limiter = viewer.NewLimiter(slowRate)
		if err := dial(slow, opt); err != nil {
			return err
		}
	}
	if stall {
		c, err := stalledClient(addr)
		if err != nil {
			return err
		}
		go func() {
			// It reads what is already on its way without acknowledging
			// any of it: a phone whose app froze. The relay must reset it.
			start := time.Now()
			c.SetReadDeadline(start.Add(30 * time.Second))
			io.Copy(io.Discard, c)
			mu.Lock()
			slowEject = time.Since(start)
			mu.Unlock()
		}()
	}
	fmt.Println("READY")
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		switch in.Text() {
		case "START":
			for _, c := range append(slices.Clone(cs), slow) {
				if c != nil {
					c.mu.Lock()
					c.v.Reset()
					c.a.Reset()
					c.mu.Unlock()
				}
			}
		case "STOP":
			res := clientsResult{Fast: n}
			var lat, alat []time.Duration
			for _, c := range cs {
				c.mu.Lock()
				s := c.v.Summary()
				res.FastFrames += s.Whole
				res.FastIncompl += s.Incomplete + c.a.Incomplete
				res.FastGaps += s.Gaps + c.a.Gaps
				res.Bytes += c.v.Bytes + c.a.Bytes + 2*(c.v.Packets+c.a.Packets)
				res.Packets += c.v.Packets + c.a.Packets
				lat = append(lat, c.v.Latencies()...)
				alat = append(alat, c.a.Latencies()...)
				c.mu.Unlock()
			}
			slices.Sort(lat)
			slices.Sort(alat)
			res.FastP50, res.FastP99 = viewer.Quantile(lat, 0.5), viewer.Quantile(lat, 0.99)
			if len(lat) > 0 {
				res.FastMax = float64(lat[len(lat)-1]) / 1e6
			}
			res.AudioP99 = viewer.Quantile(alat, 0.99)
			if slow != nil {
				slow.mu.Lock()
				s := slow.v.Summary()
				s.Incomplete += slow.a.Incomplete
				res.Bytes += slow.v.Bytes + slow.a.Bytes + 2*(slow.v.Packets+slow.a.Packets)
				slow.mu.Unlock()
				res.Slow = &s
			}
			mu.Lock()
			res.Errors = errs
			res.StallEjectSec = slowEject.Seconds()
			mu.Unlock()
			return json.NewEncoder(os.Stdout).Encode(res)
		}
	}
	return in.Err()
}

var slowEject time.Duration

// stalledClient handshakes for video and then reads nothing.
func stalledClient(addr string) (net.Conn, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	hello := []byte("CALLBOX/1 video")
	if _, err := c.Write(append([]byte{0, byte(len(hello))}, hello...)); err != nil {
		return nil, err
	}
	return c, nil
}

type proc struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Reader
}

func start(args ...string) (*proc, error) {
	cmd := exec.Command(os.Args[0], args...)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return &proc{cmd: cmd, in: in, out: bufio.NewReader(out)}, nil
}

func (p *proc) line() (string, error) {
	s, err := p.out.ReadString('\n')
	return strings.TrimSpace(s), err
}

func (p *proc) stop() {
	p.in.Close()
	done := make(chan struct{})
	go func() { p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		p.cmd.Process.Kill()
		<-done
	}
}

// cpuSeconds is a process's CPU time, user+system from /proc/<pid>/stat
// (which keeps the time of threads that have exited). With
// RELAYBENCH_SCHEDSTAT set it sums the live threads' run time from
// /proc/<pid>/task/*/schedstat instead (nanoseconds; the two agreed within
// noise on this machine).
func cpuSeconds(pid int) (float64, error) {
	if ts, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid)); err == nil && os.Getenv("RELAYBENCH_SCHEDSTAT") != "" {
		total := 0.0
		for _, t := range ts {
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/schedstat", pid, t.Name()))
			if err != nil {
				continue // the thread exited
			}
			if f := strings.Fields(string(b)); len(f) > 0 {
				ns, _ := strconv.ParseFloat(f[0], 64)
				total += ns / 1e9
			}
		}
		if total > 0 {
			return total, nil
		}
	}
	return statSeconds(pid)
}

// statSeconds is user+system time from /proc/<pid>/stat.
func statSeconds(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command name (which may hold spaces) start after ')'.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100, nil // USER_HZ is 100 on Linux
}

func rssMB(pid int) float64 {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			kb, _ := strconv.ParseFloat(strings.Fields(l)[1], 64)
			return kb / 1024
		}
	}
	return 0
}

type row struct {
	n         int
	slow      bool
	cpuPerGb  float64
	cpuPct    float64
	gbps      float64
	res       clientsResult
	rss       float64
	clientPct float64
	load      string
}

func measure(n, slowRate int, stall bool, dur, warm time.Duration, nagle bool, relayArgs ...string) (row, error) {
	rargs := append([]string{"-role", "relay"}, relayArgs...)
	if p := os.Getenv("RELAYBENCH_PROFILE"); p != "" {
		rargs = append(rargs, "-cpuprofile", fmt.Sprintf("%s.n%d.slow%v", p, n, slowRate > 0))
	}
	if nagle {
		rargs = append(rargs, "-video-nagle")
	}
	rp, err := start(rargs...)
	if err != nil {
		return row{}, err
	}
	defer rp.stop()
	l, err := rp.line()
	if err != nil || !strings.HasPrefix(l, "LISTEN ") {
		return row{}, fmt.Errorf("relay: %q %v", l, err)
	}
	addr := strings.TrimPrefix(l, "LISTEN ")
	cp, err := start("-role", "clients", "-addr", addr, "-clients", strconv.Itoa(n), "-slow", strconv.Itoa(slowRate), "-stall="+strconv.FormatBool(stall))
	if err != nil {
		return row{}, err
	}
	defer cp.stop()
	if l, err := cp.line(); err != nil || l != "READY" {
		return row{}, fmt.Errorf("clients: %q %v", l, err)
	}
	time.Sleep(warm)
	pid := rp.cmd.Process.Pid
	c0, err := cpuSeconds(pid)
	if err != nil {
		return row{}, err
	}
	cc0, _ := cpuSeconds(cp.cmd.Process.Pid)
	t0 := time.Now()
	fmt.Fprintln(cp.in, "START")
	time.Sleep(dur)
	fmt.Fprintln(cp.in, "STOP")
	c1, _ := cpuSeconds(pid)
	el := time.Since(t0).Seconds()
	cc1, _ := cpuSeconds(cp.cmd.Process.Pid)
	r := row{n: n, slow: slowRate > 0, rss: rssMB(pid), clientPct: (cc1 - cc0) / el * 100, load: loadavg()}
	l, err = cp.line()
	if err != nil {
		return row{}, fmt.Errorf("clients result: %w", err)
	}
	if err := json.Unmarshal([]byte(l), &r.res); err != nil {
		return row{}, fmt.Errorf("clients result %q: %w", l, err)
	}
	gbit := float64(r.res.Bytes) * 8 / 1e9
	r.gbps = gbit / el
	r.cpuPct = (c1 - c0) / el * 100
	if gbit > 0 {
		r.cpuPerGb = (c1 - c0) / gbit
	}
	return r, nil
}

func runBench(ns string, dur, warm time.Duration, nagle bool, repeat int, relayArgs []string) error {
	host, _ := os.Hostname()
	cpu := cpuModel()
	fmt.Printf("relaybench: %s, %s, %d CPUs, %s; %d KB frames at %d fps + PCMU, window %v after %v warm-up; each row the median-p99 run of %d\n\n",
		host, cpu, numCPU(), kernel(), frameBytes>>10, fps, dur, warm, repeat)
	var counts []int
	for _, s := range strings.Split(ns, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return fmt.Errorf("bad client count %q (at least 1)", s)
		}
		counts = append(counts, n)
	}
	// The box publishing to nobody: the fixed cost under every row.
	var idle []float64
	for i := 0; i < repeat; i++ {
		r, err := measure(0, 0, false, dur, warm, nagle, relayArgs...)
		if err != nil {
			return fmt.Errorf("no clients: %w", err)
		}
		idle = append(idle, r.cpuPct)
	}
	slices.Sort(idle)
	fmt.Printf("relay process publishing to no client: %.2f%% of a core (median of %d)\n\n", idle[len(idle)/2], repeat)
	fmt.Println("| clients | slow | relay CPU s/Gbit | relay CPU % | delivered Mbit/s | fast p50 ms | fast p99 ms | fast max ms | audio p99 ms | fast incomplete/gaps | slow fps | slow p99 ms | slow max ms (behind) | slow incomplete | relay RSS MB | clients CPU % | load avg |")
	fmt.Println("|---:|:---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	// Each N runs without and then with the slow client, back to back, so
	// that the pair sees the same machine (it is shared).
	var base []row
	for _, n := range counts {
		for _, slow := range []bool{false, true} {
			rate := 0
			if slow {
				rate = streamRate / 4
			}
			var runs []row
			for i := 0; i < repeat; i++ {
				r, err := measure(n, rate, false, dur, warm, nagle, relayArgs...)
				if err != nil {
					return fmt.Errorf("n=%d slow=%v: %w", n, slow, err)
				}
				runs = append(runs, r)
			}
			slices.SortFunc(runs, func(a, b row) int { return cmpFloat(a.res.FastP99, b.res.FastP99) })
			r := runs[len(runs)/2]
			printRow(r)
			if !slow {
				base = append(base, r)
			}
		}
	}
	if len(base) >= 2 {
		// The cost of one more reader: the slope of relay CPU over the
		// fast runs, first to last.
		a, b := base[0], base[len(base)-1]
		per := (b.cpuPct - a.cpuPct) / float64(b.n-a.n)
		fmt.Printf("\nmarginal relay CPU per reader (N=%d to N=%d): %.3f%% of a core = %.3f CPU s per delivered Gbit at %.2f Mbit/s per reader\n",
			a.n, b.n, per, per/100/(float64(streamRate)*8/1e9), float64(streamRate)*8/1e6)
		fmt.Printf("relay RSS per reader: %.3f MB\n", (b.rss-a.rss)/float64(b.n-a.n))
	}
	r, err := measure(10, 0, true, 4*time.Second, warm, nagle, relayArgs...)
	if err != nil {
		return fmt.Errorf("stall: %w", err)
	}
	fmt.Printf("\nstalled client (beside 10 fast ones): reset by the relay %.2f s after its handshake (it never acknowledged anything)\n", r.res.StallEjectSec)
	return nil
}

func printRow(r row) {
	slowCols := "| – | – | – | –"
	if s := r.res.Slow; s != nil {
		slowCols = fmt.Sprintf("| %.1f | %.0f | %.0f | %d", s.Rate, s.LatencyP99Ms, s.LatencyMaxMs, s.Incomplete)
	}
	mark := ""
	if r.slow {
		mark = "1"
	}
	fmt.Printf("| %d | %s | %.3f | %.1f | %.0f | %.2f | %.2f | %.1f | %.2f | %d/%d %s | %.1f | %.0f | %s |\n",
		r.n, mark, r.cpuPerGb, r.cpuPct, r.gbps*1000, r.res.FastP50, r.res.FastP99, r.res.FastMax, r.res.AudioP99,
		r.res.FastIncompl, r.res.FastGaps, slowCols, r.rss, r.clientPct, r.load)
	if r.res.Errors > 0 {
		fmt.Printf("  (%d client connections failed)\n", r.res.Errors)
	}
}

func cpuModel() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "model name") {
			return strings.TrimSpace(l[strings.IndexByte(l, ':')+1:])
		}
	}
	return "unknown CPU"
}

func numCPU() int {
	b, _ := os.ReadFile("/proc/cpuinfo")
	return strings.Count(string(b), "processor\t:")
}

func kernel() string {
	b, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	return "Linux " + strings.TrimSpace(string(b))
}

// loadavg is the 1-minute load average: the machine is shared, and a
// number measured under load says so.
func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); len(f) > 0 {
		return f[0]
	}
	return "?"
}

// runScan measures the video policy's main parameters: the idle limit (the
// window of unacknowledged packets), the Health Check interval, the buffer's
// media-time bound, and Nagle, with 10 fast clients and one at a quarter of
// the stream's rate.
func runScan(dur, warm time.Duration, points string) error {
	fmt.Printf("relaybench -scan: %s, %d CPUs; 10 fast clients + 1 at %d B/s; window %v\n\n", cpuModel(), numCPU(), streamRate/4, dur)
	fmt.Println("| idle limit | hc | max delay | nagle | relay CPU s/Gbit | fast p99 ms | fast gaps | slow fps | slow p50 ms | slow p99 ms | slow incomplete | load |")
	fmt.Println("|---:|---:|---:|:---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	type point struct {
		idle, hc int
		md       time.Duration
		nagle    bool
	}
	var ps []point
	for _, spec := range strings.Split(points, ",") {
		f := strings.Split(strings.TrimSpace(spec), "/")
		if len(f) < 3 {
			return fmt.Errorf("scan point %q: want idle/hc/max-delay[/nagle]", spec)
		}
		var p point
		var err1, err2, err3 error
		p.idle, err1 = strconv.Atoi(f[0])
		p.hc, err2 = strconv.Atoi(f[1])
		p.md, err3 = time.ParseDuration(f[2])
		if err1 != nil || err2 != nil || err3 != nil {
			return fmt.Errorf("scan point %q: %w", spec, errors.Join(err1, err2, err3))
		}
		p.nagle = len(f) > 3 && f[3] == "nagle"
		ps = append(ps, p)
	}
	for _, p := range ps {
		r, err := measure(10, streamRate/4, false, dur, warm, p.nagle, "-idle-limit", strconv.Itoa(p.idle), "-hc", strconv.Itoa(p.hc), "-max-delay", p.md.String())
		if err != nil {
			return err
		}
		s := r.res.Slow
		fmt.Printf("| %d | %d | %v | %v | %.3f | %.2f | %d | %.1f | %.0f | %.0f | %d | %s |\n", p.idle, p.hc, p.md, p.nagle, r.cpuPerGb,
			r.res.FastP99, r.res.FastGaps, s.Rate, s.LatencyP50Ms, s.LatencyP99Ms, s.Incomplete, r.load)
	}
	return nil
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
