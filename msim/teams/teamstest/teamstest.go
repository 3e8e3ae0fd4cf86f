// Package teamstest wires a Teams Direct Routing trunk (sip/teams) to the
// Direct Routing simulator (msim/teams) on loopback for tests: a test CA,
// a DNS server that maps Microsoft's proxy names to 127.0.0.1, .2 and .3
// and the SBC's FQDNs to 127.0.0.1, the simulator's three proxies, and a
// trunk with a certificate for the SBC FQDN and its customer subdomains.
package teamstest

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/pbx2teams/pbx2teams/internal/testpeer/dnsserver"
	simteams "github.com/pbx2teams/pbx2teams/msim/teams"
	"github.com/pbx2teams/pbx2teams/sip/teams"
)

// FQDN is the carrier FQDN of the SBC in tests.
const FQDN = "sbc.pbx2teams.test"

// Options adjust the environment.
type Options struct {
	// FQDN is the SBC's carrier FQDN (default FQDN); the simulator knows
	// the gateway FQDN unless UnknownGateway is set.
	FQDN           string
	UnknownGateway bool
	// Labels are customer subdomain labels to put in DNS.
	Labels []string
	// Trunk and Sim adjust the configurations before start.
	Trunk func(*teams.Config)
	Sim   func(*simteams.Config)
}

// Env is a trunk and a simulator talking to each other.
type Env struct {
	PKI   *simteams.PKI
	DNS   *dnsserver.Server
	Sim   *simteams.Sim
	Trunk *teams.Trunk
	FQDN  string
}

// Start builds the environment. The trunk is created but not started, so
// call control can register its handlers first; call Trunk.Start.
func Start(t testing.TB, o Options) *Env {
	t.Helper()
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
	fqdn := o.FQDN
	if fqdn == "" {
		fqdn = FQDN
	}
	lo := netip.MustParseAddr("127.0.0.1")
	dns.SetA(fqdn, lo)
	for _, l := range o.Labels {
		dns.SetA(teams.CustomerFQDN(l, fqdn), lo)
	}
	msCert, err := pki.Issue(append(append([]string{}, simteams.DefaultProxies...), "*.pstnhub.microsoft.com")...)
	if err != nil {
		t.Fatal(err)
	}
	sbcCert, err := pki.Issue(fqdn, "*."+fqdn)
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
	tcfg := teams.Config{
		FQDN: fqdn, Listen: "127.0.0.1:0", Certificate: &sbcCert, MicrosoftRoots: pki.Pool(),
		ProxyPort: sim.Port(), Resolver: dns.Resolver(), OptionsInterval: time.Hour,
		RequestTimeout: 5 * time.Second, Product: "pbx2teams/B2BUA/test",
	}
	if o.Trunk != nil {
		o.Trunk(&tcfg)
	}
	tr, err := teams.New(tcfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	if !o.UnknownGateway {
		sim.AddGateway(fqdn, tr.Port())
	}
	return &Env{PKI: pki, DNS: dns, Sim: sim, Trunk: tr, FQDN: fqdn}
}

// WaitActive waits until the simulator sees the SBC as active (OPTIONS
// answered both ways) and the trunk sees at least one proxy up.
func (e *Env) WaitActive(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	g := e.Sim.Gateway(e.FQDN)
	for {
		if g.Status().Active && e.Trunk.Active() {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("SBC not active: simulator %+v, trunk %+v", g.Status(), e.Trunk.Status())
		case <-time.After(20 * time.Millisecond):
		}
	}
}
