package teams

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/emiago/sipgo/sip"
)

// Federation edge names: the simulator's default, and the name Microsoft's
// edge answers as in production (the target of the
// _sipfederationtls._tcp SRV record of a Microsoft 365 domain).
const (
	DefaultEdgeName   = "sipfed.msim.test"
	MicrosoftEdgeName = "sipfed.online.lync.com"
)

// EdgeConfig configures the federation edge.
type EdgeConfig struct {
	// Name is the edge's host name (default DefaultEdgeName); it is in the
	// edge's certificate, Contact and Warning headers.
	Name string
	// Certificate is the edge's certificate for Name. When empty and PKI
	// is set, one is issued from PKI.
	Certificate tls.Certificate
	PKI         *PKI
	// Roots are the CAs trusted for the callers' client certificates
	// (default Config.Roots of the Sim).
	Roots *x509.CertPool
	// ListenIP is the loopback address listened on (default 127.0.0.1);
	// Port is the port (0: a free one).
	ListenIP string
	Port     int
}

// Edge is the simulated Teams federation edge: SIP over mutual TLS taking
// calls from a federated domain (the Phone App domain of pbx2teams) to
// Teams users by UPN. What it enforces, in order:
//   - a Contact that names a host, not an IP address (else 403);
//   - a client certificate valid for the From domain (else 403 with a
//     Warning saying which domain it does not cover);
//   - an SDP offer over RTP/SAVP with an AES_CM_128_HMAC_SHA1_80 key (else
//     488, as Direct Routing);
//   - a Request-URI naming a user of a tenant by UPN (else 404);
//   - the tenant's external access allowing the From domain (else
//     603 Declined with Warning: 399 <edge> "External access does not
//     allow <domain>");
//   - the user in TeamsOnly coexistence mode (else 480 with Warning: 399
//     <edge> "User is not in TeamsOnly mode").
//
// An accepted call rings the user like a Direct Routing call (User.Calls,
// User.Incoming, Call.Answer, ...); the edge sends its in-dialog requests
// (BYE, hold re-INVITEs) back over the caller's TLS connection.
type Edge struct {
	*Datacenter
}

// StartEdge starts the federation edge of the simulator. It is closed
// with the Sim.
func (s *Sim) StartEdge(cfg EdgeConfig) (*Edge, error) {
	if cfg.Name == "" {
		cfg.Name = DefaultEdgeName
	}
	if cfg.ListenIP == "" {
		cfg.ListenIP = "127.0.0.1"
	}
	if cfg.Roots == nil {
		cfg.Roots = s.cfg.Roots
	}
	if cfg.Certificate.Certificate == nil {
		if cfg.PKI == nil {
			return nil, errors.New("teams sim: the edge needs a Certificate or a PKI")
		}
		c, err := cfg.PKI.Issue(cfg.Name)
		if err != nil {
			return nil, err
		}
		cfg.Certificate = c
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(cfg.ListenIP, fmt.Sprint(cfg.Port)))
	if err != nil {
		return nil, err
	}
	e := &Edge{Datacenter: &Datacenter{Name: cfg.Name, IP: cfg.ListenIP, Port: ln.Addr().(*net.TCPAddr).Port, sim: s}}
	e.edge = e
	if err := e.start(ln, cfg.Certificate, cfg.Roots, e.onOptions, e.onInvite); err != nil {
		ln.Close()
		return nil, err
	}
	s.mu.Lock()
	closed := s.closed
	s.edges = append(s.edges, e)
	s.mu.Unlock()
	if closed {
		e.ln.Close()
		e.ua.Close()
		return nil, errors.New("teams sim: closed")
	}
	return e, nil
}

// Records returns the requests the edge received, optionally of one method.
func (e *Edge) Records(method string) []Record {
	var out []Record
	for _, r := range e.sim.Records(method) {
		if r.Datacenter == e.Name {
			out = append(out, r)
		}
	}
	return out
}

// refuse answers with a status and, when text is set, a Warning header
// (code 399, "miscellaneous warning", from the edge) that explains why.
func (e *Edge) refuse(req *sip.Request, tx sip.ServerTransaction, status int, reason, text string) {
	res := sip.NewResponseFromRequest(req, status, reason, nil)
	warning := ""
	if text != "" {
		warning = fmt.Sprintf("399 %s %q", e.Name, text)
		res.AppendHeader(sip.NewHeader("Warning", warning))
	}
	if status == 503 {
		res.AppendHeader(sip.NewHeader("Retry-After", "30"))
	}
	_ = tx.Respond(res)
	e.sim.recordWarning(e.Datacenter, req, status, warning)
}

