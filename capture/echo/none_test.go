//go:build !cgo || nospeex

package echo

import (
	"errors"
	"strings"
	"testing"
)

// A build without speexdsp says so; it never pretends to cancel.
func TestNoSpeexBuild(t *testing.T) {
	c, err := New(Config{})
	if c != nil || !errors.Is(err, ErrNoCgo) || !strings.Contains(err.Error(), "echo cancellation needs cgo") {
		t.Fatalf("New = %v, %v; want ErrNoCgo", c, err)
	}
	if Available {
		t.Fatal("Available in a build without speexdsp")
	}
}
