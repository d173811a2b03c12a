package image

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// The external tree's name: Buildroot derives BR2_EXTERNAL_CALLBOX_PATH from
// it, and every path in the defconfigs goes through that variable.
const externalName = "CALLBOX"

const externalPathVar = "$(BR2_EXTERNAL_" + externalName + "_PATH)"

// defconfig is one parsed defconfig: its settings in file order.
type defconfig struct {
	name   string
	keys   []string
	values map[string]string // unquoted; "y" for booleans
	unset  map[string]bool   // "# BR2_X is not set"
}

var unsetRe = regexp.MustCompile(`^# (BR2_\w+) is not set$`)

func parseDefconfig(t testing.TB, path string) defconfig {
	t.Helper()
	d := defconfig{name: filepath.Base(path), values: map[string]string{}, unset: map[string]bool{}}
	sc := bufio.NewScanner(strings.NewReader(readFile(t, path)))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if m := unsetRe.FindStringSubmatch(line); m != nil {
			d.unset[m[1]] = true
			continue
		}
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || !strings.HasPrefix(k, "BR2_") {
			t.Errorf("%s:%d: not a Kconfig setting: %q", d.name, n, line)
			continue
		}
		if _, dup := d.values[k]; dup {
			t.Errorf("%s:%d: %s set twice", d.name, n, k)
		}
		d.keys = append(d.keys, k)
		d.values[k] = strings.TrimSuffix(strings.TrimPrefix(v, `"`), `"`)
	}
	return d
}

func defconfigs(t testing.TB) []defconfig {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(externalTree(t), "configs", "*_defconfig"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no defconfigs in buildroot/configs (%v)", err)
	}
	var ds []defconfig
	for _, p := range paths {
		ds = append(ds, parseDefconfig(t, p))
	}
	return ds
}

// imageScript holds what scripts/image.sh pins and maps.
type imageScript struct {
	brVersion, brSHA256, brGo string
	boards                    map[string]string // BOARD -> defconfig
}

var (
	shVarRe    = regexp.MustCompile(`(?m)^(BR_VERSION|BR_SHA256|BR_GO_VERSION)=(\S+)$`)
	boardArmRe = regexp.MustCompile(`(?m)^(\w+)\) DEFCONFIG=(\w+) ;;$`)
)

func parseImageScript(t testing.TB) imageScript {
	t.Helper()
	s := readFile(t, filepath.Join(repoRoot(t), "scripts", "image.sh"))
	is := imageScript{boards: map[string]string{}}
	for _, m := range shVarRe.FindAllStringSubmatch(s, -1) {
		switch m[1] {
		case "BR_VERSION":
			is.brVersion = m[2]
		case "BR_SHA256":
			is.brSHA256 = m[2]
		case "BR_GO_VERSION":
			is.brGo = m[2]
		}
	}
	for _, m := range boardArmRe.FindAllStringSubmatch(s, -1) {
		is.boards[m[1]] = m[2]
	}
	return is
}

// buildrootTree returns the source of the pinned Buildroot release when this
// machine has one (scripts/image.sh's cache, or CALLBOX_BUILDROOT_SRC), so
// paths relative to Buildroot can be checked too; "" otherwise.
func buildrootTree(t testing.TB) string {
	t.Helper()
	if d := os.Getenv("CALLBOX_BUILDROOT_SRC"); d != "" {
		return d
	}
	cache := os.Getenv("CALLBOX_IMAGE_CACHE")
	if cache == "" {
		c, err := os.UserCacheDir()
		if err != nil {
			return ""
		}
		cache = filepath.Join(c, "callbox-image")
	}
	d := filepath.Join(cache, "buildroot-"+parseImageScript(t).brVersion)
	if _, err := os.Stat(filepath.Join(d, "Config.in")); err != nil {
		return ""
	}
	return d
}

func TestExternalDesc(t *testing.T) {
	desc := readFile(t, filepath.Join(externalTree(t), "external.desc"))
	fields := map[string]string{}
	for _, line := range strings.Split(desc, "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			fields[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	if fields["name"] != externalName {
		t.Errorf("external.desc name = %q, want %q", fields["name"], externalName)
	}
	if fields["desc"] == "" {
		t.Error("external.desc has no desc line")
	}
	mk := readFile(t, filepath.Join(externalTree(t), "external.mk"))
	if !strings.Contains(mk, externalPathVar+"/package/*/*.mk") {
		t.Errorf("external.mk does not include %s/package/*/*.mk:\n%s", externalPathVar, mk)
	}
}

