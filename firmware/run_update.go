package firmware

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/callbox/callbox/update"
)

// The update API (docs/update.md), for paired phones only (the token as
// ?token= or "Authorization: Bearer T"):
//
//	GET  /api/update   the last update's state: {"available", "state",
//	                   "progress", "step", "message", "version", ...}
//	POST /api/update   the body is a RAUC bundle: stored on the data
//	                   partition, its signature checked, then installed into
//	                   the inactive slot; 202 at once, progress through GET;
//	                   once installed the box restarts into the new version
//
// The LED shows the updating pattern while a bundle is checked or written,
// whether the page or `callbox update` started it.

// updateOptions are `callbox run`'s update flags.
type updateOptions struct {
	updateFlags
	maxBytes   int64
	rebootCmd  string
	rebootWait time.Duration
}

func (o *updateOptions) register(fs *flag.FlagSet) {
	o.updateFlags.register(fs)
	fs.Int64Var(&o.maxBytes, "update-max-bytes", 1<<30, "the largest update bundle the page may upload")
	fs.StringVar(&o.rebootCmd, "update-reboot-command", "reboot", "the `command` that restarts the box after an update from the page (\"\": do not restart)")
	o.rebootWait = 3 * time.Second
}

// updateBoard is what the update part needs of the board.
type updateBoard interface {
	Authorize(token string) error
	dataDir() string
	setUpdating(on bool)
}

// setUpdating shows the updating pattern on the LED while on.
func (p *boardPart) setUpdating(on bool) {
	if p.box != nil {
		p.box.SetUpdating(on)
	}
}

// updatePart installs updates uploaded from the page.
type updatePart struct {
	opts  updateOptions
	log   *slog.Logger
	mux   *http.ServeMux
	board updateBoard

	u         *update.Updater
	available string // "" when updates can be installed, else why not
	uploadDir string
	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup

	mu      sync.Mutex
	running bool
}

func (p *updatePart) start(ctx context.Context) error {
	p.ctx, p.cancel = context.WithCancel(ctx)
	if p.opts.status == "" {
		p.opts.status = defaultUpdateStatus
	}
	if dir := p.board.dataDir(); p.opts.status == defaultUpdateStatus && dir != "" && dir != boxDataDir {
		p.opts.status = filepath.Join(dir, "update.json") // a simulated box keeps it with its data
	}
	p.u = p.opts.updater()
	p.uploadDir = filepath.Dir(p.opts.status)
	conf := p.opts.conf
	if conf == "" {
		conf = "/etc/rauc/system.conf"
	}
	if _, err := exec.LookPath(p.opts.rauc); err != nil {
		p.available = "this system has no RAUC (" + p.opts.rauc + " not found)"
	} else if _, err := os.Stat(conf); err != nil {
		p.available = "this system has no RAUC configuration (" + conf + ")"
	}
	p.mux.HandleFunc("GET /api/update", p.handleGet)
	p.mux.HandleFunc("POST /api/update", p.handlePost)
	p.wg.Add(1)
	go func() { defer p.wg.Done(); p.showOnLED(p.ctx) }()
	return nil
}

func (p *updatePart) stop() {
	p.cancel()
	p.wg.Wait()
}

// showOnLED follows the status file, which `callbox update` in another
// process writes too, and shows the updating pattern while it is busy.
func (p *updatePart) showOnLED(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	shown := false
	for {
		st, _ := update.ReadStatus(p.opts.status)
		busy := st.State.Busy() && time.Since(st.Time) < time.Hour
		if busy != shown {
			p.board.setUpdating(busy)
			shown = busy
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// updateAPIState is /api/update's answer.
type updateAPIState struct {
	update.Status
	// Available: this box can install updates; else Unavailable says why.
	Available   bool   `json:"available"`
	Unavailable string `json:"unavailable,omitempty"`
}

func (p *updatePart) authorized(w http.ResponseWriter, r *http.Request) bool {
	token := r.URL.Query().Get("token")
	if h := r.Header.Get("Authorization"); h != "" {
		if t, ok := strings.CutPrefix(h, "Bearer "); ok {
			token = strings.TrimSpace(t)
		}
	}
	if p.board.Authorize(token) != nil {
		w.Header().Set("WWW-Authenticate", `Bearer realm="callbox"`)
		writeBoardJSON(w, http.StatusUnauthorized, map[string]string{"error": "not paired: pair this phone with the box first"})
		return false
	}
	return true
}

func (p *updatePart) state() updateAPIState {
	st, err := update.ReadStatus(p.opts.status)
	if err != nil {
		st.Message = err.Error()
	}
	return updateAPIState{Status: st, Available: p.available == "", Unavailable: p.available}
}

func (p *updatePart) handleGet(w http.ResponseWriter, r *http.Request) {
	if !p.authorized(w, r) {
		return
	}
	writeBoardJSON(w, http.StatusOK, p.state())
}

func (p *updatePart) handlePost(w http.ResponseWriter, r *http.Request) {
	if !p.authorized(w, r) {
		return
	}
	if p.available != "" {
		writeBoardJSON(w, http.StatusServiceUnavailable, map[string]string{"error": p.available})
		return
	}
	p.mu.Lock()
	if p.running {
		p.mu.Unlock()
		writeBoardJSON(w, http.StatusConflict, map[string]string{"error": update.ErrBusy.Error()})
		return
	}
	p.running = true
	p.mu.Unlock()
	started := false
	defer func() {
		if !started {
			p.mu.Lock()
			p.running = false
			p.mu.Unlock()
		}
	}()

	if r.ContentLength > p.opts.maxBytes {
		writeBoardJSON(w, http.StatusRequestEntityTooLarge, map[string]string{"error": fmt.Sprintf("bundle larger than %d bytes", p.opts.maxBytes)})
		return
	}
	if err := os.MkdirAll(p.uploadDir, 0o700); err != nil {
		writeBoardJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
		return
	}
	f, err := os.CreateTemp(p.uploadDir, ".upload-*.raucb")
	if err != nil {
		writeBoardJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
		return
	}
	bundle := f.Name()
	n, err := io.Copy(f, http.MaxBytesReader(w, r.Body, p.opts.maxBytes))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil || n == 0 {
		os.Remove(bundle)
		code := http.StatusBadRequest
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			code = http.StatusRequestEntityTooLarge
		}
		if err == nil {
			err = errors.New("empty upload: the body must be the bundle")
		}
		writeBoardJSON(w, code, map[string]string{"error": "upload: " + err.Error()})
		return
	}
	started = true
	p.wg.Add(1)
	go func() { defer p.wg.Done(); p.install(bundle) }()
	writeBoardJSON(w, http.StatusAccepted, updateAPIState{Status: update.Status{State: update.Checking, Step: "checking the signature"}, Available: true})
}

// install runs in the background after an upload.
func (p *updatePart) install(bundle string) {
	defer func() {
		os.Remove(bundle)
		p.mu.Lock()
		p.running = false
		p.mu.Unlock()
	}()
	st, err := p.u.Install(p.ctx, bundle)
	if err != nil {
		p.log.Warn("update from the page", "state", st.State, "err", err)
		return
	}
	p.log.Info("update installed", "version", st.Version, "slot", st.To)
	if p.opts.rebootCmd == "" {
		return
	}
	// Long enough for the page to see "installed" before the box goes.
	select {
	case <-p.ctx.Done():
		return
	case <-time.After(p.opts.rebootWait):
	}
	if out, err := exec.Command(p.opts.rebootCmd).CombinedOutput(); err != nil {
		p.log.Error("update: restart", "cmd", p.opts.rebootCmd, "err", err, "out", string(out))
	}
}
