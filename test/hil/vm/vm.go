// Package vm boots throw-away virtual machines with real emulated hardware
// for callbox's hardware-in-the-loop tests: a stock Debian kernel under
// qemu (TCG) with an initramfs this package builds from Debian packages.
//
// The guest has a V4L2 camera (vivid, YUYV, at /dev/video0), a loopback
// camera for a producer to feed (v4l2loopback, /dev/video10), an ALSA
// loopback sound card (snd-aloop, card 0: play into hw:Loopback,1,0, record
// from hw:Loopback,0,0), a simulated GPIO chip (gpio-sim, lines named by
// Options.GPIOLines, its sysfs directory in $HIL_GPIOSIM) and the kernel's
// virtual stateful codec (vicodec, multi-planar: an FWHT encoder and
// decoder, at whatever /dev/video* nodes are free). Static or
// dynamic programs are copied in (dynamic ones with the libraries they
// load), a shell script runs as the test, and the host talks to an agent
// in the guest through qemu's user network (hostfwd): readiness, status,
// result files, and any extra port the caller forwards (a web page served
// by the firmware under test).
//
// Everything downloaded or compiled (kernel and header packages, gpio-sim,
// v4l2loopback and vicodec modules) is cached per kernel version under CacheDir;
// a warm run only builds the Go programs and the initramfs.
//
// Typical use:
//
//	m, err := vm.Start(ctx, vm.Options{Arch: "arm64", WorkDir: t.TempDir(),
//		Programs: []vm.Program{{Name: "camtest", Package: "./test/hil/cmd/hilcam"}},
//		Script:   "camtest -dev /dev/video0",
//		HostFwd:  []int{8081}})
//	defer m.Close()
//	code, err := m.Wait(ctx)
//	log, err := m.Fetch("script.log")
package vm

import (
	"bytes"
	"context"
	"debug/elf"
	"errors"
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
	"syscall"
	"time"
)

// DefaultCacheDir is where downloaded packages and built modules are kept
// between runs, unless $CALLBOX_HIL_CACHE says otherwise.
const DefaultCacheDir = "/var/cache/callbox-hil"

// Program is a Go main package the harness builds for the guest.
type Program struct {
	Name    string // file name in the guest's /bin
	Package string // import path or path relative to the module root
	// Cgo builds with cgo (dynamically linked; the harness copies the
	// libraries it loads). Otherwise the program is static.
	Cgo bool
}

// Options describe one VM.
type Options struct {
	Arch     string // "amd64" (default) or "arm64"
	CacheDir string // default $CALLBOX_HIL_CACHE, else DefaultCacheDir
	WorkDir  string // required: binaries, initramfs and the serial log go here

	Programs []Program         // built for Arch and put in /bin
	Binaries map[string]string // guest /bin name -> prebuilt host file (e.g. bin/callbox-arm64)
	Files    map[string]string // guest path -> host file
	// Modules are extra kernel modules of the Debian kernel ("name opts").
	Modules []string
	// GPIOLines names the gpio-sim lines 0..n-1 (default sim-in, sim-out).
	GPIOLines []string
	// Script is run by /bin/sh in the guest once the hardware is up; its
	// output is /results/script.log and its exit status is what Wait
	// returns. The VM stays up after it ends until Close, so a script may
	// start a server in the background and return.
	Script string
	// HostFwd lists guest TCP ports to forward from 127.0.0.1 (see HostPort).
	HostFwd   []int
	MemoryMiB int           // default 512
	Timeout   time.Duration // hard limit on the VM's life; default 5 minutes
	Logf      func(format string, args ...any)
}

// Machine is a running VM.
type Machine struct {
	opts   Options
	cmd    *exec.Cmd
	serial string
	ports  map[int]int // guest -> host
	exited chan struct{}
	werr   error
	timer  *time.Timer
	once   sync.Once
	Timing Timing
}

// Timing records where a VM's time went.
type Timing struct {
	Prepare time.Duration // kernel, modules, packages (cached after the first run)
	Build   time.Duration // Go programs and initramfs
	Boot    time.Duration // qemu start until the agent answered
}

const agentPort = 8080

