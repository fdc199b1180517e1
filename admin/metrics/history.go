package metrics

import (
	"context"
	"sort"
	"strings"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"
)

// Point is one value of a series at a time.
type Point struct {
	At time.Time
	V  float64
}

// History keeps the last span of a few of the registry's own series,
// sampled every interval, so the admin console can chart the last hour
// without a Prometheus server. Only the named families are kept (a
// histogram as its _count), which bounds its memory: at 10 s over an hour
// it is 360 samples of a few dozen series.
type History struct {
	reg      *Registry
	every    time.Duration
	keep     int
	families map[string]bool

	mu      sync.Mutex
	samples []sample // oldest first, at most keep
}

type sample struct {
	at     time.Time
	series map[string]float64 // "family\x00k=v\x00k=v" -> value
}

// NewHistory samples families (full names, e.g. hardbound_radius_rejects_total)
// every interval and keeps span of them. Run samples until its context
// ends; Sample takes one now.
func (r *Registry) NewHistory(every, span time.Duration, families ...string) *History {
	h := &History{reg: r, every: every, keep: int(span/every) + 1, families: map[string]bool{}}
	for _, f := range families {
		h.families[f] = true
	}
	return h
}

// Interval is the sampling interval.
func (h *History) Interval() time.Duration { return h.every }

// Run samples every interval until ctx ends.
func (h *History) Run(ctx context.Context) {
	t := time.NewTicker(h.every)
	defer t.Stop()
	h.Sample(time.Now())
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			h.Sample(now)
		}
	}
}

// Sample reads the registry once.
func (h *History) Sample(now time.Time) {
	mfs, err := h.reg.reg.Gather()
	if err != nil && len(mfs) == 0 {
		return
	}
	s := sample{at: now, series: map[string]float64{}}
	for _, mf := range mfs {
		name := mf.GetName()
		for _, m := range mf.GetMetric() {
			var v float64
			key := name
			switch {
			case mf.GetType() == dto.MetricType_COUNTER && h.families[name]:
				v = m.GetCounter().GetValue()
			case mf.GetType() == dto.MetricType_GAUGE && h.families[name]:
				v = m.GetGauge().GetValue()
			case mf.GetType() == dto.MetricType_HISTOGRAM && h.families[name+"_count"]:
				key, v = name+"_count", float64(m.GetHistogram().GetSampleCount())
			default:
				continue
			}
			for _, lp := range m.GetLabel() {
				key += "\x00" + lp.GetName() + "=" + lp.GetValue()
			}
			s.series[key] = v
		}
	}
	h.mu.Lock()
	h.samples = append(h.samples, s)
	if over := len(h.samples) - h.keep; over > 0 {
		h.samples = append(h.samples[:0:0], h.samples[over:]...)
	}
	h.mu.Unlock()
}

// match reports whether a series key belongs to family and has every
// label of want, and returns its value of label by ("" when by is "").
func match(key, family string, want map[string]string, by string) (string, bool) {
	parts := strings.Split(key, "\x00")
	if parts[0] != family {
		return "", false
	}
	labels := map[string]string{}
	for _, p := range parts[1:] {
		k, v, _ := strings.Cut(p, "=")
		labels[k] = v
	}
	for k, v := range want {
		if labels[k] != v {
			return "", false
		}
	}
	if by == "" {
		return "", true
	}
	return labels[by], true
}

// Rates is the per-second rate of a counter family between consecutive
// samples, summed over the series that carry the labels of want and
// grouped by the value of label by ("" sums them all under ""). A counter
// that went down (a restart) counts from zero.
func (h *History) Rates(family string, want map[string]string, by string) map[string][]Point {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := map[string][]Point{}
	for i := 1; i < len(h.samples); i++ {
		prev, cur := h.samples[i-1], h.samples[i]
		dt := cur.at.Sub(prev.at).Seconds()
		if dt <= 0 {
			continue
		}
		sums := map[string]float64{}
		for key, v := range cur.series {
			g, ok := match(key, family, want, by)
			if !ok {
				continue
			}
			d := v - prev.series[key]
			if d < 0 {
				d = v
			}
			sums[g] += d / dt
		}
		for g := range out {
			if _, ok := sums[g]; !ok {
				sums[g] = 0
			}
		}
		for g, v := range sums {
			if len(out[g]) == 0 && i > 1 {
				// A group that appears late starts at zero from the first sample.
				for j := 1; j < i; j++ {
					out[g] = append(out[g], Point{At: h.samples[j].at})
				}
			}
			out[g] = append(out[g], Point{At: cur.at, V: v})
		}
	}
	return out
}

// Values is a gauge family over time, summed like Rates.
func (h *History) Values(family string, want map[string]string, by string) map[string][]Point {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := map[string][]Point{}
	for _, s := range h.samples {
		sums := map[string]float64{}
		for key, v := range s.series {
			if g, ok := match(key, family, want, by); ok {
				sums[g] += v
			}
		}
		for g, v := range sums {
			out[g] = append(out[g], Point{At: s.at, V: v})
		}
	}
	return out
}

// Totals is the latest sample of a family, summed like Rates: counts
// since the server started.
func (h *History) Totals(family string, want map[string]string, by string) map[string]float64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := map[string]float64{}
	if len(h.samples) == 0 {
		return out
	}
	for key, v := range h.samples[len(h.samples)-1].series {
		if g, ok := match(key, family, want, by); ok {
			out[g] += v
		}
	}
	return out
}

// Groups returns the keys of m sorted by descending value, then name.
func Groups(m map[string]float64) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool {
		if m[out[i]] != m[out[j]] {
			return m[out[i]] > m[out[j]]
		}
		return out[i] < out[j]
	})
	return out
}
