// Command hilecho runs in the HIL VM: the acceptance test of the box's
// echo cancellation on real ALSA devices. The speaker driver
// (drivers/speaker, PortAudio) plays a far-end talker into snd-aloop; the
// microphone driver (drivers/mic) captures it back from the loopback's
// other side, with the loopback's and the drivers' real delay; for each
// microphone chunk the reference is read from the mixer's FarEnd at the
// chunk's capture time, as the appliance's echo stage reads it.
//
// The VM emulates its CPU (TCG, one vCPU): the canceller there costs
// more than real time, so the capture loop only records the microphone
// chunks and their reference chunks, and the canceller (capture/echo's
// Stage, the appliance's code) runs over the recording afterwards. What
// it costs on real CPUs is BenchmarkStage's business.
//
// snd-aloop copies samples unchanged, so it has a delay but no
// attenuation and no reverberation. The rest of the room is applied to
// the captured signal here, before the canceller: the sound 6 dB down
// after another 10 ms, eight early reflections over 40 ms, the
// microphone's own noise at -70 dBFS, and, for the double-talk part, a
// near-end talker. (The reference stays exactly what the speaker
// played.)
//
// It prints the figures and "ECHO PASS" when the far end alone is
// reduced by at least -min-erle dB and the near end keeps its level
// within 3 dB during double talk; "ECHO FAIL: ..." otherwise.
package main

import (
	"context"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"time"

	"github.com/callbox/callbox/capture"
	"github.com/callbox/callbox/capture/echo"
	"github.com/callbox/callbox/capture/echo/echotest"
	"github.com/callbox/callbox/drivers/mic"
	"github.com/callbox/callbox/drivers/speaker"
)

const rate = speaker.Rate

func main() {
	spk := flag.String("speaker", "hw:0,1", "PortAudio output the speaker driver plays to (name or part of it)")
	micDev := flag.String("mic", "hw:0,0", "PortAudio input the microphone driver records from")
	farSecs := flag.Float64("far", 10, "seconds of the far end talking alone")
	dtSecs := flag.Float64("double", 4, "seconds of double talk after that")
	settle := flag.Float64("settle", 4, "seconds the canceller may take to converge before ERLE is measured")
	minERLE := flag.Float64("min-erle", 25, "ERLE the far end alone must reach, dB")
	flag.Parse()
	if err := run(*spk, *micDev, *farSecs, *dtSecs, *settle, *minERLE); err != nil {
		fmt.Println("ECHO FAIL:", err)
		os.Exit(1)
	}
}

// roomMic is the microphone in the room: what it captured from the
// loopback (the speaker's sound, delayed) through the room's reflections,
// plus its noise and, once the double talk starts, the near-end talker.
// It keeps the pieces for the measurement. It runs over the recording
// after the capture (a linear filter: the same as live, and the capture
// loop stays light enough for an emulated CPU).
type roomMic struct {
	room     *echotest.Filter
	rng      *rand.Rand
	near     []int16
	nearFrom int // chunk index where the near end starts
	k        int // chunks done

	micIn, echoOnly, nearOnly []float64
}

func (r *roomMic) apply(c capture.AudioChunk) capture.AudioChunk {
	e := r.room.Process(c.Samples)
	buf := make([]int16, len(c.Samples))
	for i, v := range e {
		n := 0.0
		if r.k >= r.nearFrom {
			if j := (r.k-r.nearFrom)*len(c.Samples) + i; j < len(r.near) {
				n = float64(r.near[j])
			}
		}
		noise := r.rng.NormFloat64() * 32768 * 0.000316
		s := max(min(v+n+noise, 32767), -32768)
		buf[i] = int16(s)
		r.micIn = append(r.micIn, s)
		r.echoOnly = append(r.echoOnly, v)
		r.nearOnly = append(r.nearOnly, n)
	}
	r.k++
	c.Samples = buf
	return c
}

// recorded is a microphone chunk and the reference read for it.
type recorded struct {
	c   capture.AudioChunk
	ref []int16
	pcm []int16 // c's samples as captured
}

// replayMic and replayRef give the recording back to the echo stage.
type replayMic struct {
	rec []recorded
	i   int
}

func (r *replayMic) ReadChunk(context.Context) (capture.AudioChunk, error) {
	if r.i == len(r.rec) {
		return capture.AudioChunk{}, fmt.Errorf("recording over")
	}
	r.i++
	return r.rec[r.i-1].c, nil
}

