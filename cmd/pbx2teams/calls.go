package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pbx2teams/pbx2teams"
	"github.com/pbx2teams/pbx2teams/media"
	"github.com/pbx2teams/pbx2teams/metrics"
	"github.com/pbx2teams/pbx2teams/sip/b2bua"
	"github.com/pbx2teams/pbx2teams/sip/federation"
	"github.com/pbx2teams/pbx2teams/sip/sipx"
	"github.com/pbx2teams/pbx2teams/sip/teams"
)

// callsConfig is the call plane's part of serve's configuration: the
// Direct Routing trunk toward Microsoft and the media relay.
type callsConfig struct {
	sbcFQDN     string
	sbcListen   string
	sbcCert     string
	sbcKey      string
	msRoots     string
	proxies     string
	proxyPort   int
	product     string
	collapse183 bool
	traceFull   bool

	mediaBind      string
	mediaAdvertise string
	mediaTeamsIP   string
	mediaPorts     string
	mediaTimeout   time.Duration

	phoneAppDomain string // from serve's --phoneapp-domain
	phoneAppListen string
	phoneAppCert   string
	phoneAppKey    string
	edge           string
	edgeName       string
	edgeRoots      string

	// Set by the sandbox: certificates, roots and resolver of the
	// simulated Microsoft side.
	cert         *tls.Certificate
	roots        *x509.CertPool
	phoneAppTLS  *tls.Certificate
	edgeRootPool *x509.CertPool
	resolver     *net.Resolver
	onTrunk      func(*teams.Trunk)
}

func (c *callsConfig) flags(fs *flag.FlagSet) {
	fs.StringVar(&c.sbcFQDN, "sbc-fqdn", "", "carrier FQDN of the SBC (the Direct Routing trunk); customers get <label>.<fqdn>. Empty: calls are off")
	fs.StringVar(&c.sbcListen, "sbc-listen", "0.0.0.0:5061", "SIP/TLS listen address toward Microsoft")
	fs.StringVar(&c.sbcCert, "sbc-cert", "", "PEM certificate chain valid for the SBC FQDN and *.<fqdn>")
	fs.StringVar(&c.sbcKey, "sbc-key", "", "PEM private key of --sbc-cert")
	fs.StringVar(&c.msRoots, "microsoft-roots", "", "PEM file of the CAs trusted for Microsoft's certificates (default: the system pool)")
	fs.StringVar(&c.proxies, "teams-proxies", strings.Join(teams.DefaultProxies, ","), "Microsoft's Direct Routing SIP proxies, in failover order")
	fs.IntVar(&c.proxyPort, "teams-proxy-port", 5061, "port of Microsoft's SIP proxies")
	fs.StringVar(&c.product, "sbc-product", "pbx2teams/B2BUA/"+version, "X-MS-SBC header value (vendor/model/version)")
	fs.BoolVar(&c.collapse183, "collapse-183", false, "turn Teams' 183 with SDP into 180 toward PBXs that stop local ringback on 183")
	fs.BoolVar(&c.traceFull, "trace-full", false, "keep every SIP message's text in call traces (default: full text for failed calls only)")
	fs.StringVar(&c.mediaBind, "media-bind", "0.0.0.0", "address media sockets bind to")
	fs.StringVar(&c.mediaAdvertise, "media-ip", "", "address written in SDP (required when --media-bind is 0.0.0.0)")
	fs.StringVar(&c.mediaTeamsIP, "media-ip-teams", "", "address written in SDP toward Microsoft when it differs (public address)")
	fs.StringVar(&c.mediaPorts, "media-ports", "40000-49999", "UDP port range of the media relay")
	fs.DurationVar(&c.mediaTimeout, "media-timeout", 60*time.Second, "end a call whose media stopped for this long (0: never)")
	fs.StringVar(&c.phoneAppListen, "phoneapp-listen", "0.0.0.0:5063", "SIP/TLS listen address of the Phone App leg (federation)")
	fs.StringVar(&c.phoneAppCert, "phoneapp-cert", "", "PEM certificate chain for the Phone App domain (empty: no Phone App calls)")
	fs.StringVar(&c.phoneAppKey, "phoneapp-key", "", "PEM private key of --phoneapp-cert")
	fs.StringVar(&c.edge, "federation-edge", federation.DefaultEdge, "Teams federation edge host:port for Phone App calls")
	fs.StringVar(&c.edgeName, "federation-edge-name", "", "name the edge's certificate must carry (default: the host of --federation-edge)")
	fs.StringVar(&c.edgeRoots, "federation-roots", "", "PEM file of the CAs trusted for the edge's certificate (default: the system pool)")
}

// loadPool reads a PEM file of CA certificates.
func loadPool(flagName, path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", flagName, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s %s: no PEM certificate in it", flagName, path)
	}
	return pool, nil
}

