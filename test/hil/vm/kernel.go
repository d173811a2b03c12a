package vm

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
)

// archInfo is what differs between the guest architectures.
type archInfo struct {
	qemu     string   // system emulator
	machine  []string // its machine/CPU arguments
	console  string   // serial console device
	kbuild   []string // extra make arguments for out-of-tree modules
	cc       string   // C compiler for cgo programs
	cxx      string   // C++ compiler: cgo links OpenH264 (capture/h264enc) with it
	pkg      string   // pkg-config for cgo programs
	qemuUser string   // runs the guest's binaries on the host ("" = native)
}

var arches = map[string]archInfo{
	// TCG, not KVM: /dev/kvm on these machines is PVM, which boots only
	// PVM-enlightened guests; a stock Debian kernel hangs in its decompressor.
	"amd64": {
		qemu: "qemu-system-x86_64", machine: []string{"-accel", "tcg", "-cpu", "max"},
		console: "ttyS0", cc: "gcc", cxx: "g++", pkg: "pkg-config",
	},
	// cortex-a57, not max: pointer authentication emulation makes -cpu max
	// about three times slower under TCG.
	"arm64": {
		qemu: "qemu-system-aarch64", machine: []string{"-M", "virt", "-cpu", "cortex-a57"},
		console: "ttyAMA0", kbuild: []string{"ARCH=arm64", "CROSS_COMPILE=aarch64-linux-gnu-"},
		cc: "aarch64-linux-gnu-gcc", cxx: "aarch64-linux-gnu-g++", pkg: "aarch64-linux-gnu-pkg-config", qemuUser: "qemu-aarch64",
	},
}

// Tools lists the host programs Build needs for arch, so a test can check
// for them (and skip or fail clearly) before starting.
func Tools(arch string) []string {
	a, ok := arches[arch]
	if !ok {
		return nil
	}
	t := []string{a.qemu, "apt-get", "apt-cache", "dpkg-deb", "depmod", "modprobe", "make", "tar", "xz", "go", a.cc, a.cxx}
	if a.qemuUser != "" {
		t = append(t, a.qemuUser, "aarch64-linux-gnu-gcc")
	} else {
		t = append(t, "gcc")
	}
	return t
}

// kernelTree is a Debian kernel unpacked in the cache, with the modules
// the harness builds for it.
type kernelTree struct {
	arch, kver string
	dir        string // cache/<arch>-<kver>
	root       string // dir/root: the unpacked linux-image package
	vmlinuz    string
	mods       []string // out-of-tree modules (gpio-sim, v4l2loopback, vicodec)
	busybox    string
	alsaUtils  string // dir with usr/bin/aplay, arecord
}

func run(ctx context.Context, dir string, env []string, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		tail := out
		if len(tail) > 4000 {
			tail = tail[len(tail)-4000:]
		}
		return out, fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, tail)
	}
	return out, nil
}