var sourceRe = regexp.MustCompile(`(?m)^\s*source\s+"([^"]+)"`)

// TestConfigInSources follows every `source` from the external Config.in:
// each file exists, and every package's Config.in is reached.
func TestConfigInSources(t *testing.T) {
	ext := externalTree(t)
	seen := map[string]bool{}
	var walk func(path string)
	walk = func(path string) {
		if seen[path] {
			return
		}
		seen[path] = true
		for _, m := range sourceRe.FindAllStringSubmatch(readFile(t, path), -1) {
			ref := m[1]
			if !strings.HasPrefix(ref, "$BR2_EXTERNAL_"+externalName+"_PATH/") {
				t.Errorf("%s sources %q: paths in an external tree must start with $BR2_EXTERNAL_%s_PATH", path, ref, externalName)
				continue
			}
			p := filepath.Join(ext, strings.TrimPrefix(ref, "$BR2_EXTERNAL_"+externalName+"_PATH/"))
			if _, err := os.Stat(p); err != nil {
				t.Errorf("%s sources %q, which does not exist", path, ref)
				continue
			}
			walk(p)
		}
	}
	walk(filepath.Join(ext, "Config.in"))

	pkgs, _ := filepath.Glob(filepath.Join(ext, "package", "*", "Config.in"))
	if len(pkgs) == 0 {
		t.Fatal("no package/*/Config.in in the external tree")
	}
	for _, p := range pkgs {
		name := filepath.Base(filepath.Dir(p))
		if !seen[p] {
			t.Errorf("package %s: its Config.in is not sourced from the external Config.in", name)
		}
		if _, err := os.Stat(filepath.Join(filepath.Dir(p), name+".mk")); err != nil {
			t.Errorf("package %s has no %s.mk", name, name)
		}
		sym := "config BR2_PACKAGE_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_")) + "\n"
		if !strings.Contains(readFile(t, p), sym) {
			t.Errorf("package %s: Config.in does not define %q", name, strings.TrimSpace(sym))
		}
	}
}

// fileKeyRe matches the settings whose values are paths of files or
// directories (overlays, scripts, tables, kernel configs, patch dirs).
var fileKeyRe = regexp.MustCompile(`(_FILE|_FILES|_SCRIPT|_OVERLAY|_TABLE|_TABLES|_PATCH_DIR)$`)

var (
	hashLineRe = regexp.MustCompile(`(?m)^sha256\s+[0-9a-f]{64}\s+(\S+)$`)
	caseArmRe  = regexp.MustCompile(`(?m)^([\w |]+)\)`)
)

// boardsOf lists the board names a post script's `case "$BOARD"` accepts.
func boardsOf(t testing.TB, script string) []string {
	t.Helper()
	var boards []string
	for _, m := range caseArmRe.FindAllStringSubmatch(readFile(t, script), -1) {
		for _, b := range strings.Split(m[1], "|") {
			if b = strings.TrimSpace(b); b != "" && b != "*" {
				boards = append(boards, b)
			}
		}
	}
	return boards
}

