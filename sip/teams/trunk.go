package teams

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// Allow is the method list the SBC advertises toward Teams. REFER is in it,
// so Microsoft's proxy acts as transferor and sends us REFER (RFC 5589
// §6), which is what Microsoft prefers and certifies.
const Allow = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, REFER, NOTIFY"

// Trunk is the SIP user agent facing Microsoft: its listener, keep-alives
// and proxy health. Call control registers its request handlers on
// Server() before Start.
type Trunk struct {
	cfg  Config
	log  *slog.Logger
	ua   *sipgo.UserAgent
	srv  *sipgo.Server
	cli  *sipgo.Client
	port int

	udp net.PacketConn
	ln  net.Listener

	proxies []*proxyState
	cert    atomic.Pointer[tls.Certificate]

	startOnce sync.Once
	closeOnce sync.Once
	cancel    context.CancelFunc
	wg        sync.WaitGroup
}

// proxyState is the health of one of Microsoft's proxies as seen by our
// keep-alives and calls.
type proxyState struct {
	name string

	mu        sync.Mutex
	checked   bool // at least one keep-alive completed
	up        bool
	lastOK    time.Time
	lastError string
	downUntil time.Time // after 503 + Retry-After
}

// ProxyStatus is the health of one proxy, for status pages and readiness.
type ProxyStatus struct {
	Name      string    `json:"name"`
	Up        bool      `json:"up"`
	Checked   bool      `json:"checked"`
	LastOK    time.Time `json:"last_ok,omitzero"`
	LastError string    `json:"last_error,omitempty"`
}

// New opens the trunk's listener and creates its user agent. Nothing is
// served until Start.
func New(cfg Config) (*Trunk, error) {
	if err := cfg.normalize(); err != nil {
		return nil, err
	}
	t := &Trunk{cfg: cfg, log: cfg.Logger.With("component", "teams-trunk")}
	if cfg.Certificate != nil {
		t.cert.Store(cfg.Certificate)
	}
	for _, p := range cfg.Proxies {
		t.proxies = append(t.proxies, &proxyState{name: strings.ToLower(p)})
	}
	var err error
	switch cfg.Transport {
	case "udp":
		t.udp, err = net.ListenPacket("udp", cfg.Listen)
		if err == nil {
			t.port = t.udp.LocalAddr().(*net.UDPAddr).Port
		}
	default:
		t.ln, err = net.Listen("tcp", cfg.Listen)
		if err == nil {
			t.port = t.ln.Addr().(*net.TCPAddr).Port
			if cfg.Transport == "tls" {
				t.ln = tls.NewListener(t.ln, cfg.serverTLS(t.certificate))
			}
		}
	}
	if err != nil {
		return nil, fmt.Errorf("teams: listen %s %s: %w", cfg.Transport, cfg.Listen, err)
	}
	if t.cfg.Port == 0 {
		t.cfg.Port = t.port
	}
	ua, err := sipgo.NewUA(
		sipgo.WithUserAgent(cfg.UserAgent),
		sipgo.WithUserAgentHostname(cfg.FQDN),
		sipgo.WithUserAgentDNSResolver(cfg.Resolver),
		sipgo.WithUserAgenTLSConfig(cfg.clientTLS(t.certificate)),
		sipgo.WithUserAgentTransactionLayerOptions(
			sip.WithTransactionLayerUnhandledResponseHandler(func(*sip.Response) {}),
			sip.WithTransactionLayerTerminateOnConnClose(),
		),
	)
	if err != nil {
		t.closeSockets()
		return nil, err
	}
	t.ua = ua
	if t.srv, err = sipgo.NewServer(ua); err != nil {
		t.Close()
		return nil, err
	}
	// Via carries the FQDN, never an IP: Microsoft checks names everywhere.
	if t.cli, err = sipgo.NewClient(ua, sipgo.WithClientHostname(cfg.FQDN), sipgo.WithClientPort(t.cfg.Port)); err != nil {
		t.Close()
		return nil, err
	}
	t.srv.OnOptions(t.answerOptions)
	return t, nil
}

