// Package teams simulates the Microsoft side of Teams Direct Routing for
// tests and the sandbox: the SIP proxies (sip, sip2 and sip3.pstnhub…)
// over mutual TLS, behaving as Microsoft documents them, and Teams users
// whose endpoints ring, answer, play a known audio pattern over SRTP,
// echo, send DTMF, hold, transfer and hang up, driven by the test.
//
// What the proxy enforces, as Direct Routing does:
//   - TLS 1.2 or later with a client certificate; the certificate must
//     cover the FQDN in the SBC's Contact;
//   - OPTIONS from a known trunk FQDN (Record-Route first, then Contact)
//     get 200 and start the proxy's own OPTIONS toward that FQDN; calls
//     are accepted only from an SBC whose OPTIONS arrived;
//   - an IP address in Contact gets 403; a Contact FQDN matching no
//     tenant domain (exact, then with the first label removed) gets 403
//     "No trunk config was found" (510532);
//   - INVITE needs SDP (no delayed offer), RTP/SAVP with an
//     AES_CM_128_HMAC_SHA1_80 key (else 488, 531000) and no c=0.0.0.0
//     (488, 531052); a Replaces header is refused;
//   - the Request-URI user must be a number of the tenant (else 404,
//     511404);
//   - every endpoint of the user forks a 180 with its own To-tag, then one
//     183 with SDP (early media) when configured, then 200;
//   - transfers: REFER with Refer-To at the proxy and a long Referred-By
//     that must come back unchanged in the SBC's new INVITE; the old leg
//     is released with BYE once a NOTIFY reports 200;
//   - hold is a=inactive; a session timer is offered with refresher=uac.
//
// The federation edge (StartEdge; Edge documents its rules) takes calls
// from a federated domain, the Phone App domain of pbx2teams, to users by
// UPN, enforcing the tenant's external access and the user's coexistence
// mode.
//
// Users come from AddTenant/AddUser/AddUserUPN, or from a Directory (the
// Graph simulator through GraphDirectory) for the sandbox, where they
// answer by themselves (SandboxUserOptions) unless a page drives them with
// CallInfos, AnswerCall, DeclineCall, EndCall, HoldCall, ResumeCall and
// SendDTMF. Wiring for the sandbox:
//
//	pki, _ := teams.NewPKIFor(365 * 24 * time.Hour)
//	msCert, _ := pki.Issue(teams.DefaultProxies...)
//	sim, _ := teams.New(teams.Config{Certificate: msCert, Roots: pki.Pool(),
//		Directory: teams.GraphDirectory(graph)})
//	edge, _ := sim.StartEdge(teams.EdgeConfig{PKI: pki})
//	phoneAppCert, _ := pki.Issue("phone.sandbox.example") // the service's client certificate
package teams

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/pbx2teams/pbx2teams/msim"
)

// DefaultProxies are the proxy names the simulator answers as.
var DefaultProxies = []string{"sip.pstnhub.microsoft.com", "sip2.pstnhub.microsoft.com", "sip3.pstnhub.microsoft.com"}

// Config configures a Sim.
type Config struct {
	// Certificate is the proxies' certificate (for the proxy names);
	// Roots are the CAs trusted for SBC certificates. Use a PKI: the
	// certificate of PKI.Issue(DefaultProxies...) and PKI.Pool().
	Certificate tls.Certificate
	Roots       *x509.CertPool
	// Proxies are the names answered as, one listener each on a loopback
	// address of its own (127.0.0.1, 127.0.0.2, ...): DNS in the test maps
	// each name to its address. Default DefaultProxies.
	Proxies []string
	// ListenIPs overrides the loopback address of each proxy.
	ListenIPs []string
	// Port is the port all proxies listen on (0: a free one).
	Port int
	// Resolver resolves SBC FQDNs (for OPTIONS and calls toward the SBC).
	Resolver *net.Resolver
	// MediaIP is the address of the simulated media processors.
	MediaIP string
	// OptionsInterval is the period of the proxy's own OPTIONS toward an
	// active SBC (default 60 s).
	OptionsInterval time.Duration
	// SessionExpires, when > 0, is the session interval (seconds) the
	// proxy puts in its 200 with refresher=uac (Microsoft always offers a
	// session timer on non-bypass calls; 1800 in production).
	SessionExpires int
	Logger         *slog.Logger
	// Directory, when set, is where tenants and users not added with
	// AddTenant/AddUser are looked up (the sandbox takes them from the
	// Graph simulator: see GraphDirectory). Tenants and users added
	// directly are looked up first.
	Directory Directory
	// DirectoryUserOptions is how users found in the Directory behave
	// (default SandboxUserOptions: answer after 2 s and echo).
	DirectoryUserOptions *UserOptions
	// VoiceRoute, when set, gives the voice route (the customer's SBC
	// subdomain) of a tenant that has none set with SetVoiceRoute: in the
	// sandbox, the subdomain of the customer connected to the tenant.
	VoiceRoute func(tenantID string) string
}