// lockCache serialises preparation between test processes sharing the
// cache (two engineers' tests, or amd64 and arm64 runs in parallel).
func lockCache(dir string) (unlock func(), err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("hil cache: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("hil cache lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("hil cache lock: %w", err)
	}
	return func() { syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, nil
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

// kernelPackage asks apt which kernel image the linux-image-<arch>
// meta-package currently depends on: the mirror's arm64 and amd64 kernels
// need not have the same version, so nothing is hard-coded.
func kernelPackage(ctx context.Context, arch string) (string, error) {
	out, err := run(ctx, "", nil, "apt-cache", "depends", "linux-image-"+arch+":"+arch)
	if err != nil {
		return "", fmt.Errorf("resolve kernel for %s (is the %s architecture added to dpkg and apt updated?): %w", arch, arch, err)
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 2 && f[0] == "Depends:" && strings.HasPrefix(f[1], "linux-image-") {
			return strings.SplitN(f[1], ":", 2)[0], nil
		}
	}
	return "", fmt.Errorf("resolve kernel for %s: no linux-image dependency in %q", arch, out)
}

// download fetches packages into debs unless a matching .deb is cached,
// and returns each package's file.
func download(ctx context.Context, debs string, pkgs map[string]string) (map[string]string, error) {
	if err := os.MkdirAll(debs, 0o755); err != nil {
		return nil, err
	}
	got := map[string]string{}
	var need []string
	for pkg, arch := range pkgs {
		if f := findDeb(debs, pkg, arch); f != "" {
			got[pkg] = f
			continue
		}
		spec := pkg
		if arch != "all" {
			spec += ":" + arch
		}
		need = append(need, spec)
	}
	if len(need) > 0 {
		// apt-get download needs no root; the _apt sandbox warning when
		// root writes into a directory _apt cannot read is harmless.
		if _, err := run(ctx, debs, nil, "apt-get", append([]string{"download", "-q"}, need...)...); err != nil {
			return nil, fmt.Errorf("download %v: %w", need, err)
		}
	}
	for pkg, arch := range pkgs {
		if got[pkg] != "" {
			continue
		}
		f := findDeb(debs, pkg, arch)
		if f == "" {
			return nil, fmt.Errorf("download %s:%s: no .deb after apt-get download", pkg, arch)
		}
		got[pkg] = f
	}
	return got, nil
}

func findDeb(debs, pkg, arch string) string {
	m, _ := filepath.Glob(filepath.Join(debs, pkg+"_*_"+arch+".deb"))
	if len(m) == 0 {
		return ""
	}
	return m[len(m)-1]
}

// once runs fn unless dir/.ok-<step> exists, then creates it: a step that
// failed halfway is redone on the next run.
func once(dir, step string, fn func() error) error {
	mark := filepath.Join(dir, ".ok-"+step)
	if exists(mark) {
		return nil
	}
	if err := fn(); err != nil {
		return fmt.Errorf("%s: %w", step, err)
	}
	return os.WriteFile(mark, nil, 0o644)
}

// prepareKernel downloads and unpacks the kernel, its headers, busybox and
// alsa-utils for arch, and builds gpio-sim and v4l2loopback for it. All of
// it is cached under cache/<arch>-<kver>.
func prepareKernel(ctx context.Context, cache, arch string, logf func(string, ...any)) (*kernelTree, error) {
	a := arches[arch]
	unlock, err := lockCache(cache)
	if err != nil {
		return nil, err
	}
	defer unlock()
	kpkg, err := kernelPackage(ctx, arch)
	if err != nil {
		return nil, err
	}
	kver := strings.TrimPrefix(kpkg, "linux-image-")
	kt := &kernelTree{arch: arch, kver: kver, dir: filepath.Join(cache, arch+"-"+kver)}
	kt.root = filepath.Join(kt.dir, "root")
	kt.vmlinuz = filepath.Join(kt.root, "boot", "vmlinuz-"+kver)
	hdr := filepath.Join(kt.dir, "hdr")
	pkgdir := filepath.Join(kt.dir, "pkgs")
	kt.busybox = filepath.Join(pkgdir, "bin", "busybox")
	kt.alsaUtils = pkgdir
	common := "linux-headers-" + kver[:strings.LastIndex(kver, "-")] + "-common"
	if err := os.MkdirAll(kt.dir, 0o755); err != nil {
		return nil, err
	}

	debs, err := download(ctx, filepath.Join(cache, "debs"), map[string]string{
		kpkg: arch, "linux-headers-" + kver: arch, common: "all",
		"busybox-static": arch, "alsa-utils": arch,
		"linux-source-6.1": "all", "v4l2loopback-dkms": "all",
	})
	if err != nil {
		return nil, err
	}
	logf("hil: %s kernel %s", arch, kver)

	if err := once(kt.dir, "unpack", func() error {
		for _, d := range []struct{ deb, to string }{
			{debs[kpkg], kt.root}, {debs["linux-headers-"+kver], hdr}, {debs[common], hdr},
			{debs["busybox-static"], pkgdir}, {debs["alsa-utils"], pkgdir},
		} {
			if _, err := run(ctx, "", nil, "dpkg-deb", "-x", d.deb, d.to); err != nil {
				return err
			}
		}
		// The headers' Makefile includes the -common tree by absolute
		// path, and their scripts/ point into linux-kbuild-6.1: aim both
		// at our unpacked copy and at the host's kbuild tools.
		mk := filepath.Join(hdr, "usr/src/linux-headers-"+kver, "Makefile")
		b, err := os.ReadFile(mk)
		if err != nil {
			return err
		}
		b = bytes.ReplaceAll(b, []byte("include /usr/src/"), []byte("include "+hdr+"/usr/src/"))
		if err := os.WriteFile(mk, b, 0o644); err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Join(hdr, "usr/lib"), 0o755); err != nil {
			return err
		}
		os.Remove(filepath.Join(hdr, "usr/lib/linux-kbuild-6.1"))
		if err := os.Symlink("/usr/lib/linux-kbuild-6.1", filepath.Join(hdr, "usr/lib/linux-kbuild-6.1")); err != nil {
			return err
		}
		_, err = run(ctx, "", nil, "depmod", "-b", kt.root, kver)
		return err
	}); err != nil {
		return nil, err
	}
	if !exists(kt.vmlinuz) || !exists(kt.busybox) {
		return nil, fmt.Errorf("unpacked kernel tree %s lacks vmlinuz or busybox", kt.dir)
	}

	src := filepath.Join(cache, "src")
	if err := once(cache, "src", func() error { return extractSources(ctx, src, debs) }); err != nil {
		return nil, err
	}

	// Out-of-tree modules. Debian's 6.1 kernels are built without gpio-sim
	// (and gpio-mockup), and v4l2loopback ships only as dkms source.
	// vicodec, the kernel's virtual stateful codec (FWHT), is not built by
	// Debian either; drivers/encoder is tested against it.
	if err := once(cache, "src-vicodec-m2m-v2", func() error { return extractVicodec(ctx, src, debs) }); err != nil {
		return nil, err
	}
	modsrc := map[string][]string{
		"gpio-sim-oot": {"gpio-sim.c", "gpiolib.h", "irq_sim.c"},
		"v4l2loopback": {"v4l2loopback.c", "v4l2loopback_formats.h"},
		"vicodec":      vicodecFiles,
	}
	kbuild := map[string]string{
		"gpio-sim-oot": "obj-m := gpio-sim-oot.o\ngpio-sim-oot-y := gpio-sim.o irq_sim.o\n",
		"v4l2loopback": "obj-m := v4l2loopback.o\n",
		"vicodec":      "obj-m := vicodec.o\nvicodec-objs := vicodec-core.o codec-fwht.o codec-v4l2-fwht.o\n",
	}
	// Debian's amd64 kernel has no V4L2 mem2mem framework at all
	// (CONFIG_V4L2_MEM2MEM_DEV unset: no driver there needs it); vicodec
	// then carries its own copy of v4l2-mem2mem.c.
	if symvers, err := os.ReadFile(filepath.Join(hdr, "usr/src/linux-headers-"+kver, "Module.symvers")); err != nil {
		return nil, err
	} else if !bytes.Contains(symvers, []byte("\tv4l2_m2m_init\t")) {
		modsrc["vicodec"] = append(append([]string(nil), vicodecFiles...), "v4l2-mem2mem.c")
		kbuild["vicodec"] = "obj-m := vicodec.o\nvicodec-objs := vicodec-core.o codec-fwht.o codec-v4l2-fwht.o v4l2-mem2mem.o\n"
	}
	for _, m := range []string{"gpio-sim-oot", "v4l2loopback", "vicodec"} {
		dir := filepath.Join(kt.dir, "mods", m)
		ko := filepath.Join(dir, m+".ko")
		if err := once(kt.dir, "mod-"+m, func() error {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
			for _, f := range modsrc[m] {
				b, err := os.ReadFile(filepath.Join(src, f))
				if err != nil {
					return err
				}
				if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
					return err
				}
			}
			if err := os.WriteFile(filepath.Join(dir, "Kbuild"), []byte(kbuild[m]), 0o644); err != nil {
				return err
			}
			args := append([]string{"-C", filepath.Join(hdr, "usr/src/linux-headers-"+kver), "M=" + dir}, a.kbuild...)
			if _, err := run(ctx, "", nil, "make", append(args, "modules")...); err != nil {
				return err
			}
			if !exists(ko) {
				return fmt.Errorf("make did not produce %s", ko)
			}
			return nil
		}); err != nil {
			return nil, err
		}
		kt.mods = append(kt.mods, ko)
	}
	return kt, nil
}

