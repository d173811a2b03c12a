//go:build !cgo

package mic_test

import (
	"errors"
	"testing"

	"github.com/callbox/callbox/drivers/mic"
)

func TestNoCgoMeansNoMicrophone(t *testing.T) {
	if mic.Available {
		t.Fatal("Available without cgo")
	}
	if _, err := mic.Open(mic.Config{}); !errors.Is(err, mic.ErrNoCgo) {
		t.Fatalf("Open without cgo: %v", err)
	}
}