// Sim is a running Direct Routing simulator.
type Sim struct {
	cfg Config
	log *slog.Logger
	dcs []*Datacenter

	mu         sync.Mutex
	gateways   map[string]*Gateway // carrier trunk FQDN → gateway
	tenants    []*Tenant
	dirTenants map[string]*Tenant // directory tenant id → its simulated tenant
	edges      []*Edge
	calls      map[string]*Call // Call-ID → call
	records    []Record
	transfers  map[string]string // x-ti correlation id → Referred-By sent
	closed     bool

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// DatacenterMode is how a simulated proxy behaves.
type DatacenterMode int

// Datacenter modes.
const (
	Up          DatacenterMode = iota
	Unavailable                // answers 503 with Retry-After to OPTIONS and INVITE
	NoResponse                 // answers nothing
)

// Datacenter is one simulated proxy (sip, sip2 or sip3).
type Datacenter struct {
	Name string
	IP   string
	Port int

	sim  *Sim
	edge *Edge // set when this listener is the federation edge
	ua   *sipgo.UserAgent
	srv  *sipgo.Server
	cli  *sipgo.Client
	ln   net.Listener

	mu      sync.Mutex
	mode    DatacenterMode
	invites int
	options int
}

// Record is one request the simulator received, for assertions.
type Record struct {
	Datacenter string
	Method     string
	Request    *sip.Request
	// Status is the final status the simulator answered (0 if none).
	Status int
	// Warning is the Warning header of that answer, if any (the
	// federation edge explains its refusals there).
	Warning string
}

// Gateway is an SBC trunk known to Direct Routing (New-CsOnlinePSTNGateway
// with the carrier FQDN) and its health as Microsoft sees it.
type Gateway struct {
	FQDN string
	Port int

	mu            sync.Mutex
	optionsIn     int // OPTIONS received from the SBC
	lastOptionsIn time.Time
	optionsOutOK  int // our OPTIONS the SBC answered with 200
	optionsOutErr string
	pinging       bool
}

// GatewayStatus is a gateway's health.
type GatewayStatus struct {
	OptionsReceived int
	OptionsAnswered int    // our OPTIONS answered 200 by the SBC
	LastError       string // of our last OPTIONS
	// Active is what the Teams admin center shows: OPTIONS flow both ways.
	Active bool
}

// New starts the simulator's proxies.
func New(cfg Config) (*Sim, error) {
	if len(cfg.Proxies) == 0 {
		cfg.Proxies = DefaultProxies
	}
	if cfg.Resolver == nil {
		cfg.Resolver = net.DefaultResolver
	}
	if cfg.MediaIP == "" {
		cfg.MediaIP = "127.0.0.1"
	}
	if cfg.OptionsInterval <= 0 {
		cfg.OptionsInterval = time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	ips := cfg.ListenIPs
	for i := len(ips); i < len(cfg.Proxies); i++ {
		ips = append(ips, "127.0.0."+strconv.Itoa(i+1))
	}
	if cfg.DirectoryUserOptions == nil {
		o := SandboxUserOptions()
		cfg.DirectoryUserOptions = &o
	}
	s := &Sim{cfg: cfg, log: cfg.Logger.With("component", "teams-sim"), gateways: map[string]*Gateway{},
		calls: map[string]*Call{}, transfers: map[string]string{}, dirTenants: map[string]*Tenant{}}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	lns, port, err := listenAll(ips[:len(cfg.Proxies)], cfg.Port)
	if err != nil {
		return nil, err
	}
	for i, name := range cfg.Proxies {
		dc, err := s.newDatacenter(name, ips[i], port, lns[i], s.cfg.Certificate, s.cfg.Roots)
		if err != nil {
			for _, l := range lns[i:] {
				l.Close()
			}
			s.Close()
			return nil, err
		}
		s.dcs = append(s.dcs, dc)
	}
	return s, nil
}

// listenAll opens one TCP listener per IP, all on the same port.
func listenAll(ips []string, port int) ([]net.Listener, int, error) {
	for attempt := 0; attempt < 50; attempt++ {
		var lns []net.Listener
		p := port
		var err error
		for _, ip := range ips {
			var ln net.Listener
			ln, err = net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(p)))
			if err != nil {
				break
			}
			if p == 0 {
				p = ln.Addr().(*net.TCPAddr).Port
			}
			lns = append(lns, ln)
		}
		if err == nil {
			return lns, p, nil
		}
		for _, l := range lns {
			l.Close()
		}
		if port != 0 {
			return nil, 0, err
		}
	}
	return nil, 0, errors.New("teams sim: no port free on every proxy address")
}

