// Package federation is the Phone App leg of pbx2teams: SIP over mutual
// TLS from the service's Phone App domain to the Teams federation edge
// (Microsoft's sipfed.online.lync.com:5061 in production, the simulator's
// edge in tests and the sandbox). Calls reach Teams users by UPN as calls
// from a federated domain, through the tenants' external access.
//
// It is a package of its own rather than a mode of the Direct Routing
// trunk (sip/teams) because almost nothing is shared: a different
// identity (the Phone App domain and its certificate, not the SBC FQDN and
// its customer subdomains), a single edge instead of three proxies with
// failover and health, no X-MS-SBC or customer-subdomain Contact rules,
// and a different peer certificate check. Call control (package b2bua)
// uses the link's user agent as it uses the trunk's.
//
// The edge sends its in-dialog requests (BYE, hold re-INVITEs, INFO) back
// over the connection we opened; the link also listens, with the same
// certificate as TLS server, for an edge that opens its own connection.
package federation

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/pbx2teams/pbx2teams"
)

// DefaultEdge is Microsoft's federation edge (the target of the
// _sipfederationtls._tcp SRV record of Microsoft 365 domains).
const DefaultEdge = "sipfed.online.lync.com:5061"

// Allow is the method list advertised toward the edge.
const Allow = "INVITE, ACK, CANCEL, BYE, REFER, NOTIFY, OPTIONS, INFO, UPDATE"

// Config configures a Link.
type Config struct {
	// Domain is the Phone App domain: From, Contact and our certificate
	// carry it; tenants allow it in external access. Required.
	Domain string
	// Listen is the local address of the TLS listener, e.g. "0.0.0.0:5061".
	// Required.
	Listen string
	// Port is the port advertised in Contact and Via (default: the
	// listening port).
	Port int
	// Certificate is the Phone App domain's certificate with its chain,
	// presented both as TLS client and TLS server. Required unless
	// GetCertificate is set.
	Certificate    *tls.Certificate
	GetCertificate func() (*tls.Certificate, error)
	// Edge is the federation edge as host:port (default DefaultEdge).
	Edge string
	// EdgeName is the name the edge's certificate must carry (default: the
	// host of Edge). Set it when Edge is an address.
	EdgeName string
	// EdgeRoots are the CAs trusted for the edge's certificate (nil: the
	// system pool).
	EdgeRoots *x509.CertPool
	// PeerDomains: a connection the edge opens toward us must present a
	// certificate with a name equal to or under one of these (default:
	// EdgeName and its parent domain).
	PeerDomains []string
	// OptionsInterval, when > 0, sends an OPTIONS keep-alive to the edge
	// that often (off by default: calls open the connection on demand).
	OptionsInterval time.Duration
	// RequestTimeout bounds an INVITE that got no provisional response
	// (default 10 s).
	RequestTimeout time.Duration
	// Resolver resolves the edge's name (default net.DefaultResolver).
	Resolver  *net.Resolver
	UserAgent string // default "pbx2teams"
	Logger    *slog.Logger
}

func (c *Config) normalize() error {
	c.Domain = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(c.Domain), "."))
	if c.Domain == "" || net.ParseIP(c.Domain) != nil || !strings.Contains(c.Domain, ".") {
		return pbx2teams.Errorf(pbx2teams.EInvalid, "Phone App: the domain %q is not a DNS name; tenants allow a domain name in external access.", c.Domain)
	}
	if c.Certificate == nil && c.GetCertificate == nil {
		return pbx2teams.Errorf(pbx2teams.EInvalid, "Phone App: a certificate for %s is required; the federation edge only talks mutual TLS.", c.Domain)
	}
	if c.Listen == "" {
		return pbx2teams.Errorf(pbx2teams.EInvalid, "Phone App: set the listen address, e.g. 0.0.0.0:5061.")
	}
	if c.Edge == "" {
		c.Edge = DefaultEdge
	}
	host, port, err := net.SplitHostPort(c.Edge)
	if err != nil {
		host, port = c.Edge, "5061"
	}
	if _, err := strconv.Atoi(port); err != nil || host == "" {
		return pbx2teams.Errorf(pbx2teams.EInvalid, "Phone App: the federation edge %q is not host:port.", c.Edge)
	}
	c.Edge = net.JoinHostPort(host, port)
	if c.EdgeName == "" {
		c.EdgeName = host
	}
	c.EdgeName = strings.ToLower(c.EdgeName)
	if len(c.PeerDomains) == 0 {
		c.PeerDomains = []string{c.EdgeName}
		if _, parent, ok := strings.Cut(c.EdgeName, "."); ok && strings.Contains(parent, ".") {
			c.PeerDomains = append(c.PeerDomains, parent)
		}
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = 10 * time.Second
	}
	if c.Resolver == nil {
		c.Resolver = net.DefaultResolver
	}
	if c.UserAgent == "" {
		c.UserAgent = "pbx2teams"
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return nil
}

