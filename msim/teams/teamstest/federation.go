package teamstest

import (
	"crypto/tls"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/pbx2teams/pbx2teams/internal/testpeer/dnsserver"
	simteams "github.com/pbx2teams/pbx2teams/msim/teams"
)

// PhoneAppDomain is the Phone App (federation) domain of the service in
// tests: calls to Teams users come From numbers at this domain.
const PhoneAppDomain = "phoneapp.pbx2teams.test"

// TenantDomain is the domain of the tenant FederationEnv starts with.
const TenantDomain = "contoso.test"

// FederationOptions adjust the federation environment.
type FederationOptions struct {
	// Domain is the Phone App domain (default PhoneAppDomain); the
	// environment's client certificate is issued for it and *.Domain.
	Domain string
	// EdgeName is the edge's host name (default simteams.DefaultEdgeName).
	EdgeName string
	// Sim adjusts the simulator's configuration before start (e.g. set a
	// Directory).
	Sim func(*simteams.Config)
}

// FederationEnv is the Teams federation edge on loopback, with what a
// Phone App service needs to reach it: a test CA, DNS mapping the edge name
// to 127.0.0.1 and _sipfederationtls._tcp.<tenant domain> to the edge, and
// a client certificate for the Phone App domain.
type FederationEnv struct {
	PKI  *simteams.PKI
	DNS  *dnsserver.Server
	Sim  *simteams.Sim
	Edge *simteams.Edge
	// Domain is the Phone App domain; Certificate is a client
	// certificate for it (and its subdomains) from PKI.
	Domain      string
	Certificate tls.Certificate
	// Tenant is a tenant with the domain TenantDomain and Microsoft's
	// default external access (all domains allowed).
	Tenant *simteams.Tenant
}

// StartFederation starts the simulator with its federation edge. The
// simulator's Direct Routing proxies run too (on their own addresses) but
// no SBC is involved.
func StartFederation(t testing.TB, o FederationOptions) *FederationEnv {
	t.Helper()
	if o.Domain == "" {
		o.Domain = PhoneAppDomain
	}
	if o.EdgeName == "" {
		o.EdgeName = simteams.DefaultEdgeName
	}
	pki, err := simteams.NewPKI()
	if err != nil {
		t.Fatal(err)
	}
	dns, err := dnsserver.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dns.Close() })
	for i, name := range simteams.DefaultProxies {
		dns.SetA(name, netip.AddrFrom4([4]byte{127, 0, 0, byte(i + 1)}))
	}
	lo := netip.MustParseAddr("127.0.0.1")
	dns.SetA(o.EdgeName, lo)
	dns.SetA(o.Domain, lo)
	msCert, err := pki.Issue(append(append([]string{}, simteams.DefaultProxies...), "*.pstnhub.microsoft.com")...)
	if err != nil {
		t.Fatal(err)
	}
	clientCert, err := pki.Issue(o.Domain, "*."+o.Domain)
	if err != nil {
		t.Fatal(err)
	}
	scfg := simteams.Config{Certificate: msCert, Roots: pki.Pool(), Resolver: dns.Resolver(), OptionsInterval: time.Hour}
	if o.Sim != nil {
		o.Sim(&scfg)
	}
	sim, err := simteams.New(scfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	edge, err := sim.StartEdge(simteams.EdgeConfig{Name: o.EdgeName, PKI: pki})
	if err != nil {
		t.Fatal(err)
	}
	e := &FederationEnv{PKI: pki, DNS: dns, Sim: sim, Edge: edge, Domain: o.Domain, Certificate: clientCert}
	e.Tenant = e.AddTenant("tenant-contoso", TenantDomain)
	return e
}

// AddTenant adds a tenant with domains and publishes, for each, the SRV
// record _sipfederationtls._tcp.<domain> pointing at the edge, as
// Microsoft 365 domains do.
func (e *FederationEnv) AddTenant(id string, domains ...string) *simteams.Tenant {
	for _, d := range domains {
		e.PublishSRV(d)
	}
	return e.Sim.AddTenant(id, domains...)
}

// PublishSRV points _sipfederationtls._tcp.<domain> at the edge.
func (e *FederationEnv) PublishSRV(domain string) {
	e.DNS.SetSRV("_sipfederationtls._tcp."+domain, dnsserver.SRV{Priority: 100, Weight: 1, Port: uint16(e.Edge.Port), Target: e.Edge.Name})
}

// EdgeAddr is the edge's "name:port" (the name resolves through DNS).
func (e *FederationEnv) EdgeAddr() string { return e.Edge.Name + ":" + strconv.Itoa(e.Edge.Port) }

// ClientTLS is a TLS configuration for the Phone App side: the client
// certificate for the Phone App domain and trust in the edge's CA.
func (e *FederationEnv) ClientTLS() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{e.Certificate}, RootCAs: e.PKI.Pool()}
}
