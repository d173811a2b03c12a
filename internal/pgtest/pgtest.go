// Package pgtest starts a throwaway PostgreSQL server for a test: Debian's
// postgresql binaries, a cluster made by initdb in the test's temp
// directory, listening on a free loopback port only, run as an unprivileged
// user (nobody, when the tests run as root: PostgreSQL refuses to run as
// root) and stopped when the test ends.
package pgtest

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"syscall"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // "pgx" driver for the readiness check

	"github.com/callbox/callbox/internal/testenv"
)

// binDir finds the newest /usr/lib/postgresql/N/bin holding initdb and postgres.
func binDir() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool {
		vi, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[i])))
		vj, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[j])))
		return vi > vj
	})
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "postgres")); err == nil {
			if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
				return d, nil
			}
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p), nil
	}
	return "", fmt.Errorf("no PostgreSQL server binaries (Debian package postgresql)")
}

// Start runs a PostgreSQL server for t and returns its URL
// (postgres://postgres@127.0.0.1:PORT/postgres). It is stopped, and its
// files removed, when t ends.
func Start(t testing.TB) string {
	t.Helper()
	bin, err := binDir()
	if err != nil {
		testenv.Unavailable(t, "%v", err)
	}
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		u, err := user.Lookup("nobody")
		if err != nil {
			t.Fatalf("pgtest: user nobody: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		// nobody must reach the data directory: the test's temp dirs are
		// root's and 0700.
		for d := dir; d != os.TempDir() && d != "/" && d != "."; d = filepath.Dir(d) {
			if err := os.Chmod(d, 0o711); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Mkdir(data, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(data, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	run := func(name string, args ...string) *exec.Cmd {
		cmd := exec.Command(filepath.Join(bin, name), args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "LC_ALL=C", "TZ=UTC")
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Setpgid: true}
		return cmd
	}
	initdb := run("initdb", "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync", "--no-instructions")
	if out, err := initdb.CombinedOutput(); err != nil {
		t.Fatalf("pgtest: initdb: %v\n%s", err, out)
	}
	// A free port can be taken by someone else between our check and the
	// server's bind: try a few.
	for attempt := 0; attempt < 5; attempt++ {
		port, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		var log bytes.Buffer
		srv := run("postgres", "-D", data, "-p", strconv.Itoa(port),
			"-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=",
			"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
			"-c", "max_connections=200", "-c", "shared_buffers=32MB")
		srv.Stdout, srv.Stderr = &log, &log
		if err := srv.Start(); err != nil {
			t.Fatalf("pgtest: postgres: %v", err)
		}
		exited := make(chan error, 1)
		go func() { exited <- srv.Wait() }()
		url := fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)
		if err := waitReady(url, exited); err != nil {
			stop(srv, exited)
			if attempt < 4 {
				continue
			}
			t.Fatalf("pgtest: postgres did not start: %v\n%s", err, log.String())
		}
		t.Cleanup(func() { stop(srv, exited) })
		return url
	}
	panic("unreachable")
}

// stop asks for a fast shutdown (SIGINT: abort transactions, exit cleanly)
// and kills the process group if that takes too long.
func stop(srv *exec.Cmd, exited chan error) {
	_ = srv.Process.Signal(syscall.SIGINT)
	select {
	case <-exited:
	case <-time.After(20 * time.Second):
		_ = syscall.Kill(-srv.Process.Pid, syscall.SIGKILL)
		<-exited
	}
}

// waitReady connects until the server answers, the server exits, or a
// generous budget (a loaded 2-core machine) runs out.
func waitReady(url string, exited chan error) error {
	deadline := time.Now().Add(60 * time.Second)
	db, err := sql.Open("pgx", url)
	if err != nil {
		return err
	}
	defer db.Close()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := db.PingContext(ctx)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case e := <-exited:
			exited <- e
			return fmt.Errorf("server exited: %v (last connect error: %v)", e, err)
		case <-time.After(50 * time.Millisecond): // poll interval between connection attempts, not a readiness guess
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after 60 s: %w", err)
		}
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
