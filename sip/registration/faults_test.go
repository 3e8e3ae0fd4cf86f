package registration

import (
	"crypto/tls"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	pbx2teams "github.com/pbx2teams/pbx2teams"
	"github.com/pbx2teams/pbx2teams/internal/testpeer/dnsserver"
	"github.com/pbx2teams/pbx2teams/internal/testpeer/kamailio"
	"github.com/pbx2teams/pbx2teams/internal/testpeer/registrar"
	"github.com/pbx2teams/pbx2teams/sip/sipx"
)

func startDNS(t *testing.T) *dnsserver.Server {
	t.Helper()
	d, err := dnsserver.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// A registrar over TLS: with a certificate nobody trusts the user fails
// with a reason naming the certificate; with the CA trusted and the
// certificate valid for the SIP domain (found by DNS) it registers; a
// trusted certificate for another name is refused.
func TestTLSCertificate(t *testing.T) {
	peers(t)
	pool, cert := registrar.Certificate(t, "pbx.test")
	reg := registrar.Start(t, "tls", &tls.Config{Certificates: []tls.Certificate{cert}})
	_, port, _ := net.SplitHostPort(reg.Addr)
	dns := startDNS(t)
	dns.SetA("pbx.test", netip.MustParseAddr("127.0.0.1"))
	dns.SetA("other.test", netip.MustParseAddr("127.0.0.1"))

	acc := func(id, domain string) Account {
		return Account{UserID: id, AccountID: "acct-tls", Domain: domain, OutboundProxy: domain + ":" + port,
			Transport: "tls", Username: "200", Password: "pw", ContactUser: "ctls" + id}
	}
	t.Run("untrusted", func(t *testing.T) {
		st := newStack(t, sipx.StackConfig{}, "tls")
		e := newEngine(t, Config{Stack: st, Resolver: dns.Resolver()})
		a := acc("u1", "pbx.test")
		if err := e.Set(a); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 5*time.Second, "failed", func() bool { return state(t, e, a.UserID).State == pbx2teams.RegFailed })
		s := state(t, e, a.UserID)
		if want := "TLS certificate of pbx.test (" + reg.Addr + ") not accepted: x509: certificate signed by unknown authority"; s.Reason != want {
			t.Errorf("reason %q", s.Reason)
		}
		if e.Stats().Failures["tls"] == 0 {
			t.Errorf("failures %v", e.Stats().Failures)
		}
	})
	t.Run("trusted", func(t *testing.T) {
		st := newStack(t, sipx.StackConfig{ClientTLS: &tls.Config{RootCAs: pool}}, "tls")
		e := newEngine(t, Config{Stack: st, Resolver: dns.Resolver()})
		good, wrong := acc("u2", "pbx.test"), acc("u3", "other.test")
		for _, a := range []Account{good, wrong} {
			if err := e.Set(a); err != nil {
				t.Fatal(err)
			}
		}
		waitFor(t, 5*time.Second, "registered", func() bool { return allRegistered(e, good.UserID) })
		if s := state(t, e, good.UserID); s.PBXAddress != "tls:"+reg.Addr {
			t.Errorf("PBX address %q", s.PBXAddress)
		}
		var found bool
		for _, r := range reg.Requests() {
			if c := r.Contact(); c != nil && c.Address.User == good.ContactUser {
				found = strings.Contains(c.Address.String(), "transport=tls")
			}
		}
		if !found {
			t.Error("registrar did not receive our TLS Contact")
		}
		waitFor(t, 5*time.Second, "refused", func() bool { return state(t, e, wrong.UserID).State == pbx2teams.RegFailed })
		if s := state(t, e, wrong.UserID); !strings.Contains(s.Reason, "TLS certificate of other.test") || !strings.Contains(s.Reason, "not other.test") {
			t.Errorf("reason %q", s.Reason)
		}
	})
}

