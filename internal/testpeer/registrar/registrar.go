// Package registrar is a minimal SIP registrar on sipgo for tests that
// Debian's Kamailio cannot serve (its build has no TLS): it accepts every
// REGISTER, echoes the Contact with the granted expiry and records what it
// received. It also makes throw-away TLS certificates.
package registrar

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// Registrar is a running test registrar.
type Registrar struct {
	Addr string // 127.0.0.1:port
	// Grant is the expiry granted (default 60 s).
	Grant int

	mu       sync.Mutex
	requests []*sip.Request
	ua       *sipgo.UserAgent
	ln       net.Listener
	pc       net.PacketConn
}

// Start serves transport ("udp", "tcp" or "tls", with serverTLS for tls)
// on a free loopback port until the test ends.
func Start(t testing.TB, transport string, serverTLS *tls.Config) *Registrar {
	t.Helper()
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("test-registrar"))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := sipgo.NewServer(ua)
	if err != nil {
		t.Fatal(err)
	}
	r := &Registrar{Grant: 60, ua: ua}
	srv.OnRegister(r.handle)
	switch transport {
	case "udp":
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		r.pc, r.Addr = pc, pc.LocalAddr().String()
		go srv.ServeUDP(pc)
	case "tcp", "tls":
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		r.Addr = ln.Addr().String()
		if transport == "tls" {
			ln = tls.NewListener(ln, serverTLS)
			r.ln = ln
			go srv.ServeTLS(ln)
		} else {
			r.ln = ln
			go srv.ServeTCP(ln)
		}
	default:
		t.Fatalf("registrar: transport %q", transport)
	}
	t.Cleanup(r.Close)
	return r
}

func (r *Registrar) handle(req *sip.Request, tx sip.ServerTransaction) {
	r.mu.Lock()
	r.requests = append(r.requests, req)
	grant := r.Grant
	r.mu.Unlock()
	res := sip.NewResponseFromRequest(req, sip.StatusOK, "OK", nil)
	if c := req.Contact(); c != nil {
		cc := c.Clone()
		exp := grant
		if e := req.GetHeader("Expires"); e != nil && e.Value() == "0" {
			exp = 0
		}
		cc.Params = append(cc.Params[:0:0], sip.HeaderKV{K: "expires", V: strconv.Itoa(exp)})
		res.AppendHeader(cc)
	}
	_ = tx.Respond(res)
}

// Requests returns the REGISTER requests received so far.
func (r *Registrar) Requests() []*sip.Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*sip.Request(nil), r.requests...)
}

// Close stops the registrar.
func (r *Registrar) Close() {
	if r.ln != nil {
		r.ln.Close()
	}
	if r.pc != nil {
		r.pc.Close()
	}
	r.ua.Close()
}

// Certificate makes a CA and a server certificate for names (DNS names or
// IP addresses) signed by it; the pool trusts the CA.
func Certificate(t testing.TB, names ...string) (*x509.CertPool, tls.Certificate) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: names[0]},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return pool, tls.Certificate{Certificate: [][]byte{der, caDER}, PrivateKey: key}
}