// Link is the SIP user agent of the Phone App domain facing the
// federation edge. Call control registers its handlers on Server() before
// Start.
type Link struct {
	cfg  Config
	log  *slog.Logger
	ua   *sipgo.UserAgent
	srv  *sipgo.Server
	cli  *sipgo.Client
	ln   net.Listener
	port int

	startOnce sync.Once
	closeOnce sync.Once
	cancel    context.CancelFunc
	wg        sync.WaitGroup

	mu      sync.Mutex
	lastErr string
	lastOK  time.Time
}

// ErrPeerNotEdge is wrapped by handshake errors when a peer's certificate
// is valid but not the federation edge's.
var ErrPeerNotEdge = errors.New("peer certificate is not the federation edge's")

// New opens the listener and creates the user agent; nothing is served
// until Start.
func New(cfg Config) (*Link, error) {
	if err := cfg.normalize(); err != nil {
		return nil, err
	}
	l := &Link{cfg: cfg, log: cfg.Logger.With("component", "phoneapp-link")}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("federation: listen %s: %w", cfg.Listen, err)
	}
	l.port = ln.Addr().(*net.TCPAddr).Port
	if l.cfg.Port == 0 {
		l.cfg.Port = l.port
	}
	l.ln = tls.NewListener(ln, l.serverTLS())
	ua, err := sipgo.NewUA(
		sipgo.WithUserAgent(cfg.UserAgent),
		sipgo.WithUserAgentHostname(cfg.Domain),
		sipgo.WithUserAgentDNSResolver(cfg.Resolver),
		sipgo.WithUserAgenTLSConfig(l.clientTLS()),
		sipgo.WithUserAgentTransactionLayerOptions(
			sip.WithTransactionLayerUnhandledResponseHandler(func(*sip.Response) {}),
			sip.WithTransactionLayerTerminateOnConnClose(),
		),
	)
	if err != nil {
		l.ln.Close()
		return nil, err
	}
	l.ua = ua
	if l.srv, err = sipgo.NewServer(ua); err != nil {
		l.Close()
		return nil, err
	}
	if l.cli, err = sipgo.NewClient(ua, sipgo.WithClientHostname(cfg.Domain), sipgo.WithClientPort(l.cfg.Port)); err != nil {
		l.Close()
		return nil, err
	}
	l.srv.OnOptions(l.answerOptions)
	return l, nil
}

func (l *Link) certificate() (*tls.Certificate, error) {
	if l.cfg.GetCertificate != nil {
		return l.cfg.GetCertificate()
	}
	return l.cfg.Certificate, nil
}

// matches reports whether the certificate carries a DNS name equal to or
// under one of domains.
func matches(cert *x509.Certificate, domains []string) bool {
	for _, n := range cert.DNSNames {
		n = strings.ToLower(strings.TrimPrefix(n, "*."))
		for _, d := range domains {
			if n == d || strings.HasSuffix(n, "."+d) {
				return true
			}
		}
	}
	return false
}

// clientTLS verifies the edge's certificate against EdgeRoots and
// EdgeName (whatever address the connection goes to) and presents ours.
func (l *Link) clientTLS() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		RootCAs:    l.cfg.EdgeRoots,
		ServerName: l.cfg.EdgeName,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return l.certificate()
		},
	}
}

// serverTLS takes connections the edge opens toward us: our certificate,
// and a client certificate from the edge's domains.
func (l *Link) serverTLS() *tls.Config {
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS12,
		ClientAuth: tls.RequireAndVerifyClientCert,
		ClientCAs:  l.cfg.EdgeRoots,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return l.certificate()
		},
	}
	if cfg.ClientCAs == nil {
		if pool, err := x509.SystemCertPool(); err == nil {
			cfg.ClientCAs = pool
		}
	}
	domains := l.cfg.PeerDomains
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 || !matches(cs.PeerCertificates[0], domains) {
			return fmt.Errorf("federation: %w", ErrPeerNotEdge)
		}
		return nil
	}
	return cfg
}

// Server is where call control registers its request handlers.
func (l *Link) Server() *sipgo.Server { return l.srv }

// Client sends requests toward the edge.
func (l *Link) Client() *sipgo.Client { return l.cli }

// Domain is the Phone App domain.
func (l *Link) Domain() string { return l.cfg.Domain }

// Edge is the federation edge's host:port, for records and destinations.
func (l *Link) Edge() string { return l.cfg.Edge }

// Port is the advertised port.
func (l *Link) Port() int { return l.cfg.Port }

