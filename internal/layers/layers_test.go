package layers

import (
	"bytes"
	"encoding/json"
	"io"
	"os/exec"
	"strings"
	"testing"
)

// modulePackages lists callbox's packages and their callbox dependencies
// (transitive), as `go list -deps` sees them.
func modulePackages(t *testing.T) []Package {
	t.Helper()
	cmd := exec.Command("go", "list", "-e", "-json=ImportPath,Deps", Module+"/...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	var pkgs []Package
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p struct {
			ImportPath string
			Deps       []string
		}
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		rel, ok := strings.CutPrefix(p.ImportPath, Module+"/")
		if !ok {
			continue
		}
		pk := Package{Path: rel}
		for _, d := range p.Deps {
			if r, ok := strings.CutPrefix(d, Module+"/"); ok {
				pk.Deps = append(pk.Deps, r)
			}
		}
		pkgs = append(pkgs, pk)
	}
	return pkgs
}

// TestLayers: no package depends on a layer it must not (layers.go). A
// failure names the package, the dependency and the reason.
func TestLayers(t *testing.T) {
	pkgs := modulePackages(t)
	if len(pkgs) < 20 {
		t.Fatalf("go list found only %d packages", len(pkgs))
	}
	for _, v := range Check(Rules, pkgs) {
		t.Error(v)
	}
	// Every rule's From names packages that exist (a rule about a renamed
	// package would silently check nothing).
	for _, r := range Rules {
		found := false
		for _, p := range pkgs {
			found = found || Match(r.From, p.Path)
		}
		if !found {
			t.Errorf("rule for %s matches no package", r.From)
		}
	}
}

// The checker finds a forbidden dependency, direct or not, and lets a
// layer use itself and a test helper reach across.
func TestCheckFindsViolations(t *testing.T) {
	pkgs := []Package{
		{"drivers/camera", []string{"capture", "relay/wire"}},       // forbidden, through wire
		{"board", []string{"board/config", "capture"}},              // fine
		{"board/config", []string{"relay"}},                         // forbidden
		{"drivers/camera/cameratest", []string{"firmware"}},         // a test helper: not checked
		{"internal/netmon", []string{"capture"}},                    // a leaf must stay one
		{"peer/box", []string{"peer/proto", "relay", "peer/box/x"}}, // fine
	}
	var got []string
	for _, v := range Check(Rules, pkgs) {
		got = append(got, v.Pkg+" -> "+v.Dep)
	}
	want := "board/config -> relay, drivers/camera -> relay/wire, internal/netmon -> capture"
	if strings.Join(got, ", ") != want {
		t.Fatalf("violations %q, want %q", strings.Join(got, ", "), want)
	}
}