// callerDomain checks the caller's identity: a Contact naming a host and
// a client certificate for the From domain. It returns the From domain,
// or a refusal.
func (e *Edge) callerDomain(req *sip.Request, tx sip.ServerTransaction) (string, bool) {
	from := req.From()
	if from == nil || from.Address.Host == "" {
		e.refuse(req, tx, 400, "Bad Request", "From header required")
		return "", false
	}
	domain := strings.ToLower(from.Address.Host)
	ct := req.Contact()
	if req.IsInvite() && (ct == nil || ct.Address.Host == "") {
		e.refuse(req, tx, 400, "Bad Request", "Contact header required")
		return "", false
	}
	if ct != nil && net.ParseIP(strings.Trim(ct.Address.Host, "[]")) != nil {
		e.refuse(req, tx, 403, "Forbidden", "An IP address in Contact is not accepted; use the domain name")
		return "", false
	}
	cert := peerCertificate(tx)
	if cert == nil {
		e.refuse(req, tx, 403, "Forbidden", "A client certificate is required")
		return "", false
	}
	if err := cert.VerifyHostname(domain); err != nil {
		e.refuse(req, tx, 403, "Forbidden", "The TLS certificate is not valid for "+domain)
		return "", false
	}
	return domain, true
}

func (e *Edge) onOptions(req *sip.Request, tx sip.ServerTransaction) {
	e.mu.Lock()
	e.options++
	e.mu.Unlock()
	switch e.getMode() {
	case NoResponse:
		e.sim.record(e.Datacenter, req, 0)
		return
	case Unavailable:
		e.refuse(req, tx, 503, "Service Unavailable", "")
		return
	}
	if _, ok := e.callerDomain(req, tx); !ok {
		return
	}
	res := sip.NewResponseFromRequest(req, 200, "OK", nil)
	res.AppendHeader(sip.NewHeader("Allow", "INVITE,ACK,OPTIONS,CANCEL,BYE"))
	_ = tx.Respond(res)
	e.sim.record(e.Datacenter, req, 200)
}

// tenantForUPN finds the tenant owning a UPN's domain: tenants added with
// AddTenant first, then the Directory's.
func (s *Sim) tenantForUPN(upn string) *Tenant {
	_, dom, ok := strings.Cut(upn, "@")
	if !ok {
		return nil
	}
	dom = strings.ToLower(dom)
	s.mu.Lock()
	for _, t := range s.tenants {
		t.mu.Lock()
		for _, d := range t.domains {
			if d == dom {
				t.mu.Unlock()
				s.mu.Unlock()
				return t
			}
		}
		t.mu.Unlock()
	}
	s.mu.Unlock()
	if s.cfg.Directory == nil {
		return nil
	}
	if id, ok := s.cfg.Directory.TenantByDomain(dom); ok {
		return s.directoryTenant(id)
	}
	return nil
}

func (e *Edge) onInvite(req *sip.Request, tx sip.ServerTransaction) {
	if to := req.To(); to != nil && to.Params.Has("tag") {
		e.onReinvite(req, tx)
		return
	}
	e.mu.Lock()
	e.invites++
	e.mu.Unlock()
	switch e.getMode() {
	case NoResponse:
		e.sim.record(e.Datacenter, req, 0)
		return
	case Unavailable:
		e.refuse(req, tx, 503, "Service Unavailable", "")
		return
	}
	domain, ok := e.callerDomain(req, tx)
	if !ok {
		return
	}
	if req.GetHeader("Replaces") != nil {
		e.refuse(req, tx, 403, "Forbidden", "Replaces is not supported")
		return
	}
	neg, prob := checkSBCDescription(req.Body())
	if prob != nil {
		e.refuse(req, tx, prob.status, "Not Acceptable Here", prob.reason)
		return
	}
	upn := req.Recipient.User + "@" + strings.ToLower(req.Recipient.Host)
	var u *User
	t := e.sim.tenantForUPN(upn)
	if req.Recipient.User != "" && t != nil {
		u = t.userByUPN(upn)
	}
	if u == nil {
		e.refuse(req, tx, 404, "Not Found", "No Teams user "+upn)
		return
	}
	if !t.allowsDomain(domain) {
		e.refuse(req, tx, 603, "Declined", "External access does not allow "+domain)
		return
	}
	u.mu.Lock()
	coex, disabled := u.coex, u.disabled
	u.mu.Unlock()
	if coex != "" && !strings.EqualFold(coex, TeamsOnly) {
		e.refuse(req, tx, 480, "Temporarily Unavailable", "User is not in TeamsOnly mode")
		return
	}
	if disabled {
		e.refuse(req, tx, 480, "Temporarily Unavailable", "User account is disabled")
		return
	}
	c := e.inboundCall(req, u)
	// In-dialog requests go back over the caller's connection, as a
	// federation edge does (the caller need not listen).
	c.conn = req.Source()
	e.ring(req, tx, c, neg)
}
