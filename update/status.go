package update

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// State is where an update is.
type State string

const (
	Idle       State = "idle"       // no update was ever started
	Checking   State = "checking"   // verifying the bundle's signature
	Installing State = "installing" // rauc writes the inactive slot
	Installed  State = "installed"  // written; the next boot tries it
	Trying     State = "trying"     // running the new slot, not yet confirmed
	Good       State = "good"       // the new slot is confirmed and committed
	Failed     State = "failed"     // the install failed, or the new slot did not come up
	Refused    State = "refused"    // the bundle was rejected before anything was written
)

// Busy reports whether an update is under way in this boot (the LED shows
// the updating pattern, and a second update is refused).
func (s State) Busy() bool { return s == Checking || s == Installing }

// Status is the update's state, kept in the status file.
type Status struct {
	State    State     `json:"state"`
	Progress int       `json:"progress"`          // percent, while installing
	Step     string    `json:"step,omitempty"`    // rauc's current step
	Message  string    `json:"message,omitempty"` // for people: what happened
	Version  string    `json:"version,omitempty"` // the bundle's version
	From     string    `json:"from,omitempty"`    // the slot (bootname) the install ran on
	To       string    `json:"to,omitempty"`      // the slot it wrote
	Time     time.Time `json:"time"`              // when State was entered
}

// ReadStatus reads the status file; a missing file is Idle.
func ReadStatus(path string) (Status, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return Status{State: Idle}, nil
	}
	if err != nil {
		return Status{State: Idle}, err
	}
	var st Status
	if err := json.Unmarshal(b, &st); err != nil {
		return Status{State: Idle}, fmt.Errorf("update status %s: %w", path, err)
	}
	if st.State == "" {
		st.State = Idle
	}
	return st, nil
}

// WriteStatus replaces the status file atomically (a temporary file,
// synced, renamed): a power cut leaves the old state or the new one.
func WriteStatus(path string, st Status) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".update-*.json")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return err
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
