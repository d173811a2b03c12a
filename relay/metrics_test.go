package relay

import (
	"testing"

	"github.com/callbox/callbox/capture"
)

// TestMetrics gathers the registry after traffic and a flush and checks the
// per-client and total series carry the policy's numbers.
func TestMetrics(t *testing.T) {
	cfg := testConfig()
	cfg.Video.MaxUnits = 1
	r := New(cfg, nil)
	defer r.Close()
	_, f := attach(t, r, capture.KindVideo)
	for i := 0; i < 4; i++ { // idle 3, 6, 9, 12 (limit 10)
		r.Publish(mkBurst(capture.KindVideo, 3, 100, int64(i)*33, true))
	}
	waitFor(t, "12 packets", func() bool { return f.packets.Load() == 12 })
	// Busy now: the 5th frame queues, the 6th passes MaxUnits 1 and flushes.
	r.Publish(mkBurst(capture.KindVideo, 3, 100, 200, true))
	r.Publish(mkBurst(capture.KindVideo, 3, 100, 233, true))
	mfs, err := r.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			key := mf.GetName()
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "kind" {
					key += "{" + lp.GetValue() + "}"
				}
			}
			v := m.GetGauge().GetValue() + m.GetCounter().GetValue()
			got[key] += v
		}
	}
	for name, want := range map[string]float64{
		"callbox_relay_clients{video}":                      1,
		"callbox_relay_client_idle_count{video}":            12,
		"callbox_relay_client_queue_units{video}":           1,
		"callbox_relay_client_sent_packets_total{video}":    12,
		"callbox_relay_client_flushes_total{video}":         1,
		"callbox_relay_client_dropped_packets_total{video}": 3,
		"callbox_relay_sent_packets_total{video}":           12,
		"callbox_relay_flushes_total{video}":                1,
		"callbox_relay_published_packets_total{video}":      18,
	} {
		if got[name] != want {
			t.Errorf("%s = %v, want %v", name, got[name], want)
		}
	}
	if _, ok := got["process_resident_memory_bytes"]; !ok {
		t.Error("no process metrics")
	}
}
