package sipx

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
)

// Listen is one local SIP listening socket.
type Listen struct {
	Transport string      // "udp", "tcp" or "tls"
	Addr      string      // host:port; port 0 picks a free port
	TLS       *tls.Config // server certificate, for "tls" only
}

// StackConfig configures a Stack.
type StackConfig struct {
	// Listen lists the sockets to open; one per transport at most.
	Listen []Listen
	// AdvertisedHost is the host put in Via and Contact headers: the
	// address PBXs and Teams reach this node at. Default: the host of the
	// first listener (which must then not be a wildcard address).
	AdvertisedHost string
	// UserAgent is the User-Agent/Server header value (default "pbx2teams").
	UserAgent string
	// ClientTLS is used for outgoing TLS connections: RootCAs (nil means
	// the system pool) and an optional client certificate.
	ClientTLS *tls.Config
	Logger    *slog.Logger
}

// Stack is a sipgo user agent with its listening sockets, shared by the
// registration engine and the B2BUA. Create it with NewStack, register
// request handlers on Server, then call Start.
type Stack struct {
	UA     *sipgo.UserAgent
	Server *sipgo.Server

	advertised string
	userAgent  string
	log        *slog.Logger

	udp       net.PacketConn
	udpLaddr  sip.Addr
	tcp       net.Listener
	tls       net.Listener
	ports     map[string]int
	tlsBase   *tls.Config
	inject    *connInjector
	dialMu    sync.Mutex
	dialing   map[string]*sync.Mutex
	verified  map[string]*verifiedConn // by ip:port, guarded by dialMu
	startOnce sync.Once
	closeOnce sync.Once
	cancel    context.CancelFunc
	serveWG   sync.WaitGroup
}