// A domain DNS does not know fails with a reason saying so, and is retried
// with backoff.
func TestDNSFailure(t *testing.T) {
	peers(t)
	dns := startDNS(t)
	st := newStack(t, sipx.StackConfig{}, "udp")
	e := newEngine(t, Config{Stack: st, Resolver: dns.Resolver()})
	a := Account{UserID: "dns1", Domain: "nowhere.test", Username: "300", Password: "x", ContactUser: "cdns1"}
	if err := e.Set(a); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "failed", func() bool { return state(t, e, a.UserID).State == pbx2teams.RegFailed })
	s := state(t, e, a.UserID)
	if s.Reason != "DNS lookup of nowhere.test failed: no such host" || s.StatusCode != 0 || s.NextRefresh == nil {
		t.Errorf("state %+v", s)
	}
	if e.Stats().Failures["dns"] == 0 || e.Stats().RegistersSent != 0 {
		t.Errorf("stats %+v", e.Stats())
	}
}

// RFC 3263 failover: the SRV record with the best priority points at a
// dead server; the engine goes on to the next and registers there.
func TestSRVFailover(t *testing.T) {
	peers(t)
	k := kamailio.StartT(t, kamailio.Options{Transports: []string{"tcp"}, Domain: "pbx.test"})
	dead, err := kamailio.FreePort() // nothing listens there
	if err != nil {
		t.Fatal(err)
	}
	dns := startDNS(t)
	dns.SetSRV("_sip._tcp.pbx.test",
		dnsserver.SRV{Priority: 10, Weight: 1, Port: uint16(dead), Target: "a.pbx.test"},
		dnsserver.SRV{Priority: 20, Weight: 1, Port: uint16(k.Port), Target: "b.pbx.test"})
	dns.SetA("a.pbx.test", netip.MustParseAddr("127.0.0.2"))
	dns.SetA("b.pbx.test", netip.MustParseAddr("127.0.0.1"))
	st := newStack(t, sipx.StackConfig{}, "tcp")
	e := newEngine(t, Config{Stack: st, Resolver: dns.Resolver()})
	accs := kamAccounts(t, k, "srv", "tcp", 3)
	for _, a := range accs {
		a.OutboundProxy = "" // the domain pbx.test, found by SRV
		if err := e.Set(a); err != nil {
			t.Fatal(err)
		}
	}
	for _, a := range accs {
		waitFor(t, 10*time.Second, "registered via the second server", func() bool { return allRegistered(e, a.UserID) })
		if s := state(t, e, a.UserID); s.PBXAddress != "tcp:"+k.Addr() {
			t.Errorf("PBX address %q, want tcp:%s", s.PBXAddress, k.Addr())
		}
		// Calls are accepted from every node of the PBX, not only the
		// one registered with.
		addrs, ok := e.PBXAddresses(a.UserID)
		if !ok || !slices.Contains(addrs, netip.MustParseAddr("127.0.0.1")) || !slices.Contains(addrs, netip.MustParseAddr("127.0.0.2")) {
			t.Errorf("PBX addresses %v %v, want both SRV targets", addrs, ok)
		}
	}
	if _, ok := e.PBXAddresses("nobody"); ok {
		t.Error("an unknown user has PBX addresses")
	}
	if n := len(bindingsByAoR(t, k)); n != len(accs) {
		t.Errorf("%d bindings", n)
	}
	if dns.Queries("SRV", "_sip._tcp.pbx.test") == 0 {
		t.Error("no SRV lookup")
	}
}

// rawPBX is a UDP "PBX" that answers each REGISTER with whatever respond
// returns (raw datagrams, possibly malformed). respond gets the number of
// the transaction (1, 2, ...); retransmissions get the same number.
type rawPBX struct {
	conn     *net.UDPConn
	mu       sync.Mutex
	n        int
	branches map[string]int
}

