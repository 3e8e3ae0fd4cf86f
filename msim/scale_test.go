package msim

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"testing"
	"time"
)

// pageAll pages /users with $top=999 over loopback and returns the number
// of users seen.
func pageAll(tb testing.TB, srv *httptest.Server, tok string) int {
	next := srv.URL + "/v1.0/users?$top=999&$select=id,userPrincipalName,displayName,mail,businessPhones,accountEnabled,userType,assignedLicenses,assignedPlans"
	n := 0
	for next != "" {
		req, _ := http.NewRequest("GET", next, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := hc.Do(req)
		if err != nil {
			tb.Fatal(err)
		}
		var p struct {
			Next  string            `json:"@odata.nextLink"`
			Value []json.RawMessage `json:"value"`
		}
		err = json.NewDecoder(resp.Body).Decode(&p)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 {
			tb.Fatalf("page: %d %v", resp.StatusCode, err)
		}
		n += len(p.Value)
		next = p.Next
	}
	return n
}

func appToken(tb testing.TB, srv *httptest.Server, tid string) string {
	form := url.Values{"client_id": {SandboxSyncClientID}, "client_secret": {SandboxSyncClientSecret},
		"grant_type": {"client_credentials"}, "scope": {"https://graph.microsoft.com/.default"}}
	resp, err := hc.PostForm(srv.URL+"/"+tid+"/oauth2/v2.0/token", form)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var tr struct {
		AccessToken string `json:"access_token"`
	}
	if json.Unmarshal(b, &tr) != nil || tr.AccessToken == "" {
		tb.Fatalf("token: %s", b)
	}
	return tr.AccessToken
}

// BenchmarkPage100k pages a generated tenant of 100,000 users at $top=999
// over loopback HTTP (go test -bench Page100k -benchtime 3x ./msim).
func BenchmarkPage100k(b *testing.B) {
	s, err := NewSandbox(Options{})
	if err != nil {
		b.Fatal(err)
	}
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	start := time.Now()
	tid, err := s.Generate("Big", "big.example", GenerateSpec{Users: 100_000})
	if err != nil {
		b.Fatal(err)
	}
	gen := time.Since(start)
	runtime.GC()
	runtime.ReadMemStats(&m1)
	_ = s.GrantConsent(tid, SandboxSyncClientID)
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	tok := appToken(b, srv, tid)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if n := pageAll(b, srv, tok); n != 100_000 {
			b.Fatalf("paged %d users", n)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(m1.HeapAlloc-m0.HeapAlloc)/100_000, "heap-B/user")
	b.ReportMetric(gen.Seconds(), "generate-s")
}
