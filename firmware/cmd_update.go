package firmware

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"time"

	"github.com/callbox/callbox/update"
)

// Where the box keeps the update's state (on the data partition, beside
// the paired phones) and what the confirmation watches.
const (
	defaultUpdateStatus   = boxDataDir + "/update.json"
	defaultHealthURL      = "http://127.0.0.1:8080/"
	defaultWatchdogPID    = "/var/run/watchdog.pid"
	defaultConfirmAfter   = 120 * time.Second
	defaultConfirmPolling = 2 * time.Second
)

// updateFlags are the flags `callbox update` and `callbox run` share.
type updateFlags struct {
	rauc, conf, keyring, status string
}

func (f *updateFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.rauc, "rauc", "rauc", "the rauc `command`")
	fs.StringVar(&f.conf, "rauc-conf", "", "RAUC's system.conf (default: rauc's own, /etc/rauc/system.conf)")
	fs.StringVar(&f.keyring, "keyring", "", "certificate `file` bundles must be signed with (default: system.conf's keyring)")
	fs.StringVar(&f.status, "update-status", defaultUpdateStatus, "the update status `file`")
}

func (f *updateFlags) updater() *update.Updater {
	return &update.Updater{Rauc: f.rauc, Conf: f.conf, Keyring: f.keyring, StatusPath: f.status}
}

func cmdUpdate(args []string) int {
	fs := newFlagSet("update", usageText{
		synopsis: []string{"--bundle FILE [--no-reboot]   install a signed update bundle",
			"--status                       print the last update's state (JSON)",
			"--confirm                      settle a trial boot (run at boot by S99callbox-update)",
			"--grow-data DEVICE             grow the data partition to fill the card (S01callbox-grow)"},
		examples: []string{
			"callbox update --bundle /tmp/callbox-rpi4.raucb",
			"callbox update --status",
		},
	})
	var uf updateFlags
	uf.register(fs)
	bundle := fs.String("bundle", "", "install the RAUC bundle `file` (its signature is checked before anything is written)")
	noReboot := fs.Bool("no-reboot", false, "after installing, do not restart into the new version")
	rebootCmd := fs.String("reboot-command", "reboot", "the `command` that restarts the box after an install")
	status := fs.Bool("status", false, "print the update status")
	confirm := fs.Bool("confirm", false, "at boot: mark a new version good once it has worked for --confirm-after, or record that it failed")
	after := fs.Duration("confirm-after", defaultConfirmAfter, "how long the page must answer and the watchdog run before a new version is kept")
	healthURL := fs.String("health-url", defaultHealthURL, "the page --confirm waits for")
	watchdogPID := fs.String("watchdog-pidfile", defaultWatchdogPID, "the watchdog daemon's pid `file` (\"\": do not require a watchdog)")
	grow := fs.String("grow-data", "", "grow the data partition `device` to the end of the card, and its file system (first boot)")
	tryboot := fs.Bool("tryboot-reboot", false, "restart now into the trial slot (Raspberry Pi firmware tryboot; used by the shutdown hook)")
	if code, ok := parseArgs(fs, args); !ok {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "callbox update: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	u := uf.updater()

	switch {
	case *grow != "":
		msg, err := update.GrowData(*grow)
		if msg != "" {
			fmt.Printf("callbox update: %s\n", msg)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "callbox update: %v\n", err)
			return 1
		}
		return 0
	case *tryboot:
		err := update.TrybootReboot()
		fmt.Fprintf(os.Stderr, "callbox update: tryboot reboot: %v\n", err)
		return 1
	case *status:
		st, err := update.ReadStatus(uf.status)
		if err != nil {
			fmt.Fprintf(os.Stderr, "callbox update: %v\n", err)
			return 1
		}
		b, _ := json.MarshalIndent(st, "", "  ")
		fmt.Println(string(b))
		return 0
	case *confirm:
		health := update.PageAnswers(*healthURL)
		if *watchdogPID != "" {
			health = update.All(health, update.ProcessRuns(*watchdogPID))
		}
		st, err := u.Confirm(ctx, *after, defaultConfirmPolling, health)
		if err != nil {
			fmt.Fprintf(os.Stderr, "callbox update: confirm: %v (state %s)\n", err, st.State)
			return 1
		}
		fmt.Printf("callbox update: %s: %s\n", st.State, st.Message)
		return 0
	case *bundle != "":
		last := -1
		u.OnStatus = func(st update.Status) {
			if st.State == update.Installing && st.Progress != last {
				last = st.Progress
				fmt.Printf("%3d%% %s\n", st.Progress, st.Step)
			}
		}
		st, err := u.Install(ctx, *bundle)
		if err != nil {
			fmt.Fprintf(os.Stderr, "callbox update: %s: %v\n", st.State, err)
			if errors.Is(err, update.ErrRefused) {
				return 3
			}
			return 1
		}
		fmt.Printf("callbox update: %s\n", st.Message)
		if *noReboot {
			fmt.Println("callbox update: restart the box to try the new version")
			return 0
		}
		fmt.Println("callbox update: restarting")
		if out, err := exec.Command(*rebootCmd).CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "callbox update: %s: %v %s\n", *rebootCmd, err, out)
			return 1
		}
		return 0
	}
	fs.Usage()
	return 2
}