func (s *Sim) newDatacenter(name, ip string, port int, ln net.Listener, cert tls.Certificate, roots *x509.CertPool) (*Datacenter, error) {
	dc := &Datacenter{Name: name, IP: ip, Port: port, sim: s}
	if err := dc.start(ln, cert, roots, dc.onOptions, dc.onInvite); err != nil {
		return nil, err
	}
	return dc, nil
}

// start makes the listener's SIP stack (one user agent for its server and
// client sides, so requests toward a peer can reuse the peer's
// connection) and serves mutual TLS on ln.
func (dc *Datacenter) start(ln net.Listener, cert tls.Certificate, roots *x509.CertPool, onOptions, onInvite sipgo.RequestHandler) error {
	s, name, port := dc.sim, dc.Name, dc.Port
	clientTLS := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}, RootCAs: roots}
	ua, err := sipgo.NewUA(
		sipgo.WithUserAgent("Microsoft.PSTNHub.SIPProxy v.2026.1.1.1 i.SIM"),
		sipgo.WithUserAgentHostname(name),
		sipgo.WithUserAgentDNSResolver(s.cfg.Resolver),
		sipgo.WithUserAgenTLSConfig(clientTLS),
		sipgo.WithUserAgentTransactionLayerOptions(sip.WithTransactionLayerUnhandledResponseHandler(func(*sip.Response) {})),
	)
	if err != nil {
		return err
	}
	dc.ua = ua
	if dc.srv, err = sipgo.NewServer(ua); err != nil {
		return err
	}
	if dc.cli, err = sipgo.NewClient(ua, sipgo.WithClientHostname(name), sipgo.WithClientPort(port)); err != nil {
		return err
	}
	serverTLS := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    roots,
	}
	dc.ln = tls.NewListener(ln, serverTLS)
	dc.srv.OnOptions(onOptions)
	dc.srv.OnInvite(onInvite)
	dc.srv.OnAck(dc.onInDialog)
	dc.srv.OnBye(dc.onInDialog)
	dc.srv.OnNotify(dc.onInDialog)
	dc.srv.OnUpdate(dc.onInDialog)
	dc.srv.OnInfo(dc.onInDialog)
	dc.srv.OnRefer(dc.onInDialog)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		_ = dc.srv.ServeTLS(dc.ln)
	}()
	return nil
}

// Close stops everything.
func (s *Sim) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	calls := make([]*Call, 0, len(s.calls))
	for _, c := range s.calls {
		calls = append(calls, c)
	}
	s.mu.Unlock()
	s.cancel()
	for _, c := range calls {
		c.end("simulator closed")
	}
	s.mu.Lock()
	dcs := append([]*Datacenter(nil), s.dcs...)
	for _, e := range s.edges {
		dcs = append(dcs, e.Datacenter)
	}
	s.mu.Unlock()
	for _, dc := range dcs {
		dc.ln.Close()
		dc.ua.Close()
	}
	s.wg.Wait()
	return nil
}

// Port is the port every proxy listens on.
func (s *Sim) Port() int { return s.dcs[0].Port }

// Datacenters lists the proxies.
func (s *Sim) Datacenters() []*Datacenter { return s.dcs }

// Datacenter returns the proxy of a name.
func (s *Sim) Datacenter(name string) *Datacenter {
	for _, dc := range s.dcs {
		if dc.Name == name {
			return dc
		}
	}
	return nil
}

// Addr is the proxy's listening address.
func (dc *Datacenter) Addr() netip.AddrPort {
	return netip.AddrPortFrom(netip.MustParseAddr(dc.IP), uint16(dc.Port))
}

