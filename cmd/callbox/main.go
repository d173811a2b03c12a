// Command callbox is the video chat appliance's firmware: one binary whose
// subcommands are the appliance (run), its tools (send, view, call) and the
// public rendezvous server (hub). See firmware.Main.
package main

import (
	"os"

	"github.com/callbox/callbox/firmware"
)

func main() { os.Exit(firmware.Main(os.Args[1:])) }
