package natlab

import (
	"testing"
	"time"
)

// TestNATLabNetworkChange moves box A to another address in the middle of
// a call (as when a box's DHCP lease changes or it moves to another access
// point): the old path and the old hub connection die, ICE notices
// (disconnected timeout), the call is restarted through the hub, and media
// resumes on the new address.
func TestNATLabNetworkChange(t *testing.T) {
	l := newLab(t, "nc")
	l.public()
	l.router("natA", "198.51.100.1", 1, false)
	l.router("natB", "198.51.100.2", 2, false)
	l.host("hA", "natA", 1, 2)
	l.host("hB", "natB", 2, 2)
	l.startHub()
	l.pair("hA", "hB")

	const changeAt = 2 * time.Second
	go func() {
		time.Sleep(changeAt)
		l.sh("ip", "-n", l.pfx+"hA", "addr", "del", "10.201.1.2/24", "dev", "eth0")
		l.sh("ip", "-n", l.pfx+"hA", "addr", "add", "10.201.1.5/24", "dev", "eth0")
		l.sh("ip", "-n", l.pfx+"hA", "route", "add", "default", "via", "10.201.1.1")
	}()
	start := time.Now()
	sa, sb := l.call("hA", "hB", 12*time.Second)
	t.Logf("calls took %v", time.Since(start).Round(time.Millisecond))
	restarts := 0
	for _, x := range []struct {
		name string
		s    summary
	}{{"hA", sa}, {"hB", sb}} {
		s := x.s
		t.Logf("%s: path=%s local=%q remote=%q restarts=%d recovery=%.0fms first_frame=%.0fms last_frame=%.0fms frames=%d audio=%d err=%q",
			x.name, s.Path, s.LocalCandidate, s.RemoteCandidate, s.Restarts, s.RecoveryMS, s.FirstFrameMS, s.LastFrameMS, s.FramesDecoded, s.AudioReceived, s.Error)
		restarts += s.Restarts
		// Times in the summary count from the call's start, which is after
		// the process start that changeAt counts from: a last frame later
		// than changeAt + 2 s is media after the change for certain.
		if s.LastFrameMS < float64((changeAt+2*time.Second)/time.Millisecond) {
			t.Errorf("%s: last frame at %.0f ms: media did not resume after the address change at %v", x.name, s.LastFrameMS, changeAt)
		}
	}
	if restarts == 0 {
		t.Error("no ICE restart")
	}
	if sa.LocalCandidate != "" && sa.Path == "host" {
		t.Errorf("path %s across two NATs", sa.Path)
	}
	// The synthetic camera sends 15 frames a second: the frames that did
	// not arrive measure the outage as a viewer sees it.
	t.Logf("network change: ICE restart to connected again %.0f / %.0f ms; frames missing %d / %d (%.1f / %.1f s of video)",
		sa.RecoveryMS, sb.RecoveryMS, sb.FramesSent-sa.FramesDecoded, sa.FramesSent-sb.FramesDecoded,
		float64(sb.FramesSent-sa.FramesDecoded)/15, float64(sa.FramesSent-sb.FramesDecoded)/15)
}
