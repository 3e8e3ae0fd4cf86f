package metrics

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestExposition(t *testing.T) {
	r := NewRegistry()
	r.Counter("reqs_total", "Requests.", Labels{"code": "200"}).Add(2)
	r.Counter("reqs_total", "Requests.", Labels{"code": "200"}).Inc()
	r.Gauge("regs", "Registrations.", Labels{"state": `re"g`}).Set(5)
	r.Histogram("lat_seconds", "Latency.", nil).Observe(0.003)
	r.Collect(func(emit func(string, string, string, Labels, float64)) {
		emit("calls_active", "Active calls.", "gauge", nil, 7)
	})
	var b strings.Builder
	r.WriteTo(&b)
	out := b.String()
	for _, want := range []string{
		"# TYPE reqs_total counter", `reqs_total{code="200"} 3`,
		`regs{state="re\"g"} 5`, `lat_seconds_bucket{le="0.0025"} 0`, `lat_seconds_bucket{le="0.005"} 1`,
		`lat_seconds_bucket{le="+Inf"} 1`, "lat_seconds_count 1", "# TYPE calls_active gauge", "calls_active 7",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("exposition lacks %q:\n%s", want, out)
		}
	}
}

func TestInstrument(t *testing.T) {
	r := NewRegistry()
	h := r.Instrument(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(404) }),
		func(*http.Request) string { return "api" })
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/x", nil))
	rec := httptest.NewRecorder()
	r.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if !strings.Contains(rec.Body.String(), `pbx2teams_http_requests_total{code="404",method="GET",route="api"} 1`) {
		t.Fatalf("request not counted:\n%s", rec.Body.String())
	}
}