// SetMode changes how the proxy behaves.
func (dc *Datacenter) SetMode(m DatacenterMode) {
	dc.mu.Lock()
	dc.mode = m
	dc.mu.Unlock()
}

// Invites is the number of initial INVITEs this proxy received.
func (dc *Datacenter) Invites() int {
	dc.mu.Lock()
	defer dc.mu.Unlock()
	return dc.invites
}

// Options is the number of OPTIONS this proxy received.
func (dc *Datacenter) Options() int {
	dc.mu.Lock()
	defer dc.mu.Unlock()
	return dc.options
}

func (dc *Datacenter) getMode() DatacenterMode {
	dc.mu.Lock()
	defer dc.mu.Unlock()
	return dc.mode
}

// AddGateway declares an SBC trunk (the carrier FQDN and its signalling
// port), as New-CsOnlinePSTNGateway does.
func (s *Sim) AddGateway(fqdn string, port int) *Gateway {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := &Gateway{FQDN: strings.ToLower(fqdn), Port: port}
	s.gateways[g.FQDN] = g
	return g
}

// Gateway returns a declared gateway.
func (s *Sim) Gateway(fqdn string) *Gateway {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gateways[strings.ToLower(fqdn)]
}

// Status returns the gateway's health as Microsoft sees it.
func (g *Gateway) Status() GatewayStatus {
	g.mu.Lock()
	defer g.mu.Unlock()
	return GatewayStatus{OptionsReceived: g.optionsIn, OptionsAnswered: g.optionsOutOK, LastError: g.optionsOutErr,
		Active: g.optionsIn > 0 && g.optionsOutOK > 0 && time.Since(g.lastOptionsIn) < 3*time.Minute+10*time.Second}
}

func (g *Gateway) seen() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.optionsIn > 0
}

// gatewayFor finds the declared gateway whose FQDN is host or a parent of
// host (a derived trunk is a customer subdomain of the carrier FQDN).
func (s *Sim) gatewayFor(host string) *Gateway {
	host = strings.ToLower(host)
	s.mu.Lock()
	defer s.mu.Unlock()
	for fqdn, g := range s.gateways {
		if host == fqdn || strings.HasSuffix(host, "."+fqdn) {
			return g
		}
	}
	return nil
}

// Records returns the requests received so far, optionally of one method.
func (s *Sim) Records(method string) []Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Record
	for _, r := range s.records {
		if method == "" || r.Method == method {
			out = append(out, r)
		}
	}
	return out
}

func (s *Sim) record(dc *Datacenter, req *sip.Request, status int) {
	s.recordWarning(dc, req, status, "")
}

func (s *Sim) recordWarning(dc *Datacenter, req *sip.Request, status int, warning string) {
	s.recordIdx(dc, req, status, warning)
}

// recordIdx records a request and returns its index (-1 when the log is
// full) so that the final status can be filled in later.
func (s *Sim) recordIdx(dc *Datacenter, req *sip.Request, status int, warning string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.records) >= 10000 {
		return -1
	}
	s.records = append(s.records, Record{Datacenter: dc.Name, Method: req.Method.String(), Request: req.Clone(),
		Status: status, Warning: warning})
	return len(s.records) - 1
}

func (s *Sim) setRecordStatus(i, status int) {
	if i < 0 {
		return
	}
	s.mu.Lock()
	s.records[i].Status = status
	s.mu.Unlock()
}

// respond answers req with status and Microsoft's diagnostic header.
func (dc *Datacenter) respond(req *sip.Request, tx sip.ServerTransaction, status int, reason string, msCode int) {
	res := sip.NewResponseFromRequest(req, status, reason, nil)
	if msCode != 0 {
		res.AppendHeader(sip.NewHeader("ms-diagnostics", fmt.Sprintf("%d;reason=%q;source=%q", msCode, reason, dc.Name)))
	}
	if status == 503 {
		res.AppendHeader(sip.NewHeader("Retry-After", "30"))
	}
	_ = tx.Respond(res)
	dc.sim.record(dc, req, status)
}

