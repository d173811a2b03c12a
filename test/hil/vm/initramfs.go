package vm

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// baseModules are loaded in every VM: the network card for hostfwd,
// configfs for gpio-sim, videobuf2-vmalloc for vicodec (out of tree, so
// modprobe cannot resolve its dependencies), and the emulated devices. snd-aloop takes card 0
// so that ALSA's (and PortAudio's) default device is the loopback.
var baseModules = []string{
	"virtio_pci", "virtio_net", "configfs", "videobuf2-vmalloc",
	"vivid n_devs=1 node_types=0x1 num_inputs=1",
	"snd-aloop index=0",
}

func moduleRoot(ctx context.Context) (string, error) {
	out, err := run(ctx, "", nil, "go", "env", "GOMOD")
	if err != nil {
		return "", err
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("not inside the callbox module (go env GOMOD is empty)")
	}
	return filepath.Dir(gomod), nil
}

func buildProgram(ctx context.Context, root, arch string, a archInfo, p Program, out string) error {
	env := []string{"GOOS=linux", "GOARCH=" + arch, "CGO_ENABLED=0"}
	if p.Cgo {
		env = []string{"GOOS=linux", "GOARCH=" + arch, "CGO_ENABLED=1", "CC=" + a.cc, "CXX=" + a.cxx, "PKG_CONFIG=" + a.pkg}
	}
	_, err := run(ctx, root, env, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", out, p.Package)
	if err != nil {
		return fmt.Errorf("build %s (%s): %w", p.Name, p.Package, err)
	}
	return nil
}

func buildInitramfs(ctx context.Context, o Options, a archInfo, kt *kernelTree) (string, error) {
	root, err := moduleRoot(ctx)
	if err != nil {
		return "", err
	}
	bindir := filepath.Join(o.WorkDir, "bin-"+o.Arch)
	if err := os.MkdirAll(bindir, 0o755); err != nil {
		return "", err
	}
	r := newInitramfs()
	for _, d := range []string{"dev", "proc", "sys", "tmp", "results", "etc/hil", "lib/modules", "usr/bin"} {
		r.dir(d)
	}
	r.file("bin/busybox", kt.busybox, 0o755)

	bins := map[string]string{} // guest name -> host file
	progs := append([]Program{{Name: "hil-agent", Package: "github.com/callbox/callbox/test/hil/vm/agent"}}, o.Programs...)
	for _, p := range progs {
		if p.Name == "" || strings.Contains(p.Name, "/") {
			return "", fmt.Errorf("bad program name %q", p.Name)
		}
		out := filepath.Join(bindir, p.Name)
		if err := buildProgram(ctx, root, o.Arch, a, p, out); err != nil {
			return "", err
		}
		bins[p.Name] = out
	}
	for _, t := range []string{"aplay", "arecord"} {
		bins[t] = filepath.Join(kt.alsaUtils, "usr/bin", t)
	}
	for name, host := range o.Binaries {
		if name == "" || strings.Contains(name, "/") {
			return "", fmt.Errorf("bad binary name %q", name)
		}
		bins[name] = host
	}
	libs := map[string]bool{}
	for name, host := range bins {
		dyn, err := isDynamic(host)
		if err != nil {
			return "", fmt.Errorf("%s: %w", host, err)
		}
		r.file("bin/"+name, host, 0o755)
		if !dyn {
			continue
		}
		ls, err := libraries(ctx, a, host)
		if err != nil {
			return "", err
		}
		for _, l := range ls {
			libs[l] = true
		}
	}
	for l := range libs {
		r.file(l, l, 0o755)
	}
	// ALSA's configuration: without alsa.conf not even "default" opens.
	if err := filepath.WalkDir("/usr/share/alsa", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			r.file(p, p, 0o644)
		}
		return nil
	}); err != nil {
		return "", fmt.Errorf("/usr/share/alsa (libasound2-data): %w", err)
	}
	for guest, host := range o.Files {
		fi, err := os.Stat(host)
		if err != nil {
			return "", fmt.Errorf("Options.Files[%q]: %w", guest, err)
		}
		r.file(guest, host, uint32(fi.Mode().Perm())) // keeps a script executable
	}

	want := append(append([]string{}, baseModules...), o.Modules...)
	// vicodec (out of tree) needs the mem2mem framework: a module of its
	// own on kernels that build it (arm64), absent on Debian's amd64 one,
	// where vicodec carries a copy (kernel.go).
	if m, _ := filepath.Glob(filepath.Join(kt.root, "lib/modules", kt.kver, "kernel/drivers/media/v4l2-core/v4l2-mem2mem.ko*")); len(m) > 0 {
		want = append(want, "v4l2-mem2mem")
	}
	mods, err := kt.moduleClosure(ctx, want)
	if err != nil {
		return "", err
	}
	var modload strings.Builder
	for _, m := range mods {
		g := "/lib/modules/" + filepath.Base(m[0])
		r.file(g, m[0], 0o644)
		fmt.Fprintf(&modload, "insmod %s %s\n", g, m[1])
	}
	for _, ko := range kt.mods {
		g := "/lib/modules/" + filepath.Base(ko)
		r.file(g, ko, 0o644)
		opts := ""
		switch filepath.Base(ko) {
		case "v4l2loopback.ko":
			opts = "video_nr=10 card_label=loopcam"
		case "vicodec.ko":
			// The multi-planar API, as bcm2835-codec has it.
			opts = "multiplanar=1"
		}
		fmt.Fprintf(&modload, "insmod %s %s\n", g, opts)
	}
	r.bytes("etc/hil/modules", []byte(modload.String()), 0o644)
	r.bytes("etc/hil/script", []byte(o.Script+"\n"), 0o755)
	r.bytes("init", []byte(initScript(o.GPIOLines)), 0o755)

	path := filepath.Join(o.WorkDir, "initrd-"+o.Arch+".cpio.gz")
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	if err := r.write(f); err != nil {
		f.Close()
		return "", err
	}
	return path, f.Close()
}

