// Package metrics keeps counters and gauges and writes them in the
// Prometheus text exposition format, without a client library: the service
// exports a few dozen series and needs nothing more.
package metrics

import (
	"fmt"
	"io"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Registry holds metric families and collectors.
type Registry struct {
	mu         sync.Mutex
	families   map[string]*family
	collectors []func(emit func(name, help, kind string, labels Labels, value float64))
}

// Labels are a metric's label pairs.
type Labels map[string]string

type family struct {
	name, help, kind string
	mu               sync.Mutex
	series           map[string]*series
}

type series struct {
	labels string
	bits   atomic.Uint64 // float64 bits
	hist   *histogram
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{families: map[string]*family{}} }

func (r *Registry) family(name, help, kind string) *family {
	r.mu.Lock()
	defer r.mu.Unlock()
	f := r.families[name]
	if f == nil {
		f = &family{name: name, help: help, kind: kind, series: map[string]*series{}}
		r.families[name] = f
	}
	return f
}

func (f *family) get(l Labels) *series {
	key := formatLabels(l)
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.series[key]
	if s == nil {
		s = &series{labels: key}
		if f.kind == "histogram" {
			s.hist = newHistogram()
		}
		f.series[key] = s
	}
	return s
}

// Counter is a monotonically increasing value.
type Counter struct{ s *series }

// Add adds v (≥ 0).
func (c Counter) Add(v float64) {
	for {
		old := c.s.bits.Load()
		if c.s.bits.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+v)) {
			return
		}
	}
}

// Inc adds one.
func (c Counter) Inc() { c.Add(1) }

// Counter returns the counter name{labels}, creating it on first use.
func (r *Registry) Counter(name, help string, l Labels) Counter {
	return Counter{r.family(name, help, "counter").get(l)}
}

// Gauge is a value that goes up and down.
type Gauge struct{ s *series }

// Set sets the value.
func (g Gauge) Set(v float64) { g.s.bits.Store(math.Float64bits(v)) }

// Gauge returns the gauge name{labels}, creating it on first use.
func (r *Registry) Gauge(name, help string, l Labels) Gauge {
	return Gauge{r.family(name, help, "gauge").get(l)}
}

// Histogram observes durations in seconds.
type Histogram struct{ s *series }

// Observe records one value.
func (h Histogram) Observe(v float64) { h.s.hist.observe(v) }

// Histogram returns the histogram name{labels}, creating it on first use.
func (r *Registry) Histogram(name, help string, l Labels) Histogram {
	return Histogram{r.family(name, help, "histogram").get(l)}
}

// Collect registers fn, called at each scrape to emit values computed then
// (e.g. registration counts by state from the SIP engine).
func (r *Registry) Collect(fn func(emit func(name, help, kind string, labels Labels, value float64))) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.collectors = append(r.collectors, fn)
}

var buckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

type histogram struct {
	mu     sync.Mutex
	counts []uint64
	sum    float64
	n      uint64
}

func newHistogram() *histogram { return &histogram{counts: make([]uint64, len(buckets))} }

func (h *histogram) observe(v float64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for i, b := range buckets {
		if v <= b {
			h.counts[i]++
		}
	}
	h.sum += v
	h.n++
}

func formatLabels(l Labels) string {
	if len(l) == 0 {
		return ""
	}
	keys := make([]string, 0, len(l))
	for k := range l {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(k)
		b.WriteString(`="`)
		b.WriteString(strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`).Replace(l[k]))
		b.WriteByte('"')
	}
	return b.String()
}

func withLabel(labels, extra string) string {
	if labels == "" {
		return "{" + extra + "}"
	}
	return "{" + labels + "," + extra + "}"
}

func braces(labels string) string {
	if labels == "" {
		return ""
	}
	return "{" + labels + "}"
}

func num(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

// WriteTo writes every series in the text exposition format.
func (r *Registry) WriteTo(w io.Writer) (int64, error) {
	var b strings.Builder
	r.mu.Lock()
	names := make([]string, 0, len(r.families))
	for n := range r.families {
		names = append(names, n)
	}
	fams := r.families
	collectors := append([]func(func(string, string, string, Labels, float64)){}, r.collectors...)
	r.mu.Unlock()
	sort.Strings(names)
	for _, n := range names {
		f := fams[n]
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s %s\n", f.name, f.help, f.name, f.kind)
		f.mu.Lock()
		keys := make([]string, 0, len(f.series))
		for k := range f.series {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			s := f.series[k]
			if s.hist == nil {
				fmt.Fprintf(&b, "%s%s %s\n", f.name, braces(k), num(math.Float64frombits(s.bits.Load())))
				continue
			}
			s.hist.mu.Lock()
			for i, ub := range buckets {
				fmt.Fprintf(&b, "%s_bucket%s %d\n", f.name, withLabel(k, `le="`+num(ub)+`"`), s.hist.counts[i])
			}
			fmt.Fprintf(&b, "%s_bucket%s %d\n%s_sum%s %s\n%s_count%s %d\n", f.name, withLabel(k, `le="+Inf"`), s.hist.n,
				f.name, braces(k), num(s.hist.sum), f.name, braces(k), s.hist.n)
			s.hist.mu.Unlock()
		}
		f.mu.Unlock()
	}
	seen := map[string]bool{}
	for _, c := range collectors {
		c(func(name, help, kind string, l Labels, v float64) {
			if !seen[name] {
				seen[name] = true
				fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, kind)
			}
			fmt.Fprintf(&b, "%s%s %s\n", name, braces(formatLabels(l)), num(v))
		})
	}
	n, err := io.WriteString(w, b.String())
	return int64(n), err
}

// Handler serves the registry at /metrics.
func (r *Registry) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		r.WriteTo(w)
	})
}

// Instrument wraps h to count requests by method, route class and status, and
// to time them. route maps a request to a low-cardinality name.
func (r *Registry) Instrument(h http.Handler, route func(*http.Request) string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, code: 200}
		h.ServeHTTP(sw, req)
		rt := route(req)
		r.Counter("pbx2teams_http_requests_total", "HTTP requests by route and status.",
			Labels{"route": rt, "method": req.Method, "code": strconv.Itoa(sw.code)}).Inc()
		r.Histogram("pbx2teams_http_request_duration_seconds", "HTTP request duration.", Labels{"route": rt}).
			Observe(time.Since(start).Seconds())
	})
}

type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	w.code = code
	w.ResponseWriter.WriteHeader(code)
}

// Flush passes through for streaming responses (server-sent events).
func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
