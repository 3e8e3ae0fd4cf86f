package main

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/pbx2teams/pbx2teams"
	"github.com/pbx2teams/pbx2teams/internal/testpeer/dnsserver"
	"github.com/pbx2teams/pbx2teams/msim"
	simteams "github.com/pbx2teams/pbx2teams/msim/teams"
	"github.com/pbx2teams/pbx2teams/sip/teams"
)

// sandboxSBCFQDN is the SBC's carrier FQDN in the sandbox.
const sandboxSBCFQDN = "sbc.pbx2teams.sandbox"

// sandboxTeams is the simulated Microsoft side of calls: the Direct
// Routing proxies and the federation edge on loopback, with their own CA,
// a DNS server giving Microsoft's names loopback addresses, and Teams
// users taken from the Graph simulator.
type sandboxTeams struct {
	sim  *simteams.Sim
	edge *simteams.Edge
	dir  *sandboxDirectory
}

// startSandboxTeams starts the simulated Microsoft side and points the
// call plane's configuration at it.
func (a *app) startSandboxTeams(graph *msim.Sim, c *config) (*sandboxTeams, error) {
	cc := &c.calls
	if cc.sbcFQDN == "" {
		cc.sbcFQDN = sandboxSBCFQDN
	}
	// Everything on loopback unless the operator chose addresses.
	for _, p := range []*string{&cc.sbcListen, &cc.phoneAppListen} {
		if *p == "" || strings.HasPrefix(*p, "0.0.0.0:") {
			*p = "127.0.0.1:0"
		}
	}
	if cc.mediaBind == "" || cc.mediaBind == "0.0.0.0" {
		cc.mediaBind = "127.0.0.1"
	}
	if cc.mediaPorts == "" {
		cc.mediaPorts = "40000-49999"
	}
	pki, err := simteams.NewPKIFor(365 * 24 * time.Hour)
	if err != nil {
		return nil, err
	}
	dns, err := dnsserver.Start()
	if err != nil {
		return nil, err
	}
	a.closers = append(a.closers, func() { dns.Close() })
	lo := netip.MustParseAddr("127.0.0.1")
	for i, name := range simteams.DefaultProxies {
		dns.SetA(name, netip.AddrFrom4([4]byte{127, 0, 0, byte(i + 1)}))
	}
	dns.SetA(cc.sbcFQDN, lo)
	dns.SetA("*."+cc.sbcFQDN, lo)

	msCert, err := pki.Issue(append(append([]string{}, simteams.DefaultProxies...), "*.pstnhub.microsoft.com")...)
	if err != nil {
		return nil, err
	}
	sbcCert, err := pki.Issue(cc.sbcFQDN, "*."+cc.sbcFQDN)
	if err != nil {
		return nil, err
	}
	appCert, err := pki.Issue(c.phoneAppDomain)
	if err != nil {
		return nil, err
	}
	dir := &sandboxDirectory{GraphDir: simteams.GraphDirectory(graph), store: a.store, base: cc.sbcFQDN}
	sim, err := simteams.New(simteams.Config{Certificate: msCert, Roots: pki.Pool(), Resolver: dns.Resolver(),
		Directory: dir, VoiceRoute: dir.voiceRoute, Logger: a.log})
	if err != nil {
		return nil, fmt.Errorf("sandbox Teams: %w", err)
	}
	a.closers = append(a.closers, func() { sim.Close() })
	edge, err := sim.StartEdge(simteams.EdgeConfig{PKI: pki})
	if err != nil {
		return nil, fmt.Errorf("sandbox federation edge: %w", err)
	}
	dns.SetA(edge.Name, lo)

	cc.cert, cc.roots, cc.resolver, cc.proxyPort = &sbcCert, pki.Pool(), dns.Resolver(), sim.Port()
	cc.proxies = strings.Join(simteams.DefaultProxies, ",")
	cc.phoneAppTLS, cc.edgeRootPool = &appCert, pki.Pool()
	cc.edge, cc.edgeName = fmt.Sprintf("%s:%d", edge.Name, edge.Port), edge.Name
	cc.onTrunk = func(t *teams.Trunk) { sim.AddGateway(t.FQDN(), t.LocalPort()) }
	a.log.Info("sandbox Teams", "proxies", cc.proxies, "proxy_port", sim.Port(), "federation_edge", cc.edge)
	return &sandboxTeams{sim: sim, edge: edge, dir: dir}, nil
}

// sandboxDirectory is the Graph simulator's directory, plus the customers'
// SBC subdomains: a subdomain belongs to the tenant its customer connected.
type sandboxDirectory struct {
	*simteams.GraphDir
	store pbx2teams.Store
	base  string
}

// TenantByDomain implements simteams.Directory.
func (d *sandboxDirectory) TenantByDomain(domain string) (string, bool) {
	if label, ok := teams.LabelOf(domain, d.base); ok {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		id, err := d.store.AccountBySBCLabel(ctx, label)
		if err != nil {
			return "", false
		}
		ts, err := d.store.TeamsSettings(ctx, id)
		if err != nil || ts.TenantID == "" {
			return "", false
		}
		return ts.TenantID, true
	}
	return d.GraphDir.TenantByDomain(domain)
}

// voiceRoute gives a tenant's Teams users the SBC subdomain of the
// customer connected to it, as the customer's voice routing policy would.
func (d *sandboxDirectory) voiceRoute(tenantID string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	ids, err := d.store.AccountsByTenant(ctx, tenantID)
	if err != nil || len(ids) == 0 {
		return ""
	}
	ts, err := d.store.TeamsSettings(ctx, ids[0])
	if err != nil || ts.SBCLabel == "" {
		return ""
	}
	return teams.CustomerFQDN(ts.SBCLabel, d.base)
}
