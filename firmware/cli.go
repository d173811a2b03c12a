// Package firmware wires callbox's packages into the one program a box runs:
// the subcommands, the appliance's start order, the HTTP server and the phone
// page it serves.
package firmware

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
)

// command is one subcommand: run gets the arguments after its name and
// returns the process exit code.
type command struct {
	summary string
	run     func(args []string) int
}

// commands lists the subcommands. Each lives in its own file (cmd_*.go).
func commands() map[string]command {
	return map[string]command{
		"call":    {"call a paired box across NAT through the hub (also pairs boxes)", cmdCall},
		"hub":     {"run the public hub: pairing, signalling, STUN and TURN relay", cmdHub},
		"run":     {"run the appliance: capture, relay, page, board", cmdRun},
		"update":  {"install a signed update bundle (RAUC), and settle the trial boot after it", cmdUpdate},
		"send":    {"send synthetic (or camera) media as RTP over UDP, with an SDP for ffplay/VLC/GStreamer", cmdSend},
		"version": {"print the version", cmdVersion},
		"view":    {"receive a box's video and audio from its relay; print stats", cmdView},
	}
}

// Version is set at link time (-ldflags -X).
var Version = "dev"

// Main runs the subcommand named by args[0].
func Main(args []string) int {
	cmds := commands()
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(os.Stdout, cmds)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	c, ok := cmds[args[0]]
	if !ok {
		fmt.Fprintf(os.Stderr, "callbox: unknown command %q\n", args[0])
		usage(os.Stderr, cmds)
		return 2
	}
	return c.run(args[1:])
}

func usage(w io.Writer, cmds map[string]command) {
	fmt.Fprintln(w, "usage: callbox <command> [flags]\n\ncommands:")
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-8s %s\n", n, cmds[n].summary)
	}
	fmt.Fprintln(w, "\nRun 'callbox <command> -h' for a command's flags.")
}

func cmdVersion(args []string) int {
	fs := newFlagSet("version", usageText{synopsis: []string{""}, about: "Prints the version (git describe at build time).",
		examples: []string{"callbox version"}})
	if code, ok := parseArgs(fs, args); !ok {
		return code
	}
	fmt.Println("callbox", Version)
	return 0
}

// usageText is a subcommand's -h: its synopsis, what it does, examples.
type usageText struct {
	synopsis []string // after "callbox NAME "
	about    string
	examples []string
}

// newFlagSet returns the FlagSet of subcommand name; parseArgs prints u
// and the flags for -h.
func newFlagSet(name string, u usageText) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.Usage = func() { printUsage(fs.Output(), fs, u) }
	return fs
}

func printUsage(w io.Writer, fs *flag.FlagSet, u usageText) {
	for i, s := range u.synopsis {
		lead := "usage: "
		if i > 0 {
			lead = "       "
		}
		fmt.Fprintf(w, "%scallbox %s %s\n", lead, fs.Name(), s)
	}
	if u.about != "" {
		fmt.Fprintf(w, "\n%s\n", u.about)
	}
	if len(u.examples) > 0 {
		fmt.Fprintln(w, "\nexamples:")
		for _, e := range u.examples {
			fmt.Fprintf(w, "  %s\n", e)
		}
	}
	fmt.Fprintln(w, "\nflags:")
	out := fs.Output()
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(out)
}

// parseArgs parses a subcommand's flags. -h and --help print the usage on
// stdout and end the command with status 0; a bad flag prints the error
// and the usage on stderr, status 2. ok is false when the command must end
// with code.
func parseArgs(fs *flag.FlagSet, args []string) (code int, ok bool) {
	usage := fs.Usage
	fs.Usage = func() {} // printed below, on the right stream
	err := fs.Parse(args)
	fs.Usage = usage
	switch {
	case err == nil:
		return 0, true
	case errors.Is(err, flag.ErrHelp):
		out := fs.Output()
		fs.SetOutput(os.Stdout)
		fs.Usage()
		fs.SetOutput(out)
		return 0, false
	}
	fs.Usage()
	return 2, false
}
