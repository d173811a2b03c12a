// Command hilmic runs in the HIL VM. With -gen it writes a raw S16LE mono
// tone for aplay to play into the ALSA loopback; otherwise it records
// through the real drivers/mic (PortAudio, cgo) and checks that what it
// hears has the tone's frequency and level.
package main

import (
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/callbox/callbox/capture"
	"github.com/callbox/callbox/drivers/mic"
	"github.com/callbox/callbox/drivers/mic/mictest"
)

func main() {
	gen := flag.String("gen", "", "write a raw tone file here and exit")
	device := flag.String("device", "hw:0,0", "PortAudio input device (name or part of it)")
	rate := flag.Int("rate", 48000, "sample rate")
	freq := flag.Float64("freq", 1000, "tone frequency, Hz")
	amp := flag.Float64("amp", 8000, "tone amplitude (peak)")
	secs := flag.Float64("secs", 1, "seconds to generate or record")
	replug := flag.Bool("replug", false, "unbind and rebind snd-aloop's platform device while recording (an unplug)")
	flag.Parse()
	if *replug {
		if err := replugTest(*device, *rate); err != nil {
			fmt.Println("MIC REPLUG FAIL:", err)
			os.Exit(1)
		}
		return
	}
	if *gen != "" {
		if err := writeTone(*gen, *rate, *freq, *amp, *secs); err != nil {
			fmt.Println("hilmic:", err)
			os.Exit(1)
		}
		return
	}
	if err := record(*device, *rate, *freq, *amp, *secs); err != nil {
		fmt.Println("AUDIO FAIL:", err)
		os.Exit(1)
	}
}

func writeTone(path string, rate int, freq, amp, secs float64) error {
	n := int(float64(rate) * secs)
	b := make([]byte, 2*n)
	for i := 0; i < n; i++ {
		v := int16(math.Round(amp * math.Sin(2*math.Pi*freq*float64(i)/float64(rate))))
		binary.LittleEndian.PutUint16(b[2*i:], uint16(v))
	}
	return os.WriteFile(path, b, 0o644)
}

func record(device string, rate int, freq, amp, secs float64) error {
	fmt.Println("portaudio:", mic.Version())
	devs, err := mic.Devices()
	fmt.Printf("inputs: %q %v\n", devs, err)
	m, err := mic.Open(mic.Config{Device: device, Rate: rate})
	if err != nil {
		return err
	}
	defer m.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Skip the first 200 ms: the stream may start before the player.
	var all []int16
	chunks := int(secs*50) + 10
	for i := 0; i < chunks; i++ {
		c, err := m.ReadChunk(ctx)
		if err != nil {
			return fmt.Errorf("chunk %d: %w", i, err)
		}
		if len(c.Samples) != rate/50 {
			return fmt.Errorf("chunk %d has %d samples, want %d", i, len(c.Samples), rate/50)
		}
		if i >= 10 {
			all = append(all, c.Samples...)
		}
	}
	f, rms := mictest.Analyze(all, rate)
	want := amp / math.Sqrt2
	fmt.Printf("recorded %d samples: %.1f Hz, rms %.0f (want %.0f Hz, rms %.0f), glitches %d\n", len(all), f, rms, freq, want, m.Glitches())
	if math.Abs(f-freq) > freq*0.01 {
		return fmt.Errorf("frequency %.1f Hz, played %.0f Hz", f, freq)
	}
	if math.Abs(rms-want) > want*0.1 {
		return fmt.Errorf("level rms %.0f, played rms %.0f", rms, want)
	}
	fmt.Printf("AUDIO PASS: %.1f Hz rms %.0f via %s\n", f, rms, device)
	return nil
}

// replugTest yanks the loopback sound card from under an open capture
// stream (unbinding its platform device, as a USB unplug does), checks that
// the driver reports capture.ErrDeviceGone instead of hanging, and that
// chunks flow again after the card is bound back.
func replugTest(device string, rate int) error {
	devs, _ := filepath.Glob("/sys/bus/platform/drivers/snd_aloop/snd_aloop*")
	if len(devs) != 1 {
		return fmt.Errorf("snd_aloop platform device: found %q", devs)
	}
	m, err := mic.Open(mic.Config{Device: device, Rate: rate})
	if err != nil {
		return err
	}
	defer m.Close()
	// Every read runs under a watchdog: a driver that blocks forever on a
	// vanished card is the failure this test exists to catch.
	read := func() error {
		errc := make(chan error, 1)
		go func() { _, err := m.ReadChunk(context.Background()); errc <- err }()
		select {
		case err := <-errc:
			return err
		case <-time.After(10 * time.Second):
			fmt.Println("MIC REPLUG FAIL: ReadChunk blocked for 10 s")
			os.Exit(1)
			return nil
		}
	}
	for i := 0; i < 10; i++ {
		if err := read(); err != nil {
			return fmt.Errorf("before unplug: %w", err)
		}
	}
	// The card is yanked by another process (the test script): unbinding
	// snd-aloop waits until every user has closed the card, so the driver
	// must notice the disconnect and let go for the unbind to finish.
	fmt.Println("UNPLUG NOW")
	if err := waitFile("/tmp/unplugging", 10*time.Second); err != nil {
		return err
	}
	t0 := time.Now()
	for {
		err := read()
		if errors.Is(err, capture.ErrDeviceGone) {
			break
		}
		if err != nil {
			return fmt.Errorf("after unplug: %w, want ErrDeviceGone", err)
		}
		if time.Since(t0) > 10*time.Second {
			return errors.New("chunks still flow 10 s after the card vanished")
		}
	}
	fmt.Printf("unplug seen as ErrDeviceGone after %v\n", time.Since(t0).Round(time.Millisecond))
	if err := waitFile("/tmp/rebound", 20*time.Second); err != nil {
		return err
	}
	back := time.Now()
	for {
		err := read()
		if err == nil {
			fmt.Printf("MIC REPLUG PASS: unplug reported, chunks again %v after the card came back (reopens %d, glitches %d)\n",
				time.Since(back).Round(time.Millisecond), m.Reopens(), m.Glitches())
			return nil
		}
		if !errors.Is(err, capture.ErrDeviceGone) {
			return fmt.Errorf("after replug: %w", err)
		}
		if time.Since(back) > 15*time.Second {
			return fmt.Errorf("no chunk 15 s after the card came back: %w", err)
		}
	}
}

func waitFile(p string, d time.Duration) error {
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		if _, err := os.Stat(p); err == nil {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("%s did not appear within %v", p, d)
}
