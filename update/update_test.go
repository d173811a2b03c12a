package update

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// A real `rauc status --output-format=shell` (rauc 1.8, a box that just
// installed into slot 3).
const raucStatusShell = `RAUC_SYSTEM_COMPATIBLE='callbox-qemu'
RAUC_SYSTEM_VARIANT=''
RAUC_SYSTEM_BOOTED_BOOTNAME='2'
RAUC_BOOT_PRIMARY='rootfs.1'
RAUC_SYSTEM_SLOTS='rootfs.1 rootfs.0'
RAUC_SLOTS='1 2'
RAUC_SLOT_STATE_1='inactive'
RAUC_SLOT_CLASS_1='rootfs'
RAUC_SLOT_DEVICE_1='/dev/vda3'
RAUC_SLOT_TYPE_1='ext4'
RAUC_SLOT_BOOTNAME_1='3'
RAUC_SLOT_PARENT_1=''
RAUC_SLOT_MOUNTPOINT_1=''
RAUC_SLOT_BOOT_STATUS_1='bad'
RAUC_SLOT_STATE_2='booted'
RAUC_SLOT_CLASS_2='rootfs'
RAUC_SLOT_DEVICE_2='/dev/vda2'
RAUC_SLOT_TYPE_2='ext4'
RAUC_SLOT_BOOTNAME_2='2'
RAUC_SLOT_PARENT_2=''
RAUC_SLOT_MOUNTPOINT_2=''
RAUC_SLOT_BOOT_STATUS_2='good'
`

func TestParseSystem(t *testing.T) {
	s, err := parseSystem(raucStatusShell)
	if err != nil {
		t.Fatal(err)
	}
	if s.Compatible != "callbox-qemu" || s.Booted != "2" || s.Primary != "rootfs.1" || len(s.Slots) != 2 {
		t.Fatalf("%+v", s)
	}
	if sl, ok := s.Slot("3"); !ok || sl.Name != "rootfs.1" || sl.BootStatus != "bad" || sl.State != "inactive" {
		t.Errorf("slot 3: %+v %v", sl, ok)
	}
	if sl, ok := s.Slot("2"); !ok || sl.Name != "rootfs.0" || sl.State != "booted" {
		t.Errorf("slot 2: %+v %v", sl, ok)
	}
}

func TestParseShell(t *testing.T) {
	v, err := ParseShell("A='it'\\''s'\nB=plain\nC=''\n\nD='x y'\n")
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{"A": "it's", "B": "plain", "C": "", "D": "x y"} {
		if v[k] != want {
			t.Errorf("%s = %q, want %q", k, v[k], want)
		}
	}
	for _, bad := range []string{"no equals sign", "K='open", "=v", "K K=v"} {
		if _, err := ParseShell(bad); err == nil {
			t.Errorf("ParseShell(%q) accepted it", bad)
		}
	}
}

func TestParseProgress(t *testing.T) {
	for line, want := range map[string]struct {
		p    int
		step string
		ok   bool
	}{
		"  0% Installing":                      {0, "Installing", true},
		" 90% Copying image to rootfs.1 done.": {90, "Copying image to rootfs.1 done.", true},
		"100% Installing done.":                {100, "Installing done.", true},
		"101% nonsense":                        {0, "", false},
		"LastError: Failed to check bundle":    {0, "", false},
		"idle":                                 {0, "", false},
	} {
		p, step, ok := ParseProgress(line)
		if p != want.p || step != want.step || ok != want.ok {
			t.Errorf("ParseProgress(%q) = %d %q %v, want %+v", line, p, step, ok, want)
		}
	}
}

func TestStatusFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "update.json")
	if st, err := ReadStatus(path); err != nil || st.State != Idle {
		t.Fatalf("missing file: %+v %v", st, err)
	}
	want := Status{State: Installed, Progress: 100, Version: "2", From: "2", To: "3", Time: time.Now().UTC().Round(0)}
	if err := WriteStatus(path, want); err != nil {
		t.Fatal(err)
	}
	got, err := ReadStatus(path)
	if err != nil || got != want {
		t.Fatalf("round trip: %+v %v, want %+v", got, err, want)
	}
	os.WriteFile(path, []byte("{not json"), 0o600)
	if _, err := ReadStatus(path); err == nil {
		t.Error("a damaged status file was read without an error")
	}
	if leftovers, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".update-*")); len(leftovers) != 0 {
		t.Errorf("temporary files left: %v", leftovers)
	}
}

func TestHealth(t *testing.T) {
	ctx := context.Background()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	if !PageAnswers(srv.URL)(ctx) {
		t.Error("a page that answers 200 is not healthy")
	}
	srv.Close()
	if PageAnswers(srv.URL)(ctx) {
		t.Error("a closed page is healthy")
	}
	dir := t.TempDir()
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pidfile := filepath.Join(dir, "w.pid")
	os.WriteFile(pidfile, []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o644)
	if !ProcessRuns(pidfile)(ctx) {
		t.Error("a running process does not run")
	}
	cmd.Process.Kill()
	cmd.Wait()
	if ProcessRuns(pidfile)(ctx) || ProcessRuns(filepath.Join(dir, "none"))(ctx) {
		t.Error("a dead process, or no pid file, runs")
	}
	yes := func(context.Context) bool { return true }
	no := func(context.Context) bool { return false }
	if !All(yes, yes)(ctx) || All(yes, no)(ctx) {
		t.Error("All")
	}
}

func FuzzParseShell(f *testing.F) {
	f.Add(raucStatusShell)
	f.Add("A='it'\\''s'\n")
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseShell(s)
		if err == nil && v == nil {
			t.Error("nil map without an error")
		}
		parseSystem(s)
	})
}

func FuzzReadStatus(f *testing.F) {
	f.Add([]byte(`{"state":"installed","progress":100,"version":"2","from":"2","to":"3","time":"2026-12-06T20:00:00Z"}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		path := filepath.Join(t.TempDir(), "update.json")
		os.WriteFile(path, b, 0o600)
		st, err := ReadStatus(path)
		if err == nil && st.State == "" {
			t.Error("a status without a state")
		}
	})
}
