package hub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/callbox/callbox/peer/hub/store"
	"github.com/callbox/callbox/peer/proto"
)

// metrics is what /metrics reports about the hub.
type metrics struct {
	reg             *prometheus.Registry
	registrations   prometheus.Counter
	refused         prometheus.Counter
	signals         *prometheus.CounterVec
	signalsFailed   prometheus.Counter
	turnCredentials prometheus.Counter
	storeSeconds    *prometheus.HistogramVec
}

func newMetrics(h *Hub) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		registrations: prometheus.NewCounter(prometheus.CounterOpts{Name: "callbox_hub_registrations_total",
			Help: "Boxes registered (signed hello accepted); rate() gives registrations per second."}),
		refused: prometheus.NewCounter(prometheus.CounterOpts{Name: "callbox_hub_registrations_refused_total",
			Help: "Registrations refused: bad signature, stale timestamp or replayed nonce."}),
		signals: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "callbox_hub_signals_total",
			Help: "Signalling messages forwarded between paired boxes, by route: local (same instance) or cluster (through NATS)."}, []string{"route"}),
		signalsFailed: prometheus.NewCounter(prometheus.CounterOpts{Name: "callbox_hub_signals_failed_total",
			Help: "Signalling messages not delivered (the box is offline or does not read)."}),
		turnCredentials: prometheus.NewCounter(prometheus.CounterOpts{Name: "callbox_hub_turn_credentials_total",
			Help: "TURN REST credentials handed out."}),
		storeSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "callbox_hub_store_seconds",
			Help:    "Latency of the hub's store calls, by operation.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1}}, []string{"op"}),
	}
	online := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "callbox_hub_boxes_online",
		Help: "Boxes connected to this instance."}, func() float64 {
		h.mu.Lock()
		defer h.mu.Unlock()
		return float64(len(h.sessions))
	})
	m.reg.MustRegister(m.registrations, m.refused, m.signals, m.signalsFailed, m.turnCredentials, m.storeSeconds, online,
		prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	m.signals.WithLabelValues("local")
	m.signals.WithLabelValues("cluster")
	return m
}

func (m *metrics) observeStore(op string, d time.Duration) {
	m.storeSeconds.WithLabelValues(op).Observe(d.Seconds())
}

// Metrics serves /metrics (Prometheus text format).
func (h *Hub) Metrics() http.Handler {
	return promhttp.HandlerFor(h.metrics.reg, promhttp.HandlerOpts{})
}

// Healthz serves /healthz: 200 while the process serves HTTP at all.
func (h *Hub) Healthz() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
}

// Readyz serves /readyz: 200 when this instance should get new boxes (its
// store answers, it is in its cluster, it is not draining), else 503 with
// the reason, so a load balancer sends boxes elsewhere.
func (h *Hub) Readyz() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := h.Ready(r.Context()); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
}

// Ready is Readyz's check.
func (h *Hub) Ready(ctx context.Context) error {
	if h.draining.Load() {
		return errDraining
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := h.store.Ping(ctx); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	if h.cluster != nil && !h.cluster.Connected() {
		return fmt.Errorf("cluster: not connected to NATS")
	}
	return nil
}

// Drain takes this instance out of service: /readyz turns 503, new
// registrations are refused, and the connected boxes are hung up on over
// DrainPeriod with WebSocket close code 1012 (service restart), which tells
// a box to reconnect at once (behind a load balancer: to another instance).
// It returns when every box has been told, or ctx ends.
func (h *Hub) Drain(ctx context.Context) {
	h.draining.Store(true)
	h.mu.Lock()
	ss := make([]*Session, 0, len(h.sessions))
	for _, s := range h.sessions {
		ss = append(ss, s)
	}
	h.mu.Unlock()
	if len(ss) == 0 {
		return
	}
	h.cfg.Log.Info("draining", "boxes", len(ss), "over", h.cfg.DrainPeriod)
	step := h.cfg.DrainPeriod / time.Duration(len(ss))
	t := time.NewTicker(max(step, time.Microsecond))
	defer t.Stop()
	for i, s := range ss {
		if i > 0 && step > 0 {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
		switch {
		case s.drain != nil:
			s.drain()
		case s.Close != nil:
			s.Close()
		}
	}
}

// legacyState is the JSON state file of hubs before the store.
type legacyState struct {
	Boxes map[string]struct {
		Key      []byte    `json:"key"`
		Name     string    `json:"name,omitempty"`
		LastSeen time.Time `json:"last_seen"`
	} `json:"boxes"`
	Pairs map[string][]string `json:"pairs"`
}

// importJSON moves a JSON state file's boxes and pairs into the store, one
// record per write, then renames the file so it is imported only once. A
// record already in the store is updated, so an import interrupted half-way
// is simply done again.
func (h *Hub) importJSON(path string) error {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("hub: import %s: %w", path, err)
	}
	var st legacyState
	if err := json.Unmarshal(b, &st); err != nil {
		return fmt.Errorf("hub: import %s: %w", path, err)
	}
	ctx := context.Background()
	ids := make([]string, 0, len(st.Boxes))
	for id := range st.Boxes {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		r := st.Boxes[id]
		if proto.BoxID(r.Key) != id {
			return fmt.Errorf("hub: import %s: box %s: its key does not hash to its ID (file left as it is)", path, id)
		}
		if err := h.store.PutBox(ctx, store.Box{ID: id, Key: r.Key, Name: r.Name, LastSeen: r.LastSeen}); err != nil {
			return fmt.Errorf("hub: import %s: box %s: %w", path, id, err)
		}
	}
	pairs := 0
	for a, bs := range st.Pairs {
		for _, b := range bs {
			if a >= b {
				continue // each pair is listed under both boxes
			}
			if _, err := h.store.AddPair(ctx, a, b, h.cfg.Now().UTC()); err != nil {
				return fmt.Errorf("hub: import %s: pair %s-%s: %w", path, a, b, err)
			}
			pairs++
		}
	}
	if err := os.Rename(path, path+".imported"); err != nil {
		return fmt.Errorf("hub: import %s: %w", path, err)
	}
	h.cfg.Log.Info("imported the JSON hub state into the store", "file", path, "boxes", len(ids), "pairs", pairs)
	return nil
}
