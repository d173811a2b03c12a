//go:build cgo

package mic

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/gordonklaus/portaudio"
)

// Available reports whether this binary can capture audio at all.
const Available = true

// Devices lists PortAudio's input devices ("name (N ch, R Hz)").
func Devices() ([]string, error) {
	if err := portaudio.Initialize(); err != nil {
		return nil, fmt.Errorf("mic: portaudio init: %w", err)
	}
	defer portaudio.Terminate()
	devs, err := portaudio.Devices()
	if err != nil {
		return nil, fmt.Errorf("mic: list devices: %w", err)
	}
	var out []string
	for _, d := range devs {
		if d.MaxInputChannels > 0 {
			out = append(out, fmt.Sprintf("%s (%d ch, %.0f Hz)", d.Name, d.MaxInputChannels, d.DefaultSampleRate))
		}
	}
	return out, nil
}

// Version is PortAudio's version text.
func Version() string { return portaudio.VersionText() }

type portAudio struct{}

// paStream is a blocking PortAudio input stream. Each stream holds one
// Initialize/Terminate pair: PortAudio counts them, and terminating the
// last one lets the next Open enumerate devices afresh (a replugged USB
// microphone gets a new ALSA card).
type paStream struct {
	s    *portaudio.Stream
	raw  []int16 // interleaved, channels x frames
	ch   int
	term bool
}

func (portAudio) Open(device string, rate, frames int) (Stream, error) {
	if err := portaudio.Initialize(); err != nil {
		return nil, fmt.Errorf("portaudio init: %w", err)
	}
	st, err := openStream(device, rate, frames)
	if err != nil {
		portaudio.Terminate()
		return nil, err
	}
	st.term = true
	return st, nil
}

func openStream(device string, rate, frames int) (*paStream, error) {
	dev, err := findDevice(device)
	if err != nil {
		return nil, err
	}
	// Mono first; a device that only does stereo (some USB microphones on
	// hw: devices) is opened with two channels and mixed down.
	var last error
	for _, ch := range []int{1, 2} {
		if ch > dev.MaxInputChannels {
			break
		}
		p := portaudio.StreamParameters{
			Input: portaudio.StreamDeviceParameters{
				Device:   dev,
				Channels: ch,
				// A generous ring buffer: the reader is a Go goroutine
				// that may be descheduled (and under qemu TCG is slow);
				// 256-frame buffers overflowed there, 100 ms did not.
				Latency: max(dev.DefaultHighInputLatency, 100*time.Millisecond),
			},
			SampleRate:      float64(rate),
			FramesPerBuffer: frames,
		}
		st := &paStream{raw: make([]int16, frames*ch), ch: ch}
		s, err := portaudio.OpenStream(p, st.raw)
		if err != nil {
			last = err
			continue
		}
		if err := s.Start(); err != nil {
			s.Close()
			return nil, fmt.Errorf("start %q: %w", dev.Name, err)
		}
		st.s = s
		return st, nil
	}
	return nil, fmt.Errorf("open %q mono S16 at %d Hz: %w", dev.Name, rate, last)
}

func findDevice(name string) (*portaudio.DeviceInfo, error) {
	if name == "" {
		d, err := portaudio.DefaultInputDevice()
		if err != nil {
			return nil, fmt.Errorf("default input: %w: %w", ErrNoDevice, err)
		}
		return d, nil
	}
	devs, err := portaudio.Devices()
	if err != nil {
		return nil, err
	}
	var names []string
	for _, d := range devs {
		if d.MaxInputChannels > 0 && d.Name == name {
			return d, nil
		}
	}
	for _, d := range devs {
		if d.MaxInputChannels > 0 {
			names = append(names, d.Name)
			if strings.Contains(strings.ToLower(d.Name), strings.ToLower(name)) {
				return d, nil
			}
		}
	}
	return nil, fmt.Errorf("%w: %q (inputs: %q)", ErrNoDevice, name, names)
}

func (s *paStream) Read(buf []int16) (bool, error) {
	err := s.s.Read()
	over := errors.Is(err, portaudio.InputOverflowed)
	if err != nil && !over {
		return false, err
	}
	if s.ch == 1 {
		copy(buf, s.raw)
	} else {
		for i := range buf {
			buf[i] = int16((int32(s.raw[2*i]) + int32(s.raw[2*i+1])) / 2)
		}
	}
	return over, nil
}

func (s *paStream) Close() error {
	s.s.Stop()
	err := s.s.Close()
	if s.term {
		s.term = false
		portaudio.Terminate()
	}
	return err
}