// extractSources takes gpio-sim (with the irq_sim helper it needs, which
// Debian also leaves out) from linux-source-6.1, and v4l2loopback from its
// dkms package.
func extractSources(ctx context.Context, src string, debs map[string]string) error {
	if err := os.MkdirAll(src, 0o755); err != nil {
		return err
	}
	// linux-source is a .tar.xz inside the .deb; only three files are
	// needed, but xz has to stream through the whole archive once.
	script := `dpkg-deb --fsys-tarfile "$1" | tar -xO ./usr/src/linux-source-6.1.tar.xz |
	  tar -xJ -C "$2" --strip-components=3 --wildcards '*/drivers/gpio/gpio-sim.c' '*/drivers/gpio/gpiolib.h' &&
	dpkg-deb --fsys-tarfile "$1" | tar -xO ./usr/src/linux-source-6.1.tar.xz |
	  tar -xJ -C "$2" --strip-components=3 --wildcards '*/kernel/irq/irq_sim.c'`
	if _, err := run(ctx, "", nil, "bash", "-c", "set -o pipefail; "+script, "x", debs["linux-source-6.1"], src); err != nil {
		return err
	}
	// irq_to_desc() is not exported to modules in 6.1; the exported
	// generic_handle_irq_safe() does the same job from any context.
	p := filepath.Join(src, "irq_sim.c")
	b, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	const from, to = "handle_simple_irq(irq_to_desc(irqnum));", "generic_handle_irq_safe(irqnum);"
	if !bytes.Contains(b, []byte(from)) {
		return fmt.Errorf("irq_sim.c: expected %q to patch; the kernel source changed", from)
	}
	if err := os.WriteFile(p, bytes.ReplaceAll(b, []byte(from), []byte(to)), 0o644); err != nil {
		return err
	}
	lb := filepath.Join(src, "lb")
	if _, err := run(ctx, "", nil, "dpkg-deb", "-x", debs["v4l2loopback-dkms"], lb); err != nil {
		return err
	}
	for _, f := range []string{"v4l2loopback.c", "v4l2loopback_formats.h"} {
		m, _ := filepath.Glob(filepath.Join(lb, "usr/src/v4l2loopback-*", f))
		if len(m) != 1 {
			return fmt.Errorf("v4l2loopback-dkms: %s not found", f)
		}
		b, err := os.ReadFile(m[0])
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(src, f), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// vicodecFiles are vicodec's sources in drivers/media/test-drivers/vicodec.
var vicodecFiles = []string{"vicodec-core.c", "codec-fwht.c", "codec-fwht.h", "codec-v4l2-fwht.c", "codec-v4l2-fwht.h"}

// extractVicodec takes vicodec's sources, and the mem2mem framework it
// needs, from linux-source-6.1.
func extractVicodec(ctx context.Context, src string, debs map[string]string) error {
	if err := os.MkdirAll(src, 0o755); err != nil {
		return err
	}
	script := `dpkg-deb --fsys-tarfile "$1" | tar -xO ./usr/src/linux-source-6.1.tar.xz |
	  tar -xJ -C "$2" --strip-components=5 --wildcards '*/drivers/media/test-drivers/vicodec/*.[ch]' &&
	dpkg-deb --fsys-tarfile "$1" | tar -xO ./usr/src/linux-source-6.1.tar.xz |
	  tar -xJ -C "$2" --strip-components=4 --wildcards '*/drivers/media/v4l2-core/v4l2-mem2mem.c'`
	if _, err := run(ctx, "", nil, "bash", "-c", "set -o pipefail; "+script, "x", debs["linux-source-6.1"], src); err != nil {
		return err
	}
	for _, f := range append(vicodecFiles, "v4l2-mem2mem.c") {
		if !exists(filepath.Join(src, f)) {
			return fmt.Errorf("linux-source-6.1: vicodec's %s not found", f)
		}
	}
	// Linked into vicodec.ko, the framework's "debug" parameter would
	// clash with vicodec's own (sysfs: duplicate filename).
	p := filepath.Join(src, "v4l2-mem2mem.c")
	b, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	const from, to = "module_param(debug, bool, 0644);", "module_param_named(m2m_debug, debug, bool, 0644);"
	if !bytes.Contains(b, []byte(from)) {
		return fmt.Errorf("v4l2-mem2mem.c: expected %q to patch; the kernel source changed", from)
	}
	return os.WriteFile(p, bytes.ReplaceAll(b, []byte(from), []byte(to)), 0o644)
}

// moduleClosure returns insmod lines (path and options) for each module
// and its dependencies, dependencies first, using the host's modprobe on
// the unpacked tree.
func (kt *kernelTree) moduleClosure(ctx context.Context, mods []string) ([][2]string, error) {
	var out [][2]string
	seen := map[string]bool{}
	for _, spec := range mods {
		f := strings.Fields(spec)
		name, opts := f[0], strings.Join(f[1:], " ")
		b, err := run(ctx, "", nil, "modprobe", "-d", kt.root, "-S", kt.kver, "--show-depends", name)
		if err != nil {
			return nil, fmt.Errorf("module %s: %w", name, err)
		}
		want := strings.ReplaceAll(name, "-", "_")
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			l := strings.Fields(sc.Text())
			if len(l) < 2 || l[0] != "insmod" || seen[l[1]] {
				continue
			}
			seen[l[1]] = true
			base := strings.TrimSuffix(filepath.Base(l[1]), ".ko")
			o := ""
			if strings.ReplaceAll(base, "-", "_") == want {
				o = opts
			}
			out = append(out, [2]string{l[1], o})
		}
	}
	return out, nil
}
