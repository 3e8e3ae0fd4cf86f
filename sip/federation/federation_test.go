package federation_test

import (
	"context"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pbx2teams/pbx2teams"
	simteams "github.com/pbx2teams/pbx2teams/msim/teams"
	"github.com/pbx2teams/pbx2teams/msim/teams/teamstest"
	"github.com/pbx2teams/pbx2teams/sip/federation"
)

const domain = "phoneapp.pbx2teams.test"

func quiet() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
}

// edgeEnv starts the simulator's federation edge and returns a link
// configuration toward it (certificate issued for certName).
func edgeEnv(t *testing.T, certName string) (*simteams.Edge, federation.Config) {
	t.Helper()
	te := teamstest.Start(t, teamstest.Options{})
	edge, err := te.Sim.StartEdge(simteams.EdgeConfig{PKI: te.PKI})
	if err != nil {
		t.Fatal(err)
	}
	cert, err := te.PKI.Issue(certName)
	if err != nil {
		t.Fatal(err)
	}
	return edge, federation.Config{Domain: domain, Listen: "127.0.0.1:0", Certificate: &cert,
		Edge: net.JoinHostPort(edge.IP, strconv.Itoa(edge.Port)), EdgeName: edge.Name, EdgeRoots: te.PKI.Pool(),
		Resolver: te.DNS.Resolver(), Logger: quiet()}
}

func start(t *testing.T, cfg federation.Config) *federation.Link {
	t.Helper()
	l, err := federation.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	l.Start()
	return l
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// A keep-alive reaches the edge over mutual TLS, from the Phone App
// domain, with a Contact naming the domain (never an address).
func TestPingEdge(t *testing.T) {
	edge, cfg := edgeEnv(t, domain)
	l := start(t, cfg)
	if err := l.Ping(ctxT(t)); err != nil {
		t.Fatalf("ping: %v", err)
	}
	// The edge records a request after answering it.
	var recs []simteams.Record
	for deadline := time.Now().Add(5 * time.Second); len(recs) == 0 && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		recs = edge.Records("OPTIONS")
	}
	if len(recs) != 1 || recs[0].Status != 200 {
		t.Fatalf("edge records %+v", recs)
	}
	req := recs[0].Request
	if req.From().Address.Host != domain || req.Contact().Address.Host != domain || req.Contact().Address.Port != l.Port() {
		t.Errorf("OPTIONS From %s Contact %s", req.From().Value(), req.Contact().Value())
	}
	if ok, last := l.Status(); ok.IsZero() || last != "" {
		t.Errorf("status %v %q", ok, last)
	}
}

// The edge's certificate must carry the configured edge name.
func TestEdgeNameChecked(t *testing.T) {
	edge, cfg := edgeEnv(t, domain)
	cfg.EdgeName = "sipfed.elsewhere.test"
	l := start(t, cfg)
	err := l.Ping(ctxT(t))
	if err == nil {
		t.Fatal("a certificate for another name was accepted")
	}
	if n := len(edge.Records("OPTIONS")); n != 0 {
		t.Errorf("the edge received %d requests over a connection we should have refused", n)
	}
	if _, last := l.Status(); last == "" {
		t.Error("the failure is not in the status")
	}
}

// A certificate that does not cover the Phone App domain is refused by
// the edge with 403.
func TestClientCertificateForOtherDomain(t *testing.T) {
	_, cfg := edgeEnv(t, "other.pbx2teams.test")
	l := start(t, cfg)
	err := l.Ping(ctxT(t))
	if err == nil || !strings.Contains(err.Error(), "403") {
		t.Fatalf("ping with a certificate for another domain: %v", err)
	}
}

func TestConfigRefused(t *testing.T) {
	_, cfg := edgeEnv(t, domain)
	for name, change := range map[string]func(*federation.Config){
		"ip domain":   func(c *federation.Config) { c.Domain = "192.0.2.1" },
		"no cert":     func(c *federation.Config) { c.Certificate = nil },
		"no listen":   func(c *federation.Config) { c.Listen = "" },
		"bad edge":    func(c *federation.Config) { c.Edge = "edge:port" },
		"single name": func(c *federation.Config) { c.Domain = "localhost" },
	} {
		c := cfg
		change(&c)
		if _, err := federation.New(c); pbx2teams.ErrorCode(err) != pbx2teams.EInvalid {
			t.Errorf("%s: %v, want invalid", name, err)
		}
	}
	c := cfg
	c.Edge = ""
	c.EdgeName = ""
	l, err := federation.New(c)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if l.Edge() != federation.DefaultEdge {
		t.Errorf("default edge %q", l.Edge())
	}
}

func TestUserURI(t *testing.T) {
	if u, ok := federation.UserURI("Alice@Contoso.com"); !ok || u.String() != "sip:Alice@contoso.com" {
		t.Errorf("UserURI = %v %v", u.String(), ok)
	}
	for _, bad := range []string{"", "alice", "@contoso.com", "alice@", "a b@contoso.com", "a;x@contoso.com"} {
		if _, ok := federation.UserURI(bad); ok {
			t.Errorf("UserURI(%q) accepted", bad)
		}
	}
}
