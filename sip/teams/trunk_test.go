package teams_test

import (
	"context"
	"crypto/tls"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	simteams "github.com/pbx2teams/pbx2teams/msim/teams"
	"github.com/pbx2teams/pbx2teams/msim/teams/teamstest"
	"github.com/pbx2teams/pbx2teams/sip/teams"
)

func TestE164(t *testing.T) {
	for in, want := range map[string]string{
		"+44 20 7946 0000":  "+442079460000",
		"0044-20-7946-0000": "+442079460000",
		"+1 (425) 555-0100": "+14255550100",
		"1001":              "",
		"+0123":             "",
		"+12ab":             "",
		"+":                 "",
		"+1234567890123456": "",
	} {
		got, ok := teams.E164(in)
		if (want != "") != ok || got != want {
			t.Errorf("E164(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
	if got := teams.CallerNumber("1001"); got != "1001" {
		t.Errorf("CallerNumber(1001) = %q", got)
	}
}

func TestLabelOf(t *testing.T) {
	base := "sbc.example.com"
	for host, want := range map[string]string{
		"contoso.sbc.example.com":      "contoso",
		"CONTOSO.sbc.example.com.":     "contoso",
		"a.b.sbc.example.com":          "",
		"sbc.example.com":              "",
		"contoso.sbc.example.com.evil": "",
		"-x.sbc.example.com":           "",
	} {
		got, ok := teams.LabelOf(host, base)
		if (want != "") != ok || got != want {
			t.Errorf("LabelOf(%q) = %q, %v; want %q", host, got, ok, want)
		}
	}
}

func TestConfigRefusesIPAndMissingCertificate(t *testing.T) {
	if _, err := teams.New(teams.Config{FQDN: "192.0.2.1", Listen: "127.0.0.1:0", Transport: "tcp"}); err == nil ||
		!strings.Contains(err.Error(), "FQDN") {
		t.Fatalf("IP as FQDN accepted: %v", err)
	}
	if _, err := teams.New(teams.Config{FQDN: "sbc.example.com", Listen: "127.0.0.1:0"}); err == nil ||
		!strings.Contains(err.Error(), "certificate") {
		t.Fatalf("TLS without certificate accepted: %v", err)
	}
}

// The SBC pings every proxy by name over mutual TLS; the simulator answers
// 200 for the known carrier FQDN and pings back the FQDN of the Contact,
// which the trunk answers: Microsoft would show the SBC as active.
func TestKeepAliveBothWays(t *testing.T) {
	env := teamstest.Start(t, teamstest.Options{})
	env.Trunk.Start()
	env.WaitActive(t)
	deadline := time.Now().Add(10 * time.Second)
	for _, st := range env.Trunk.Status() {
		for !st.Up && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
			for _, s2 := range env.Trunk.Status() {
				if s2.Name == st.Name {
					st = s2
				}
			}
		}
		if !st.Up {
			t.Errorf("proxy %s not up: %s", st.Name, st.LastError)
		}
	}
	recs := env.Sim.Records("OPTIONS")
	if len(recs) < 3 {
		t.Fatalf("simulator received %d OPTIONS, want one per proxy", len(recs))
	}
	seen := map[string]bool{}
	for _, r := range recs {
		seen[r.Datacenter] = true
		req := r.Request
		if c := req.Contact(); c == nil || c.Address.Host != teamstest.FQDN || c.Address.Port != env.Trunk.Port() {
			t.Errorf("OPTIONS Contact = %v, want the SBC FQDN and port", req.Contact())
		} else if tr, _ := c.Address.UriParams.Get("transport"); tr != "tls" {
			t.Errorf("OPTIONS Contact transport = %q", tr)
		}
		if req.Recipient.Host != r.Datacenter {
			t.Errorf("OPTIONS Request-URI %s sent to %s: want the proxy's name", req.Recipient.String(), r.Datacenter)
		}
		if h := req.GetHeader("X-MS-SBC"); h == nil || h.Value() != "pbx2teams/B2BUA/test" {
			t.Errorf("OPTIONS without X-MS-SBC: %v", h)
		}
		if v := req.Via(); v == nil || v.Host != teamstest.FQDN {
			t.Errorf("Via host = %v, want the FQDN", v)
		}
	}
	for _, name := range simteams.DefaultProxies {
		if !seen[name] {
			t.Errorf("no OPTIONS reached %s", name)
		}
	}
}

// A proxy answering 503 is demoted: calls try the others first.
func TestFailoverOrder(t *testing.T) {
	env := teamstest.Start(t, teamstest.Options{})
	env.Sim.Datacenter("sip.pstnhub.microsoft.com").SetMode(simteams.Unavailable)
	env.Trunk.Start()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	env.Trunk.Ping(ctx)
	got := env.Trunk.Targets()
	want := []string{"sip2.pstnhub.microsoft.com", "sip3.pstnhub.microsoft.com", "sip.pstnhub.microsoft.com"}
	for i, tg := range got {
		if tg.Proxy != want[i] || tg.Port != env.Sim.Port() {
			t.Fatalf("targets = %+v, want %v", got, want)
		}
	}
	env.Sim.Datacenter("sip.pstnhub.microsoft.com").SetMode(simteams.Up)
	env.Trunk.Ping(ctx)
	if got := env.Trunk.Targets(); got[0].Proxy != "sip.pstnhub.microsoft.com" {
		t.Fatalf("recovered proxy not first again: %+v", got)
	}
	env.Trunk.ReportFailure("sip.pstnhub.microsoft.com", 503, time.Hour)
	if got := env.Trunk.Targets(); got[0].Proxy != "sip2.pstnhub.microsoft.com" {
		t.Fatalf("503 with Retry-After did not demote: %+v", got)
	}
	if !teams.ShouldFailover(503) || !teams.ShouldFailover(408) || !teams.ShouldFailover(0) ||
		teams.ShouldFailover(603) || teams.ShouldFailover(486) || teams.ShouldFailover(404) {
		t.Fatal("failover codes wrong")
	}
}

// An SBC FQDN Microsoft does not know gets 403 to its OPTIONS.
func TestKeepAliveUnknownFQDN(t *testing.T) {
	env := teamstest.Start(t, teamstest.Options{UnknownGateway: true})
	env.Trunk.Start()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	env.Trunk.Ping(ctx)
	for _, st := range env.Trunk.Status() {
		if st.Up || !strings.Contains(st.LastError, "403") {
			t.Errorf("proxy %s: up=%v error=%q, want 403", st.Name, st.Up, st.LastError)
		}
	}
	if env.Trunk.Active() {
		t.Error("trunk active with every proxy refusing it")
	}
}

// Only a peer with a certificate for Microsoft's domain may connect to
// the trunk's listener.
func TestListenerRequiresMicrosoftCertificate(t *testing.T) {
	env := teamstest.Start(t, teamstest.Options{})
	env.Trunk.Start()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(env.Trunk.LocalPort()))
	try := func(certs []tls.Certificate) error {
		d := &net.Dialer{Timeout: 3 * time.Second}
		c, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{ServerName: teamstest.FQDN, RootCAs: env.PKI.Pool(), Certificates: certs})
		if err != nil {
			return err
		}
		defer c.Close()
		// TLS 1.3 reports the server's refusal of a client certificate on
		// the first read.
		c.SetDeadline(time.Now().Add(3 * time.Second))
		if _, err := c.Write([]byte("OPTIONS sip:x SIP/2.0\r\n\r\n")); err != nil {
			return err
		}
		_, err = c.Read(make([]byte, 1))
		return err
	}
	if err := try(nil); err == nil {
		t.Error("connection without client certificate accepted")
	}
	evil, err := env.PKI.Issue("pbx.attacker.test")
	if err != nil {
		t.Fatal(err)
	}
	if err := try([]tls.Certificate{evil}); err == nil {
		t.Error("connection with a non-Microsoft certificate accepted")
	}
	ms, err := env.PKI.Issue("sip.pstnhub.microsoft.com")
	if err != nil {
		t.Fatal(err)
	}
	if err := try([]tls.Certificate{ms}); err != nil && strings.Contains(err.Error(), "certificate") {
		t.Errorf("Microsoft certificate refused: %v", err)
	}
}