func TestDefconfigs(t *testing.T) {
	ext := externalTree(t)
	br := buildrootTree(t)
	if br == "" {
		t.Log("no Buildroot source here (scripts/image.sh's cache or CALLBOX_BUILDROOT_SRC): paths relative to Buildroot are not checked")
	}
	for _, d := range defconfigs(t) {
		t.Run(d.name, func(t *testing.T) {
			if !strings.HasPrefix(d.name, "callbox_") {
				t.Errorf("defconfig name %q: external defconfigs are prefixed callbox_ so they cannot shadow Buildroot's", d.name)
			}
			want := map[string]string{
				// Every download is checked against a hash, including the
				// kernel and firmware versions the defconfigs choose.
				"BR2_DOWNLOAD_FORCE_CHECK_HASHES": "y",
				"BR2_aarch64":                     "y",
				"BR2_PACKAGE_CALLBOX":             "y",
				"BR2_TARGET_ROOTFS_EXT2_4":        "y",
			}
			for k, v := range want {
				if d.values[k] != v {
					t.Errorf("%s=%q, want %q", k, d.values[k], v)
				}
			}
			// The root file system stays read-only; state lives on /data.
			if !d.unset["BR2_TARGET_GENERIC_REMOUNT_ROOTFS_RW"] {
				t.Error("BR2_TARGET_GENERIC_REMOUNT_ROOTFS_RW must be unset (read-only root)")
			}
			var patchDirs []string
			for _, k := range d.keys {
				for _, tok := range strings.Fields(d.values[k]) {
					switch {
					case strings.HasPrefix(tok, externalPathVar+"/"):
						p := filepath.Join(ext, strings.TrimPrefix(tok, externalPathVar+"/"))
						if _, err := os.Stat(p); err != nil {
							t.Errorf("%s names %s, which does not exist in buildroot/", k, tok)
						}
						if k == "BR2_GLOBAL_PATCH_DIR" {
							patchDirs = append(patchDirs, p)
						}
					case fileKeyRe.MatchString(k) && strings.HasPrefix(tok, "board/"):
						// Buildroot's own board files, relative to its tree.
						if br == "" {
							continue
						}
						if _, err := os.Stat(filepath.Join(br, tok)); err != nil {
							t.Errorf("%s names %s, which Buildroot %s does not have", k, tok, filepath.Base(br))
						}
					case fileKeyRe.MatchString(k):
						t.Errorf("%s=%q: a path must start with %s (or be one of Buildroot's board/ files)", k, tok, externalPathVar)
					}
				}
			}
			for _, k := range []string{"BR2_ROOTFS_POST_BUILD_SCRIPT", "BR2_ROOTFS_POST_IMAGE_SCRIPT"} {
				v := d.values[k]
				if v == "" {
					t.Errorf("%s not set", k)
					continue
				}
				p := filepath.Join(ext, strings.TrimPrefix(v, externalPathVar+"/"))
				if fi, err := os.Stat(p); err == nil && fi.Mode()&0o111 == 0 {
					t.Errorf("%s %s is not executable", k, v)
				}
				// The board argument is one the script knows.
				board := d.values["BR2_ROOTFS_POST_SCRIPT_ARGS"]
				if !slices.Contains(boardsOf(t, p), board) {
					t.Errorf("BR2_ROOTFS_POST_SCRIPT_ARGS=%q is not a board %s handles (%v)", board, filepath.Base(p), boardsOf(t, p))
				}
			}
			// A kernel from a custom tarball needs its hash in one of the
			// patch directories (BR2_DOWNLOAD_FORCE_CHECK_HASHES).
			if loc := d.values["BR2_LINUX_KERNEL_CUSTOM_TARBALL_LOCATION"]; loc != "" {
				tarball := loc[strings.LastIndex(loc, "/")+1:]
				found := false
				for _, dir := range patchDirs {
					b, err := os.ReadFile(filepath.Join(dir, "linux", "linux.hash"))
					if err != nil {
						continue
					}
					for _, m := range hashLineRe.FindAllStringSubmatch(string(b), -1) {
						found = found || m[1] == tarball
					}
				}
				if !found {
					t.Errorf("no sha256 for %s in linux/linux.hash of the external patch directories %v", tarball, patchDirs)
				}
			}
		})
	}
}

