package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The wired binary serves the portal, the API's OpenAPI document, the
// sandbox tenant and the operations endpoints, and keeps its key private.
func TestServeWiring(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	a, err := open(ctx, config{dataDir: dir, httpAddr: "127.0.0.1:0", sandbox: true, logLevel: "info",
		adminEmail: "admin@localhost", sipListen: "udp:127.0.0.1:0", regRate: 50}, log)
	if err != nil {
		t.Fatal(err)
	}
	defer a.close()
	if err := a.start(ctx); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a.handler)
	defer srv.Close()
	for path, want := range map[string]string{
		"/healthz":             "ok",
		"/readyz":              "ready",
		"/api/v1/openapi.json": `"openapi"`,
		"/signin":              "<form",
		"/metrics":             "pbx2teams_registrations",
		"/_msim/common/v2.0/.well-known/openid-configuration": "token_endpoint",
		"/phone/":       "teams.js",
		"/_msim/teams/": "<",
	} {
		res, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 200 || !strings.Contains(string(body), want) {
			t.Errorf("GET %s = %d, body lacks %q", path, res.StatusCode, want)
		}
	}
	// The sandbox's Direct Routing trunk and the simulated proxies see
	// each other (OPTIONS both ways), and the call plane reports it.
	if a.calls == nil || a.calls.link == nil {
		t.Fatal("sandbox started without the call plane or the Phone App leg")
	}
	deadline := time.Now().Add(20 * time.Second)
	allUp := func() bool {
		st := a.calls.trunk.Status()
		for _, p := range st {
			if !p.Up {
				return false
			}
		}
		return len(st) == 3
	}
	for !allUp() {
		if time.Now().After(deadline) {
			t.Fatalf("trunk never active: %+v", a.calls.trunk.Status())
		}
		time.Sleep(50 * time.Millisecond)
	}
	res, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	for _, m := range []string{"pbx2teams_calls_active 0", `pbx2teams_teams_proxy_up{proxy="sip.pstnhub.microsoft.com"} 1`} {
		if !strings.Contains(string(body), m) {
			t.Errorf("/metrics lacks %q", m)
		}
	}
	fi, err := os.Stat(filepath.Join(dir, "secret.key"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v mode %v", err, fi.Mode())
	}
	// A second start on the same data creates no second admin.
	a.close()
	b, err := open(ctx, config{dataDir: dir, logLevel: "info", adminEmail: "admin@localhost", sipListen: "udp:127.0.0.1:0"}, log)
	if err != nil {
		t.Fatal(err)
	}
	b.close()
}
