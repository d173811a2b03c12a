package natlab

import (
	"os"
	"path/filepath"
	"testing"
)

// TestMain removes the callbox binary the lab built, once every test is done.
func TestMain(m *testing.M) {
	code := m.Run()
	if buildBin != "" {
		os.RemoveAll(filepath.Dir(buildBin))
	}
	os.Exit(code)
}
