package firmware

import (
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/callbox/callbox/capture/opus"
	"github.com/callbox/callbox/capture/pcmu"
	"github.com/callbox/callbox/drivers/speaker"
	pion "github.com/pion/webrtc/v4"
)

// Talk-back (docs/webrtc.md, "Talk-back"): a paired phone away from home
// holds the hub page's push-to-talk button; its browser sends the
// microphone (Opus, the browser's echo cancellation on) on the session it
// already has with the box, and the box plays it on its speaker through
// the same mixer as a call's far end, so the box's echo cancellation (the
// mixer's far-end reference) takes it out of what the box's microphone
// sends back. Only sessions the box answered for a verified, still paired
// phone get a TalkBack (answerPhone); LAN sessions never do.

// talkGap is how long the phone may be silent before the box stops its
// voice: the button was released (the page replaces its track with none,
// so no packets come) or the network stalled. The stream is closed then,
// dropping what is queued: the box is quiet within talkGap of the last
// packet, well under half a second after the release.
const talkGap = 250 * time.Millisecond

// talkSpeaker is where talk-back plays: the box's mixer.
type talkSpeaker interface {
	Stream(name string) *speaker.Stream
}

// talkBack plays remote phones' microphones on the box's speaker.
type talkBack struct {
	speaker func() talkSpeaker // nil result: no speaker, phones may not talk
	log     *slog.Logger

	mu      sync.Mutex
	talking map[string]int // phone (token ID prefix) -> its tracks playing now
	codec   string         // the last talk-back track's

	packets, lost, undecodable atomic.Uint64
	talks                      atomic.Uint64 // presses: streams opened
}

// talkBackState is /api/state's "talkback".
type talkBackState struct {
	// Talking are the phones whose voice plays now (token ID prefixes).
	Talking     []string `json:"talking"`
	Talks       uint64   `json:"talks"`   // talk spurts since start: a press, or speech again after a pause > talkGap
	Packets     uint64   `json:"packets"` // audio packets received
	Lost        uint64   `json:"lost"`    // packets concealed (Opus) or missed
	Undecodable uint64   `json:"undecodable"`
	// Codec is the last phone's (audio/opus; audio/PCMU where the box
	// negotiated no Opus).
	Codec string `json:"codec,omitempty"`
}

func newTalkBack(sp func() talkSpeaker, log *slog.Logger) *talkBack {
	return &talkBack{speaker: sp, log: log, talking: map[string]int{}}
}

// state is what /api/state shows.
func (t *talkBack) state() talkBackState {
	t.mu.Lock()
	st := talkBackState{Talking: []string{}, Codec: t.codec}
	for k := range t.talking {
		st.Talking = append(st.Talking, k)
	}
	t.mu.Unlock()
	st.Talks, st.Packets, st.Lost, st.Undecodable = t.talks.Load(), t.packets.Load(), t.lost.Load(), t.undecodable.Load()
	return st
}

// forPhone returns the TalkBack of a remote session of phone tokenID, or
// nil when the box has no speaker (the phone's audio is then dropped).
func (t *talkBack) forPhone(tokenID string) func(*pion.TrackRemote) {
	if t == nil || t.speaker == nil || t.speaker() == nil {
		return nil
	}
	phone := tokenID[:8]
	return func(tr *pion.TrackRemote) { t.play(phone, tr) }
}

func (t *talkBack) setTalking(phone string, on bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if on {
		t.talking[phone]++
		return
	}
	if t.talking[phone]--; t.talking[phone] <= 0 {
		delete(t.talking, phone)
	}
}

// play reads the phone's audio track until it ends (the session closed),
// decoding each packet onto a speaker stream that lives while packets
// come: the first packet after a silence opens it, talkGap without one
// closes it.
func (t *talkBack) play(phone string, tr *pion.TrackRemote) {
	mime := strings.ToLower(tr.Codec().MimeType)
	t.mu.Lock()
	t.codec = tr.Codec().MimeType
	t.mu.Unlock()
	var dec *opus.Decoder
	rate := pcmu.Rate
	switch mime {
	case strings.ToLower(pion.MimeTypeOpus):
		d, err := opus.NewDecoder()
		if err != nil {
			t.log.Warn("talk-back: no Opus decoder: the phone's voice is dropped", "phone", phone, "err", err)
		}
		dec, rate = d, opus.Rate
	case strings.ToLower(pion.MimeTypePCMU):
	default:
		t.log.Warn("talk-back: a codec the box cannot play: the phone's voice is dropped", "phone", phone, "codec", mime)
	}
	var st *speaker.Stream
	var lin []int16
	var next uint16 // the next sequence number expected (valid while st != nil)
	stop := func() {
		if st != nil {
			st.Close()
			st = nil
			t.setTalking(phone, false)
			t.log.Info("talk-back: phone stopped talking", "phone", phone)
		}
	}
	defer stop()
	for {
		_ = tr.SetReadDeadline(time.Now().Add(talkGap))
		pkt, _, err := tr.ReadRTP()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				stop()
				continue
			}
			return // the session ended
		}
		t.packets.Add(1)
		if len(pkt.Payload) == 0 {
			continue
		}
		if mime != strings.ToLower(pion.MimeTypePCMU) && dec == nil {
			t.undecodable.Add(1)
			continue
		}
		sp := t.speaker()
		if st == nil {
			if sp == nil {
				continue
			}
			st = sp.Stream("talk-back " + phone)
			t.setTalking(phone, true)
			t.talks.Add(1)
			t.log.Info("talk-back: phone talking", "phone", phone, "codec", mime)
		} else if gap := pkt.SequenceNumber - next; gap != 0 && gap < 0x8000 {
			// Lost packets: Opus conceals up to three (60 ms), so a
			// loss is not a click; more is a real gap.
			t.lost.Add(uint64(gap))
			for i := 0; dec != nil && i < int(min(gap, 3)); i++ {
				if pcm, err := dec.DecodeLost(); err == nil {
					_ = st.Write(pcm, rate)
				}
			}
		} else if gap >= 0x8000 {
			continue // late or duplicate: already concealed
		}
		next = pkt.SequenceNumber + 1
		var pcm []int16
		if dec != nil {
			pcm, err = dec.Decode(pkt.Payload)
			if err != nil {
				t.undecodable.Add(1)
				continue
			}
		} else {
			if cap(lin) < len(pkt.Payload) {
				lin = make([]int16, len(pkt.Payload))
			}
			pcm = pcmu.Decode(lin[:len(pkt.Payload)], pkt.Payload)
		}
		_ = st.Write(pcm, rate)
	}
}

// apiState is /api/state's "talkback" (nil without talk-back).
func (t *talkBack) apiState() *talkBackState {
	if t == nil {
		return nil
	}
	st := t.state()
	return &st
}

// talkMixer is where remote phones' push-to-talk plays: the speaker's
// mixer, or nil when the box has no speaker (their voice is dropped).
func (p *speakerPart) talkMixer() talkSpeaker {
	if p == nil || p.mixer == nil || p.opened.Output == nil {
		return nil
	}
	return p.mixer
}