func startRawPBX(t *testing.T, respond func(n int, req map[string]string) []string) *rawPBX {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	p := &rawPBX{conn: c, branches: map[string]int{}}
	t.Cleanup(func() { c.Close() })
	go func() {
		buf := make([]byte, 65535)
		for {
			n, from, err := c.ReadFromUDP(buf)
			if err != nil {
				return
			}
			msg := string(buf[:n])
			if !strings.HasPrefix(msg, "REGISTER ") {
				continue
			}
			hdr := map[string]string{}
			for _, line := range strings.Split(msg, "\r\n")[1:] {
				if k, v, ok := strings.Cut(line, ":"); ok {
					if _, seen := hdr[k]; !seen {
						hdr[k] = strings.TrimSpace(v)
					}
				}
			}
			p.mu.Lock()
			count, seen := p.branches[hdr["Via"]]
			if !seen {
				p.n++
				count = p.n
				p.branches[hdr["Via"]] = count
			}
			p.mu.Unlock()
			for _, out := range respond(count, hdr) {
				c.WriteToUDP([]byte(out), from)
			}
		}
	}()
	return p
}

func (p *rawPBX) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n
}

// reply builds a response to req with extra header lines.
func reply(req map[string]string, status string, extra ...string) string {
	s := "SIP/2.0 " + status + "\r\nVia: " + req["Via"] + "\r\nFrom: " + req["From"] + "\r\nTo: " + req["To"] +
		";tag=raw\r\nCall-ID: " + req["Call-ID"] + "\r\nCSeq: " + req["CSeq"] + "\r\n"
	for _, e := range extra {
		s += e + "\r\n"
	}
	return s + "Content-Length: 0\r\n\r\n"
}

// Malformed responses are ignored or handled, never a crash; after the
// garbage, a valid 200 registers the user.
func TestMalformedResponses(t *testing.T) {
	peers(t)
	pbx := startRawPBX(t, func(n int, req map[string]string) []string {
		garbage := []string{
			"", "\x00\x01\x02", "SIP/2.0", "SIP/2.0 200\r\n\r\n", "HTTP/1.1 200 OK\r\n\r\n",
			"SIP/2.0 abc OK\r\nVia: " + req["Via"] + "\r\n\r\n",
			"SIP/2.0 200 OK\r\nVia: " + req["Via"] + "\r\nContent-Length: 99999999\r\n\r\n",
			"SIP/2.0 200 OK\r\nVia: " + req["Via"] + "\r\nCSeq: x\r\n\r\n",
			"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 1.2.3.4;branch=z9hG4bKother\r\nCSeq: " + req["CSeq"] + "\r\n\r\n",
			strings.Repeat("A", 3000),
			reply(req, "999 Weird"),
			reply(req, "200 OK", "Contact: <sip:x@", "Expires: -5"),
		}
		switch n {
		case 1: // garbage, then nothing valid: times out
			return garbage
		case 2: // a 401 without a challenge: cannot authenticate
			return []string{reply(req, "401 Unauthorized")}
		case 3: // 423 without Min-Expires: retried later
			return []string{reply(req, "423 Interval Too Brief")}
		default: // odd but valid 200: bad expires values fall back
			return []string{reply(req, "200 OK", "Contact: <sip:"+strings.Repeat("z", 200)+"@h>;expires=abc", "Expires: junk")}
		}
	})
	st := newStack(t, sipx.StackConfig{}, "udp")
	e := newEngine(t, Config{Stack: st, Timeout: 700 * time.Millisecond, BackoffMin: 200 * time.Millisecond, BackoffMax: 400 * time.Millisecond})
	a := Account{UserID: "mal", Domain: "pbx.test", OutboundProxy: pbx.conn.LocalAddr().String(),
		Username: "400", Password: "x", ContactUser: "cmal", Expiry: 90}
	if err := e.Set(a); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "401 without challenge", func() bool { return state(t, e, a.UserID).StatusCode == 401 })
	s := state(t, e, a.UserID)
	if s.State != pbx2teams.RegFailed || !strings.Contains(s.Reason, "no WWW-Authenticate") || s.NextRefresh != nil {
		t.Fatalf("state %+v", s)
	}
	if f := e.Stats().Failures; f["timeout"] != 1 || f["auth"] != 1 {
		t.Errorf("failures %v", f)
	}
	e.Refresh("") // the admin saves the settings again
	waitFor(t, 5*time.Second, "registered", func() bool { return allRegistered(e, a.UserID) })
	s = state(t, e, a.UserID)
	if d := s.NextRefresh.Sub(*s.LastSuccess); d > 90*time.Second || d < 60*time.Second {
		t.Errorf("refresh in %v; unreadable expiries should fall back to the 90 s asked for", d)
	}
	if pbx.count() < 4 {
		t.Errorf("%d REGISTERs", pbx.count())
	}
}