func (r *replayMic) Close() error { return nil }

type replayRef struct {
	rec []recorded
	i   int
}

func (r *replayRef) Realign() {} // the capture loop realigned already

func (r *replayRef) Read(dst []int16, _ time.Time) bool {
	copy(dst, r.rec[r.i].ref)
	r.i++
	return r.i == 1
}

// capture1 plays far through the mixer and records the microphone's
// chunks into rec (preallocated: its capacity holds them) with their
// reference. broke says why the capture is not one continuous stream on
// both sides ("" if it is).
func capture1(ctx context.Context, mixer *speaker.Mixer, micDev string, far []int16, rec []recorded, chunks int, total float64) (m *mic.Mic, gaps int, ms speaker.State, broke string, err error) {
	m, err = mic.Open(mic.Config{Device: micDev, Rate: rate})
	if err != nil {
		return nil, 0, ms, "", err
	}
	defer m.Close()
	stop, _ := mixer.Play("far", &talker{pcm: far})
	defer stop()
	before := mixer.State()
	// Live: the microphone's chunks and, for each, the reference as the
	// echo stage reads it. Nothing else: under emulation a heavier loop
	// makes the microphone overflow.
	rctx, rcancel := context.WithTimeout(ctx, time.Duration(total+30)*time.Second)
	defer rcancel()
	ref := mixer.FarEnd()
	var lastSeq uint64
	for range chunks {
		c, err := m.ReadChunk(rctx)
		if err != nil {
			return m, gaps, ms, fmt.Sprintf("chunk %d: %v", len(rec), err), nil
		}
		if lastSeq != 0 && c.Seq != lastSeq+1 {
			// The echo stage would realign and readapt; the
			// measurement wants an unbroken capture: try again.
			return m, 1, ms, fmt.Sprintf("the microphone lost chunks at chunk %d", len(rec)), nil
		}
		lastSeq = c.Seq
		r := rec[:len(rec)+1][len(rec)]
		copy(r.pcm, c.Samples)
		r.c = c
		r.c.Samples = r.pcm
		if ref.Read(r.ref, c.CaptureTime.Add(echo.DefaultLead)) && len(rec) > 0 {
			return m, 0, ms, fmt.Sprintf("the speaker's stream restarted at chunk %d", len(rec)), nil
		}
		rec = append(rec, r)
	}
	ms = mixer.State()
	switch {
	case ms.Errors != before.Errors:
		broke = fmt.Sprintf("%d speaker write errors", ms.Errors-before.Errors)
	}
	return m, gaps, ms, broke, nil
}

// talker plays a recording through the mixer, then stops.
type talker struct {
	pcm []int16
	pos int
}

func (t *talker) Fill(f []int16) bool {
	n := copy(f, t.pcm[min(t.pos, len(t.pcm)):])
	clear(f[n:])
	t.pos += len(f)
	return t.pos < len(t.pcm)
}