// peerCertificate returns the TLS client certificate of the connection a
// request arrived on.
func peerCertificate(tx sip.ServerTransaction) *x509.Certificate {
	stx, ok := tx.(*sip.ServerTx)
	if !ok {
		return nil
	}
	tc, ok := stx.Connection().(*sip.TCPConnection)
	if !ok {
		return nil
	}
	c, ok := tc.Conn.(*tls.Conn)
	if !ok {
		return nil
	}
	cs := c.ConnectionState()
	if len(cs.PeerCertificates) == 0 {
		return nil
	}
	return cs.PeerCertificates[0]
}

// sbcIdentity applies the FQDN rules to a request from an SBC: the FQDN in
// Record-Route (first) or Contact, never an IP, covered by the
// certificate. It returns the FQDN, or a status to refuse with.
func sbcIdentity(req *sip.Request, tx sip.ServerTransaction) (fqdn string, port int, status int, reason string) {
	var u *sip.Uri
	if rr := req.RecordRoute(); rr != nil && !req.IsInvite() {
		u = &rr.Address
	} else if c := req.Contact(); c != nil {
		u = &c.Address
	}
	if u == nil || u.Host == "" {
		return "", 0, 400, "Contact header required"
	}
	if net.ParseIP(strings.Trim(u.Host, "[]")) != nil {
		return "", 0, 403, "Forbidden: an IP address in Contact is not accepted; use the SBC FQDN"
	}
	if cert := peerCertificate(tx); cert != nil {
		if err := cert.VerifyHostname(u.Host); err != nil {
			return "", 0, 403, "Forbidden: the TLS certificate does not cover " + u.Host
		}
	}
	return strings.ToLower(u.Host), u.Port, 0, ""
}

func (dc *Datacenter) onOptions(req *sip.Request, tx sip.ServerTransaction) {
	dc.mu.Lock()
	dc.options++
	dc.mu.Unlock()
	switch dc.getMode() {
	case NoResponse:
		dc.sim.record(dc, req, 0)
		return
	case Unavailable:
		dc.respond(req, tx, 503, "Service Unavailable", 0)
		return
	}
	fqdn, port, status, reason := sbcIdentity(req, tx)
	if status != 0 {
		dc.respond(req, tx, status, reason, 0)
		return
	}
	g := dc.sim.gatewayFor(fqdn)
	if g == nil {
		dc.respond(req, tx, 403, "Forbidden: no trunk config was found for "+fqdn, 510532)
		return
	}
	g.mu.Lock()
	g.optionsIn++
	g.lastOptionsIn = time.Now()
	start := !g.pinging
	g.pinging = true
	g.mu.Unlock()
	res := sip.NewResponseFromRequest(req, 200, "OK", nil)
	res.AppendHeader(sip.NewHeader("Allow", "INVITE,ACK,OPTIONS,CANCEL,BYE,NOTIFY"))
	_ = tx.Respond(res)
	dc.sim.record(dc, req, 200)
	if start {
		if port == 0 {
			port = g.Port
		}
		dc.sim.wg.Add(1)
		go func() {
			defer dc.sim.wg.Done()
			dc.pingLoop(g, fqdn, port)
		}()
	}
}