// LocalPort is the port the listener is bound to.
func (l *Link) LocalPort() int { return l.port }

// RequestTimeout bounds an INVITE that got no provisional response.
func (l *Link) RequestTimeout() time.Duration { return l.cfg.RequestTimeout }

// Contact is our Contact for a dialog: <sip:user@domain:port;transport=tls>,
// always the domain name (the edge refuses an IP address).
func (l *Link) Contact(user string) *sip.ContactHeader {
	return &sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: user, Host: l.cfg.Domain, Port: l.cfg.Port,
		UriParams: sip.HeaderParams{{K: "transport", V: "tls"}}}}
}

// UserURI is the URI of a Teams user by UPN: sip:<upn>.
func UserURI(upn string) (sip.Uri, bool) {
	user, host, ok := strings.Cut(strings.TrimSpace(upn), "@")
	if !ok || user == "" || host == "" || strings.ContainsAny(upn, " <>\";") {
		return sip.Uri{}, false
	}
	return sip.Uri{Scheme: "sip", User: user, Host: strings.ToLower(host)}, true
}

// CallerURI is the From URI of a caller: sip:<number>@<Phone App domain>.
func (l *Link) CallerURI(number string) sip.Uri {
	return sip.Uri{Scheme: "sip", User: number, Host: l.cfg.Domain}
}

// AddHeaders identifies us on a message toward the edge.
func (l *Link) AddHeaders(m sip.Message) {
	if _, ok := m.(*sip.Response); ok {
		if len(m.GetHeaders("Server")) == 0 {
			m.AppendHeader(sip.NewHeader("Server", l.cfg.UserAgent))
		}
	} else if len(m.GetHeaders("User-Agent")) == 0 {
		m.AppendHeader(sip.NewHeader("User-Agent", l.cfg.UserAgent))
	}
}

// Start serves the listener and, when configured, the keep-alives.
func (l *Link) Start() {
	l.startOnce.Do(func() {
		ctx, cancel := context.WithCancel(context.Background())
		l.cancel = cancel
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			if err := l.srv.ServeTLS(l.ln); err != nil && ctx.Err() == nil && !errors.Is(err, net.ErrClosed) {
				l.log.Error("Phone App listener stopped", "error", err)
			}
		}()
		if l.cfg.OptionsInterval > 0 {
			l.wg.Add(1)
			go func() {
				defer l.wg.Done()
				t := time.NewTicker(l.cfg.OptionsInterval)
				defer t.Stop()
				for {
					_ = l.Ping(ctx)
					select {
					case <-ctx.Done():
						return
					case <-t.C:
					}
				}
			}()
		}
	})
}

// Close stops the listener and the user agent.
func (l *Link) Close() error {
	l.closeOnce.Do(func() {
		if l.cancel != nil {
			l.cancel()
		}
		if l.ln != nil {
			l.ln.Close()
		}
		if l.ua != nil {
			l.ua.Close()
		}
		l.wg.Wait()
	})
	return nil
}

// Ping sends one OPTIONS to the edge and reports whether it answered 200.
func (l *Link) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	host, _, _ := net.SplitHostPort(l.cfg.Edge)
	ruri := sip.Uri{Scheme: "sip", Host: l.cfg.EdgeName}
	if ruri.Host == "" {
		ruri.Host = host
	}
	req := sip.NewRequest(sip.OPTIONS, ruri)
	from := &sip.FromHeader{Address: sip.Uri{Scheme: "sip", Host: l.cfg.Domain}}
	from.Params.Add("tag", sip.GenerateTagN(16))
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: ruri})
	req.AppendHeader(l.Contact(""))
	req.AppendHeader(sip.NewHeader("Allow", Allow))
	l.AddHeaders(req)
	req.SetTransport("TLS")
	req.SetDestination(l.cfg.Edge)
	res, err := l.cli.Do(ctx, req)
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case err != nil:
		l.lastErr = err.Error()
	case res.StatusCode != 200:
		l.lastErr = res.StartLine()
		err = fmt.Errorf("federation edge answered %s", res.StartLine())
	default:
		l.lastErr, l.lastOK = "", time.Now()
	}
	return err
}

// Status is the last keep-alive's outcome (zero LastOK: never answered).
func (l *Link) Status() (lastOK time.Time, lastError string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lastOK, l.lastErr
}

func (l *Link) answerOptions(req *sip.Request, tx sip.ServerTransaction) {
	res := sip.NewResponseFromRequest(req, 200, "OK", nil)
	res.AppendHeader(sip.NewHeader("Allow", Allow))
	res.AppendHeader(sip.NewHeader("Accept", "application/sdp"))
	res.AppendHeader(l.Contact(""))
	l.AddHeaders(res)
	_ = tx.Respond(res)
}
