package update

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Updater drives rauc. The zero value uses rauc from PATH with its default
// configuration; StatusPath must be set.
type Updater struct {
	Rauc       string   // the rauc command; "" = "rauc"
	Conf       string   // rauc's system.conf; "" = rauc's default (/etc/rauc/system.conf)
	Keyring    string   // certificate(s) bundles must be signed with; "" = system.conf's
	StatusPath string   // the status file (on the data partition)
	Env        []string // extra environment for rauc (e.g. DBUS_SYSTEM_BUS_ADDRESS)
	// OnStatus, when set, hears every status change, progress included.
	OnStatus func(Status)

	mu sync.Mutex // one install at a time
}

// BundleInfo is what a checked bundle says about itself.
type BundleInfo struct {
	Compatible string
	Version    string
}

// Slot is one slot of `rauc status`.
type Slot struct {
	Name       string // rootfs.0
	Bootname   string // the partition number the firmware boots
	State      string // booted, active, inactive
	BootStatus string // good, bad
}

// System is `rauc status`: the system's compatible string, the slot it
// booted from and the one the boot selection names next.
type System struct {
	Compatible string
	Booted     string // bootname
	Primary    string // slot name RAUC calls primary (the next boot's)
	Slots      []Slot
}

// Slot returns the slot with bootname b.
func (s System) Slot(b string) (Slot, bool) {
	for _, sl := range s.Slots {
		if sl.Bootname == b {
			return sl, true
		}
	}
	return Slot{}, false
}

// ErrRefused wraps every reason a bundle is turned away before anything is
// written: a bad or foreign signature, another board's bundle, a damaged
// file.
var ErrRefused = errors.New("bundle refused")

// ErrBusy: an update is already under way.
var ErrBusy = errors.New("an update is already running")

func (u *Updater) rauc() string {
	if u.Rauc == "" {
		return "rauc"
	}
	return u.Rauc
}

