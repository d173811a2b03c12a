// Package store keeps the box's persistent state (paired phones, settings
// changed with the buttons) in one small JSON file in the data directory.
//
// Every write is atomic and durable: the new contents go to a temporary file
// in the same directory, which is fsynced, renamed over the old file, and the
// directory is fsynced so the rename itself survives a power cut. A reader
// therefore always sees either the old state or the new one, never a torn
// mix; the crash test in this package kills a writer with SIGKILL hundreds of
// times to hold that promise.
package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// FileName is the state file inside the data directory.
const FileName = "state.json"

// MaxFileSize bounds what Load reads: even a thousand paired phones fit in a
// tenth of it.
const MaxFileSize = 1 << 20

// currentVersion is written into every file, so a later firmware can tell
// old layouts apart.
const currentVersion = 1

// ErrCorrupt marks a state file that exists but cannot be used.
var ErrCorrupt = errors.New("state file corrupt")

// State is everything the box remembers across restarts.
type State struct {
	Version int     `json:"version"`
	Muted   bool    `json:"muted"`
	Tokens  []Token `json:"tokens"`
}

// Token is one paired phone. Only the token's SHA-256 is kept, so a copy of
// the SD card does not hand out working tokens.
type Token struct {
	Hash   string    `json:"hash"` // hex SHA-256 of the token
	Name   string    `json:"name,omitempty"`
	Paired time.Time `json:"paired"`
}

// Store reads and writes the state file of one data directory.
type Store struct {
	dir string
	mu  sync.Mutex // one writer at a time: temp names and rename order
}

// Open prepares dir (creating it, mode 0700: it holds credentials) and
// removes temporary files a crash may have left behind.
func Open(dir string) (*Store, error) {
	if dir == "" {
		return nil, errors.New("store: empty data directory")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	leftovers, _ := filepath.Glob(filepath.Join(dir, "."+FileName+".tmp*"))
	for _, p := range leftovers {
		os.Remove(p)
	}
	return &Store{dir: dir}, nil
}

// Dir is the data directory.
func (s *Store) Dir() string { return s.dir }

// Path is the state file's path.
func (s *Store) Path() string { return filepath.Join(s.dir, FileName) }

// Load reads the state. A missing file is the empty state (a new or reset
// box); an unreadable or invalid one returns the empty state and an error
// wrapping ErrCorrupt.
func (s *Store) Load() (State, error) {
	f, err := os.Open(s.Path())
	if errors.Is(err, os.ErrNotExist) {
		return State{Version: currentVersion}, nil
	}
	if err != nil {
		return State{Version: currentVersion}, fmt.Errorf("store: %w", err)
	}
	defer f.Close()
	buf := make([]byte, MaxFileSize+1)
	n, err := readFull(f, buf)
	if err != nil {
		return State{Version: currentVersion}, fmt.Errorf("store: %w", err)
	}
	if n > MaxFileSize {
		return State{Version: currentVersion}, fmt.Errorf("store: %w: larger than %d bytes", ErrCorrupt, MaxFileSize)
	}
	st, err := Parse(buf[:n])
	if err != nil {
		return State{Version: currentVersion}, fmt.Errorf("store %s: %w", s.Path(), err)
	}
	return st, nil
}

func readFull(f *os.File, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := f.Read(buf[n:])
		n += m
		if err != nil {
			if errors.Is(err, os.ErrClosed) {
				return n, err
			}
			return n, nil // io.EOF or a short read at the end
		}
	}
	return n, nil
}

// Parse decodes and validates a state file's contents.
func Parse(data []byte) (State, error) {
	var st State
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&st); err != nil {
		return State{}, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	if dec.More() {
		return State{}, fmt.Errorf("%w: data after the JSON object", ErrCorrupt)
	}
	if st.Version < 1 || st.Version > currentVersion {
		return State{}, fmt.Errorf("%w: version %d not understood", ErrCorrupt, st.Version)
	}
	for i, t := range st.Tokens {
		if len(t.Hash) != 64 || strings.Trim(t.Hash, "0123456789abcdef") != "" {
			return State{}, fmt.Errorf("%w: token %d: hash is not 64 hex digits", ErrCorrupt, i)
		}
	}
	return st, nil
}

// Save replaces the state atomically and durably.
func (s *Store) Save(st State) error {
	st.Version = currentVersion
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return WriteFileAtomic(s.Path(), append(data, '\n'), 0o600)
}

// WriteFileAtomic replaces path with data so that after a crash at any point
// path holds either its old contents or data, in full.
func WriteFileAtomic(path string, data []byte, perm os.FileMode) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+".tmp*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := tmp.Chmod(perm); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	// Without this fsync the rename could reach the disk before the data,
	// leaving an empty file after a power cut.
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("write %s: fsync: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	// The rename is a change to the directory: sync it, or the old name may
	// come back after a power cut.
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("write %s: open dir: %w", path, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("write %s: fsync dir: %w", path, err)
	}
	return nil
}