// TestImageScript: scripts/image.sh pins a Buildroot release by sha256, maps
// each board to a defconfig that exists (and every defconfig to a board), and
// the Go of that release can build this module: Buildroot runs Go with
// GOTOOLCHAIN=local, so go.mod's go line must not be newer.
func TestImageScript(t *testing.T) {
	is := parseImageScript(t)
	if !regexp.MustCompile(`^\d{4}\.\d{2}(\.\d+)?$`).MatchString(is.brVersion) {
		t.Errorf("BR_VERSION=%q is not a Buildroot release", is.brVersion)
	}
	if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(is.brSHA256) {
		t.Errorf("BR_SHA256=%q is not a sha256", is.brSHA256)
	}
	ext := externalTree(t)
	mapped := map[string]bool{}
	for _, b := range []string{"rpi4", "rpizero2w", "qemu"} {
		dc, ok := is.boards[b]
		if !ok {
			t.Errorf("image.sh has no BOARD=%s", b)
			continue
		}
		mapped[dc] = true
		if _, err := os.Stat(filepath.Join(ext, "configs", dc)); err != nil {
			t.Errorf("BOARD=%s builds %s, which is not in buildroot/configs", b, dc)
		}
	}
	for _, d := range defconfigs(t) {
		if !mapped[d.name] {
			t.Errorf("%s is built by no BOARD of image.sh", d.name)
		}
	}
	goLine := ""
	for _, line := range strings.Split(readFile(t, filepath.Join(repoRoot(t), "go.mod")), "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "go" {
			goLine = f[1]
		}
	}
	if goLine == "" || is.brGo == "" {
		t.Fatalf("go.mod go line %q, BR_GO_VERSION %q", goLine, is.brGo)
	}
	if compareVersions(goLine, is.brGo) > 0 {
		t.Errorf("go.mod says go %s, newer than Buildroot %s's Go %s: the image would not build (GOTOOLCHAIN=local)", goLine, is.brVersion, is.brGo)
	}
	if br := buildrootTree(t); br != "" {
		mk := readFile(t, filepath.Join(br, "package", "go", "go.mk"))
		if !strings.Contains(mk, "\nGO_VERSION = "+is.brGo+"\n") {
			t.Errorf("BR_GO_VERSION=%s is not the GO_VERSION of %s/package/go/go.mk", is.brGo, br)
		}
	}
}

// compareVersions compares dotted decimal versions ("1.26", "1.26.3").
func compareVersions(a, b string) int {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < max(len(as), len(bs)); i++ {
		var x, y int
		if i < len(as) {
			x = atoi(as[i])
		}
		if i < len(bs) {
			y = atoi(bs[i])
		}
		if x != y {
			if x < y {
				return -1
			}
			return 1
		}
	}
	return 0
}

func atoi(s string) int {
	n := 0
	for _, c := range s {
		if c < '0' || c > '9' {
			break
		}
		n = n*10 + int(c-'0')
	}
	return n
}

func TestCompareVersions(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want int
	}{
		{"1.26.0", "1.26.3", -1}, {"1.26", "1.26.0", 0}, {"1.26.8", "1.26.3", 1}, {"1.27", "1.26.9", 1},
	} {
		if got := compareVersions(c.a, c.b); got != c.want {
			t.Errorf("compareVersions(%q, %q) = %d, want %d", c.a, c.b, got, c.want)
		}
	}
}

// TestCallboxPackage ties package/callbox to the source tree: the module
// path, the build target, the vendor check and the installed configuration.
func TestCallboxPackage(t *testing.T) {
	root := repoRoot(t)
	dir := filepath.Join(externalTree(t), "package", "callbox")
	mk := readFile(t, filepath.Join(dir, "callbox.mk"))
	cfg := readFile(t, filepath.Join(dir, "Config.in"))
	vars := callboxMk(t)
	module := ""
	for _, line := range strings.Split(readFile(t, filepath.Join(root, "go.mod")), "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "module" {
			module = f[1]
		}
	}
	if vars["CALLBOX_GOMOD"] != module {
		t.Errorf("CALLBOX_GOMOD=%q, go.mod's module is %q", vars["CALLBOX_GOMOD"], module)
	}
	if vars["CALLBOX_SITE_METHOD"] != "local" || vars["CALLBOX_SITE"] != externalPathVar+"/.." {
		t.Errorf("CALLBOX_SITE=%q (method %q): want the source tree around the external tree, local method", vars["CALLBOX_SITE"], vars["CALLBOX_SITE_METHOD"])
	}
	target := vars["CALLBOX_BUILD_TARGETS"]
	mains, _ := filepath.Glob(filepath.Join(root, filepath.FromSlash(target), "*.go"))
	isMain := false
	for _, f := range mains {
		isMain = isMain || regexp.MustCompile(`(?m)^package main$`).MatchString(readFile(t, f))
	}
	if !isMain {
		t.Errorf("CALLBOX_BUILD_TARGETS=%q is not a main package of this tree", target)
	}
	for _, dep := range []string{"portaudio", "host-pkgconf"} {
		if !slices.Contains(strings.Fields(vars["CALLBOX_DEPENDENCIES"]), dep) {
			t.Errorf("CALLBOX_DEPENDENCIES=%q lacks %s (cgo links PortAudio through pkg-config)", vars["CALLBOX_DEPENDENCIES"], dep)
		}
	}
	for _, want := range []string{
		"depends on BR2_PACKAGE_HOST_GO_TARGET_ARCH_SUPPORTS",
		"depends on BR2_PACKAGE_HOST_GO_TARGET_CGO_LINKING_SUPPORTS",
		"select BR2_PACKAGE_HOST_GO",
		"select BR2_PACKAGE_PORTAUDIO",
	} {
		if !strings.Contains(cfg, "\t"+want+"\n") && !strings.Contains(cfg, "\t"+want+" ") {
			t.Errorf("package/callbox/Config.in lacks %q", want)
		}
	}
	if !strings.Contains(mk, "$(eval $(golang-package))") {
		t.Error("callbox.mk does not use the golang-package infrastructure")
	}
	if !strings.Contains(mk, "vendor/modules.txt") {
		t.Error("callbox.mk does not check for vendor/ before building")
	}
	if _, err := os.Stat(exampleConfig(t)); err != nil {
		t.Errorf("callbox.mk installs %s as the default configuration, but it does not exist", exampleConfig(t))
	}
	// vendor/ is prepared by make vendor, never committed.
	gi := readFile(t, filepath.Join(root, ".gitignore"))
	if !regexp.MustCompile(`(?m)^/?vendor/?$`).MatchString(gi) {
		t.Error(".gitignore does not ignore vendor/")
	}
}

