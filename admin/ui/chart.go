package ui

import (
	"fmt"
	"html/template"
	"sort"
	"strings"
	"time"

	"hardbound/admin/metrics"
)

// chart is one SVG line chart of the last hour, drawn on the server so
// that it needs no script and reads the same without one.
type chart struct {
	Title  string
	Sub    string
	SVG    template.HTML
	Legend []legend
	Empty  bool
	Span   time.Duration
}

type legend struct {
	Label string
	Class string
	Last  float64
	Peak  float64
}

const (
	chartW, chartH = 600.0, 170.0
	padL, padB     = 44.0, 20.0
	padT           = 10.0
	chartSpan      = time.Hour
	maxLines       = 6
)

// newChart draws series (group -> points) over the last hour, or since
// the first sample when the server has run for less (so a fresh server's
// first minutes are not a sliver at the right edge). At most maxLines
// groups are drawn, the busiest; the rest are summed as "other".
func newChart(title, sub string, series map[string][]metrics.Point, now time.Time) chart {
	c := chart{Title: title, Sub: sub}
	span := time.Minute
	for _, pts := range series {
		if len(pts) > 0 {
			span = max(span, now.Sub(pts[0].At).Round(time.Minute)+time.Minute)
		}
	}
	span = min(span, chartSpan)
	c.Span = span
	type g struct {
		name string
		pts  []metrics.Point
		sum  float64
	}
	var gs []g
	for name, pts := range series {
		x := g{name: name, pts: pts}
		for _, p := range pts {
			x.sum += p.V
		}
		if x.sum > 0 {
			gs = append(gs, x)
		}
	}
	sort.Slice(gs, func(i, j int) bool {
		if gs[i].sum != gs[j].sum {
			return gs[i].sum > gs[j].sum
		}
		return gs[i].name < gs[j].name
	})
	if len(gs) > maxLines {
		other := g{name: "other"}
		for _, x := range gs[maxLines-1:] {
			if other.pts == nil {
				other.pts = append([]metrics.Point(nil), x.pts...)
				continue
			}
			for i := range other.pts {
				if i < len(x.pts) {
					other.pts[i].V += x.pts[i].V
				}
			}
		}
		gs = append(gs[:maxLines-1], other)
	}
	peak := 0.0
	for _, x := range gs {
		for _, p := range x.pts {
			peak = max(peak, p.V)
		}
	}
	c.Empty = len(gs) == 0
	top := niceCeil(peak)
	start := now.Add(-span)
	xOf := func(t time.Time) float64 {
		return padL + (chartW-padL-8)*float64(t.Sub(start))/float64(span)
	}
	yOf := func(v float64) float64 { return padT + (chartH-padB-padT)*(1-v/top) }

	var b strings.Builder
	fmt.Fprintf(&b, `<svg viewBox="0 0 %.0f %.0f" class="chart" role="img" aria-label="%s, last %s, peak %s per second">`,
		chartW, chartH, template.HTMLEscapeString(title), spanText(span), fmtRate(peak))
	for i := 0; i <= 2; i++ {
		v := top * float64(i) / 2
		y := yOf(v)
		fmt.Fprintf(&b, `<line class="grid" x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f"/>`, padL, y, chartW, y)
		fmt.Fprintf(&b, `<text class="axis" x="%.1f" y="%.1f" text-anchor="end">%s</text>`, padL-4, y+4, fmtRate(v))
	}
	for i := 4; i >= 0; i-- {
		back := span * time.Duration(i) / 4
		label := "now"
		if i > 0 {
			label = "-" + spanText(back)
		}
		fmt.Fprintf(&b, `<text class="axis" x="%.1f" y="%.1f" text-anchor="middle">%s</text>`, min(max(xOf(now.Add(-back)), padL+14), chartW-16), chartH-4, label)
	}
	for i, x := range gs {
		cls := fmt.Sprintf("s%d", i)
		var pts []string
		last := 0.0
		xpeak := 0.0
		for _, p := range x.pts {
			if p.At.Before(start) {
				continue
			}
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", xOf(p.At), yOf(p.V)))
			last, xpeak = p.V, max(xpeak, p.V)
		}
		if len(pts) == 1 {
			pts = append(pts, pts[0]) // a dot is still drawn
		}
		fmt.Fprintf(&b, `<polyline class="line %s" points="%s"/>`, cls, strings.Join(pts, " "))
		c.Legend = append(c.Legend, legend{Label: dash(x.name), Class: cls, Last: last, Peak: xpeak})
	}
	b.WriteString(`</svg>`)
	c.SVG = template.HTML(b.String()) // every value above is a number or escaped
	return c
}

// spanText is a duration as the axis shows it: 45m, 90s.
func spanText(d time.Duration) string {
	if d >= time.Minute && d%time.Minute == 0 {
		return fmt.Sprintf("%dm", int(d.Minutes()))
	}
	return fmt.Sprintf("%ds", int(d.Seconds()))
}

// niceCeil rounds a chart's top up to 1, 2 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := 1e-3
	for p*10 <= v {
		p *= 10
	}
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}
