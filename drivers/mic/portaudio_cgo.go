//go:build cgo

package mic

import (
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gordonklaus/portaudio"
)

// Available reports whether this binary can capture audio at all.
const Available = true

// Devices lists PortAudio's input devices ("name (N ch, R Hz)").
func Devices() ([]string, error) {
	quietAudioLibs()
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

// Stall bounds how long a read waits for the device: a card that vanished
// (USB unplug) makes PortAudio's blocking read, and its callbacks, simply
// stop; without a bound the pipeline would wait forever. 50 chunks is far
// beyond any scheduling hiccup, even under qemu TCG.
const stallTimeout = time.Second

// closeTimeout bounds closing a stream whose device is gone; a close that
// does not return is abandoned (one stuck thread) rather than stalling the
// reopen loop.
const closeTimeout = 2 * time.Second

// paStream captures with PortAudio's callback API: the callback (on
// PortAudio's thread) copies each buffer into a small pool and ReadChunk
// takes them from a channel with a timeout. The blocking API was measured
// to hang forever in Pa_ReadStream when the card disappeared.
//
// Each stream holds one Initialize/Terminate pair: PortAudio counts them,
// and terminating the last one lets the next Open enumerate devices afresh
// (a replugged USB microphone gets a new ALSA card).
type paStream struct {
	s    *portaudio.Stream
	ch   int
	free chan []int16
	full chan []int16
	// at holds each full buffer's capture time, in the same order as full
	// (the callback sends to both; Read takes from both).
	at     chan time.Time
	over   atomic.Bool // an input overflow since the last Read
	closed atomic.Bool
	stall  *time.Timer // reused: no allocation per chunk
	rate   int
}

func (portAudio) Open(device string, rate, frames int) (Stream, error) {
	if device == "" {
		// The default input on a machine with no sound card: say so
		// instead of probing (PortAudio would only find nothing).
		if err := soundCards(); err != nil {
			return nil, err
		}
	}
	quietAudioLibs()
	if err := portaudio.Initialize(); err != nil {
		return nil, fmt.Errorf("portaudio init: %w", err)
	}
	st, err := openStream(device, rate, frames)
	if err != nil {
		portaudio.Terminate()
		return nil, err
	}
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
				// A generous ring buffer: the Go side may be descheduled
				// (and under qemu TCG is slow); 100 ms did not overflow.
				Latency: max(dev.DefaultHighInputLatency, 100*time.Millisecond),
			},
			SampleRate:      float64(rate),
			FramesPerBuffer: frames,
		}
		// Eight chunks (160 ms) of slack between the callback and the reader.
		st := &paStream{rate: rate, ch: ch, free: make(chan []int16, 8), full: make(chan []int16, 8), at: make(chan time.Time, 8)}
		for i := 0; i < cap(st.free); i++ {
			st.free <- make([]int16, frames*ch)
		}
		s, err := portaudio.OpenStream(p, st.callback)
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

// callback runs on PortAudio's thread. It must not block: with no free
// buffer (the reader is behind) the data is dropped and counted as an
// overflow, like the driver's own overflow.
func (st *paStream) callback(in []int16, ti portaudio.StreamCallbackTimeInfo, flags portaudio.StreamCallbackFlags) {
	if flags&portaudio.InputOverflow != 0 {
		st.over.Store(true)
	}
	// The buffer's first sample was captured this long before now, by the
	// stream's clock (0 when the host API does not say: then now minus
	// the buffer's length).
	ago := ti.CurrentTime - ti.InputBufferAdcTime
	if ti.CurrentTime == 0 || ago < 0 || ago > time.Second {
		ago = time.Duration(len(in)/st.ch) * time.Second / time.Duration(st.rate)
	}
	select {
	case b := <-st.free:
		copy(b, in)
		st.at <- time.Now().Add(-ago) // cannot block: as full
		st.full <- b                  // cannot block: full has room for every buffer
	default:
		st.over.Store(true)
	}
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

// errStalled reports a device that stopped delivering audio.
var errStalled = errors.New("no audio from the device (stalled or unplugged)")

func (st *paStream) Read(buf []int16) (bool, error) {
	_, over, err := st.ReadTimed(buf)
	return over, err
}

// ReadTimed implements mic.TimedStream.
func (st *paStream) ReadTimed(buf []int16) (time.Time, bool, error) {
	if st.stall == nil {
		st.stall = time.NewTimer(stallTimeout)
	} else {
		// Since Go 1.23 Reset also discards a stale expiry.
		st.stall.Reset(stallTimeout)
	}
	var b []int16
	select {
	case b = <-st.full:
		st.stall.Stop()
	case <-st.stall.C:
		return time.Time{}, false, fmt.Errorf("%w for %v", errStalled, stallTimeout)
	}
	at := <-st.at // sent before b
	if st.ch == 1 {
		copy(buf, b)
	} else {
		for i := range buf {
			buf[i] = int16((int32(b[2*i]) + int32(b[2*i+1])) / 2)
		}
	}
	st.free <- b
	return at, st.over.Swap(false), nil
}

func (st *paStream) Close() error {
	if st.closed.Swap(true) {
		return nil
	}
	done := make(chan error, 1)
	go func() {
		// Abort, not Stop: Stop waits for queued buffers, which a
		// vanished device never finishes.
		st.s.Abort()
		err := st.s.Close()
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