func run(spk, micDev string, farSecs, dtSecs, settle, minERLE float64) error {
	fmt.Println("portaudio:", mic.Version(), "echo:", echo.Library)
	outs, err := speaker.Devices()
	fmt.Printf("outputs: %q %v\n", outs, err)
	o, err := speaker.Open(spk, false, nil)
	if err != nil {
		return err
	}
	mixer := speaker.NewMixer(speaker.MixerConfig{Output: o.Output, Device: o.Device})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	mixDone := make(chan struct{})
	go func() { defer close(mixDone); mixer.Run(ctx) }()
	defer func() { cancel(); <-mixDone }()

	total := farSecs + dtSecs
	room := &roomMic{
		room:     echotest.NewFilter(echotest.Reflections(rate, 10, -6, 40, 8, 7)),
		rng:      rand.New(rand.NewPCG(3, 3)),
		near:     echotest.Speech(echotest.Talker{F0: 210, Seed: 2}, rate, int(dtSecs*rate), 0.25),
		nearFrom: int(farSecs * 50),
	}
	far := echotest.Speech(echotest.Talker{F0: 120, Seed: 1}, rate, int(total*rate)+rate, 0.5)
	chunks := int(total * 50)
	rec := make([]recorded, 0, chunks)
	for range chunks {
		rec = append(rec, recorded{ref: make([]int16, rate/50), pcm: make([]int16, rate/50)})
	}
	rec = rec[:0]

	fmt.Printf("speaker %s; microphone %q; far end alone %.0f s, then double talk %.0f s\n", o.Desc, micDev, farSecs, dtSecs)
	// An emulated CPU on a busy host sometimes stalls long enough for
	// ALSA to overrun or underrun: a broken capture (samples lost on
	// either side) is not what the canceller is measured on. Up to five
	// tries, each stopped at its first break, which is reported.
	var ms speaker.State
	var m *mic.Mic
	var gaps int
	for try := 1; ; try++ {
		rec = rec[:0]
		var broke string
		m, gaps, ms, broke, err = capture1(ctx, mixer, micDev, far, rec[:0:chunks], chunks, total)
		if err != nil {
			return err
		}
		rec = rec[:chunks]
		if broke == "" {
			break
		}
		fmt.Printf("capture %d broken: %s\n", try, broke)
		if try == 5 {
			return fmt.Errorf("five captures broken by the emulated machine's stalls, the last: %s", broke)
		}
	}
	// How the microphone's timestamps ran against its sample count.
	span := rec[len(rec)-1].c.CaptureTime.Sub(rec[0].c.CaptureTime)
	fmt.Printf("microphone timestamps: %v over %d chunks (%v of samples)\n", span.Round(time.Millisecond), len(rec)-1, time.Duration(len(rec)-1)*capture.ChunkDuration)
	for i := range rec {
		rec[i].c = room.apply(rec[i].c)
	}

	// Afterwards: the appliance's echo stage over the recording.
	canc, err := echo.New(echo.Config{})
	if err != nil {
		return err
	}
	defer canc.Close()
	replay := &replayRef{rec: rec}
	stage, err := echo.NewStage(echo.StageConfig{Canceller: canc, Far: replay, Rate: rate})
	if err != nil {
		return err
	}
	defer stage.Close()
	src := stage.Wrap(&replayMic{rec: rec})
	t0 := time.Now()
	var out []float64
	for range rec {
		c, err := src.ReadChunk(ctx)
		if err != nil {
			return err
		}
		for _, v := range c.Samples {
			out = append(out, float64(v))
		}
	}
	busy := time.Since(t0)
	st := stage.Stats()
	from, dtFrom, end := int(settle*rate), int(farSecs*rate), len(out)
	erle := echotest.DB(echotest.Energy(room.micIn, from, dtFrom), echotest.Energy(out, from, dtFrom))
	echoLvl := echotest.LevelDBFS(room.echoOnly, from, dtFrom)
	nearLvl := echotest.LevelDBFS(room.nearOnly, dtFrom+rate, end)
	outLvl := echotest.LevelDBFS(out, dtFrom+rate, end)
	var per []string
	for s := 0; (s+1)*rate <= dtFrom; s++ {
		per = append(per, fmt.Sprintf("%.0f", echotest.DB(echotest.Energy(room.micIn, s*rate, (s+1)*rate), echotest.Energy(out, s*rate, (s+1)*rate))))
	}
	cpu := busy.Seconds() / (float64(len(rec)) * 0.020)
	fmt.Printf("ECHO far end alone (%.0f-%.0f s): echo %.1f dBFS at the microphone, ERLE %.1f dB (per second: %v)\n", settle, farSecs, echoLvl, erle, per)
	fmt.Printf("ECHO double talk (%.0f-%.0f s): near end %.1f dBFS, after the canceller %.1f dBFS (%+.1f dB)\n", farSecs+1, total, nearLvl, outLvl, outLvl-nearLvl)
	var devUnder uint64
	if u, ok := o.Output.(interface{ Underruns() uint64 }); ok {
		devUnder = u.Underruns()
	}
	fmt.Printf("ECHO echo delay behind the reference %.1f ms (filter's peak); speaker: %d buffers played as silence for want of the mixer, errors %d; microphone glitches %d, chunk gaps %d\n",
		st.DelayMS, devUnder, ms.Errors, m.Glitches(), gaps)
	fmt.Printf("ECHO cost under emulation (TCG): %.2f of real time (the canceller ran after the capture)\n", cpu)
	switch {
	case math.IsNaN(erle) || erle < minERLE:
		return fmt.Errorf("ERLE %.1f dB with the far end alone, want >= %.0f", erle, minERLE)
	case math.Abs(outLvl-nearLvl) > 3:
		return fmt.Errorf("near end's level changed by %+.1f dB in double talk, want within 3 dB", outLvl-nearLvl)
	}
	fmt.Printf("ECHO PASS: ERLE %.1f dB, double talk %+.1f dB\n", erle, outLvl-nearLvl)
	return nil
}