// NewStack opens the listening sockets and creates the user agent and
// server. Nothing is read from the sockets until Start.
func NewStack(cfg StackConfig) (*Stack, error) {
	s := &Stack{advertised: cfg.AdvertisedHost, userAgent: cfg.UserAgent, log: cfg.Logger,
		ports: map[string]int{}, dialing: map[string]*sync.Mutex{}, verified: map[string]*verifiedConn{}}
	if s.userAgent == "" {
		s.userAgent = "pbx2teams"
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if len(cfg.Listen) == 0 {
		return nil, errors.New("sipx: no listen address")
	}
	ok := false
	defer func() {
		if !ok {
			s.closeSockets()
		}
	}()
	for _, l := range cfg.Listen {
		tr := strings.ToLower(l.Transport)
		if _, dup := s.ports[tr]; dup {
			return nil, fmt.Errorf("sipx: two %s listeners", tr)
		}
		var port int
		switch tr {
		case "udp":
			c, err := net.ListenPacket("udp", l.Addr)
			if err != nil {
				return nil, fmt.Errorf("sipx: listen udp %s: %w", l.Addr, err)
			}
			s.udp = c
			host, p, _ := sip.ParseAddr(c.LocalAddr().String())
			// The transport layer finds the listener for outgoing requests
			// by this exact address string.
			s.udpLaddr = sip.Addr{IP: net.ParseIP(host), Port: p, Hostname: host}
			port = p
		case "tcp", "tls":
			ln, err := net.Listen("tcp", l.Addr)
			if err != nil {
				return nil, fmt.Errorf("sipx: listen %s %s: %w", tr, l.Addr, err)
			}
			port = ln.Addr().(*net.TCPAddr).Port
			if tr == "tcp" {
				s.tcp = ln
			} else {
				if l.TLS == nil {
					ln.Close()
					return nil, errors.New("sipx: tls listener needs a certificate (Listen.TLS)")
				}
				s.tls = tls.NewListener(ln, l.TLS)
			}
		default:
			return nil, fmt.Errorf("sipx: unsupported transport %q", l.Transport)
		}
		s.ports[tr] = port
		if s.advertised == "" {
			host, _, _ := net.SplitHostPort(l.Addr)
			if ip, err := netip.ParseAddr(host); host == "" || (err == nil && ip.IsUnspecified()) {
				return nil, errors.New("sipx: set AdvertisedHost when listening on a wildcard address")
			}
			s.advertised = host
		}
	}

	s.tlsBase = &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.ClientTLS != nil {
		s.tlsBase = cfg.ClientTLS.Clone()
	}
	s.inject = &connInjector{ch: make(chan net.Conn), done: make(chan struct{}), addr: &net.TCPAddr{IP: net.IPv4zero}}
	if s.tls != nil {
		s.inject.addr = s.tls.Addr()
	}

	ua, err := sipgo.NewUA(
		sipgo.WithUserAgent(s.userAgent),
		sipgo.WithUserAgenTLSConfig(s.tlsBase),
		sipgo.WithUserAgentTransactionLayerOptions(
			sip.WithTransactionLayerUnhandledResponseHandler(func(*sip.Response) {}),
			sip.WithTransactionLayerTerminateOnConnClose(),
		),
	)
	if err != nil {
		return nil, err
	}
	srv, err := sipgo.NewServer(ua)
	if err != nil {
		ua.Close()
		return nil, err
	}
	s.UA, s.Server = ua, srv
	// A PBX may qualify our Contact with OPTIONS; answer it so the PBX
	// keeps the extension reachable. The B2BUA may replace this handler.
	srv.OnOptions(func(req *sip.Request, tx sip.ServerTransaction) {
		res := sip.NewResponseFromRequest(req, sip.StatusOK, "OK", nil)
		res.AppendHeader(sip.NewHeader("Allow", "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, REFER, NOTIFY"))
		_ = tx.Respond(res)
	})
	ok = true
	return s, nil
}

// Start serves the listening sockets until Close. It returns once the
// stack can send.
func (s *Stack) Start() {
	s.startOnce.Do(func() {
		ctx, cancel := context.WithCancel(context.Background())
		s.cancel = cancel
		serve := func(name string, f func() error) {
			s.serveWG.Add(1)
			go func() {
				defer s.serveWG.Done()
				if err := f(); err != nil && ctx.Err() == nil && !errors.Is(err, net.ErrClosed) {
					s.log.Error("sip listener stopped", "transport", name, "error", err)
				}
			}()
		}
		if s.udp != nil {
			serve("udp", func() error { return s.Server.ServeUDP(s.udp) })
		}
		if s.tcp != nil {
			serve("tcp", func() error { return s.Server.ServeTCP(s.tcp) })
		}
		if s.tls != nil {
			serve("tls", func() error { return s.Server.ServeTLS(s.tls) })
		}
		// Outgoing TLS connections dialled by DialTLS enter the transport
		// layer here, as if accepted.
		serve("tls-out", func() error { return s.Server.ServeTLS(s.inject) })
		// Requests leave from the UDP listener only once the transport
		// layer knows it; otherwise it would try to bind its port again.
		if s.udp != nil {
			pool := s.UA.TransportLayer().Pool("udp")
			for i := 0; i < 5000; i++ {
				if c := pool.Get(s.udpLaddr.String()); c != nil {
					c.TryClose()
					break
				}
				time.Sleep(time.Millisecond)
			}
		}
	})
}

// Close stops serving and closes the sockets and the user agent.
func (s *Stack) Close() error {
	s.closeOnce.Do(func() {
		if s.cancel != nil {
			s.cancel()
		}
		s.closeSockets()
		if s.UA != nil {
			s.UA.Close()
		}
		s.serveWG.Wait()
	})
	return nil
}

func (s *Stack) closeSockets() {
	if s.inject != nil {
		s.inject.Close()
	}
	if s.udp != nil {
		s.udp.Close()
	}
	if s.tcp != nil {
		s.tcp.Close()
	}
	if s.tls != nil {
		s.tls.Close()
	}
}

// AdvertisedHost is the host put in Via and Contact.
func (s *Stack) AdvertisedHost() string { return s.advertised }

// UserAgentName is the User-Agent header value.
func (s *Stack) UserAgentName() string { return s.userAgent }

// Port returns the listening port of a transport, 0 if none.
func (s *Stack) Port(transport string) int { return s.ports[transport] }

// HasTransport reports whether the stack listens on transport.
func (s *Stack) HasTransport(transport string) bool { _, ok := s.ports[transport]; return ok }

// UDPLocalAddr is the address of the UDP listener, for Request.Laddr so
// that requests leave from the port the Contact advertises.
func (s *Stack) UDPLocalAddr() sip.Addr { return s.udpLaddr }

// UDPConn is the UDP listener socket (for keep-alives).
func (s *Stack) UDPConn() net.PacketConn { return s.udp }

// ContactURI returns "sip:user@advertised:port;transport=t".
func (s *Stack) ContactURI(user, transport string) string {
	host := s.advertised
	if strings.IndexByte(host, ':') >= 0 {
		host = "[" + host + "]"
	}
	return "sip:" + user + "@" + host + ":" + strconv.Itoa(s.ports[transport]) + ";transport=" + transport
}

// CertificateError is returned when a TLS peer's certificate is not
// trusted or not valid for the name we expected.
type CertificateError struct {
	Peer string // ip:port
	Name string
	Err  error
}

func (e *CertificateError) Error() string {
	return fmt.Sprintf("TLS certificate of %s (%s) not accepted: %v", e.Name, e.Peer, e.Err)
}

func (e *CertificateError) Unwrap() error { return e.Err }

// DialTLS makes sure the transport layer holds a TLS connection to addr
// whose certificate is valid for serverName (the SIP domain or proxy the
// address was resolved from, RFC 5922), dialling one if needed. Requests
// sent to addr over "tls" then use it. sipgo alone would check the
// certificate against the IP address it dials.
func (s *Stack) DialTLS(ctx context.Context, addr netip.AddrPort, serverName string) error {
	key := addr.String()
	pool := s.UA.TransportLayer().Pool("tls")
	s.dialMu.Lock()
	mu := s.dialing[key]
	if mu == nil {
		mu = &sync.Mutex{}
		s.dialing[key] = mu
	}
	s.dialMu.Unlock()
	mu.Lock()
	defer mu.Unlock()
	if c := pool.Get(key); c != nil {
		c.TryClose()
		// A connection verified for another name (two domains on one
		// server) is used only if its certificate is valid for this one.
		return s.checkName(key, serverName)
	}
	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", key)
	if err != nil {
		return err
	}
	cfg := s.tlsBase.Clone()
	cfg.ServerName = serverName
	tc := tls.Client(raw, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		raw.Close()
		var cv *tls.CertificateVerificationError
		if errors.As(err, &cv) {
			return &CertificateError{Peer: key, Name: serverName, Err: cv.Err}
		}
		return fmt.Errorf("TLS handshake with %s failed: %w", key, err)
	}
	s.dialMu.Lock()
	s.verified[key] = &verifiedConn{certs: tc.ConnectionState().PeerCertificates, names: map[string]bool{serverName: true}}
	s.dialMu.Unlock()
	select {
	case s.inject.ch <- tc:
	case <-s.inject.done:
		tc.Close()
		return net.ErrClosed
	case <-ctx.Done():
		tc.Close()
		return ctx.Err()
	}
	// The transport layer adds the accepted connection to its pool right
	// after Accept returns.
	for i := 0; i < 1000; i++ {
		if c := pool.Get(key); c != nil {
			c.TryClose()
			return nil
		}
		time.Sleep(time.Millisecond)
	}
	return errors.New("TLS connection was not taken up by the transport layer")
}

type verifiedConn struct {
	certs []*x509.Certificate
	names map[string]bool
}

func (s *Stack) checkName(key, name string) error {
	s.dialMu.Lock()
	defer s.dialMu.Unlock()
	v := s.verified[key]
	if v == nil || v.names[name] {
		return nil // dialled by sipgo itself, which verified it
	}
	if len(v.certs) == 0 {
		return &CertificateError{Peer: key, Name: name, Err: errors.New("no certificate")}
	}
	inter := x509.NewCertPool()
	for _, c := range v.certs[1:] {
		inter.AddCert(c)
	}
	if _, err := v.certs[0].Verify(x509.VerifyOptions{DNSName: name, Roots: s.tlsBase.RootCAs, Intermediates: inter}); err != nil {
		return &CertificateError{Peer: key, Name: name, Err: err}
	}
	v.names[name] = true
	return nil
}

// connInjector is a net.Listener whose Accept returns connections we
// dialled ourselves.
type connInjector struct {
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
	addr net.Addr
}

func (l *connInjector) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *connInjector) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *connInjector) Addr() net.Addr { return l.addr }