// The per-PBX rate limit holds: with 10/s and a burst of 2, no more than
// 2+10·t REGISTERs leave in the first t seconds, however many users are due.
func TestRateLimit(t *testing.T) {
	peers(t)
	var mu sync.Mutex
	var first time.Time
	pbx := startRawPBX(t, func(n int, req map[string]string) []string {
		mu.Lock()
		if first.IsZero() {
			first = time.Now()
		}
		mu.Unlock()
		return []string{reply(req, "200 OK", "Expires: 3600")}
	})
	st := newStack(t, sipx.StackConfig{}, "udp")
	e := newEngine(t, Config{Stack: st, RateLimit: 10, RateBurst: 2, StartJitter: time.Millisecond})
	const users = 30
	for i := 0; i < users; i++ {
		a := Account{UserID: "rl" + strconv.Itoa(i), AccountID: "a", Domain: "pbx.test", OutboundProxy: pbx.conn.LocalAddr().String(),
			Username: "u" + strconv.Itoa(i), Password: "x", ContactUser: "crl" + strconv.Itoa(i)}
		if err := e.Set(a); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(time.Second)
	mu.Lock()
	elapsed := time.Since(first)
	mu.Unlock()
	got := pbx.count()
	if limit := 2 + int(10*elapsed.Seconds()) + 1; got > limit {
		t.Errorf("%d REGISTERs in %v, the rate limit allows %d", got, elapsed, limit)
	}
	if s := e.Stats(); s.Queued == 0 || s.ByState[pbx2teams.RegRegistering] == 0 {
		t.Errorf("nothing waiting for the rate limit: %+v", s)
	}
	waitFor(t, 10*time.Second, "all registered in the end", func() bool {
		return e.Stats().ByState[pbx2teams.RegRegistered] == users
	})
}

// NAT keep-alives: a double CRLF reaches the PBX from the registered
// UDP flow at the configured interval.
func TestKeepAliveUDP(t *testing.T) {
	peers(t)
	var mu sync.Mutex
	pings := 0
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	st := newStack(t, sipx.StackConfig{}, "udp")
	go func() {
		buf := make([]byte, 4096)
		for {
			n, from, err := c.ReadFromUDP(buf)
			if err != nil {
				return
			}
			msg := string(buf[:n])
			if msg == "\r\n\r\n" {
				if from.Port == st.Port("udp") { // from the Contact's port
					mu.Lock()
					pings++
					mu.Unlock()
				}
				continue
			}
			hdr := map[string]string{}
			for _, line := range strings.Split(msg, "\r\n")[1:] {
				if k, v, ok := strings.Cut(line, ":"); ok {
					hdr[k] = strings.TrimSpace(v)
				}
			}
			c.WriteToUDP([]byte(reply(hdr, "200 OK", "Expires: 3600")), from)
		}
	}()
	e := newEngine(t, Config{Stack: st, KeepAlive: 300 * time.Millisecond})
	a := Account{UserID: "ka", Domain: "pbx.test", OutboundProxy: c.LocalAddr().String(), Username: "500", Password: "x", ContactUser: "cka"}
	if err := e.Set(a); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "keep-alives", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return pings >= 2
	})
	e.Remove(a.UserID) // no binding left: keep-alives stop
	waitFor(t, 5*time.Second, "removed", func() bool { _, ok := e.State(a.UserID); return !ok })
	time.Sleep(400 * time.Millisecond)
	mu.Lock()
	before := pings
	mu.Unlock()
	time.Sleep(1200 * time.Millisecond)
	mu.Lock()
	after := pings
	mu.Unlock()
	if after != before {
		t.Errorf("%d keep-alives after the last binding went", after-before)
	}
}