// parsePorts reads "40000-49999".
func parsePorts(s string) (int, int, error) {
	lo, hi, ok := strings.Cut(s, "-")
	a, err1 := strconv.Atoi(strings.TrimSpace(lo))
	b, err2 := strconv.Atoi(strings.TrimSpace(hi))
	if !ok || err1 != nil || err2 != nil || a < 1024 || b > 65535 || b-a < 3 {
		return 0, 0, fmt.Errorf("--media-ports %q: write low-high within 1024-65535, e.g. 40000-49999", s)
	}
	return a, b, nil
}

// calls is the wired call plane.
type calls struct {
	relay *media.Relay
	trunk *teams.Trunk
	link  *federation.Link
	b2b   *b2bua.B2BUA
}

// wireCalls builds the media relay, the Direct Routing trunk and the B2BUA
// on the PBX-facing stack. It must run before the stack starts: the B2BUA
// registers its handlers on it.
func (a *app) wireCalls(c callsConfig, stack *sipx.Stack, regs b2bua.Registrations, reg *metrics.Registry) (*calls, error) {
	if c.sbcFQDN == "" {
		a.log.Warn("no SBC FQDN (--sbc-fqdn): calls are off; registrations only")
		return nil, nil
	}
	lo, hi, err := parsePorts(c.mediaPorts)
	if err != nil {
		return nil, err
	}
	mcfg := media.Config{PortMin: lo, PortMax: hi, MediaTimeout: c.mediaTimeout, HoldTimeout: 2 * time.Hour, Logger: a.log}
	for _, x := range []struct {
		flag, v string
		dst     *netip.Addr
	}{{"--media-bind", c.mediaBind, &mcfg.BindIP}, {"--media-ip", c.mediaAdvertise, &mcfg.AdvertisedIP}, {"--media-ip-teams", c.mediaTeamsIP, &mcfg.AdvertisedIPB}} {
		if x.v == "" {
			continue
		}
		ip, err := netip.ParseAddr(x.v)
		if err != nil {
			return nil, fmt.Errorf("%s %q: not an IP address", x.flag, x.v)
		}
		*x.dst = ip
	}
	relay, err := media.NewRelay(mcfg)
	if err != nil {
		return nil, err
	}
	a.closers = append(a.closers, func() { relay.Close() })

	cert := c.cert
	if cert == nil {
		if c.sbcCert == "" || c.sbcKey == "" {
			return nil, fmt.Errorf("--sbc-cert and --sbc-key are required with --sbc-fqdn: Microsoft only talks mutual TLS with a certificate for %s and *.%s", c.sbcFQDN, c.sbcFQDN)
		}
		kp, err := tls.LoadX509KeyPair(c.sbcCert, c.sbcKey)
		if err != nil {
			return nil, fmt.Errorf("SBC certificate: %w", err)
		}
		cert = &kp
	}
	roots := c.roots
	if roots == nil && c.msRoots != "" {
		if roots, err = loadPool("--microsoft-roots", c.msRoots); err != nil {
			return nil, err
		}
	}
	var proxies []string
	for _, p := range strings.Split(c.proxies, ",") {
		if p = strings.TrimSpace(p); p != "" {
			proxies = append(proxies, p)
		}
	}
	trunk, err := teams.New(teams.Config{FQDN: c.sbcFQDN, Listen: c.sbcListen, Certificate: cert, MicrosoftRoots: roots,
		Proxies: proxies, ProxyPort: c.proxyPort, Resolver: c.resolver, Product: c.product, Logger: a.log})
	if err != nil {
		return nil, err
	}
	a.closers = append(a.closers, func() { trunk.Close() })
	if c.onTrunk != nil {
		c.onTrunk(trunk)
	}
	link, err := a.phoneAppLink(c)
	if err != nil {
		return nil, err
	}

	cust := &customers{store: a.store, base: trunk.FQDN(), ttl: 30 * time.Second}
	callLog := a.svc.NewCallLogWriter(0)
	b, err := b2bua.New(b2bua.Config{
		PBX: stack, Trunk: trunk, Relay: relay,
		Directory: a.store, Registrations: regs, Customers: cust,
		Passwords: a.svc.SIPPassword, Recorder: recorder{a, callLog}, Collapse183: c.collapse183, TraceFull: c.traceFull,
		PhoneApp: link, OnPhoneAppRejected: a.phoneAppRejected, Logger: a.log,
	})
	if err != nil {
		return nil, err
	}
	// Hang up calls before the relay and the stacks close (closers run in
	// reverse order).
	a.closers = append(a.closers, callLog.Close, func() { b.Close() })
	a.runners = append(a.runners, func(ctx context.Context) error { trunk.Start(); <-ctx.Done(); return nil })
	if link != nil {
		a.runners = append(a.runners, func(ctx context.Context) error { link.Start(); <-ctx.Done(); return nil })
	}
	a.runners = append(a.runners, func(ctx context.Context) error { return a.pruneCalls(ctx) })

	reg.Collect(func(emit func(string, string, string, metrics.Labels, float64)) {
		st := b.Stats()
		emit("pbx2teams_calls_active", "Calls in progress.", "gauge", nil, float64(st.Active))
		emit("pbx2teams_calls_total", "Calls accepted since start.", "counter", nil, float64(st.Total))
		emit("pbx2teams_calls_rejected_total", "INVITEs refused before any leg was set up (unknown user, wrong source, no codec...).", "counter", nil, float64(st.Rejected))
		emit("pbx2teams_media_calls", "Calls anchored in the media relay.", "gauge", nil, float64(relay.ActiveCalls()))
		emit("pbx2teams_media_free_ports", "Free media ports.", "gauge", nil, float64(relay.FreePorts()))
		for _, p := range trunk.Status() {
			up := 0.0
			if p.Up {
				up = 1
			}
			emit("pbx2teams_teams_proxy_up", "Microsoft SIP proxy answering OPTIONS (1) or not (0).", "gauge", metrics.Labels{"proxy": p.Name}, up)
		}
	})
	a.log.Info("calls on", "sbc_fqdn", trunk.FQDN(), "sbc_listen", c.sbcListen, "media_ports", c.mediaPorts, "media_engine", relay.Engine())
	return &calls{relay: relay, trunk: trunk, link: link, b2b: b}, nil
}

