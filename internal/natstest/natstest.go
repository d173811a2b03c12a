// Package natstest starts a throwaway NATS server (Debian's nats-server) on
// a free loopback port for a test, and stops it when the test ends.
package natstest

import (
	"bytes"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/callbox/callbox/internal/testenv"
)

// Server is a running nats-server.
type Server struct {
	URL  string
	bin  string
	port int
	cmd  *exec.Cmd
	done chan struct{}
	mu   sync.Mutex
	log  bytes.Buffer
}

// Start runs nats-server for t on 127.0.0.1 and returns it once it
// accepts clients.
func Start(t testing.TB) *Server {
	t.Helper()
	bin := testenv.LookPath(t, "nats-server")
	for attempt := 0; ; attempt++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		s := &Server{URL: fmt.Sprintf("nats://127.0.0.1:%d", port), bin: bin, port: port}
		if err := s.start(); err != nil {
			t.Fatalf("natstest: %v", err)
		}
		if err := s.waitReady(); err != nil {
			s.Stop()
			if attempt < 4 {
				continue
			}
			t.Fatalf("natstest: nats-server did not start: %v\n%s", err, s.Log())
		}
		t.Cleanup(s.Stop)
		return s
	}
}

func (s *Server) start() error {
	s.done = make(chan struct{})
	s.cmd = exec.Command(s.bin, "-a", "127.0.0.1", "-p", strconv.Itoa(s.port))
	s.cmd.Stdout, s.cmd.Stderr = &syncWriter{s}, &syncWriter{s}
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := s.cmd.Start(); err != nil {
		return err
	}
	done := s.done
	cmd := s.cmd
	go func() { _ = cmd.Wait(); close(done) }()
	return nil
}

// Restart stops the server and starts it again on the same port (its
// clients see an outage and reconnect).
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.Stop()
	if err := s.start(); err != nil {
		t.Fatalf("natstest: restart: %v", err)
	}
	if err := s.waitReady(); err != nil {
		t.Fatalf("natstest: restart: %v\n%s", err, s.Log())
	}
}

type syncWriter struct{ s *Server }

func (w *syncWriter) Write(p []byte) (int, error) {
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	return w.s.log.Write(p)
}

// Log is what the server printed.
func (s *Server) Log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.String()
}

func (s *Server) waitReady() error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		nc, err := nats.Connect(s.URL, nats.Timeout(2*time.Second))
		if err == nil {
			nc.Close()
			return nil
		}
		select {
		case <-s.done:
			return fmt.Errorf("exited: %v", err)
		case <-time.After(20 * time.Millisecond): // poll between connection attempts
		}
		if time.Now().After(deadline) {
			return err
		}
	}
}

// Stop ends the server (idempotent).
func (s *Server) Stop() {
	select {
	case <-s.done:
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.done
	}
}
