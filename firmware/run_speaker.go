package firmware

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/pion/rtp"

	"github.com/callbox/callbox/board"
	"github.com/callbox/callbox/board/config"
	"github.com/callbox/callbox/capture"
	"github.com/callbox/callbox/capture/echo"
	"github.com/callbox/callbox/capture/opus"
	"github.com/callbox/callbox/capture/pcmu"
	"github.com/callbox/callbox/drivers/speaker"
)

// speakerPart is the box's own speaker (docs/audio.md): the mixer
// (drivers/speaker) on the configured output, the ring tone while a call
// rings, the call's far-end audio during a call, and the echo
// cancellation of all of it in the microphone (capture/echo), which the
// media part puts in front of the microphone's track.
type speakerPart struct {
	// Set by wire.
	cfg   config.Speaker
	log   *slog.Logger
	board interface{ isSimulated() bool }

	mixer  *speaker.Mixer
	opened speaker.Opened
	echo   echoChoice
	stage  *echo.Stage // nil: no software cancellation
	canc   *echo.Canceller
	cancel context.CancelFunc
	done   chan struct{}

	mu       sync.Mutex
	ringStop func()
	call     *speaker.Stream
	inCall   bool
	// Call audio that could not be played: a payload type the box has no
	// decoder for (counted, logged once).
	undecodable atomic.Uint64
	warned      atomic.Bool
	pcm         []int16
	opus        *opus.Decoder // the call's, made at its first Opus packet
	opusSeq     uint16        // the last Opus packet's sequence number
}

// echoChoice is what echo_cancel resolved to, and why.
type echoChoice struct {
	Mode string `json:"mode"` // "software", "hardware" or "off"
	Why  string `json:"why"`
}

// hardwareAECCards are speakerphones that cancel their own echo, by a
// part of the name ALSA (and PortAudio) gives their USB card
// (case-insensitive). With one of them as the speaker, echo_cancel =
// "auto" leaves software cancellation off: two cancellers in a row fight.
var hardwareAECCards = []string{
	"jabra speak",           // Jabra Speak 410/510/710/750, Speak2
	"powerconf",             // Anker PowerConf, PowerConf S3/S330
	"emeet",                 // eMeet OfficeCore M0/M1/M2/M3
	"calisto",               // Poly (Plantronics) Calisto 3200/5200/7200
	"yealink cp",            // Yealink CP700/CP900
	"p710e",                 // Logitech Speakerphone P710e
	"expand sp",             // EPOS/Sennheiser EXPAND SP 20/30
	"respeaker 4 mic array", // Seeed ReSpeaker USB 4-mic array (XMOS AEC firmware)
}

// hardwareAEC reports the known speakerphone name in name, if any.
func hardwareAEC(name string) (string, bool) {
	l := strings.ToLower(name)
	for _, k := range hardwareAECCards {
		if strings.Contains(l, k) {
			return k, true
		}
	}
	return "", false
}

// defaultCardName is ALSA's card 0 (what "default" plays to), from
// /proc/asound/cards; "" if unknown.
func defaultCardName() string {
	b, err := os.ReadFile("/proc/asound/cards")
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "0 [") {
			return line
		}
	}
	return ""
}

// chooseEcho resolves echo_cancel for the opened speaker.
func chooseEcho(mode string, o speaker.Opened) echoChoice {
	card := o.CardName
	if strings.EqualFold(card, "default") || strings.EqualFold(card, "sysdefault") {
		card += " " + defaultCardName()
	}
	switch mode {
	case "off":
		return echoChoice{"off", "echo_cancel = off"}
	case "hardware":
		return echoChoice{"hardware", "echo_cancel = hardware: the speakerphone cancels its own echo"}
	case "software":
		return echoChoice{"software", "echo_cancel = software"}
	}
	if o.Output == nil {
		return echoChoice{"off", "no speaker"}
	}
	if o.CardName == "" {
		return echoChoice{"off", "simulated speaker: no sound reaches the microphone"}
	}
	if k, ok := hardwareAEC(card); ok {
		return echoChoice{"hardware", fmt.Sprintf("%q is a speakerphone with its own echo cancellation (%s)", o.CardName, k)}
	}
	return echoChoice{"software", "auto: a speaker without its own echo cancellation"}
}

func (p *speakerPart) start(ctx context.Context) error {
	simulated := p.board.isSimulated()
	o, err := speaker.Open(p.cfg.Device, simulated, p.log)
	if err != nil {
		return err
	}
	p.opened = o
	p.echo = chooseEcho(p.cfg.EchoCancel, o)
	p.mixer = speaker.NewMixer(speaker.MixerConfig{Output: o.Output, Device: o.Device, Volume: float64(p.cfg.Volume) / 100, Log: p.log})
	if p.echo.Mode == "software" {
		c, err := echo.New(echo.Config{})
		switch {
		case errors.Is(err, echo.ErrNoCgo):
			p.echo = echoChoice{"off", err.Error()}
		case err != nil:
			return err
		default:
			p.stage, err = echo.NewStage(echo.StageConfig{Canceller: c, Far: p.mixer.FarEnd(), Rate: speaker.Rate})
			if err != nil {
				c.Close()
				return err
			}
			p.canc = c
		}
	}
	p.log.Info("speaker", "device", o.Desc, "echo_cancel", p.echo.Mode, "why", p.echo.Why, "volume", p.cfg.Volume)
	ctx, p.cancel = context.WithCancel(ctx)
	p.done = make(chan struct{})
	go func() { defer close(p.done); p.mixer.Run(ctx) }()
	return nil
}