// Start prepares everything (cached), builds the initramfs, boots the VM
// and waits until its agent answers.
func Start(ctx context.Context, o Options) (*Machine, error) {
	if o.Arch == "" {
		o.Arch = "amd64"
	}
	a, ok := arches[o.Arch]
	if !ok {
		return nil, fmt.Errorf("vm: unknown arch %q (want amd64 or arm64)", o.Arch)
	}
	if o.WorkDir == "" {
		return nil, errors.New("vm: Options.WorkDir is required")
	}
	if o.CacheDir == "" {
		o.CacheDir = os.Getenv("CALLBOX_HIL_CACHE")
	}
	if o.CacheDir == "" {
		o.CacheDir = DefaultCacheDir
	}
	if o.MemoryMiB == 0 {
		o.MemoryMiB = 512
	}
	if o.Timeout == 0 {
		o.Timeout = 5 * time.Minute
	}
	if len(o.GPIOLines) == 0 {
		o.GPIOLines = []string{"sim-in", "sim-out"}
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	for _, p := range append(o.HostFwd, agentPort) {
		if p <= 0 || p > 65535 {
			return nil, fmt.Errorf("vm: bad port %d", p)
		}
	}
	var tm Timing
	t0 := time.Now()
	kt, err := prepareKernel(ctx, o.CacheDir, o.Arch, o.Logf)
	if err != nil {
		return nil, fmt.Errorf("vm: prepare %s: %w", o.Arch, err)
	}
	tm.Prepare = time.Since(t0)
	t0 = time.Now()
	initrd, err := buildInitramfs(ctx, o, a, kt)
	if err != nil {
		return nil, fmt.Errorf("vm: initramfs: %w", err)
	}
	tm.Build = time.Since(t0)

	m := &Machine{opts: o, serial: filepath.Join(o.WorkDir, "serial-"+o.Arch+".log"), ports: map[int]int{}, exited: make(chan struct{}), Timing: tm}
	fwd := "user,id=n0,restrict=on"
	for _, gp := range append([]int{agentPort}, o.HostFwd...) {
		hp, err := freePort()
		if err != nil {
			return nil, err
		}
		m.ports[gp] = hp
		fwd += fmt.Sprintf(",hostfwd=tcp:127.0.0.1:%d-:%d", hp, gp)
	}
	args := append([]string{}, a.machine...)
	args = append(args,
		"-m", strconv.Itoa(o.MemoryMiB), "-smp", "1",
		"-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
		"-serial", "file:"+m.serial,
		"-kernel", kt.vmlinuz, "-initrd", initrd,
		"-append", "console="+a.console+" panic=-1 quiet",
		// restrict=on: the guest reaches nothing but the forwarded ports.
		"-netdev", fwd, "-device", "virtio-net-pci,netdev=n0")
	m.cmd = exec.Command(a.qemu, args...)
	// Pdeathsig: if the test binary dies (a panic, a killed go test), the
	// kernel kills qemu too, so no VM outlives its test.
	m.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var stderr bytes.Buffer
	m.cmd.Stderr = &stderr
	t0 = time.Now()
	if err := m.cmd.Start(); err != nil {
		return nil, fmt.Errorf("vm: start %s: %w", a.qemu, err)
	}
	go func() {
		m.werr = m.cmd.Wait()
		if stderr.Len() > 0 {
			o.Logf("hil: %s stderr: %s", a.qemu, strings.TrimSpace(stderr.String()))
		}
		close(m.exited)
	}()
	m.timer = time.AfterFunc(o.Timeout, func() {
		o.Logf("hil: VM exceeded %v; killing it", o.Timeout)
		m.cmd.Process.Kill()
	})
	if err := m.waitReady(ctx); err != nil {
		m.Close()
		return nil, err
	}
	m.Timing.Boot = time.Since(t0)
	o.Logf("hil: %s VM up after %v (prepare %v, build %v)", o.Arch, m.Timing.Boot.Round(time.Millisecond),
		tm.Prepare.Round(time.Millisecond), tm.Build.Round(time.Millisecond))
	return m, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("vm: free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// HostPort returns the host port forwarded to guest port p (0 if p was
// not in Options.HostFwd).
func (m *Machine) HostPort(p int) int { return m.ports[p] }

// SerialLog returns the guest console output so far.
func (m *Machine) SerialLog() string {
	b, _ := os.ReadFile(m.serial)
	return string(b)
}

func (m *Machine) get(ctx context.Context, path string, timeout time.Duration) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", fmt.Sprintf("http://127.0.0.1:%d%s", m.ports[agentPort], path), nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return b, nil
}

func (m *Machine) tail() string {
	s := m.SerialLog()
	if len(s) > 3000 {
		s = "..." + s[len(s)-3000:]
	}
	return s
}

func (m *Machine) waitReady(ctx context.Context) error {
	for {
		if _, err := m.get(ctx, "/ping", time.Second); err == nil {
			return nil
		}
		select {
		case <-m.exited:
			return fmt.Errorf("vm: qemu exited before the guest was up (%v); console:\n%s", m.werr, m.tail())
		case <-ctx.Done():
			return fmt.Errorf("vm: guest not up: %w; console:\n%s", ctx.Err(), m.tail())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Wait waits for the script to end and returns its exit status.
func (m *Machine) Wait(ctx context.Context) (int, error) {
	for {
		b, err := m.get(ctx, "/status", 2*time.Second)
		if err == nil && bytes.HasPrefix(b, []byte("done ")) {
			code, err := strconv.Atoi(strings.TrimSpace(string(b[5:])))
			if err != nil {
				return -1, fmt.Errorf("vm: bad status %q", b)
			}
			return code, nil
		}
		select {
		case <-m.exited:
			return -1, fmt.Errorf("vm: qemu exited during the script (%v); console:\n%s", m.werr, m.tail())
		case <-ctx.Done():
			return -1, fmt.Errorf("vm: script did not finish: %w; console:\n%s", ctx.Err(), m.tail())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Fetch returns /results/name from the guest (script.log, boot.log, or any
// file the script wrote there).
func (m *Machine) Fetch(name string) ([]byte, error) {
	b, err := m.get(context.Background(), "/results/"+strings.TrimPrefix(name, "/"), 30*time.Second)
	if err != nil {
		return nil, fmt.Errorf("vm: fetch %s: %w", name, err)
	}
	return b, nil
}

// Close ends the VM: politely (the agent exits and /init powers off), then
// by force after 5 s. It is safe to call more than once.
func (m *Machine) Close() error {
	m.once.Do(func() {
		m.get(context.Background(), "/quit", time.Second)
		select {
		case <-m.exited:
		case <-time.After(5 * time.Second):
			m.cmd.Process.Kill()
			<-m.exited
		}
		m.timer.Stop()
	})
	return nil
}

// isDynamic reports whether an ELF file needs a program interpreter.
func isDynamic(path string) (bool, error) {
	f, err := elf.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return true, nil
		}
	}
	return false, nil
}

// libraries lists the shared objects (and the loader) a dynamic binary
// loads, by asking the loader itself. For a foreign binary the loader
// runs under qemu-user, with the variable passed by -E so that it traces
// the guest program and not qemu.
func libraries(ctx context.Context, a archInfo, bin string) ([]string, error) {
	var cmd []string
	var env []string
	if a.qemuUser != "" {
		cmd = []string{a.qemuUser, "-E", "LD_TRACE_LOADED_OBJECTS=1", bin}
	} else {
		cmd = []string{bin}
		env = []string{"LD_TRACE_LOADED_OBJECTS=1"}
	}
	out, err := run(ctx, "", env, cmd[0], cmd[1:]...)
	if err != nil {
		return nil, fmt.Errorf("trace libraries of %s: %w", bin, err)
	}
	var libs []string
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) >= 3 && f[1] == "=>" && f[2] == "not":
			return nil, fmt.Errorf("%s: library %s not found on the host (install the %s package of the arch)", bin, f[0], f[0])
		case len(f) >= 3 && f[1] == "=>" && strings.HasPrefix(f[2], "/"):
			libs = append(libs, f[2])
		case len(f) >= 1 && strings.HasPrefix(f[0], "/"):
			libs = append(libs, f[0])
		}
	}
	return libs, nil
}
