package m365_test

import (
	"net/http/httptest"
	"runtime"
	"testing"
	"time"

	"github.com/pbx2teams/pbx2teams/m365"
	"github.com/pbx2teams/pbx2teams/msim"
)

// BenchmarkSync100k measures the client over loopback against a generated
// tenant of 100,000 users: a full listing ($top=999, SyncSelect, classified
// page by page) and a delta round after 1,000 random changes.
//
//	go test -run X -bench Sync100k -benchtime 3x ./m365
func BenchmarkSync100k(b *testing.B) {
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		sim, _ := msim.NewSandbox(msim.Options{})
		tid, _ := sim.Generate("Big", "big.example", msim.GenerateSpec{Users: 100_000, Seed: int64(i + 1)})
		_ = sim.GrantConsent(tid, msim.SandboxSyncClientID)
		srv := httptest.NewServer(sim.Handler())
		c := m365.New(m365.Config{ClientID: msim.SandboxSyncClientID, ClientSecret: msim.SandboxSyncClientSecret,
			LoginURL: srv.URL, GraphURL: srv.URL, Logger: quiet})
		g := c.App(tid)
		ctx := b.Context()
		b.StartTimer()

		start := time.Now()
		link, err := g.LatestDeltaLink(ctx, nil)
		if err != nil {
			b.Fatal(err)
		}
		n, phone := 0, 0
		var peak uint64
		err = g.ListUsers(ctx, m365.UserQuery{}, func(p []m365.User) error {
			for i := range p {
				n++
				if m365.Classify(&p[i]).HasTeamsPhone {
					phone++
				}
			}
			if n%20_000 < 999 {
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				peak = max(peak, ms.HeapInuse)
			}
			return nil
		})
		if err != nil || n != 100_000 {
			b.Fatalf("full: %d users, %v", n, err)
		}
		full := time.Since(start)

		sum, _ := sim.RandomChanges(tid, 1000, 9)
		start = time.Now()
		changed := 0
		if _, err := g.UsersDelta(ctx, link, nil, func(p []m365.User) error { changed += len(p); return nil }); err != nil {
			b.Fatal(err)
		}
		delta := time.Since(start)
		if changed != sum.DistinctChanged {
			b.Fatalf("delta returned %d users, %d changed", changed, sum.DistinctChanged)
		}
		b.ReportMetric(full.Seconds(), "full-s")
		b.ReportMetric(delta.Seconds(), "delta-s")
		b.ReportMetric(float64(peak)/(1<<20), "heap-inuse-MB")
		srv.Close()
	}
}
