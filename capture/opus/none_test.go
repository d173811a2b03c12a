//go:build !cgo || noopus

package opus

import (
	"errors"
	"testing"

	"github.com/callbox/callbox/capture"
)

// TestNoOpusBuild: a build without libopus says so instead of sending
// anything.
func TestNoOpusBuild(t *testing.T) {
	if Available {
		t.Fatal("Available in a build without libopus")
	}
	if _, err := NewPacketizer(0, 1, PayloadType); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("NewPacketizer: %v", err)
	}
	var p Packetizer
	if _, err := p.Packetize(capture.AudioChunk{Samples: make([]int16, 960), Rate: 48000}); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Packetize: %v", err)
	}
}
