//go:build cgo

package speaker

import (
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gordonklaus/portaudio"

	"github.com/callbox/callbox/drivers/mic"
)

// Available reports whether this binary can play audio at all.
const Available = true

// Devices lists PortAudio's output devices ("name (N ch, R Hz)").
func Devices() ([]string, error) {
	mic.QuietAudioLibs()
	if err := portaudio.Initialize(); err != nil {
		return nil, fmt.Errorf("speaker: portaudio init: %w", err)
	}
	defer portaudio.Terminate()
	devs, err := portaudio.Devices()
	if err != nil {
		return nil, fmt.Errorf("speaker: list devices: %w", err)
	}
	var out []string
	for _, d := range devs {
		if d.MaxOutputChannels > 0 {
			out = append(out, fmt.Sprintf("%s (%d ch, %.0f Hz)", d.Name, d.MaxOutputChannels, d.DefaultSampleRate))
		}
	}
	return out, nil
}

// stallTimeout bounds how long a Write waits for the device to take a
// frame: a vanished card (USB unplug) stops PortAudio's callbacks.
const stallTimeout = time.Second

// closeTimeout bounds closing a stream whose device is gone.
const closeTimeout = 2 * time.Second

// queueFrames is the slack between Write and PortAudio's callback.
const queueFrames = 3

// paOutput plays with PortAudio's callback API (the blocking API hangs in
// Pa_WriteStream when the card disappears, as it does for capture): Write
// queues a frame, the callback (PortAudio's thread) takes one per buffer
// and plays silence when none is queued (an underrun, counted).
type paOutput struct {
	s       *portaudio.Stream
	name    string
	ch      int
	free    chan []int16
	full    chan []int16
	latency time.Duration
	under   atomic.Uint64
	closed  atomic.Bool
	stall   *time.Timer
	// onPlayed hears every buffer the callback plays.
	onPlayed atomic.Pointer[func([]int16, time.Time)]
	mono     []int16 // what was played, mono (the callback's own)
}

// openPortAudio opens device ("" = the default output) for mono (or
// stereo, duplicated) S16 at Rate, FrameSamples per buffer.
func openPortAudio(device string) (*paOutput, error) {
	if device == "" {
		if err := playbackCards(); err != nil {
			return nil, err
		}
	}
	mic.QuietAudioLibs()
	if err := portaudio.Initialize(); err != nil {
		return nil, fmt.Errorf("portaudio init: %w", err)
	}
	o, err := openStream(device)
	if err != nil {
		portaudio.Terminate()
		return nil, err
	}
	return o, nil
}

func openStream(device string) (*paOutput, error) {
	dev, err := findDevice(device)
	if err != nil {
		return nil, err
	}
	var last error
	for _, ch := range []int{1, 2} {
		if ch > dev.MaxOutputChannels {
			break
		}
		p := portaudio.StreamParameters{
			Output: portaudio.StreamDeviceParameters{
				Device:   dev,
				Channels: ch,
				// 100 ms, as the microphone: the Go side may be
				// descheduled (a busy box, qemu), and a late callback
				// is a gap in the sound. The echo canceller aligns by
				// the device's own times, so its tail need not cover
				// this buffer.
				Latency: max(dev.DefaultHighOutputLatency, 100*time.Millisecond),
			},
			SampleRate:      Rate,
			FramesPerBuffer: FrameSamples,
		}
		o := &paOutput{name: dev.Name, ch: ch, free: make(chan []int16, queueFrames), full: make(chan []int16, queueFrames),
			mono: make([]int16, FrameSamples)}
		for range queueFrames {
			o.free <- make([]int16, FrameSamples)
		}
		s, err := portaudio.OpenStream(p, o.callback)
		if err != nil {
			last = err
			continue
		}
		if err := s.Start(); err != nil {
			s.Close()
			return nil, fmt.Errorf("start %q: %w", dev.Name, err)
		}
		o.s = s
		o.latency = s.Info().OutputLatency
		return o, nil
	}
	return nil, fmt.Errorf("open %q mono S16 at %d Hz: %w", dev.Name, Rate, last)
}

// callback runs on PortAudio's thread and must not block.
func (o *paOutput) callback(out []int16, ti portaudio.StreamCallbackTimeInfo) {
	mono := o.mono[:len(out)/o.ch]
	select {
	case b := <-o.full:
		copy(mono, b)
		o.free <- b
	default:
		clear(mono)
		o.under.Add(1)
	}
	if o.ch == 1 {
		copy(out, mono)
	} else {
		for i, v := range mono {
			out[2*i], out[2*i+1] = v, v
		}
	}
	if f := o.onPlayed.Load(); f != nil {
		// This buffer reaches the DAC this long from now (by the
		// stream's clock; unknown: the reported latency).
		ahead := ti.OutputBufferDacTime - ti.CurrentTime
		if ti.CurrentTime == 0 || ahead < 0 || ahead > time.Second {
			ahead = o.latency
		}
		(*f)(mono, time.Now().Add(ahead))
	}
}

// OnPlayed implements the mixer's playedOutput.
func (o *paOutput) OnPlayed(f func([]int16, time.Time)) { o.onPlayed.Store(&f) }

func findDevice(name string) (*portaudio.DeviceInfo, error) {
	if name == "" {
		d, err := portaudio.DefaultOutputDevice()
		if err != nil {
			return nil, fmt.Errorf("default output: %w: %w", ErrNoDevice, err)
		}
		return d, nil
	}
	devs, err := portaudio.Devices()
	if err != nil {
		return nil, err
	}
	for _, d := range devs {
		if d.MaxOutputChannels > 0 && d.Name == name {
			return d, nil
		}
	}
	var names []string
	for _, d := range devs {
		if d.MaxOutputChannels > 0 {
			names = append(names, d.Name)
			if strings.Contains(strings.ToLower(d.Name), strings.ToLower(name)) {
				return d, nil
			}
		}
	}
	return nil, fmt.Errorf("%w: %q (outputs: %q)", ErrNoDevice, name, names)
}

var errStalled = errors.New("the device stopped taking audio (stalled or unplugged)")

// Write queues one frame; it blocks while queueFrames are waiting.
func (o *paOutput) Write(frame []int16) error {
	if o.closed.Load() {
		return ErrClosed
	}
	if o.stall == nil {
		o.stall = time.NewTimer(stallTimeout)
	} else {
		o.stall.Reset(stallTimeout)
	}
	var b []int16
	select {
	case b = <-o.free:
		o.stall.Stop()
	case <-o.stall.C:
		return fmt.Errorf("%w for %v", errStalled, stallTimeout)
	}
	copy(b, frame)
	o.full <- b // cannot block: full has room for every buffer
	return nil
}

// Latency is the queue plus the device's buffer.
func (o *paOutput) Latency() time.Duration {
	return o.latency + time.Duration(len(o.full))*FrameDuration
}

// Underruns counts buffers the device played as silence for want of audio.
func (o *paOutput) Underruns() uint64 { return o.under.Load() }

func (o *paOutput) Close() error {
	if o.closed.Swap(true) {
		return nil
	}
	done := make(chan error, 1)
	go func() {
		o.s.Abort()
		err := o.s.Close()
		portaudio.Terminate()
		done <- err
	}()
	select {
	case err := <-done:
		return err
	case <-time.After(closeTimeout):
		return fmt.Errorf("closing the stream did not finish in %v; abandoned", closeTimeout)
	}
}