// TestOverlayConsistency ties the overlay's files to each other: what the
// watchdog runs and where it writes its pid, and the /data directories the
// time and random-seed daemons are pointed at, which S00callbox-data makes.
func TestOverlayConsistency(t *testing.T) {
	overlay := filepath.Join(boardDir(t), "common", "rootfs-overlay")
	conf := map[string]string{}
	for _, line := range strings.Split(readFile(t, filepath.Join(overlay, "etc", "watchdog.conf")), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(strings.TrimSpace(line), "#") {
			conf[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	if tb := conf["test-binary"]; tb == "" {
		t.Error("watchdog.conf has no test-binary: a hung callbox would never reset the box")
	} else if fi, err := os.Stat(filepath.Join(overlay, tb)); err != nil || fi.Mode()&0o111 == 0 {
		t.Errorf("watchdog.conf test-binary %s is not an executable of the overlay", tb)
	}
	init := readFile(t, filepath.Join(overlay, "etc", "init.d", "S98watchdog"))
	m := regexp.MustCompile(`(?m)^DAEMON="(\w+)"\n(?:.*\n)*?PIDFILE="([^"]+)"`).FindStringSubmatch(init)
	if m == nil || strings.ReplaceAll(m[2], "$DAEMON", m[1]) != conf["pidfile"] {
		t.Errorf("S98watchdog's PIDFILE %v is not watchdog.conf's pidfile %q", m, conf["pidfile"])
	}
	if to, _ := strconv.Atoi(conf["watchdog-timeout"]); to < 1 || to > 15 {
		t.Errorf("watchdog-timeout %q: bcm2835_wdt allows 1..15 s", conf["watchdog-timeout"])
	}
	data := readFile(t, filepath.Join(overlay, "etc", "init.d", "S00callbox-data"))
	for file, re := range map[string]string{
		"etc/chrony.conf":       `(?m)^driftfile (/data/\S+)/[^/\s]+$`,
		"etc/default/seedrng":   `--seed-dir=(/data/[^"\s]+)`,
		"etc/init.d/S99callbox": `(?m)^CALLBOX_DATA="(/data/[^"]+)"`,
	} {
		m := regexp.MustCompile(re).FindStringSubmatch(readFile(t, filepath.Join(overlay, file)))
		if m == nil {
			t.Errorf("%s keeps no state on /data", file)
			continue
		}
		if !strings.Contains(data, strings.Replace(m[1], "/data", `"$DATA`, 1)+`"`) {
			t.Errorf("%s uses %s, which S00callbox-data does not create", file, m[1])
		}
	}
}