func (p *speakerPart) stop() {
	if p.cancel == nil {
		return
	}
	p.cancel()
	<-p.done
	if p.canc != nil {
		// The media part stopped before: nothing reads the stage now.
		p.stage.Close()
		p.canc.Close()
	}
}

// micStage is the media part's MicStage: the microphone with the
// speaker's echo cancelled, or nil when there is no software
// cancellation.
func (p *speakerPart) micStage() func(capture.AudioSource) capture.AudioSource {
	if p.stage == nil {
		return nil
	}
	return p.stage.Wrap
}

// callState follows the call: the ring tone while it rings, the call's
// audio stream while it is up. It is called from the call's goroutines
// (peerPart.onState) and must not block.
func (p *speakerPart) callState(c board.Call) {
	if p.mixer == nil {
		return // not started (tests that start only some parts)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if c == board.CallRinging {
		if p.ringStop == nil {
			p.ringStop, _ = p.mixer.Play("ring", speaker.NewRing())
		}
	} else if p.ringStop != nil {
		p.ringStop()
		p.ringStop = nil
	}
	p.inCall = c == board.CallDirect || c == board.CallRelayed
	if !p.inCall && p.call != nil {
		p.call.Close()
		p.call, p.opus = nil, nil
	}
}

// callAudio plays a burst of the call's received audio: RTP packets of
// PCMU (decoded with capture/pcmu) or Opus (capture/opus; a packet or two
// lost between two is concealed by libopus); video bursts are not for the
// speaker.
func (p *speakerPart) callAudio(b capture.Burst) {
	if b.Kind != capture.KindAudio || p.mixer == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.inCall {
		return
	}
	if p.call == nil {
		p.call = p.mixer.Stream("call")
	}
	for _, raw := range b.Packets {
		var pk rtp.Packet
		if err := pk.Unmarshal(raw); err != nil {
			p.undecodable.Add(1)
			continue
		}
		switch pk.PayloadType {
		case capture.PayloadTypePCMU:
			if cap(p.pcm) < len(pk.Payload) {
				p.pcm = make([]int16, len(pk.Payload))
			}
			p.call.Write(pcmu.Decode(p.pcm, pk.Payload), 8000)
		case capture.PayloadTypeOpus:
			if err := p.playOpus(&pk); err != nil {
				p.undecodable.Add(1)
				if !p.warned.Swap(true) {
					p.log.Warn("call audio the speaker cannot decode", "err", err)
				}
			}
		default:
			p.undecodable.Add(1)
			if !p.warned.Swap(true) {
				p.log.Warn("call audio the speaker cannot decode", "payload_type", pk.PayloadType)
			}
		}
	}
}

// playOpus decodes one Opus packet onto the call's stream (p.mu held).
func (p *speakerPart) playOpus(pk *rtp.Packet) error {
	if p.opus == nil {
		d, err := opus.NewDecoder()
		if err != nil {
			return err
		}
		p.opus = d
	} else if lost := pk.SequenceNumber - p.opusSeq - 1; lost > 0 && lost <= 3 {
		for range lost {
			if pcm, err := p.opus.DecodeLost(); err == nil {
				p.call.Write(pcm, opus.Rate)
			}
		}
	}
	p.opusSeq = pk.SequenceNumber
	pcm, err := p.opus.Decode(pk.Payload)
	if err != nil {
		return err
	}
	return p.call.Write(pcm, opus.Rate)
}

// speakerAPIState is /api/state's "speaker".
type speakerAPIState struct {
	speaker.State
	// Undecodable counts call audio packets the speaker could not play.
	Undecodable uint64          `json:"undecodable,omitempty"`
	Echo        speakerEchoInfo `json:"echo"`
}

type speakerEchoInfo struct {
	echoChoice
	Library string `json:"library,omitempty"`
	*echo.StageStats
}

func (p *speakerPart) state() *speakerAPIState {
	if p == nil || p.mixer == nil {
		return nil
	}
	st := &speakerAPIState{State: p.mixer.State(), Undecodable: p.undecodable.Load(), Echo: speakerEchoInfo{echoChoice: p.echo}}
	if p.stage != nil {
		s := p.stage.Stats()
		st.Echo.StageStats = &s
		st.Echo.Library = echo.Library
	}
	return st
}