// certificate returns the certificate for a handshake.
func (t *Trunk) certificate() (*tls.Certificate, error) {
	if t.cfg.GetCertificate != nil {
		return t.cfg.GetCertificate()
	}
	if c := t.cert.Load(); c != nil {
		return c, nil
	}
	return nil, errors.New("teams: no certificate")
}

// SetCertificate installs a renewed certificate and closes every TLS
// connection, so that Microsoft sees the new one at once: Microsoft keeps
// warning about the old certificate as long as a connection made with it
// stays open. Connections are re-established on demand (in-dialog
// requests included).
func (t *Trunk) SetCertificate(c *tls.Certificate) error {
	if c == nil {
		return errors.New("teams: nil certificate")
	}
	t.cert.Store(c)
	return t.DropConnections()
}

// DropConnections closes every TLS connection of the trunk (for example
// after GetCertificate starts returning a renewed certificate).
func (t *Trunk) DropConnections() error {
	if p := t.ua.TransportLayer().Pool(t.cfg.Transport); p != nil {
		return p.Clear()
	}
	return nil
}

// Server is where call control registers its request handlers.
func (t *Trunk) Server() *sipgo.Server { return t.srv }

// Client sends requests toward Microsoft.
func (t *Trunk) Client() *sipgo.Client { return t.cli }

// UA is the trunk's user agent.
func (t *Trunk) UA() *sipgo.UserAgent { return t.ua }

// FQDN is the carrier FQDN.
func (t *Trunk) FQDN() string { return t.cfg.FQDN }

// Port is the advertised signalling port.
func (t *Trunk) Port() int { return t.cfg.Port }

// LocalPort is the port the listener is bound to.
func (t *Trunk) LocalPort() int { return t.port }

// Transport is the trunk's transport ("tls", or "tcp"/"udp" in benchmarks).
func (t *Trunk) Transport() string { return t.cfg.Transport }

// RequestTimeout bounds an INVITE attempt that got no provisional
// response before the next proxy is tried.
func (t *Trunk) RequestTimeout() time.Duration { return t.cfg.RequestTimeout }

// Product is the X-MS-SBC value.
func (t *Trunk) Product() string { return t.cfg.Product }

// Start serves the listener and starts the OPTIONS keep-alives.
func (t *Trunk) Start() {
	t.startOnce.Do(func() {
		ctx, cancel := context.WithCancel(context.Background())
		t.cancel = cancel
		t.wg.Add(1)
		go func() {
			defer t.wg.Done()
			var err error
			switch {
			case t.udp != nil:
				err = t.srv.ServeUDP(t.udp)
			case t.cfg.Transport == "tls":
				err = t.srv.ServeTLS(t.ln)
			default:
				err = t.srv.ServeTCP(t.ln)
			}
			if err != nil && ctx.Err() == nil && !errors.Is(err, net.ErrClosed) {
				t.log.Error("teams listener stopped", "error", err)
			}
		}()
		if t.cfg.OptionsInterval > 0 {
			t.wg.Add(1)
			go func() {
				defer t.wg.Done()
				t.keepAlive(ctx)
			}()
		}
	})
}

// Close stops keep-alives, the listener and the user agent.
func (t *Trunk) Close() error {
	t.closeOnce.Do(func() {
		if t.cancel != nil {
			t.cancel()
		}
		t.closeSockets()
		if t.ua != nil {
			t.ua.Close()
		}
		t.wg.Wait()
	})
	return nil
}

func (t *Trunk) closeSockets() {
	if t.udp != nil {
		t.udp.Close()
	}
	if t.ln != nil {
		t.ln.Close()
	}
}

// CustomerFQDN is the FQDN of a customer's subdomain label.
func (t *Trunk) CustomerFQDN(label string) string { return CustomerFQDN(label, t.cfg.FQDN) }

// LabelOf returns the customer label of a host under the carrier FQDN.
func (t *Trunk) LabelOf(host string) (string, bool) { return LabelOf(host, t.cfg.FQDN) }

// Contact is our Contact toward Microsoft for a message about user (a
// number, or "" for OPTIONS) of the customer whose FQDN is host:
// <sip:user@host:port;transport=tls>. Always an FQDN, never an IP.
func (t *Trunk) Contact(user, host string) *sip.ContactHeader {
	return &sip.ContactHeader{Address: t.uri(user, host)}
}

