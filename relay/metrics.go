package relay

import (
	"strconv"

	"github.com/callbox/callbox/capture"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// collector reads the relay's counters at scrape time, so the hot path
// updates plain fields under locks it already holds and never touches a
// Prometheus metric.
type collector struct {
	r *Relay

	clients, queueUnits, queueBytes, idle                 *prometheus.Desc
	cSent, cSentBytes, cDrops, cFlushes, cHealth          *prometheus.Desc
	cIdleFlushes, tIdleFlushes                            *prometheus.Desc
	tSent, tSentBytes, tDrops, tFlushes, tHealth, tDiscon *prometheus.Desc
	published, publishedBytes, rejected, keyRequests      *prometheus.Desc
}

func newRegistry(r *Relay) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	cl := []string{"client", "kind", "remote"}
	k := []string{"kind"}
	d := func(name, help string, labels []string) *prometheus.Desc {
		return prometheus.NewDesc("callbox_relay_"+name, help, labels, nil)
	}
	reg.MustRegister(&collector{
		r:              r,
		clients:        d("clients", "Connected sessions by media kind.", k),
		queueUnits:     d("client_queue_units", "Units (frames or chunks) waiting in the client's Buffer.", cl),
		queueBytes:     d("client_queue_bytes", "Bytes waiting in the client's Buffer.", cl),
		idle:           d("client_idle_count", "Messages sent to the client not yet covered by a Health Check.", cl),
		cSent:          d("client_sent_packets_total", "RTP packets sent to the client.", cl),
		cSentBytes:     d("client_sent_bytes_total", "Bytes sent to the client, framing included.", cl),
		cDrops:         d("client_dropped_packets_total", "RTP packets dropped for the client by flushes.", cl),
		cFlushes:       d("client_flushes_total", "Buffer flushes of the client.", cl),
		cHealth:        d("client_health_checks_total", "Health Checks received from the client.", cl),
		cIdleFlushes:   d("client_idle_flushes_total", "Flushes after which the client had completed nothing since the previous one (they count toward disconnection).", cl),
		tIdleFlushes:   d("idle_flushes_total", "Flushes without progress since the previous one, all clients.", k),
		tSent:          d("sent_packets_total", "RTP packets sent to all clients.", k),
		tSentBytes:     d("sent_bytes_total", "Bytes sent to all clients.", k),
		tDrops:         d("dropped_packets_total", "RTP packets dropped by flushes, all clients.", k),
		tFlushes:       d("flushes_total", "Buffer flushes, all clients.", k),
		tHealth:        d("health_checks_total", "Health Checks received, all clients.", k),
		tDiscon:        d("disconnects_total", "Ended sessions by reason.", []string{"reason"}),
		published:      d("published_packets_total", "RTP packets published into the relay.", k),
		publishedBytes: d("published_bytes_total", "Bytes published into the relay, framing included.", k),
		rejected:       d("rejected_bursts_total", "Bursts refused as malformed.", nil),
		keyRequests:    d("keyframe_requests_total", "Keyframe requests sent to publishers.", nil),
	})
	return reg
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.clients, c.queueUnits, c.queueBytes, c.idle, c.cSent, c.cSentBytes,
		c.cDrops, c.cFlushes, c.cHealth, c.cIdleFlushes, c.tIdleFlushes, c.tSent, c.tSentBytes, c.tDrops, c.tFlushes, c.tHealth, c.tDiscon,
		c.published, c.publishedBytes, c.rejected, c.keyRequests} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	r := c.r
	gauge := prometheus.GaugeValue
	counter := prometheus.CounterValue
	var tot [3]stats
	r.tot.mu.Lock()
	tot = r.tot.ended
	disc := make(map[string]uint64, len(r.tot.disconnects))
	for k, v := range r.tot.disconnects {
		disc[k] = v
	}
	r.tot.mu.Unlock()
	for _, s := range r.snapshot(nil) {
		s.mu.Lock()
		st, units, bytes, idle := s.pol.st, s.pol.n, s.pol.qBytes, s.pol.idle
		s.mu.Unlock()
		l := []string{strconv.FormatUint(s.id, 10), s.kind.String(), s.t.remote()}
		ch <- prometheus.MustNewConstMetric(c.queueUnits, gauge, float64(units), l...)
		ch <- prometheus.MustNewConstMetric(c.queueBytes, gauge, float64(bytes), l...)
		ch <- prometheus.MustNewConstMetric(c.idle, gauge, float64(idle), l...)
		ch <- prometheus.MustNewConstMetric(c.cSent, counter, float64(st.sentMsgs), l...)
		ch <- prometheus.MustNewConstMetric(c.cSentBytes, counter, float64(st.sentBytes), l...)
		ch <- prometheus.MustNewConstMetric(c.cDrops, counter, float64(st.dropMsgs), l...)
		ch <- prometheus.MustNewConstMetric(c.cFlushes, counter, float64(st.flushes), l...)
		ch <- prometheus.MustNewConstMetric(c.cHealth, counter, float64(st.healthChecks), l...)
		ch <- prometheus.MustNewConstMetric(c.cIdleFlushes, counter, float64(st.idleFlushes), l...)
		t := &tot[s.kind]
		t.sentMsgs += st.sentMsgs
		t.sentBytes += st.sentBytes
		t.dropMsgs += st.dropMsgs
		t.flushes += st.flushes
		t.idleFlushes += st.idleFlushes
		t.healthChecks += st.healthChecks
	}
	for k := capture.KindVideo; k <= capture.KindAudio; k++ {
		l := k.String()
		t := &tot[k]
		ch <- prometheus.MustNewConstMetric(c.clients, gauge, float64(len(*r.subs[k].Load())), l)
		ch <- prometheus.MustNewConstMetric(c.tSent, counter, float64(t.sentMsgs), l)
		ch <- prometheus.MustNewConstMetric(c.tSentBytes, counter, float64(t.sentBytes), l)
		ch <- prometheus.MustNewConstMetric(c.tDrops, counter, float64(t.dropMsgs), l)
		ch <- prometheus.MustNewConstMetric(c.tFlushes, counter, float64(t.flushes), l)
		ch <- prometheus.MustNewConstMetric(c.tIdleFlushes, counter, float64(t.idleFlushes), l)
		ch <- prometheus.MustNewConstMetric(c.tHealth, counter, float64(t.healthChecks), l)
		ch <- prometheus.MustNewConstMetric(c.published, counter, float64(r.tot.published[k].Load()), l)
		ch <- prometheus.MustNewConstMetric(c.publishedBytes, counter, float64(r.tot.pubBytes[k].Load()), l)
	}
	for reason, v := range disc {
		ch <- prometheus.MustNewConstMetric(c.tDiscon, counter, float64(v), reason)
	}
	ch <- prometheus.MustNewConstMetric(c.rejected, counter, float64(r.tot.rejected.Load()))
	ch <- prometheus.MustNewConstMetric(c.keyRequests, counter, float64(r.tot.keyRequests.Load()))
}
