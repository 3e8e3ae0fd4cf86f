// Package teams is the Microsoft Teams Direct Routing trunk of pbx2teams:
// the SIP side that faces Microsoft's SIP proxies as a Session Border
// Controller in the carrier (hosting) model.
//
// One carrier FQDN (e.g. sbc.example.com) identifies the SBC; every
// customer gets a subdomain of it (e.g. contoso.sbc.example.com) which the
// customer's tenant verifies, and every message toward Microsoft for that
// customer carries it in Contact. The trunk keeps the proxies' health with
// OPTIONS every minute (sent with the carrier FQDN), answers Microsoft's
// OPTIONS, orders the proxies for failover and builds the Request-URI,
// To/From and Contact forms Microsoft expects. Call control itself lives in
// package b2bua, which uses the trunk's SIP user agent.
package teams

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/pbx2teams/pbx2teams"
)

// Microsoft's Direct Routing SIP proxies in the commercial cloud, in the
// order an SBC must try them.
var DefaultProxies = []string{
	"sip.pstnhub.microsoft.com",
	"sip2.pstnhub.microsoft.com",
	"sip3.pstnhub.microsoft.com",
}

// DefaultPeerDomains are the domains Microsoft's SIP proxy certificates are
// issued under (commercial, GCC High and DoD clouds).
var DefaultPeerDomains = []string{
	"pstnhub.microsoft.com",
	"pstnhub.gov.teams.microsoft.us",
	"pstnhub.dod.teams.microsoft.us",
}

// Config configures a Trunk.
type Config struct {
	// FQDN is the carrier FQDN of the SBC (the trunk created once with
	// New-CsOnlinePSTNGateway). OPTIONS carry it; customers' subdomains
	// are "<label>.<FQDN>". Required.
	FQDN string
	// Listen is the local address of the SIP listener, e.g. "0.0.0.0:5061".
	Listen string
	// Port is the SIP signalling port advertised in Contact, Record-Route
	// and Via (the trunk's -SipSignalingPort). Default: the listening port.
	Port int
	// Transport is "tls", the only transport Microsoft accepts. "tcp" and
	// "udp" exist for benchmarks against SIPp (which has no TLS) and must
	// never face Microsoft.
	Transport string
	// Certificate is the SBC certificate with its full chain, valid for
	// FQDN and *.FQDN. It is presented to Microsoft both as TLS server and
	// as TLS client (mutual TLS). Required for "tls" unless GetCertificate
	// is set.
	Certificate *tls.Certificate
	// GetCertificate, when set, supplies the certificate on every
	// handshake (certificate rotation without restart).
	GetCertificate func() (*tls.Certificate, error)
	// MicrosoftRoots are the CAs trusted for Microsoft's certificates
	// (DigiCert Global Root G2 and the Microsoft 2017 roots in
	// production). nil uses the system pool.
	MicrosoftRoots *x509.CertPool
	// PeerDomains: a peer's certificate must carry a DNS name equal to or
	// under one of these. Default DefaultPeerDomains.
	PeerDomains []string
	// Proxies are Microsoft's SIP proxies by DNS name, in failover order.
	// Default DefaultProxies.
	Proxies []string
	// ProxyPort is the proxies' port (default 5061).
	ProxyPort int
	// OptionsInterval is the keep-alive period (default 60 s, Microsoft's
	// expectation). Negative disables keep-alives (benchmarks only).
	OptionsInterval time.Duration
	// RequestTimeout bounds one INVITE attempt that got no provisional
	// response, before failing over (default 10 s).
	RequestTimeout time.Duration
	// OptionsTimeout bounds one keep-alive (default 10 s).
	OptionsTimeout time.Duration
	// Resolver resolves the proxies' names (default net.DefaultResolver).
	// Names are resolved on every request, never cached: Microsoft moves
	// them during maintenance.
	Resolver *net.Resolver
	// Product is the value of the X-MS-SBC header Microsoft asks certified
	// SBCs to send ("vendor/model/version"). Default "pbx2teams/B2BUA/dev".
	Product string
	// UserAgent is the User-Agent/Server header (default "pbx2teams").
	UserAgent string
	Logger    *slog.Logger
}

func (c *Config) normalize() error {
	c.FQDN = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(c.FQDN), "."))
	if !validFQDN(c.FQDN) {
		return pbx2teams.Errorf(pbx2teams.EInvalid, "Teams trunk: the SBC FQDN %q is not a DNS name; Microsoft refuses IP addresses and needs the FQDN of the certificate.", c.FQDN)
	}
	if c.Transport == "" {
		c.Transport = "tls"
	}
	c.Transport = strings.ToLower(c.Transport)
	switch c.Transport {
	case "tls":
		if c.Certificate == nil && c.GetCertificate == nil {
			return pbx2teams.Errorf(pbx2teams.EInvalid, "Teams trunk: a certificate for %s is required; Microsoft only talks mutual TLS.", c.FQDN)
		}
	case "tcp", "udp":
	default:
		return pbx2teams.Errorf(pbx2teams.EInvalid, "Teams trunk: transport %q is not supported; use tls.", c.Transport)
	}
	if c.Listen == "" {
		return pbx2teams.Errorf(pbx2teams.EInvalid, "Teams trunk: set the listen address, e.g. 0.0.0.0:5061.")
	}
	if len(c.PeerDomains) == 0 {
		c.PeerDomains = DefaultPeerDomains
	}
	if len(c.Proxies) == 0 {
		c.Proxies = DefaultProxies
	}
	if c.ProxyPort == 0 {
		c.ProxyPort = 5061
	}
	if c.OptionsInterval == 0 {
		c.OptionsInterval = time.Minute
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = 10 * time.Second
	}
	if c.OptionsTimeout <= 0 {
		c.OptionsTimeout = 10 * time.Second
	}
	if c.Resolver == nil {
		c.Resolver = net.DefaultResolver
	}
	if c.Product == "" {
		c.Product = "pbx2teams/B2BUA/dev"
	}
	if c.UserAgent == "" {
		c.UserAgent = "pbx2teams"
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return nil
}

// validFQDN accepts a DNS name of at least two labels that is not an IP
// address.
func validFQDN(s string) bool {
	if len(s) == 0 || len(s) > 253 || net.ParseIP(s) != nil || !strings.Contains(s, ".") {
		return false
	}
	for _, l := range strings.Split(s, ".") {
		if !validLabel(l) {
			return false
		}
	}
	return true
}

// validLabel accepts one DNS label: letters, digits and hyphens (not at
// either end), at most 63 characters.
func validLabel(l string) bool {
	if len(l) == 0 || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
		return false
	}
	for i := 0; i < len(l); i++ {
		c := l[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// ValidLabel reports whether label can be a customer's subdomain label:
// one DNS label (the SBC certificate's wildcard covers exactly one).
func ValidLabel(label string) bool { return validLabel(label) }

// CustomerFQDN returns the FQDN of a customer's subdomain.
func CustomerFQDN(label, baseFQDN string) string {
	return strings.ToLower(label) + "." + baseFQDN
}

// LabelOf returns the customer label of host when host is exactly one label
// under baseFQDN (e.g. "contoso" for contoso.sbc.example.com).
func LabelOf(host, baseFQDN string) (string, bool) {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if !strings.HasSuffix(host, "."+baseFQDN) {
		return "", false
	}
	label := host[:len(host)-len(baseFQDN)-1]
	if !validLabel(label) {
		return "", false
	}
	return label, true
}

func (c *Config) String() string {
	return fmt.Sprintf("teams trunk %s (%s on %s)", c.FQDN, c.Transport, c.Listen)
}
