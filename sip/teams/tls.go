package teams

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
)

// cipherSuites are the TLS 1.2 suites offered to Microsoft: the ECDHE
// AES-GCM suites Microsoft documents, plus their ECDSA twins. TLS 1.3
// suites are not configurable in Go and are always on.
var cipherSuites = []uint16{
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256,
}

// ErrPeerNotMicrosoft is wrapped by handshake errors when the peer's
// certificate is valid but not issued for one of the allowed domains.
var ErrPeerNotMicrosoft = errors.New("peer certificate is not for a Microsoft SIP proxy")

// certMatchesDomains reports whether the certificate carries a DNS name
// equal to or under one of domains (wildcard names included).
func certMatchesDomains(cert *x509.Certificate, domains []string) bool {
	for _, n := range cert.DNSNames {
		n = strings.ToLower(strings.TrimPrefix(n, "*."))
		for _, d := range domains {
			d = strings.ToLower(d)
			if n == d || strings.HasSuffix(n, "."+d) {
				return true
			}
		}
	}
	return false
}

// serverTLS is the listener's configuration: TLS 1.2+, our certificate,
// and a required client certificate from Microsoft (mutual TLS).
func (c *Config) serverTLS(get func() (*tls.Certificate, error)) *tls.Config {
	cfg := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		CipherSuites: cipherSuites,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    c.MicrosoftRoots,
	}
	if c.MicrosoftRoots == nil {
		// Go verifies client certificates only against ClientCAs; nil
		// there would accept none, so use the system pool explicitly.
		if pool, err := x509.SystemCertPool(); err == nil {
			cfg.ClientCAs = pool
		}
	}
	setCertificate(cfg, true, get)
	domains := c.PeerDomains
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return fmt.Errorf("teams: %w: no certificate presented", ErrPeerNotMicrosoft)
		}
		if !certMatchesDomains(cs.PeerCertificates[0], domains) {
			return fmt.Errorf("teams: %w: names %v", ErrPeerNotMicrosoft, cs.PeerCertificates[0].DNSNames)
		}
		return nil
	}
	return cfg
}

// clientTLS is used when we connect to a proxy: our certificate as client
// certificate, Microsoft's roots, and the proxy's name as ServerName (the
// transport layer sets it from the destination host name, which also
// sends SNI).
func (c *Config) clientTLS(get func() (*tls.Certificate, error)) *tls.Config {
	cfg := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		CipherSuites: cipherSuites,
		RootCAs:      c.MicrosoftRoots,
	}
	setCertificate(cfg, false, get)
	domains := c.PeerDomains
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) > 0 && !certMatchesDomains(cs.PeerCertificates[0], domains) {
			return fmt.Errorf("teams: %w: names %v", ErrPeerNotMicrosoft, cs.PeerCertificates[0].DNSNames)
		}
		return nil
	}
	return cfg
}

// setCertificate makes every handshake ask get for the certificate, so a
// renewed certificate is used from the next connection on.
func setCertificate(cfg *tls.Config, server bool, get func() (*tls.Certificate, error)) {
	if server {
		cfg.GetCertificate = func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return get() }
	} else {
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return get() }
	}
}
