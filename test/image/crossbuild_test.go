package image

import (
	"bytes"
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/callbox/callbox/internal/testenv"
)

// callboxMk returns the variables package/callbox/callbox.mk sets.
func callboxMk(t testing.TB) map[string]string {
	t.Helper()
	mk := readFile(t, filepath.Join(externalTree(t), "package", "callbox", "callbox.mk"))
	vars := map[string]string{}
	for _, m := range regexp.MustCompile(`(?m)^(CALLBOX_\w+)\s*[:+]?=\s*(.*)$`).FindAllStringSubmatch(mk, -1) {
		vars[m[1]] = strings.TrimSpace(m[2])
	}
	return vars
}

// treeCopy copies the source tree as git sees it (tracked files plus new
// ones not ignored) into a temporary directory, so vendoring never touches
// the shared working tree.
func treeCopy(t testing.TB) string {
	t.Helper()
	root := repoRoot(t)
	testenv.LookPath(t, "git")
	out := run(t, nil, root, "git", "ls-files", "-z", "--cached", "--others", "--exclude-standard")
	dst := t.TempDir()
	for _, rel := range strings.Split(strings.TrimRight(out, "\x00"), "\x00") {
		src := filepath.Join(root, rel)
		fi, err := os.Lstat(src)
		if err != nil || !(fi.Mode().IsRegular() || fi.Mode()&os.ModeSymlink != 0) {
			continue // deleted in the working tree, or a submodule
		}
		to := filepath.Join(dst, rel)
		if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
			t.Fatal(err)
		}
		if fi.Mode()&os.ModeSymlink != 0 {
			l, _ := os.Readlink(src)
			if err := os.Symlink(l, to); err != nil {
				t.Fatal(err)
			}
			continue
		}
		copyFile(t, src, to)
	}
	return dst
}

// envWithout returns the environment minus the named variables.
func envWithout(names ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if !slices.Contains(names, k) {
			env = append(env, kv)
		}
	}
	return env
}

// TestBuildrootGoBuild builds the firmware for arm64 the way Buildroot's
// golang-package infrastructure does (package/pkg-golang.mk and
// package/go/go.mk of the pinned release): vendored modules only, no proxy,
// the local toolchain, cgo through the cross compiler with PortAudio found
// by the cross pkg-config, and the same go build flags.
func TestBuildrootGoBuild(t *testing.T) {
	testenv.Short(t)
	cc := testenv.LookPath(t, "aarch64-linux-gnu-gcc")
	pkgConfig := testenv.LookPath(t, "aarch64-linux-gnu-pkg-config")
	if err := exec.Command(pkgConfig, "--exists", "portaudio-2.0").Run(); err != nil {
		testenv.Unavailable(t, "portaudio19-dev:arm64 not installed (run `make deps` as root)")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatal(err)
	}
	vars := callboxMk(t)
	gomod, target := vars["CALLBOX_GOMOD"], vars["CALLBOX_BUILD_TARGETS"]
	if gomod == "" || target == "" {
		t.Fatalf("callbox.mk: CALLBOX_GOMOD=%q CALLBOX_BUILD_TARGETS=%q", gomod, target)
	}

	src := treeCopy(t)
	if _, err := os.Stat(filepath.Join(src, "vendor")); err == nil {
		t.Fatal("the copy already has vendor/: it is gitignored and must come from `go mod vendor`")
	}
	// make vendor (scripts/vendor.sh: go mod vendor plus the static
	// OpenH264 library cgo links), as scripts/image.sh runs it (modules
	// from the cache or the proxy the developer has).
	start := time.Now()
	run(t, append(envWithout("GOFLAGS"), "GOFLAGS=-mod=mod", "GOTOOLCHAIN=local", "GO="+goBin), src, "bash", "scripts/vendor.sh")
	t.Logf("go mod vendor: %v", time.Since(start).Round(time.Millisecond))

	// An empty module cache proves vendor/ is all the build needs.
	modcache := t.TempDir()
	env := append(envWithout("GOFLAGS", "GOPROXY", "GOTOOLCHAIN", "GOPATH", "GOMODCACHE", "GOOS", "GOARCH",
		"CGO_ENABLED", "CC", "CXX", "PKG_CONFIG", "GOBIN", "GO111MODULE", "GOARM", "GOWORK"),
		"GO111MODULE=on",
		"GOFLAGS=-mod=vendor",
		"GOPROXY=off",
		"GOTOOLCHAIN=local",
		"GOWORK=off",
		"GOPATH="+filepath.Join(modcache, "gopath"),
		"GOMODCACHE="+filepath.Join(modcache, "mod"),
		"GOBIN=",
		"CGO_ENABLED=1",
		"GOOS=linux",
		"GOARCH=arm64",
		"CC="+cc,
		"CXX=aarch64-linux-gnu-g++",
		"PKG_CONFIG="+pkgConfig,
	)
	version := fmt.Sprintf("imagetest-%d", time.Now().UnixNano())
	out := filepath.Join(t.TempDir(), "callbox")
	// pkg-golang.mk's flags; -fuse-ld=bfd is what it adds on aarch64.
	ldflags := fmt.Sprintf("-s -w -X %s/firmware.Version=%s -extldflags '-fuse-ld=bfd'", gomod, version)
	start = time.Now()
	run(t, env, src, goBin, "build", "-v", "-ldflags", ldflags, "-modcacherw", "-tags", "", "-trimpath",
		"-p", "2", "-buildvcs=false", "-o", out, gomod+"/"+target)
	t.Logf("arm64 cgo build: %v", time.Since(start).Round(time.Millisecond))

	f, err := elf.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Machine != elf.EM_AARCH64 || f.Class != elf.ELFCLASS64 {
		t.Errorf("binary is %v %v, want EM_AARCH64 ELFCLASS64", f.Machine, f.Class)
	}
	interp := ""
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			b := make([]byte, p.Filesz)
			p.ReadAt(b, 0)
			interp = strings.TrimRight(string(b), "\x00")
		}
	}
	if interp != "/lib/ld-linux-aarch64.so.1" {
		t.Errorf("interpreter %q: a cgo build against glibc loads /lib/ld-linux-aarch64.so.1", interp)
	}
	libs, err := f.ImportedLibraries()
	if err != nil {
		t.Fatal(err)
	}
	deps := run(t, env, src, goBin, "list", "-deps", gomod+"/"+target)
	if slices.Contains(strings.Fields(deps), "github.com/gordonklaus/portaudio") {
		if !slices.Contains(libs, "libportaudio.so.2") {
			t.Errorf("the firmware uses PortAudio but the binary does not link libportaudio.so.2: %v", libs)
		}
	} else {
		t.Logf("the firmware does not import PortAudio yet; libraries: %v", libs)
	}
	bin, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(bin, []byte(version)) {
		t.Error("the version passed with -X is not in the binary")
	}
}
