package proto

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Identity is a box's persistent ed25519 key pair.
type Identity struct {
	Priv ed25519.PrivateKey
	Pub  ed25519.PublicKey
	ID   string // BoxID(Pub)
}

// idEncoding is lower-case base32 without padding: IDs are typed by people
// now and then, and must be safe in file names and URLs.
var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// BoxID derives a box's ID from its public key: 80 bits of SHA-256, 16
// characters. Binding the ID to the key means a registration for an ID can
// only be signed by the one key that hashes to it.
func BoxID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return idEncoding.EncodeToString(sum[:10])
}

// ValidBoxID reports whether s has the form BoxID produces.
func ValidBoxID(s string) bool {
	if len(s) != 16 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= '2' && c <= '7') {
			return false
		}
	}
	return true
}

// NewIdentity makes a fresh identity.
func NewIdentity() (*Identity, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("peer: generate key: %w", err)
	}
	return &Identity{Priv: priv, Pub: pub, ID: BoxID(pub)}, nil
}

const keyPEMType = "CALLBOX ED25519 SEED"

// KeyFileName is the identity key's file name inside a box's data dir.
const KeyFileName = "identity.key"

// LoadOrCreateIdentity reads the key file dir/identity.key, creating it
// (mode 0600) on first use, so a box keeps its identity across reboots.
func LoadOrCreateIdentity(dir string) (*Identity, error) {
	path := filepath.Join(dir, KeyFileName)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		id, err := NewIdentity()
		if err != nil {
			return nil, err
		}
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("peer: data dir: %w", err)
		}
		data := pem.EncodeToMemory(&pem.Block{Type: keyPEMType, Bytes: id.Priv.Seed()})
		// O_EXCL: two processes starting at once must not end up with
		// different identities for the same box.
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			if errors.Is(err, fs.ErrExist) {
				return LoadOrCreateIdentity(dir)
			}
			return nil, fmt.Errorf("peer: create key file: %w", err)
		}
		if _, err := f.Write(data); err != nil {
			f.Close()
			return nil, fmt.Errorf("peer: write key file: %w", err)
		}
		if err := f.Close(); err != nil {
			return nil, fmt.Errorf("peer: write key file: %w", err)
		}
		return id, nil
	}
	if err != nil {
		return nil, fmt.Errorf("peer: read key file: %w", err)
	}
	return ParseIdentity(b)
}

// ParseIdentity decodes a key file's contents.
func ParseIdentity(b []byte) (*Identity, error) {
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != keyPEMType {
		return nil, fmt.Errorf("%w: no %q PEM block", ErrKeyFile, keyPEMType)
	}
	if len(blk.Bytes) != ed25519.SeedSize {
		return nil, fmt.Errorf("%w: seed is %d bytes, want %d", ErrKeyFile, len(blk.Bytes), ed25519.SeedSize)
	}
	priv := ed25519.NewKeyFromSeed(blk.Bytes)
	pub := priv.Public().(ed25519.PublicKey)
	return &Identity{Priv: priv, Pub: pub, ID: BoxID(pub)}, nil
}

// String is the box ID; the key never appears in logs.
func (id *Identity) String() string { return id.ID }

// Sign signs the concatenation of parts, each followed by a newline, after a
// domain-separating context string, so that a signature made for one
// message type can never be passed off as another.
func (id *Identity) Sign(context string, parts ...string) []byte {
	return ed25519.Sign(id.Priv, signedBytes(context, parts...))
}

// Verify checks a signature made by Sign.
func Verify(pub ed25519.PublicKey, sig []byte, context string, parts ...string) bool {
	if len(pub) != ed25519.PublicKeySize || len(sig) != ed25519.SignatureSize {
		return false
	}
	return ed25519.Verify(pub, signedBytes(context, parts...), sig)
}

func signedBytes(context string, parts ...string) []byte {
	var b strings.Builder
	b.WriteString(context)
	b.WriteByte('\n')
	for _, p := range parts {
		// Length-prefix each part: a newline inside a field (an SDP has
		// many) cannot shift bytes from one field to the next.
		fmt.Fprintf(&b, "%d:", len(p))
		b.WriteString(p)
		b.WriteByte('\n')
	}
	return []byte(b.String())
}