// A renewed certificate is presented from the next connection on, and
// connections made with the old one are closed.
func TestSetCertificate(t *testing.T) {
	env := teamstest.Start(t, teamstest.Options{})
	env.Trunk.Start()
	env.WaitActive(t)
	ms, err := env.PKI.Issue("sip.pstnhub.microsoft.com")
	if err != nil {
		t.Fatal(err)
	}
	serial := func() string {
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(env.Trunk.LocalPort()))
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 3 * time.Second}, "tcp", addr,
			&tls.Config{ServerName: teamstest.FQDN, RootCAs: env.PKI.Pool(), Certificates: []tls.Certificate{ms}})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].SerialNumber.String()
	}
	before := serial()
	renewed, err := env.PKI.Issue(teamstest.FQDN, "*."+teamstest.FQDN)
	if err != nil {
		t.Fatal(err)
	}
	if err := env.Trunk.SetCertificate(&renewed); err != nil {
		t.Fatal(err)
	}
	if after := serial(); after == before || after != renewed.Leaf.SerialNumber.String() {
		t.Fatalf("certificate after renewal %s, before %s, want %s", after, before, renewed.Leaf.SerialNumber)
	}
	// Keep-alives work again over new connections.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	env.Trunk.Ping(ctx)
	if !env.Trunk.Active() {
		t.Fatalf("trunk not active after renewal: %+v", env.Trunk.Status())
	}
}
