package update

import (
	"context"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// PageAnswers is a Health that holds while GET url answers 200 within 3 s.
func PageAnswers(url string) Health {
	client := &http.Client{Timeout: 3 * time.Second}
	return func(ctx context.Context) bool {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return false
		}
		resp, err := client.Do(req)
		if err != nil {
			return false
		}
		io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}
}

// ProcessRuns is a Health that holds while the process whose pid is in
// pidfile runs (the watchdog daemon: while it runs, it feeds the hardware
// watchdog only as long as its health check passes).
func ProcessRuns(pidfile string) Health {
	return func(context.Context) bool {
		b, err := os.ReadFile(pidfile)
		if err != nil {
			return false
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 0 {
			return false
		}
		return syscall.Kill(pid, 0) == nil
	}
}

// All holds while every h holds.
func All(hs ...Health) Health {
	return func(ctx context.Context) bool {
		for _, h := range hs {
			if !h(ctx) {
				return false
			}
		}
		return true
	}
}