// pingLoop sends the proxy's own OPTIONS to the FQDN the SBC put in its
// Contact, every interval.
func (dc *Datacenter) pingLoop(g *Gateway, fqdn string, port int) {
	t := time.NewTicker(dc.sim.cfg.OptionsInterval)
	defer t.Stop()
	for {
		ctx, cancel := context.WithTimeout(dc.sim.ctx, 10*time.Second)
		ruri := sip.Uri{Scheme: "sip", Host: fqdn, Port: port, UriParams: sip.HeaderParams{{K: "transport", V: "tls"}}}
		req := sip.NewRequest(sip.OPTIONS, ruri)
		from := &sip.FromHeader{Address: sip.Uri{Scheme: "sip", Host: dc.Name}}
		from.Params.Add("tag", sip.GenerateTagN(12))
		req.AppendHeader(from)
		req.AppendHeader(&sip.ToHeader{Address: sip.Uri{Scheme: "sip", Host: fqdn}})
		req.AppendHeader(&sip.ContactHeader{Address: dc.contactURI()})
		req.SetTransport("TLS")
		res, err := dc.cli.Do(ctx, req)
		cancel()
		g.mu.Lock()
		switch {
		case err != nil:
			g.optionsOutErr = err.Error()
		case res.StatusCode != 200:
			g.optionsOutErr = res.StartLine()
		default:
			g.optionsOutOK++
			g.optionsOutErr = ""
		}
		g.mu.Unlock()
		select {
		case <-dc.sim.ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (dc *Datacenter) contactURI() sip.Uri {
	return sip.Uri{Scheme: "sip", Host: dc.Name, Port: dc.Port, UriParams: sip.HeaderParams{{K: "transport", V: "tls"}}}
}

// Tenant is a customer's Microsoft 365 tenant: its verified domains (the
// customer's SBC subdomain among them), its users, the voice route of its
// calls (the derived trunk FQDN) and its external access settings.
type Tenant struct {
	ID      string
	sim     *Sim
	mu      sync.Mutex
	domains []string
	users   map[string]*User // by number
	byUPN   map[string]*User // by lower-case UPN
	route   string
	fed     msim.Federation
	// fromDirectory: the tenant mirrors one of the Directory; its users,
	// external access and coexistence modes are read from there.
	fromDirectory bool
}

// AddTenant creates a tenant with verified domains. Its external access
// starts as Microsoft's default: on, every domain allowed.
func (s *Sim) AddTenant(id string, domains ...string) *Tenant {
	t := newTenant(s, id)
	for _, d := range domains {
		t.domains = append(t.domains, strings.ToLower(d))
	}
	s.mu.Lock()
	s.tenants = append(s.tenants, t)
	s.mu.Unlock()
	return t
}

func newTenant(s *Sim, id string) *Tenant {
	return &Tenant{ID: id, sim: s, users: map[string]*User{}, byUPN: map[string]*User{},
		fed: msim.Federation{AllowFederatedUsers: true, AllowAllKnownDomains: true}}
}

// SetVoiceRoute sets the FQDN (the customer's SBC subdomain) the tenant's
// PSTN calls are routed to.
func (t *Tenant) SetVoiceRoute(fqdn string) {
	t.mu.Lock()
	t.route = strings.ToLower(fqdn)
	t.mu.Unlock()
}

// SetExternalAccess replaces the tenant's external access (federation)
// settings, as Set-CsTenantFederationConfiguration does. For a tenant
// taken from the Directory, change them there instead (this is ignored).
func (t *Tenant) SetExternalAccess(f msim.Federation) {
	t.mu.Lock()
	t.fed = f
	t.mu.Unlock()
}

// ExternalAccess returns the tenant's external access settings (of a
// directory tenant: what was set locally, not the directory's).
func (t *Tenant) ExternalAccess() msim.Federation {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.fed
}

// allowsDomain applies external access to a federated caller's domain.
func (t *Tenant) allowsDomain(domain string) bool {
	t.mu.Lock()
	dir, fed := t.fromDirectory, t.fed
	t.mu.Unlock()
	if dir && t.sim.cfg.Directory != nil {
		ok, err := t.sim.cfg.Directory.FederationAllows(t.ID, domain)
		return err == nil && ok
	}
	return fed.Allows(domain)
}

// tenantFor finds the tenant of an SBC FQDN: one with the full FQDN as a
// domain, else one with the FQDN minus its first label; tenants added
// with AddTenant first, then the Directory's.
func (s *Sim) tenantFor(fqdn string) *Tenant {
	s.mu.Lock()
	match := func(d string) *Tenant {
		for _, t := range s.tenants {
			t.mu.Lock()
			for _, x := range t.domains {
				if x == d {
					t.mu.Unlock()
					return t
				}
			}
			t.mu.Unlock()
		}
		return nil
	}
	t := match(fqdn)
	if t == nil {
		if _, rest, ok := strings.Cut(fqdn, "."); ok {
			t = match(rest)
		}
	}
	s.mu.Unlock()
	if t != nil || s.cfg.Directory == nil {
		return t
	}
	if id, ok := s.cfg.Directory.TenantByDomain(fqdn); ok {
		return s.directoryTenant(id)
	}
	if _, rest, ok := strings.Cut(fqdn, "."); ok {
		if id, ok := s.cfg.Directory.TenantByDomain(rest); ok {
			return s.directoryTenant(id)
		}
	}
	return nil
}

func (s *Sim) addCall(c *Call) {
	s.mu.Lock()
	s.calls[c.callID] = c
	s.mu.Unlock()
}

func (s *Sim) dropCall(c *Call) {
	s.mu.Lock()
	if s.calls[c.callID] == c {
		delete(s.calls, c.callID)
	}
	s.mu.Unlock()
}

func (s *Sim) callByID(id string) *Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[id]
}