// RecordRoute is our Record-Route toward Microsoft for a customer's FQDN.
func (t *Trunk) RecordRoute(host string) *sip.RecordRouteHeader {
	u := t.uri("", host)
	u.UriParams = append(u.UriParams, sip.HeaderKV{K: "lr", V: ""})
	return &sip.RecordRouteHeader{Address: u}
}

func (t *Trunk) uri(user, host string) sip.Uri {
	return sip.Uri{Scheme: "sip", User: user, Host: host, Port: t.cfg.Port,
		UriParams: sip.HeaderParams{{K: "transport", V: t.cfg.Transport}}}
}

// AddHeaders puts the SBC identification on a message toward Microsoft:
// X-MS-SBC, and User-Agent on requests or Server on responses.
func (t *Trunk) AddHeaders(m sip.Message) {
	m.AppendHeader(sip.NewHeader("X-MS-SBC", t.cfg.Product))
	if _, ok := m.(*sip.Response); ok {
		if len(m.GetHeaders("Server")) == 0 {
			m.AppendHeader(sip.NewHeader("Server", t.cfg.UserAgent))
		}
	} else if len(m.GetHeaders("User-Agent")) == 0 {
		m.AppendHeader(sip.NewHeader("User-Agent", t.cfg.UserAgent))
	}
}

// Target is where to send a new request toward Microsoft: a proxy name
// and port; the transport layer resolves the name for each request.
type Target struct {
	Proxy string
	Port  int
}

// Destination is "name:port" for sip.Request.SetDestination.
func (tg Target) Destination() string { return net.JoinHostPort(tg.Proxy, strconv.Itoa(tg.Port)) }

// Targets returns the proxies in the order to try for a new call: the
// healthy ones (or not yet checked) in configured order, then the
// unhealthy ones, which are demoted but still tried.
func (t *Trunk) Targets() []Target {
	now := time.Now()
	var good, bad []Target
	for _, p := range t.proxies {
		p.mu.Lock()
		healthy := (!p.checked || p.up) && !now.Before(p.downUntil)
		p.mu.Unlock()
		tg := Target{Proxy: p.name, Port: t.cfg.ProxyPort}
		if healthy {
			good = append(good, tg)
		} else {
			bad = append(bad, tg)
		}
	}
	return append(good, bad...)
}

// ShouldFailover reports whether a final response (or 0 for no response:
// timeout or transport failure) means the next proxy must be tried. 408,
// 503 and 504 do; every other 4xx, 5xx and 6xx ends the attempt (a retry
// after 603 or 486 would ring the user again and leave several missed-call
// notices).
func ShouldFailover(status int) bool {
	return status == 0 || status == 408 || status == 503 || status == 504
}

// ReportFailure records that a proxy failed a request (status 0 for no
// answer). A 503 with Retry-After keeps it demoted for that long; any
// failure demotes it until the next successful keep-alive.
func (t *Trunk) ReportFailure(proxy string, status int, retryAfter time.Duration) {
	for _, p := range t.proxies {
		if p.name != strings.ToLower(proxy) {
			continue
		}
		p.mu.Lock()
		p.checked, p.up = true, false
		p.lastError = failureText(status)
		if retryAfter > 0 {
			p.downUntil = time.Now().Add(retryAfter)
		}
		p.mu.Unlock()
		t.log.Warn("teams proxy failed a request; demoted", "proxy", proxy, "status", status, "retry_after", retryAfter)
	}
}

func failureText(status int) string {
	if status == 0 {
		return "no response"
	}
	return "status " + strconv.Itoa(status)
}

