package box

import (
	"testing"
	"time"
)

func TestLadder(t *testing.T) {
	// A 720p camera at 2 Mbit/s starts at the top; a small camera starts
	// at the smallest size's full frame rate, not at its lowest step.
	if l := NewLadder(DefaultLadder, 1280, 720, 2_000_000); l.Index() != 0 {
		t.Errorf("720p camera at 2 Mbit/s: step %d", l.Index())
	}
	if l := NewLadder(DefaultLadder, 320, 240, 2_000_000); l.Current() != (Step{640, 360, 30, 280_000}) {
		t.Errorf("320x240 camera: step %+v, want 640x360@30 (sent at 320x240)", l.Current())
	}
	if w, h := stepSize(Step{640, 360, 30, 0}, 320, 240); w != 320 || h != 240 {
		t.Errorf("step size for a 320x240 camera: %dx%d", w, h)
	}
	if w, h := stepSize(Step{960, 540, 30, 0}, 1280, 720); w != 960 || h != 540 {
		t.Errorf("960x540 of 720p: %dx%d", w, h)
	}
	if w, h := stepSize(Step{640, 360, 30, 0}, 640, 480); w != 480 || h != 360 {
		t.Errorf("360p of a 4:3 camera: %dx%d", w, h)
	}
	// Down at once, up only after UpAfter above 1.3x and not within the hold.
	l := NewLadder(DefaultLadder, 1280, 720, 2_000_000)
	t0 := time.Unix(0, 0)
	if !l.Update(t0, 600_000) || l.Index() != 1 {
		t.Fatalf("600 kbit/s: step %d, want 1", l.Index())
	}
	if l.Update(t0.Add(time.Second), 1_200_000) {
		t.Fatal("stepped up at once")
	}
	if l.Update(t0.Add(4*time.Second), 1_400_000) {
		t.Fatal("stepped up within the hold after a step down")
	}
	if !l.Update(t0.Add(7500*time.Millisecond), 1_400_000) || l.Index() != 0 {
		t.Fatalf("1.4 Mbit/s for 3.5 s, after the hold: step %d, want 0", l.Index())
	}
	if l.Downs != 1 || l.Ups != 1 || l.Lowest != 1 {
		t.Errorf("counts: %d down %d up lowest %d", l.Downs, l.Ups, l.Lowest)
	}
	// Far below everything: straight to the bottom.
	if !l.Update(t0.Add(8*time.Second), 100_000) || l.Index() != len(DefaultLadder)-1 {
		t.Errorf("100 kbit/s: step %d", l.Index())
	}
}
