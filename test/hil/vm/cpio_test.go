package vm

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
)

// readNewc parses a newc archive back: name -> (mode, data).
func readNewc(t *testing.T, b []byte) map[string]entry {
	t.Helper()
	out := map[string]entry{}
	pad := func(n int) int { return (n + 3) &^ 3 }
	for off := 0; ; {
		if off+110 > len(b) || string(b[off:off+6]) != "070701" {
			t.Fatalf("bad header at %d", off)
		}
		field := func(i int) int {
			v, err := strconv.ParseUint(string(b[off+6+8*i:off+14+8*i]), 16, 32)
			if err != nil {
				t.Fatal(err)
			}
			return int(v)
		}
		mode, size, nameLen := field(1), field(6), field(11)
		name := string(b[off+110 : off+110+nameLen-1])
		dataOff := pad(off + 110 + nameLen)
		if name == "TRAILER!!!" {
			return out
		}
		out[name] = entry{mode: uint32(mode), data: b[dataOff : dataOff+size]}
		off = pad(dataOff + size)
	}
}

func TestInitramfsRoundTrip(t *testing.T) {
	host := filepath.Join(t.TempDir(), "prog")
	if err := os.WriteFile(host, []byte("#!/bin/sh\necho hi\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	r := newInitramfs()
	r.file("/bin/prog", host, 0o755)
	r.bytes("etc/hil/script", []byte("odd length"), 0o644)
	r.symlink("bin/sh", "busybox")
	var buf bytes.Buffer
	if err := r.write(&buf); err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(&buf)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	got := readNewc(t, raw)
	want := map[string]entry{
		"bin":            {mode: 0o040755},
		"etc":            {mode: 0o040755},
		"etc/hil":        {mode: 0o040755},
		"bin/prog":       {mode: 0o100755, data: []byte("#!/bin/sh\necho hi\n")},
		"etc/hil/script": {mode: 0o100644, data: []byte("odd length")},
		"bin/sh":         {mode: 0o120777, data: []byte("busybox")},
	}
	if len(got) != len(want) {
		t.Fatalf("archive has %d entries, want %d: %v", len(got), len(want), got)
	}
	for n, w := range want {
		g, ok := got[n]
		if !ok || g.mode != w.mode || !bytes.Equal(g.data, w.data) {
			t.Errorf("%s: got mode %o data %q, want %o %q", n, g.mode, g.data, w.mode, w.data)
		}
	}
}

func TestInitramfsMissingFile(t *testing.T) {
	r := newInitramfs()
	r.file("bin/x", "/nonexistent/file", 0o755)
	if err := r.write(io.Discard); err == nil {
		t.Fatal("missing host file not reported")
	}
}

func TestInitScriptNamesLines(t *testing.T) {
	s := initScript([]string{"button", "led"})
	for _, w := range []string{"#!/bin/busybox sh\n", `echo "button" > $C/bank0/line0/name`, `echo "led" > $C/bank0/line1/name`, "echo 2 > $C/bank0/num_lines", "poweroff -f"} {
		if !bytes.Contains([]byte(s), []byte(w)) {
			t.Errorf("init script lacks %q", w)
		}
	}
}

func TestStartRejectsBadOptions(t *testing.T) {
	ctx := t.Context()
	if _, err := Start(ctx, Options{Arch: "riscv64", WorkDir: t.TempDir()}); err == nil {
		t.Error("unknown arch accepted")
	}
	if _, err := Start(ctx, Options{}); err == nil {
		t.Error("missing WorkDir accepted")
	}
	if _, err := Start(ctx, Options{WorkDir: t.TempDir(), HostFwd: []int{70000}}); err == nil {
		t.Error("bad port accepted")
	}
}

func TestLibrariesOfAHostBinary(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skip("traces an amd64 host binary natively")
	}
	bin := "/bin/ls"
	dyn, err := isDynamic(bin)
	if err != nil {
		t.Skipf("%s: %v", bin, err)
	}
	if !dyn {
		t.Skipf("%s is static here", bin)
	}
	libs, err := libraries(t.Context(), arches["amd64"], bin)
	if err != nil {
		t.Fatal(err)
	}
	var libc, loader bool
	for _, l := range libs {
		if !filepath.IsAbs(l) {
			t.Errorf("relative library path %q", l)
		}
		libc = libc || filepath.Base(l) == "libc.so.6"
		loader = loader || bytes.Contains([]byte(filepath.Base(l)), []byte("ld-linux"))
	}
	if !libc || !loader {
		t.Fatalf("libraries of %s: %q lack libc or the loader", bin, libs)
	}
}
