package store

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/callbox/callbox/internal/testenv"
)

func hash(i int) string { return fmt.Sprintf("%064x", i) }

// stepOf reads back the step a crash-test token was written for.
func stepOf(t Token) int {
	n, err := strconv.ParseInt(t.Hash[48:], 16, 64)
	if err != nil {
		return -1
	}
	return int(n)
}

func TestSaveLoadRoundTrip(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "data"))
	if err != nil {
		t.Fatal(err)
	}
	st, err := s.Load()
	if err != nil || st.Muted || len(st.Tokens) != 0 {
		t.Fatalf("fresh store: %+v %v", st, err)
	}
	want := State{Muted: true, Tokens: []Token{{Hash: hash(1), Name: "phone", Paired: time.Unix(1700000000, 0).UTC()}}}
	if err := s.Save(want); err != nil {
		t.Fatal(err)
	}
	got, err := s.Load()
	if err != nil {
		t.Fatal(err)
	}
	if !got.Muted || len(got.Tokens) != 1 || got.Tokens[0] != want.Tokens[0] || got.Version != currentVersion {
		t.Fatalf("got %+v", got)
	}
	fi, err := os.Stat(s.Path())
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600 (the file holds credentials)", fi.Mode().Perm())
	}
	if tmps, _ := filepath.Glob(filepath.Join(s.Dir(), ".*tmp*")); len(tmps) != 0 {
		t.Errorf("temporary files left: %v", tmps)
	}
}

func TestCorruptFile(t *testing.T) {
	for _, data := range []string{"", "{", `{"version":1,"tokens":[{"hash":"xyz"}]}`, `{"version":9}`, `{"version":1,"extra":1}`, `{"version":1}{}`} {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, FileName), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		st, err := s.Load()
		if !errors.Is(err, ErrCorrupt) {
			t.Errorf("%q: err = %v, want ErrCorrupt", data, err)
		}
		if len(st.Tokens) != 0 {
			t.Errorf("%q: corrupt file gave tokens", data)
		}
	}
}

func TestOpenRemovesLeftovers(t *testing.T) {
	dir := t.TempDir()
	left := filepath.Join(dir, "."+FileName+".tmp123")
	if err := os.WriteFile(left, []byte("half"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(left); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("leftover temp file still there: %v", err)
	}
}

// The crash helper: when the test binary runs with this variable set, it
// saves states with growing token counts as fast as it can until killed.
const crashEnv = "CALLBOX_STORE_CRASH_DIR"

func TestMain(m *testing.M) {
	if dir := os.Getenv(crashEnv); dir != "" {
		crashWriter(dir)
		return
	}
	os.Exit(m.Run())
}

func crashWriter(dir string) {
	s, err := Open(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	st, err := s.Load()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	// Continue from the last saved step, so the steps on disk only grow.
	i := 0
	if n := len(st.Tokens); n > 0 {
		i = stepOf(st.Tokens[n-1]) + 1
	}
	told := false
	for ; ; i++ {
		// Step i is self-consistent: the tokens of steps i-7..i in
		// order, muted iff i is odd. A torn write would break that or
		// fail to parse. The size stays bounded, so saves stay fast.
		st.Tokens = st.Tokens[:0]
		for j := max(0, i-7); j <= i; j++ {
			st.Tokens = append(st.Tokens, Token{Hash: hash(j), Name: strings.Repeat("x", j%100)})
		}
		st.Muted = i%2 == 1
		if err := s.Save(st); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(3)
		}
		if !told {
			// Tell the test this process is writing (after one whole
			// save, so that every kill lands among real writes, even
			// under a slow emulator).
			os.WriteFile(filepath.Join(dir, "ready"), nil, 0o600)
			told = true
		}
	}
}

// TestCrashSafety kills a writer with SIGKILL in the middle of its writes
// many times; after every kill the state must load and be consistent, and
// the number of saved tokens never goes backwards.
func TestCrashSafety(t *testing.T) {
	kills := 200
	if testing.Short() {
		kills = 30
	}
	dir := t.TempDir()
	// Behind qemu-user in the cross tests (scripts/cross.sh).
	argv := testenv.Self("-test.run=^$")
	prev := 0
	for i := 0; i < kills; i++ {
		os.Remove(filepath.Join(dir, "ready"))
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Env = append(os.Environ(), crashEnv+"="+dir)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Wait until the writer is writing, then kill it a varying time
		// later so kills land at different points of the write sequence.
		deadline := time.Now().Add(10 * time.Second)
		for {
			if _, err := os.Stat(filepath.Join(dir, "ready")); err == nil {
				break
			}
			if time.Now().After(deadline) {
				cmd.Process.Kill()
				cmd.Wait()
				t.Fatalf("writer did not start: %s", stderr.String())
			}
			time.Sleep(time.Millisecond)
		}
		time.Sleep(time.Duration(i%7) * time.Millisecond)
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		err := cmd.Wait()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != -1 {
			t.Fatalf("kill %d: writer ended on its own (%v): %s", i, err, stderr.String())
		}
		s, err := Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		st, err := s.Load()
		if err != nil {
			t.Fatalf("kill %d: state does not load: %v", i, err)
		}
		n := len(st.Tokens)
		if n == 0 {
			t.Fatalf("kill %d: the state lost every token", i)
		}
		last := stepOf(st.Tokens[n-1])
		if last < prev {
			t.Fatalf("kill %d: state went back from step %d to %d", i, prev, last)
		}
		if st.Muted != (last%2 == 1) || n != min(last+1, 8) {
			t.Fatalf("kill %d: inconsistent state: step %d, %d tokens, muted %v", i, last, n, st.Muted)
		}
		for j, tok := range st.Tokens {
			if want := last - n + 1 + j; tok.Hash != hash(want) || len(tok.Name) != want%100 {
				t.Fatalf("kill %d: token %d is %+v, want step %d", i, j, tok, want)
			}
		}
		prev = last
	}
	if prev+1 < kills {
		t.Fatalf("only %d states written across %d writer runs: the kills did not land among writes", prev+1, kills)
	}
	t.Logf("%d kills; the writers got %d states to disk", kills, prev+1)
}
