//go:build cgo && !noopus

package firmware

import (
	"context"
	"log/slog"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/callbox/callbox/board"
	"github.com/callbox/callbox/capture"
	"github.com/callbox/callbox/capture/opus"
	"github.com/callbox/callbox/capture/pcmu"
	"github.com/callbox/callbox/drivers/speaker"
)

// The call's audio reaches the speaker whether the other box sends PCMU or
// Opus (decoded PCM is what the mixer takes); a lost Opus packet is
// concealed; nothing plays once the call is over.
func TestCallAudioCodecsOnSpeaker(t *testing.T) {
	for _, codec := range []string{"pcmu", "opus"} {
		t.Run(codec, func(t *testing.T) {
			sim := speaker.NewSim()
			p := &speakerPart{log: slog.New(slog.DiscardHandler)}
			p.mixer = speaker.NewMixer(speaker.MixerConfig{Output: sim, Device: "synthetic"})
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { defer close(done); p.mixer.Run(ctx) }()
			defer func() { cancel(); <-done }()

			var pack func(capture.AudioChunk) (capture.Burst, error)
			if codec == "opus" {
				op, err := opus.NewPacketizer(1200, 1, capture.PayloadTypeOpus)
				if err != nil {
					t.Fatal(err)
				}
				pack = op.Packetize
			} else {
				pp, err := pcmu.NewPacketizer(1200, 1, capture.PayloadTypePCMU)
				if err != nil {
					t.Fatal(err)
				}
				pack = pp.Packetize
			}
			p.callState(board.CallDirect)
			// 1 s of a 1 kHz tone at 0.3 of full scale (-13.5 dBFS RMS),
			// paced like the network; one Opus packet lost on the way.
			const n = speaker.Rate / 50
			for i := range 50 {
				pcm := make([]int16, n)
				for j := range pcm {
					pcm[j] = int16(0.3 * 32767 * math.Sin(2*math.Pi*1000*float64(i*n+j)/speaker.Rate))
				}
				b, err := pack(capture.AudioChunk{Samples: pcm, Rate: speaker.Rate, CaptureTime: time.Now(), Seq: uint64(i + 1)})
				if err != nil {
					t.Fatal(err)
				}
				if i == 30 && codec == "opus" {
					continue // lost
				}
				p.callAudio(b)
				time.Sleep(speaker.FrameDuration) // the network's pace
			}
			st := p.state()
			rec := sim.Recorded(400 * time.Millisecond)
			var levels []float64
			for i := 0; i+480 <= len(rec); i += 480 {
				levels = append(levels, toneLevel(rec[i:i+480], 1000))
			}
			slices.Sort(levels)
			tone := levels[len(levels)/2]
			t.Logf("%s: speaker %+v; 1 kHz at %.1f dBFS (median of 10 ms windows)", codec, st.State, tone)
			if st.Undecodable != 0 || st.Frames < 40 || !slices.Equal(st.Sources, []string{"call"}) {
				t.Errorf("speaker state %+v, undecodable %d", st.State, st.Undecodable)
			}
			if tone < -16.5 || tone > -11 {
				t.Errorf("1 kHz at %.1f dBFS on the speaker, want about -13.5", tone)
			}
			p.callState(board.CallIdle)
			if st := p.state(); len(st.Sources) != 0 {
				t.Errorf("after the call: sources %v", st.Sources)
			}
		})
	}
}
