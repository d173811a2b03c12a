// Package layers writes down which of callbox's packages may import which,
// and its test enforces it (tailscale's tstest/deptest is the model). The
// picture is in docs/architecture.md.
//
// From the bottom up:
//
//	capture, capture/*         media types, RTP payload formats, synthetic sources
//	drivers/*                  hardware: V4L2 camera, ALSA microphone, GPIO
//	internal/netmon, ...       small helpers with no callbox dependency
//	media                      the media pipeline (sources, packetizers, tap)
//	relay, relay/*             the on-device relay and its client
//	board, board/*             LED, buttons, pairing, configuration, state
//	peer/proto < peer/hub, peer/box   signalling; the hub server; the box side
//	firmware                   the program: subcommands and the appliance's wiring
//	cmd/callbox                main
//
// A package may import what is below it, never what is above or beside it
// unless a rule here allows it.
package layers

import (
	"fmt"
	"path"
	"sort"
	"strings"
)

// Module is callbox's module path.
const Module = "github.com/callbox/callbox"

// Rule forbids packages matching From (a module-relative path; "x/..."
// also matches x's subpackages) to depend, directly or not, on packages
// matching any of Not.
type Rule struct {
	From string
	Not  []string
	Why  string
}

// Rules are callbox's layers.
var Rules = []Rule{
	{"capture/...", []string{"drivers/...", "media/...", "relay/...", "peer/...", "board/...", "firmware/...", "outputs/..."},
		"the media types and payload formats are the bottom layer: everything builds on them"},
	{"drivers/...", []string{"media/...", "relay/...", "peer/...", "board/...", "firmware/...", "outputs/..."},
		"drivers talk to hardware and yield capture types; they know nothing of what the box does with them"},
	{"internal/netmon", []string{"..."}, "a leaf: the board and the calls both use it"},
	{"media/...", []string{"relay/...", "peer/...", "board/...", "firmware/...", "outputs/..."},
		"the pipeline publishes to a sink it is given; the relay, calls and board are its users"},
	{"relay/...", []string{"drivers/...", "media/...", "peer/...", "board/...", "firmware/...", "outputs/..."},
		"the relay fans out whatever is published to it"},
	{"board/...", []string{"relay/...", "media/...", "peer/...", "firmware/...", "drivers/camera/...", "drivers/mic/...", "drivers/speaker/...", "outputs/..."},
		"the board decides (pairing, faults, configuration); firmware connects it to the rest"},
	{"peer/proto/...", []string{"peer/hub/...", "peer/box/...", "relay/...", "media/...", "board/...", "firmware/..."},
		"the protocol is shared by the hub and the box"},
	{"peer/hub/...", []string{"peer/box/...", "media/...", "drivers/...", "board/...", "firmware/..."},
		"the hub is a server of its own; it never runs box code"},
	{"peer/box/...", []string{"peer/hub/...", "media/...", "drivers/...", "board/...", "firmware/..."},
		"the box side of calls gets its media from a factory, its network from a monitor"},
	{"outputs/...", []string{"media/...", "drivers/...", "peer/...", "board/...", "firmware/..."},
		"outputs read the relay"},
	{"integrations/...", []string{"media/...", "drivers/...", "relay/...", "peer/...", "board/...", "firmware/...", "outputs/..."},
		"integrations talk to other systems about what the firmware hands them"},
	{"update/...", []string{"media/...", "drivers/...", "relay/...", "peer/...", "board/...", "firmware/...", "outputs/...", "integrations/..."},
		"the updater stands alone: it must work when the rest of the box does not"},
}

// Package is one package and everything it depends on.
type Package struct {
	Path string   // module-relative
	Deps []string // module-relative, transitive
}

// Violation is one forbidden dependency.
type Violation struct {
	Rule Rule
	Pkg  string
	Dep  string
}

func (v Violation) String() string {
	return fmt.Sprintf("%s depends on %s, which %s must not (%s)", v.Pkg, v.Dep, v.Rule.From, v.Rule.Why)
}

// Match reports whether the module-relative pkg matches pattern ("x",
// "x/..." for x and below, "..." for every callbox package).
func Match(pattern, pkg string) bool {
	if pattern == "..." {
		return true
	}
	if base, ok := strings.CutSuffix(pattern, "/..."); ok {
		return pkg == base || strings.HasPrefix(pkg, base+"/")
	}
	return pkg == pattern
}

// Check lists the violations of rules in pkgs, sorted. Tests of a package,
// test helper packages (paths ending in "test") and load generators
// (ending in "bench": relaybench, hubbench play the other side) are not
// checked: they may reach across layers to exercise what they test.
func Check(rules []Rule, pkgs []Package) []Violation {
	var out []Violation
	for _, p := range pkgs {
		if base := path.Base(p.Path); strings.HasSuffix(base, "test") || strings.HasSuffix(base, "bench") || strings.HasPrefix(p.Path, "test/") {
			continue
		}
		for _, r := range rules {
			if !Match(r.From, p.Path) {
				continue
			}
			for _, d := range p.Deps {
				if Match(r.From, d) {
					continue // within its own layer
				}
				for _, not := range r.Not {
					if Match(not, d) {
						out = append(out, Violation{r, p.Path, d})
						break
					}
				}
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}