// phoneAppLink opens the Phone App leg toward the federation edge, or
// returns nil when no certificate for the Phone App domain is configured.
func (a *app) phoneAppLink(c callsConfig) (*federation.Link, error) {
	cert := c.phoneAppTLS
	if cert == nil {
		if c.phoneAppCert == "" {
			a.log.Warn("no Phone App certificate (--phoneapp-cert): calls to Phone App users are off")
			return nil, nil
		}
		kp, err := tls.LoadX509KeyPair(c.phoneAppCert, c.phoneAppKey)
		if err != nil {
			return nil, fmt.Errorf("Phone App certificate: %w", err)
		}
		cert = &kp
	}
	roots := c.edgeRootPool
	if roots == nil && c.edgeRoots != "" {
		var err error
		if roots, err = loadPool("--federation-roots", c.edgeRoots); err != nil {
			return nil, err
		}
	}
	link, err := federation.New(federation.Config{Domain: c.phoneAppDomain, Listen: c.phoneAppListen, Certificate: cert,
		Edge: c.edge, EdgeName: c.edgeName, EdgeRoots: roots, Resolver: c.resolver, Logger: a.log})
	if err != nil {
		return nil, err
	}
	a.closers = append(a.closers, func() { link.Close() })
	return link, nil
}

// phoneAppRejected keeps the edge's refusal as the user's readiness.
func (a *app) phoneAppRejected(u *pbx2teams.User, status int, warning string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := a.svc.PhoneAppRejected(ctx, u, status, warning); err != nil {
		a.log.Warn("Phone App refusal not kept for readiness", "user", u.ID, "err", err)
	}
}

// customers maps SBC subdomains to customers through the store, with a
// short cache: every INVITE from Microsoft asks.
type customers struct {
	store pbx2teams.Store
	base  string
	ttl   time.Duration

	mu    sync.Mutex
	byLbl map[string]cached
}

type cached struct {
	id string
	at time.Time
}

// CustomerByFQDN implements b2bua.Customers.
func (c *customers) CustomerByFQDN(host string) (string, bool) {
	label, ok := teams.LabelOf(host, c.base)
	if !ok {
		return "", false
	}
	now := time.Now()
	c.mu.Lock()
	if e, ok := c.byLbl[label]; ok && now.Sub(e.at) < c.ttl {
		c.mu.Unlock()
		return e.id, e.id != ""
	}
	c.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	id, err := c.store.AccountBySBCLabel(ctx, label)
	if err != nil && pbx2teams.ErrorCode(err) != pbx2teams.ENotFound {
		return "", false // store trouble: not cached
	}
	c.mu.Lock()
	if c.byLbl == nil {
		c.byLbl = map[string]cached{}
	}
	c.byLbl[label] = cached{id: id, at: now}
	c.mu.Unlock()
	return id, id != ""
}

// FQDN implements b2bua.Customers.
func (c *customers) FQDN(accountID string) (string, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	ts, err := c.store.TeamsSettings(ctx, accountID)
	if err != nil || ts.SBCLabel == "" {
		return "", false
	}
	return teams.CustomerFQDN(ts.SBCLabel, c.base), true
}

// recorder hands every finished call to the call log writer (batched, never
// blocking the call) and clears a Phone App user's kept refusal once a
// call reached them.
type recorder struct {
	a   *app
	log *pbx2teams.CallLogWriter
}

func (r recorder) CallEnded(rec *pbx2teams.CallRecord, tr *pbx2teams.CallTrace) {
	r.log.CallEnded(rec, tr)
	if rec.Route == pbx2teams.RoutePhoneApp && rec.TeamsStatus/100 == 2 && rec.UserID != "" {
		u := &pbx2teams.User{ID: rec.UserID, AccountID: rec.AccountID}
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = r.a.svc.PhoneAppReached(ctx, u)
		}()
	}
}

// pruneCalls drops old traces and records once an hour.
func (a *app) pruneCalls(ctx context.Context) error {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		if _, _, err := a.svc.PruneCalls(ctx, time.Now()); err != nil && ctx.Err() == nil {
			a.log.Warn("pruning the call log failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