// RetryAfter reads a Retry-After header (seconds) of a response.
func RetryAfter(res *sip.Response) time.Duration {
	h := res.GetHeader("Retry-After")
	if h == nil {
		return 0
	}
	v := h.Value()
	if i := strings.IndexAny(v, " ;("); i >= 0 {
		v = v[:i]
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 || n > 86400 {
		return 0
	}
	return time.Duration(n) * time.Second
}

// Status returns the health of every proxy.
func (t *Trunk) Status() []ProxyStatus {
	out := make([]ProxyStatus, 0, len(t.proxies))
	for _, p := range t.proxies {
		p.mu.Lock()
		out = append(out, ProxyStatus{Name: p.name, Up: p.up, Checked: p.checked, LastOK: p.lastOK, LastError: p.lastError})
		p.mu.Unlock()
	}
	return out
}

// Active reports whether at least one proxy answered the last keep-alive:
// Microsoft processes calls only for an SBC whose OPTIONS succeed.
func (t *Trunk) Active() bool {
	for _, p := range t.proxies {
		p.mu.Lock()
		up := p.up
		p.mu.Unlock()
		if up {
			return true
		}
	}
	return false
}

// keepAlive pings every proxy at once and then every interval.
func (t *Trunk) keepAlive(ctx context.Context) {
	tick := time.NewTicker(t.cfg.OptionsInterval)
	defer tick.Stop()
	for {
		var wg sync.WaitGroup
		for _, p := range t.proxies {
			wg.Add(1)
			go func() {
				defer wg.Done()
				t.ping(ctx, p)
			}()
		}
		wg.Wait()
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// Ping sends one keep-alive to every proxy now and waits for the answers
// (tests and the readiness probe use it).
func (t *Trunk) Ping(ctx context.Context) {
	var wg sync.WaitGroup
	for _, p := range t.proxies {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t.ping(ctx, p)
		}()
	}
	wg.Wait()
}

func (t *Trunk) ping(ctx context.Context, p *proxyState) {
	ctx, cancel := context.WithTimeout(ctx, t.cfg.OptionsTimeout)
	defer cancel()
	res, err := t.cli.Do(ctx, t.optionsRequest(p.name))
	p.mu.Lock()
	defer p.mu.Unlock()
	if ctx.Err() != nil && errors.Is(ctx.Err(), context.Canceled) {
		return // shutting down
	}
	p.checked = true
	wasUp := p.up
	switch {
	case err != nil:
		p.up, p.lastError = false, err.Error()
	case res.StatusCode != 200:
		p.up, p.lastError = false, res.StartLine()
	default:
		p.up, p.lastError, p.lastOK = true, "", time.Now()
		p.downUntil = time.Time{}
	}
	if wasUp != p.up {
		t.log.Info("teams proxy health changed", "proxy", p.name, "up", p.up, "error", p.lastError)
	}
}

// optionsRequest builds a keep-alive: OPTIONS sip:<proxy>:<port>, with the
// carrier FQDN in From and Contact (Microsoft finds the SBC by the FQDN in
// Record-Route, then Contact).
func (t *Trunk) optionsRequest(proxy string) *sip.Request {
	ruri := sip.Uri{Scheme: "sip", Host: proxy, Port: t.cfg.ProxyPort}
	req := sip.NewRequest(sip.OPTIONS, ruri)
	from := &sip.FromHeader{Address: sip.Uri{Scheme: "sip", Host: t.cfg.FQDN, Port: t.cfg.Port}}
	from.Params.Add("tag", sip.GenerateTagN(16))
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: ruri})
	req.AppendHeader(t.Contact("", t.cfg.FQDN))
	req.AppendHeader(sip.NewHeader("Allow", Allow))
	req.AppendHeader(sip.NewHeader("Accept", "application/sdp"))
	t.AddHeaders(req)
	req.SetTransport(strings.ToUpper(t.cfg.Transport))
	req.SetDestination(net.JoinHostPort(proxy, strconv.Itoa(t.cfg.ProxyPort)))
	return req
}

// answerOptions answers Microsoft's keep-alives (and anyone else's on
// this listener: over TLS only Microsoft can connect).
func (t *Trunk) answerOptions(req *sip.Request, tx sip.ServerTransaction) {
	res := sip.NewResponseFromRequest(req, sip.StatusOK, "OK", nil)
	res.AppendHeader(sip.NewHeader("Allow", Allow))
	res.AppendHeader(sip.NewHeader("Accept", "application/sdp"))
	host := t.cfg.FQDN
	if req.Recipient.Host != "" {
		if _, ok := t.LabelOf(req.Recipient.Host); ok {
			host = strings.ToLower(req.Recipient.Host)
		}
	}
	res.AppendHeader(t.Contact("", host))
	t.AddHeaders(res)
	if err := tx.Respond(res); err != nil {
		t.log.Debug("answer OPTIONS failed", "error", err)
	}
}