func (u *Updater) command(ctx context.Context, args ...string) *exec.Cmd {
	var global []string
	if u.Conf != "" {
		global = append(global, "--conf="+u.Conf)
	}
	cmd := exec.CommandContext(ctx, u.rauc(), append(global, args...)...)
	cmd.Env = append(os.Environ(), u.Env...)
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// output runs rauc and returns its stdout; the error carries stderr's
// last lines, which is where rauc says why.
func (u *Updater) output(ctx context.Context, args ...string) (string, error) {
	cmd := u.command(ctx, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("rauc %s: %w: %s", args[0], err, lastLines(stderr.String()+stdout.String(), 3))
	}
	return stdout.String(), nil
}

// lastLines is the last n non-empty lines of s, joined by "; ", without
// rauc's log prefixes.
func lastLines(s string, n int) string {
	var lines []string
	for _, l := range strings.Split(s, "\n") {
		l = strings.TrimSpace(raucLogPrefix.ReplaceAllString(l, ""))
		if l != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "; ")
}

// raucLogPrefix is GLib's "rauc-Message: 20:27:40.297: " and the like.
var raucLogPrefix = regexp.MustCompile(`^\(?rauc[^\s]*\s*[\w-]*:\s*[\d:.]+:\s*`)

// Check verifies bundle's signature against the keyring and reads its
// manifest; nothing is written. A refusal wraps ErrRefused.
func (u *Updater) Check(ctx context.Context, bundle string) (BundleInfo, error) {
	if _, err := os.Stat(bundle); err != nil {
		return BundleInfo{}, fmt.Errorf("%w: %v", ErrRefused, err)
	}
	args := []string{"info", "--output-format=shell"}
	if u.Keyring != "" {
		args = append(args, "--keyring="+u.Keyring)
	}
	out, err := u.output(ctx, append(args, bundle)...)
	if err != nil {
		if ctx.Err() != nil {
			return BundleInfo{}, err
		}
		return BundleInfo{}, fmt.Errorf("%w: %v", ErrRefused, err)
	}
	v, err := ParseShell(out)
	if err != nil {
		return BundleInfo{}, fmt.Errorf("%w: rauc info: %v", ErrRefused, err)
	}
	info := BundleInfo{Compatible: v["RAUC_MF_COMPATIBLE"], Version: v["RAUC_MF_VERSION"]}
	if info.Compatible == "" {
		return info, fmt.Errorf("%w: the bundle names no compatible system", ErrRefused)
	}
	return info, nil
}

// System reads `rauc status`.
func (u *Updater) System(ctx context.Context) (System, error) {
	out, err := u.output(ctx, "status", "--output-format=shell")
	if err != nil {
		return System{}, err
	}
	return parseSystem(out)
}

func parseSystem(out string) (System, error) {
	v, err := ParseShell(out)
	if err != nil {
		return System{}, fmt.Errorf("rauc status: %w", err)
	}
	s := System{Compatible: v["RAUC_SYSTEM_COMPATIBLE"], Booted: v["RAUC_SYSTEM_BOOTED_BOOTNAME"], Primary: v["RAUC_BOOT_PRIMARY"]}
	names := strings.Fields(v["RAUC_SYSTEM_SLOTS"])
	for i, n := range strings.Fields(v["RAUC_SLOTS"]) {
		sl := Slot{Bootname: v["RAUC_SLOT_BOOTNAME_"+n], State: v["RAUC_SLOT_STATE_"+n], BootStatus: v["RAUC_SLOT_BOOT_STATUS_"+n]}
		if i < len(names) {
			sl.Name = names[i]
		}
		s.Slots = append(s.Slots, sl)
	}
	return s, nil
}

// ParseShell reads rauc's --output-format=shell: KEY='value' lines, the
// values quoted as a POSIX shell reads them (single quotes, backslashes).
func ParseShell(s string) (map[string]string, error) {
	out := map[string]string{}
	for i, line := range strings.Split(s, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		key, rest, ok := strings.Cut(line, "=")
		if !ok || key == "" || strings.ContainsAny(key, " \t'\"") {
			return nil, fmt.Errorf("line %d: not KEY=value: %q", i+1, line)
		}
		var val strings.Builder
		for rest != "" {
			switch {
			case rest[0] == '\'':
				end := strings.IndexByte(rest[1:], '\'')
				if end < 0 {
					return nil, fmt.Errorf("line %d: unterminated quote", i+1)
				}
				val.WriteString(rest[1 : 1+end])
				rest = rest[end+2:]
			case rest[0] == '\\' && len(rest) > 1:
				val.WriteByte(rest[1])
				rest = rest[2:]
			default:
				n := strings.IndexAny(rest, `'\`)
				if n < 0 {
					n = len(rest)
				}
				val.WriteString(rest[:n])
				rest = rest[n:]
			}
		}
		out[key] = val.String()
	}
	return out, nil
}

// progressLine is rauc install's " 40% Checking slot rootfs.1".
var progressLine = regexp.MustCompile(`^\s*(\d{1,3})%\s+(.*?)\s*$`)

// ParseProgress reads one line of `rauc install` output.
func ParseProgress(line string) (percent int, step string, ok bool) {
	m := progressLine.FindStringSubmatch(line)
	if m == nil {
		return 0, "", false
	}
	p, err := strconv.Atoi(m[1])
	if err != nil || p > 100 {
		return 0, "", false
	}
	return p, m[2], true
}

// set records st in the status file and tells OnStatus.
func (u *Updater) set(st Status) Status {
	st.Time = time.Now().UTC()
	if err := WriteStatus(u.StatusPath, st); err != nil {
		st.Message += " (the update status could not be saved: " + err.Error() + ")"
	}
	if u.OnStatus != nil {
		u.OnStatus(st)
	}
	return st
}

// Install checks bundle and installs it into the inactive slot. Nothing is
// written to a slot unless the signature and the compatible string check
// out. On success the state is Installed: the next reboot tries the new
// slot once (Reboot). The returned Status is also in the status file.
func (u *Updater) Install(ctx context.Context, bundle string) (Status, error) {
	if !u.mu.TryLock() {
		return Status{}, ErrBusy
	}
	defer u.mu.Unlock()
	if prev, err := ReadStatus(u.StatusPath); err == nil && prev.State.Busy() && !staleBusy(prev) {
		return prev, ErrBusy
	}

	st := u.set(Status{State: Checking, Step: "checking the signature"})
	sys, err := u.System(ctx)
	if err != nil {
		return u.set(Status{State: Failed, Message: "cannot read the system's slots: " + err.Error()}), err
	}
	info, err := u.Check(ctx, bundle)
	if err == nil && info.Compatible != sys.Compatible {
		err = fmt.Errorf("%w: the bundle is for %q, this box is %q", ErrRefused, info.Compatible, sys.Compatible)
	}
	if err != nil {
		state := Refused
		if !errors.Is(err, ErrRefused) {
			state = Failed
		}
		return u.set(Status{State: state, Version: info.Version, Message: err.Error()}), err
	}

	st = u.set(Status{State: Installing, Version: info.Version, From: sys.Booted, Step: "starting"})
	cmd := u.command(ctx, "install", bundle)
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		pw.Close()
		return u.set(Status{State: Failed, Version: info.Version, From: sys.Booted, Message: err.Error()}), err
	}
	done := make(chan error, 1)
	go func() { err := cmd.Wait(); pw.Close(); done <- err }()
	var tail []string
	sc := bufio.NewScanner(pr)
	for sc.Scan() {
		line := sc.Text()
		if p, step, ok := ParseProgress(line); ok {
			if p != st.Progress || step != st.Step {
				st.Progress, st.Step = p, step
				st = u.set(st)
			}
			continue
		}
		if l := strings.TrimSpace(raucLogPrefix.ReplaceAllString(line, "")); l != "" {
			tail = append(tail, l)
			if len(tail) > 4 {
				tail = tail[1:]
			}
		}
	}
	io.Copy(io.Discard, pr)
	if err := <-done; err != nil {
		msg := "install failed: " + strings.Join(tail, "; ")
		return u.set(Status{State: Failed, Version: info.Version, From: sys.Booted, Message: msg}), fmt.Errorf("rauc install: %w: %s", err, strings.Join(tail, "; "))
	}

	after, err := u.System(ctx)
	to := ""
	if err == nil {
		for _, sl := range after.Slots {
			if sl.Name == after.Primary {
				to = sl.Bootname
			}
		}
	}
	if to == "" || to == sys.Booted {
		msg := fmt.Sprintf("rauc installed version %s but names no other slot to try (primary %q)", info.Version, after.Primary)
		return u.set(Status{State: Failed, Version: info.Version, From: sys.Booted, Message: msg}), errors.New(msg)
	}
	return u.set(Status{State: Installed, Progress: 100, Version: info.Version, From: sys.Booted, To: to,
		Message: fmt.Sprintf("version %s installed in slot %s; the box restarts into it and keeps it once it works", info.Version, to)}), nil
}

// staleBusy: a Checking/Installing state left by a power cut or a killed
// install (more than an hour old) does not block a new install.
func staleBusy(st Status) bool { return time.Since(st.Time) > time.Hour }

// Health says whether the box is well right now (callbox answers its page,
// the watchdog daemon runs).
type Health func(ctx context.Context) bool

// Confirm settles a trial boot. Called at every boot (S99callbox-update):
//   - nothing pending: returns the status as it is;
//   - running the slot the last install wrote: waits until health has held
//     for `after` without a break, then `rauc status mark-good` (which
//     commits the slot) and the state is Good; if ctx ends first, nothing is
//     marked and the next boot returns to the old slot;
//   - running another slot: the trial failed (the watchdog reset the box,
//     or the power went): the new slot is marked bad and the state Failed.
func (u *Updater) Confirm(ctx context.Context, after, poll time.Duration, healthy Health) (Status, error) {
	st, err := ReadStatus(u.StatusPath)
	if err != nil {
		return st, err
	}
	if st.State != Installed && st.State != Trying {
		if st.State.Busy() {
			// An install this boot never finished: the power went or
			// rauc was killed mid-write.
			st.State, st.Message = Failed, "the update was interrupted before it finished; the box kept its version"
			return u.set(st), nil
		}
		return st, nil
	}
	sys, err := u.System(ctx)
	if err != nil {
		return st, err
	}
	if sys.Booted != st.To {
		// Tell RAUC too, so `rauc status` shows the slot as bad.
		if sl, ok := sys.Slot(st.To); ok {
			u.output(ctx, "status", "mark-bad", sl.Name)
		}
		st.State = Failed
		st.Message = fmt.Sprintf("version %s did not come up (no page, or the watchdog reset the box): the box went back to slot %s", st.Version, sys.Booted)
		return u.set(st), nil
	}
	if st.State != Trying {
		st.State, st.Message = Trying, fmt.Sprintf("trying version %s in slot %s", st.Version, st.To)
		st = u.set(st)
	}
	t := time.NewTicker(poll)
	defer t.Stop()
	var since time.Time
	for {
		if healthy(ctx) {
			if since.IsZero() {
				since = time.Now()
			}
			if time.Since(since) >= after {
				break
			}
		} else {
			since = time.Time{}
		}
		select {
		case <-ctx.Done():
			return st, ctx.Err()
		case <-t.C:
		}
	}
	if _, err := u.output(ctx, "status", "mark-good"); err != nil {
		return st, err
	}
	st.State = Good
	st.Message = fmt.Sprintf("version %s runs in slot %s and is kept", st.Version, st.To)
	return u.set(st), nil
}