// initScript is PID 1. It must start with busybox (there is no /bin/sh
// until busybox --install has run), brings the hardware up, starts the
// agent, runs the test script, and powers off when the agent exits
// (the host's /quit).
func initScript(lines []string) string {
	var gs strings.Builder
	for i, n := range lines {
		fmt.Fprintf(&gs, "mkdir $C/bank0/line%d && echo %q > $C/bank0/line%d/name\n", i, n, i)
	}
	return `#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin:/usr/bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
mkdir -p /dev/shm /tmp /results; mount -t tmpfs shm /dev/shm; mount -t tmpfs tmp /tmp
log() { echo "hil: $*" | tee -a /results/boot.log > /dev/console; }
while read -r m; do [ -n "$m" ] && { $m 2>>/results/boot.log || log "MODLOAD FAIL: $m"; }; done < /etc/hil/modules
ip link set lo up
NIC=$(ls /sys/class/net | grep -v '^lo$' | head -1)
# qemu's user network (slirp) hands out 10.0.2.15 and routes via 10.0.2.2.
ip link set "$NIC" up && ip addr add 10.0.2.15/24 dev "$NIC" && ip route add default via 10.0.2.2
/bin/hil-agent -addr :8080 -dir /results > /tmp/agent.log 2>&1 &
AGENT=$!
mount -t configfs none /sys/kernel/config
C=/sys/kernel/config/gpio-sim/hil
if mkdir $C && mkdir $C/bank0 && echo ` + fmt.Sprint(max(len(lines), 1)) + ` > $C/bank0/num_lines && echo hil-bank0 > $C/bank0/label; then
` + gs.String() + `  echo 1 > $C/live || log "gpio-sim: live failed"
  export HIL_GPIOSIM=/sys/devices/platform/$(cat $C/dev_name)/$(cat $C/bank0/chip_name)
else
  log "gpio-sim: configfs setup failed"
fi
log "READY uptime $(cut -d' ' -f1 /proc/uptime)"
cd /tmp
sh /etc/hil/script > /results/script.log 2>&1
echo $? > /results/DONE.tmp && mv /results/DONE.tmp /results/DONE
log "DONE status $(cat /results/DONE) uptime $(cut -d' ' -f1 /proc/uptime)"
while kill -0 $AGENT 2>/dev/null; do sleep 0.2; done
poweroff -f
`
}
