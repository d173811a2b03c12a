package firmware

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/callbox/callbox/capture"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/callbox/callbox/capture/synth"
	"github.com/callbox/callbox/peer/box"
	"github.com/callbox/callbox/peer/proto"
)

// callFlags are `callbox call`'s flags.
type callFlags struct {
	hub, data, name     string
	duration, setup     time.Duration
	json, answer        bool
	pair, who, insecure bool
	join                string
	maxDatagram         int
	width, height, fps  int
	verbose             bool
	legacy              bool
	noise               int
}

// cmdCall is `callbox call`: call a paired box through the hub and print a
// summary (path, time to first media, what was received). It also pairs
// boxes (--pair / --join) and answers calls (--answer).
func cmdCall(args []string) int {
	var f callFlags
	fs := newFlagSet("call", usageText{
		synopsis: []string{"[flags] PEER      call a paired box (ID or name)", "[flags] --answer  take one call",
			"[flags] --pair | --join CODE | --whoami"},
		about: "A box of its own on the command line (its own --data: identity and paired boxes): pairs with\n" +
			"other boxes through the hub, calls them across NAT (ICE, DTLS-SRTP) with the synthetic camera\n" +
			"and microphone, and prints the call's summary (path, times, frames).\n\n" +
			"Pairing: --pair prints a code ({\"code\"}); on the other box, --join CODE. Both then print the\n" +
			"same short confirmation ({\"sas\"}) and read a line from standard input: type the confirmation\n" +
			"the OTHER box shows; the pairing holds once both boxes confirmed.",
		examples: []string{
			"callbox call --hub wss://hub.example/v1/ws --data /tmp/a --name kitchen --pair",
			"callbox call --hub wss://hub.example/v1/ws --data /tmp/b --name attic --join 1234-567890",
			"callbox call --hub wss://hub.example/v1/ws --data /tmp/a kitchen --duration 10s --json",
		},
	})
	fs.StringVar(&f.hub, "hub", os.Getenv("CALLBOX_HUB"), "hub WebSocket URL, e.g. wss://hub.example/v1/ws (default $CALLBOX_HUB)")
	fs.StringVar(&f.data, "data", defaultDataDir(), "the box's data dir (identity key, paired peers)")
	fs.StringVar(&f.name, "name", "", "this box's name, shown to paired boxes")
	fs.DurationVar(&f.duration, "duration", 0, "hang up this long after the call connects (0: on Ctrl-C or when the peer hangs up)")
	fs.DurationVar(&f.setup, "setup-timeout", 15*time.Second, "give up if the call has not connected by then")
	fs.BoolVar(&f.json, "json", false, "print the final summary as JSON")
	fs.BoolVar(&f.answer, "answer", false, "wait for a paired box to call, take the call")
	fs.BoolVar(&f.pair, "pair", false, "get a pairing code from the hub, print it, wait for the other box to join")
	fs.StringVar(&f.join, "join", "", "pair by entering the other box's code")
	fs.BoolVar(&f.insecure, "insecure-hub", false, "allow plain ws:// to a hub that is not on this machine (network labs only)")
	fs.BoolVar(&f.who, "whoami", false, "print this box's ID and paired peers")
	fs.IntVar(&f.maxDatagram, "max-datagram", box.DefaultMaxDatagram, "largest UDP datagram a call sends (design S8)")
	fs.IntVar(&f.width, "width", 320, "synthetic camera width")
	fs.IntVar(&f.height, "height", 240, "synthetic camera height")
	fs.IntVar(&f.fps, "fps", 15, "synthetic camera frame rate")
	fs.BoolVar(&f.verbose, "v", false, "log call progress")
	fs.IntVar(&f.noise, "noise", 0, "sensor noise on the synthetic camera's raw pictures, 0..64 (the encoder then spends its bitrate as on a real room)")
	fs.BoolVar(&f.legacy, "legacy-media", false, "send RTP/JPEG and PCMU without congestion control, as boxes did before H.264 calls (comparisons, fallback tests)")
	// Flags may follow the peer's name: parse what comes after it too.
	var pos []string
	for {
		if code, ok := parseArgs(fs, args); !ok {
			return code
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	level := slog.LevelWarn
	if f.verbose {
		level = slog.LevelInfo
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := runCall(ctx, &f, pos, log); err != nil {
		fmt.Fprintf(os.Stderr, "callbox call: %v\n", err)
		if errors.Is(err, errUsage) {
			fs.Usage()
			return 2
		}
		return 1
	}
	return 0
}

var errUsage = errors.New("bad usage")

// confirmPairing shows the SAS, reads the one the other box shows from
// standard input and confirms when they are the same; the pairing holds
// once the other box's owner has confirmed too.
func confirmPairing(ctx context.Context, client *box.Client, p box.Pairing, out func(any), quiet bool) error {
	out(map[string]any{"sas": p.SAS, "peer": p.PeerID, "name": p.PeerName})
	if !quiet {
		fmt.Fprintf(os.Stderr, "The other box shows a confirmation code. Type it here (this box shows %s): ", p.SAS)
	}
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(os.Stdin).ReadString('\n')
		line <- s
	}()
	select {
	case s := <-line:
		if strings.Join(strings.Fields(s), "") != p.SAS {
			_ = client.CancelPairing(ctx)
			return fmt.Errorf("the confirmation codes differ (%q here): pairing cancelled; someone may be in the middle", p.SAS)
		}
	case <-ctx.Done():
		return ctx.Err()
	}
	if err := client.ConfirmPairing(ctx); err != nil {
		return err
	}
	peer, err := client.WaitPaired(ctx)
	if err != nil {
		return err
	}
	out(map[string]any{"paired": peer.ID, "name": peer.Name})
	return nil
}

func defaultDataDir() string {
	if d, err := os.UserConfigDir(); err == nil {
		return filepath.Join(d, "callbox")
	}
	return "callbox-data"
}

func runCall(ctx context.Context, f *callFlags, pos []string, log *slog.Logger) error {
	modes := 0
	for _, b := range []bool{f.pair, f.join != "", f.who, f.answer, len(pos) > 0} {
		if b {
			modes++
		}
	}
	if modes != 1 || len(pos) > 1 {
		return fmt.Errorf("%w: give exactly one of PEER, --answer, --pair, --join, --whoami", errUsage)
	}
	id, err := proto.LoadOrCreateIdentity(f.data)
	if err != nil {
		return err
	}
	if f.who && f.hub == "" {
		fmt.Println(id.ID)
		return nil
	}
	if f.hub == "" {
		return fmt.Errorf("%w: no hub (--hub or CALLBOX_HUB)", errUsage)
	}
	client, err := dialHub(ctx, f.hub, f.data, f.name, f.insecure, log)
	if err != nil {
		return err
	}
	defer client.Close()
	out := func(v any) {
		if f.json {
			b, _ := json.Marshal(v)
			fmt.Println(string(b))
		} else {
			fmt.Printf("%+v\n", v)
		}
	}
	switch {
	case f.who:
		out(map[string]any{"id": id.ID, "peers": client.Peers()})
		return nil
	case f.pair:
		pctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
		defer cancel()
		code, exp, err := client.RequestPairCode(pctx)
		if err != nil {
			return err
		}
		out(map[string]any{"id": id.ID, "code": code, "expires": exp.UTC().Format(time.RFC3339)})
		p, err := client.WaitPairStage(pctx, box.PairCompare)
		if err != nil {
			return err
		}
		return confirmPairing(pctx, client, p, out, f.json)
	case f.join != "":
		pctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
		defer cancel()
		p, err := client.JoinPairCode(pctx, f.join)
		if err != nil {
			return err
		}
		return confirmPairing(pctx, client, p, out, f.json)
	}

	connected := make(chan struct{}, 1)
	caller, err := box.NewCaller(box.CallerConfig{
		Client:       client,
		Media:        box.SynthMedia(synthCamera(f), synth.MicConfig{}),
		LegacyMedia:  f.legacy,
		DecodeVideo:  true, // the summary counts frames that do not decode
		MaxDatagram:  f.maxDatagram,
		SetupTimeout: f.setup,
		Log:          log,
		OnState: func(s box.State) {
			if s.Phase == box.PhaseConnected {
				select {
				case connected <- struct{}{}:
				default:
				}
			}
			if !f.json {
				fmt.Fprintf(os.Stderr, "call: %s %s\n", s.Phase, s.Path)
			}
		},
	})
	if err != nil {
		return err
	}
	defer caller.Close()

	var call *box.Call
	if f.answer {
		t := time.NewTicker(20 * time.Millisecond)
		for call == nil {
			select {
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			case <-t.C:
				call = caller.Current()
			}
		}
		t.Stop()
	} else if call, err = caller.Call(ctx, pos[0]); err != nil {
		return err
	}

	var timer <-chan time.Time
	for {
		select {
		case <-connected:
			if f.duration > 0 && timer == nil {
				timer = time.After(f.duration)
			}
			continue
		case <-timer:
			caller.HangUp()
		case <-ctx.Done():
			caller.HangUp()
		case <-call.Done():
		}
		break
	}
	<-call.Done()
	s := call.Summary()
	out(s)
	if s.FramesDecoded == 0 && s.AudioReceived == 0 {
		return fmt.Errorf("no media received from %s (path %q): %s", s.Peer, s.Path, s.Error)
	}
	return nil
}

// synthCamera is the synthetic camera of `callbox call`: raw pictures for
// the call's H.264 encoder (a JPEG-only peer gets them compressed), JPEG
// for --legacy-media.
func synthCamera(f *callFlags) synth.CameraConfig {
	c := synth.CameraConfig{Width: f.width, Height: f.height, FPS: f.fps}
	if !f.legacy {
		c.Format, c.Noise = capture.CodecI420, f.noise
	}
	return c
}
