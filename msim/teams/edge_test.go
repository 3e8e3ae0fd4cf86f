package teams_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"

	msdp "github.com/pbx2teams/pbx2teams/media/sdp"
	"github.com/pbx2teams/pbx2teams/msim"
	simteams "github.com/pbx2teams/pbx2teams/msim/teams"
	"github.com/pbx2teams/pbx2teams/msim/teams/teamstest"
)

// phoneApp is the Phone App side of a federated call in these tests: a
// SIP user agent with a client certificate that dials the edge and does
// not listen, so whatever the edge sends in the dialog must come back over
// the connection the INVITE went on.
type phoneApp struct {
	t   *testing.T
	env *teamstest.FederationEnv
	ua  *sipgo.UserAgent
	cli *sipgo.Client

	mu       sync.Mutex
	cur      *media // media of the last call placed, for answering re-INVITEs
	byes     chan *sip.Request
	reinvite chan msdp.Direction
}

func newPhoneApp(t *testing.T, env *teamstest.FederationEnv, cert tls.Certificate) *phoneApp {
	t.Helper()
	conf := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}, RootCAs: env.PKI.Pool()}
	ua, err := sipgo.NewUA(sipgo.WithUserAgentHostname(env.Domain), sipgo.WithUserAgenTLSConfig(conf),
		sipgo.WithUserAgentDNSResolver(env.DNS.Resolver()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ua.Close() })
	cli, err := sipgo.NewClient(ua, sipgo.WithClientHostname(env.Domain))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := sipgo.NewServer(ua)
	if err != nil {
		t.Fatal(err)
	}
	p := &phoneApp{t: t, env: env, ua: ua, cli: cli, byes: make(chan *sip.Request, 4), reinvite: make(chan msdp.Direction, 4)}
	srv.OnBye(func(req *sip.Request, tx sip.ServerTransaction) {
		_ = tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
		p.byes <- req
	})
	srv.OnAck(func(*sip.Request, sip.ServerTransaction) {})
	return p
}

// media is the Phone App's SRTP endpoint of one call.
type media struct {
	conn *net.UDPConn
	key  []byte // ours, offered
	enc  *srtp.Context
	dec  *srtp.Context
	to   netip.AddrPort

	mu      sync.Mutex
	packets int
	hits    int
	dtmf    strings.Builder
	lastEv  uint32
	haveEv  bool
	stop    chan struct{}
	wg      sync.WaitGroup
	pattern []byte
}

func newMedia(t *testing.T) *media {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	key := make([]byte, 30)
	_, _ = rand.Read(key)
	m := &media{conn: c, key: key, stop: make(chan struct{}), pattern: simteams.PatternFrame("PCMU")}
	t.Cleanup(m.close)
	return m
}

func (m *media) offer(proto string) string {
	port := m.conn.LocalAddr().(*net.UDPAddr).Port
	return "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n" +
		fmt.Sprintf("m=audio %d %s 0 101\r\n", port, proto) +
		"a=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n" +
		"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:" + base64.StdEncoding.EncodeToString(m.key) + "\r\na=rtcp-mux\r\na=sendrecv\r\n"
}

// answerWith is the Phone App's answer to a re-offer from Teams.
func (m *media) answerWith(dir msdp.Direction) []byte {
	port := m.conn.LocalAddr().(*net.UDPAddr).Port
	return []byte("v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n" +
		fmt.Sprintf("m=audio %d RTP/SAVP 0 101\r\n", port) +
		"a=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n" +
		"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:" + base64.StdEncoding.EncodeToString(m.key) + "\r\na=rtcp-mux\r\na=" + dir.String() + "\r\n")
}

// start applies the Teams answer and sends the pattern every 20 ms while
// counting what comes back.
func (m *media) start(t *testing.T, answer []byte) {
	t.Helper()
	s, err := msdp.Parse(answer)
	if err != nil || len(s.Media) == 0 || len(s.Media[0].Crypto) == 0 {
		t.Fatalf("answer: %v\n%s", err, answer)
	}
	am := s.Media[0]
	if !am.Secure() || am.Crypto[0].Suite != "AES_CM_128_HMAC_SHA1_80" {
		t.Fatalf("answer is not SDES SRTP: %s", answer)
	}
	m.to = netip.AddrPortFrom(am.Addr, uint16(am.Port))
	theirs := am.Crypto[0].Key
	if m.enc, err = srtp.CreateContext(m.key[:16], m.key[16:], srtp.ProtectionProfileAes128CmHmacSha1_80); err != nil {
		t.Fatal(err)
	}
	if m.dec, err = srtp.CreateContext(theirs[:16], theirs[16:30], srtp.ProtectionProfileAes128CmHmacSha1_80); err != nil {
		t.Fatal(err)
	}
	m.wg.Add(2)
	go m.send()
	go m.read()
}

func (m *media) send() {
	defer m.wg.Done()
	tk := time.NewTicker(20 * time.Millisecond)
	defer tk.Stop()
	var seq uint16
	var ts uint32
	for i := 0; i < 2000; i++ {
		select {
		case <-m.stop:
			return
		case <-tk.C:
		}
		seq++
		ts += 160
		raw, _ := (&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 0, SequenceNumber: seq, Timestamp: ts, SSRC: 0x1234}, Payload: m.pattern}).Marshal()
		out, err := m.enc.EncryptRTP(nil, raw, nil)
		if err == nil {
			_, _ = m.conn.WriteToUDPAddrPort(out, m.to)
		}
	}
}

func (m *media) read() {
	defer m.wg.Done()
	buf := make([]byte, 1500)
	var hdr rtp.Header
	for {
		n, _, err := m.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		if n < 12 || (buf[1]&0x7f >= 64 && buf[1]&0x7f <= 95) {
			continue
		}
		plain, err := m.dec.DecryptRTP(nil, buf[:n], &hdr)
		if err != nil {
			continue
		}
		p := plain[hdr.MarshalSize():]
		m.mu.Lock()
		switch {
		case hdr.PayloadType == 101 && len(p) >= 4:
			if p[1]&0x80 != 0 && (!m.haveEv || hdr.Timestamp != m.lastEv) {
				m.lastEv, m.haveEv = hdr.Timestamp, true
				m.dtmf.WriteByte("0123456789*#"[p[0]%12])
			}
		case hdr.PayloadType == 0:
			m.packets++
			if bytes.Equal(p, m.pattern) {
				m.hits++
			}
		}
		m.mu.Unlock()
	}
}

func (m *media) stats() (packets, hits int, dtmf string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.packets, m.hits, m.dtmf.String()
}

func (m *media) close() {
	select {
	case <-m.stop:
		return
	default:
	}
	close(m.stop)
	m.conn.Close()
	m.wg.Wait()
}

// call is a Phone App call to a Teams user through the edge.
type call struct {
	p        *phoneApp
	req      *sip.Request
	tx       sip.ClientTransaction
	cseq     uint32
	fromUser string
	done     chan struct{}

	mu    sync.Mutex
	final *sip.Response
	provs []*sip.Response
}

type inviteOpts struct {
	contactHost string // default the Phone App domain
	body        string
	media       *media // the call's media (for re-INVITE answers)
	contactPort int
}

// invite sends the INVITE; it returns once the transaction is under way.
func (p *phoneApp) invite(ctx context.Context, upn string, o inviteOpts) *call {
	p.t.Helper()
	user, host, _ := strings.Cut(upn, "@")
	req := sip.NewRequest(sip.INVITE, sip.Uri{Scheme: "sip", User: user, Host: host})
	from := &sip.FromHeader{DisplayName: "Front Desk", Address: sip.Uri{Scheme: "sip", User: "+442071230001", Host: p.env.Domain}}
	from.Params.Add("tag", sip.GenerateTagN(8))
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: sip.Uri{Scheme: "sip", User: user, Host: host}})
	ch := o.contactHost
	if ch == "" {
		ch = p.env.Domain
	}
	req.AppendHeader(&sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: "+442071230001", Host: ch, Port: o.contactPort,
		UriParams: sip.HeaderParams{{K: "transport", V: "tls"}}}})
	req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	req.SetBody([]byte(o.body))
	req.SetTransport("TLS")
	req.SetDestination(p.env.EdgeAddr())
	if o.media != nil {
		p.mu.Lock()
		p.cur = o.media
		p.mu.Unlock()
	}
	tx, err := p.cli.TransactionRequest(ctx, req)
	if err != nil {
		p.t.Fatal(err)
	}
	c := &call{p: p, req: req, tx: tx, cseq: req.CSeq().SeqNo, fromUser: "+442071230001", done: make(chan struct{})}
	go c.collect()
	return c
}

// collect reads the transaction's responses as they come (the client
// transaction hands them over one at a time) until the final one.
func (c *call) collect() {
	defer close(c.done)
	for {
		select {
		case res := <-c.tx.Responses():
			if res.StatusCode < 200 {
				c.mu.Lock()
				c.provs = append(c.provs, res)
				c.mu.Unlock()
				continue
			}
			c.mu.Lock()
			c.final = res
			c.mu.Unlock()
			if res.IsSuccess() {
				c.ack()
			}
			c.tx.Terminate()
			return
		case <-c.tx.Done():
			return
		}
	}
}

// wait returns the final response.
func (c *call) wait(ctx context.Context) *sip.Response {
	c.p.t.Helper()
	select {
	case <-c.done:
	case <-ctx.Done():
		c.tx.Terminate()
		c.p.t.Fatal("timeout waiting for the final response")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.final == nil {
		c.p.t.Fatalf("no final response: %v", c.tx.Err())
	}
	return c.final
}

func (c *call) provisional() []*sip.Response {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*sip.Response(nil), c.provs...)
}

func (c *call) inDialog(m sip.RequestMethod, seq uint32) *sip.Request {
	req := sip.NewRequest(m, c.final.Contact().Address)
	req.AppendHeader(sip.HeaderClone(c.req.From()))
	req.AppendHeader(sip.HeaderClone(c.final.To()))
	req.AppendHeader(sip.HeaderClone(c.req.CallID()))
	req.AppendHeader(&sip.CSeqHeader{SeqNo: seq, MethodName: m})
	req.SetTransport("TLS")
	return req
}

func (c *call) ack() {
	ack := c.inDialog(sip.ACK, c.cseq)
	if err := c.p.cli.WriteRequest(ack); err != nil {
		c.p.t.Errorf("ACK: %v", err)
	}
}

func (c *call) bye(ctx context.Context) *sip.Response {
	c.p.t.Helper()
	c.cseq++
	res, err := c.p.cli.Do(ctx, c.inDialog(sip.BYE, c.cseq))
	if err != nil {
		c.p.t.Fatalf("BYE: %v", err)
	}
	return res
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func warning(res *sip.Response) string {
	if h := res.GetHeader("Warning"); h != nil {
		return h.Value()
	}
	return ""
}

func TestEdgeRefusals(t *testing.T) {
	env := teamstest.StartFederation(t, teamstest.FederationOptions{})
	alice := env.Tenant.AddUserUPN("alice@contoso.test", "", simteams.UserOptions{AnswerAfter: 0})
	bob := env.Tenant.AddUserUPN("bob@contoso.test", "", simteams.UserOptions{AnswerAfter: 0})
	bob.SetCoexistence(simteams.Islands)
	blocked := env.AddTenant("tenant-fabrikam", "fabrikam.test")
	blocked.AddUserUPN("carol@fabrikam.test", "", simteams.UserOptions{AnswerAfter: 0})
	blocked.SetExternalAccess(msim.Federation{AllowFederatedUsers: true, AllowAllKnownDomains: true, BlockedDomains: []string{env.Domain}})
	listed := env.AddTenant("tenant-northwind", "northwind.test")
	listed.AddUserUPN("dan@northwind.test", "", simteams.UserOptions{AnswerAfter: 0})
	listed.SetExternalAccess(msim.Federation{AllowFederatedUsers: true, AllowedDomains: []string{"partner.example"}})
	off := env.AddTenant("tenant-closed", "closed.test")
	off.AddUserUPN("erin@closed.test", "", simteams.UserOptions{AnswerAfter: 0})
	off.SetExternalAccess(msim.Federation{AllowFederatedUsers: false, AllowAllKnownDomains: true})

	otherCert, err := env.PKI.Issue("other.test")
	if err != nil {
		t.Fatal(err)
	}
	p := newPhoneApp(t, env, env.Certificate)
	wrong := newPhoneApp(t, env, otherCert)
	m := newMedia(t)
	savp, avp := m.offer("RTP/SAVP"), m.offer("RTP/AVP")
	edge := env.Edge.Name
	blockedWarning := fmt.Sprintf("399 %s \"External access does not allow %s\"", edge, env.Domain)

	cases := []struct {
		name    string
		p       *phoneApp
		upn     string
		o       inviteOpts
		status  int
		warning string // exact, or a substring when it starts with "~"
	}{
		{"unknown UPN", p, "nobody@contoso.test", inviteOpts{body: savp}, 404, ""},
		{"unknown domain", p, "alice@unknown.test", inviteOpts{body: savp}, 404, ""},
		{"blocked domain", p, "carol@fabrikam.test", inviteOpts{body: savp}, 603, blockedWarning},
		{"allow-list without the domain", p, "dan@northwind.test", inviteOpts{body: savp}, 603, blockedWarning},
		{"external access off", p, "erin@closed.test", inviteOpts{body: savp}, 603, blockedWarning},
		{"not TeamsOnly", p, bob.UPN, inviteOpts{body: savp}, 480, fmt.Sprintf("399 %s \"User is not in TeamsOnly mode\"", edge)},
		{"certificate not for the From domain", wrong, alice.UPN, inviteOpts{body: savp}, 403, "~not valid for " + env.Domain},
		{"plain RTP", p, alice.UPN, inviteOpts{body: avp}, 488, ""},
		{"IP in Contact", p, alice.UPN, inviteOpts{body: savp, contactHost: "127.0.0.1"}, 403, "~IP address"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testCtx(t)
			c := tc.p.invite(ctx, tc.upn, tc.o)
			res := c.wait(ctx)
			if res.StatusCode != tc.status {
				t.Fatalf("got %s (Warning %q), want %d", res.StartLine(), warning(res), tc.status)
			}
			w := warning(res)
			switch {
			case tc.warning == "":
			case strings.HasPrefix(tc.warning, "~"):
				if !strings.Contains(w, tc.warning[1:]) || !strings.HasPrefix(w, "399 "+edge+" ") {
					t.Errorf("Warning = %q, want 399 from %s with %q", w, edge, tc.warning[1:])
				}
			default:
				if w != tc.warning {
					t.Errorf("Warning = %q, want %q", w, tc.warning)
				}
			}
			if tc.status == 603 && res.Reason != "Declined" {
				t.Errorf("reason phrase %q, want Declined", res.Reason)
			}
		})
	}
	// Nothing rang, and the edge recorded each refusal with what it saw.
	for _, u := range []*simteams.User{alice, bob} {
		if n := len(u.Calls()); n != 0 {
			t.Errorf("%s has %d calls", u.UPN, n)
		}
	}
	var found bool
	for _, r := range env.Edge.Records("INVITE") {
		if r.Request.Recipient.User == "carol" {
			found = true
			if r.Status != 603 || r.Warning != blockedWarning || r.Request.From().Address.Host != env.Domain {
				t.Errorf("record of the blocked call: status %d, warning %q, from %s", r.Status, r.Warning, r.Request.From().Address.String())
			}
		}
	}
	if !found {
		t.Error("the edge did not record the blocked INVITE")
	}
}

func TestEdgeDecline(t *testing.T) {
	env := teamstest.StartFederation(t, teamstest.FederationOptions{})
	alice := env.Tenant.AddUserUPN("alice@contoso.test", "", simteams.UserOptions{AnswerAfter: -1})
	p := newPhoneApp(t, env, env.Certificate)
	ctx := testCtx(t)
	c := p.invite(ctx, alice.UPN, inviteOpts{body: newMedia(t).offer("RTP/SAVP")})
	in, err := alice.Incoming(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st := in.Info().State; st != simteams.StateRinging || !in.Info().Federated {
		t.Errorf("call info %+v, want a ringing federated call", in.Info())
	}
	in.Decline()
	res := c.wait(ctx)
	if res.StatusCode != 603 || warning(res) != "" {
		t.Fatalf("decline answered %s with Warning %q, want 603 without", res.StartLine(), warning(res))
	}
	<-in.Done()
	if len(alice.Calls()) != 0 {
		t.Error("declined call still listed")
	}
}

func TestEdgeCallAudioHoldAndBye(t *testing.T) {
	env := teamstest.StartFederation(t, teamstest.FederationOptions{})
	alice := env.Tenant.AddUserUPN("alice@contoso.test", "", simteams.UserOptions{AnswerAfter: -1, Media: simteams.Pattern, Name: "Alice"})
	p := newPhoneApp(t, env, env.Certificate)
	p.answerHolds(t)
	ctx := testCtx(t)

	for _, byeFrom := range []string{"phone app", "teams"} {
		t.Run("bye from "+byeFrom, func(t *testing.T) {
			m := newMedia(t)
			c := p.invite(ctx, alice.UPN, inviteOpts{body: m.offer("RTP/SAVP"), media: m})
			in, err := alice.Incoming(ctx)
			if err != nil {
				t.Fatal(err)
			}
			calls := env.Sim.CallsOf("ALICE@contoso.test")
			if len(calls) != 1 || calls[0] != in {
				t.Fatalf("CallsOf lists %d calls", len(calls))
			}
			if inv := in.Invite(); inv.From().Address.Host != env.Domain || inv.Recipient.User != "alice" {
				t.Errorf("INVITE seen: From %s, Request-URI %s", inv.From().Address.String(), inv.Recipient.String())
			}
			// The user answers once the caller has heard it ring (sipgo
			// hands responses over concurrently, so a 180 sent just before
			// the 200 may be passed up after it and dropped).
			waitFor(t, ctx, "180 Ringing", func() bool {
				for _, r := range c.provisional() {
					if r.StatusCode == 180 {
						return true
					}
				}
				return false
			})
			in.Answer()
			res := c.wait(ctx)
			if res.StatusCode != 200 {
				t.Fatalf("answer: %s", res.StartLine())
			}
			m.start(t, res.Body())
			waitFor(t, ctx, "audio both ways", func() bool {
				_, hits, _ := m.stats()
				return hits >= 10 && in.Media().PatternHits >= 10
			})
			if st := in.Info(); st.State != simteams.StateActive || st.RemoteUser != c.fromUser || st.RemoteName != "Front Desk" {
				t.Errorf("call info %+v", st)
			}
			// DTMF from the Teams user reaches the Phone App.
			in.SendDTMF("5#")
			waitFor(t, ctx, "DTMF 5#", func() bool { _, _, d := m.stats(); return d == "5#" })

			// Hold and resume from the Teams user, over the caller's connection.
			if st, err := in.Hold(ctx); err != nil || st != 200 {
				t.Fatalf("hold: %d %v", st, err)
			}
			if d := <-p.reinvite; d != msdp.Inactive {
				t.Errorf("hold offered %s, want inactive", d)
			}
			if st := in.Info().State; st != simteams.StateHeld {
				t.Errorf("state after hold %s", st)
			}
			if st, err := in.Resume(ctx); err != nil || st != 200 {
				t.Fatalf("resume: %d %v", st, err)
			}
			if d := <-p.reinvite; d != msdp.SendRecv {
				t.Errorf("resume offered %s, want sendrecv", d)
			}
			if st := in.Info().State; st != simteams.StateActive {
				t.Errorf("state after resume %s", st)
			}
			_, before, _ := m.stats()
			waitFor(t, ctx, "audio after resume", func() bool { _, h, _ := m.stats(); return h > before+5 })

			if byeFrom == "phone app" {
				if res := c.bye(ctx); res.StatusCode != 200 {
					t.Fatalf("BYE answered %s", res.StartLine())
				}
				<-in.Done()
				if r := in.EndReason(); r != "bye from caller" {
					t.Errorf("end reason %q", r)
				}
			} else {
				if err := in.Hangup(ctx); err != nil {
					t.Fatal(err)
				}
				select {
				case bye := <-p.byes:
					if bye.CallID().Value() != c.req.CallID().Value() {
						t.Errorf("BYE for another call")
					}
				case <-ctx.Done():
					t.Fatal("the Phone App got no BYE")
				}
			}
			m.close()
			if n := len(alice.Calls()); n != 0 {
				t.Errorf("%d calls left", n)
			}
			if rs := env.Edge.Records("INVITE"); len(rs) == 0 || rs[len(rs)-1].Request.Recipient.User != "alice" {
				t.Error("edge did not record the INVITE")
			}
		})
	}
}

// answerHolds makes the Phone App answer Teams' re-INVITEs with the
// direction they ask for (inactive for inactive, sendrecv otherwise).
func (p *phoneApp) answerHolds(t *testing.T) {
	srv, err := sipgo.NewServer(p.ua) // replaces newPhoneApp's handlers
	if err != nil {
		t.Fatal(err)
	}
	srv.OnInvite(func(req *sip.Request, tx sip.ServerTransaction) {
		s, err := msdp.Parse(req.Body())
		dir := msdp.SendRecv
		if err == nil && len(s.Media) > 0 && s.Media[0].Direction == msdp.Inactive {
			dir = msdp.Inactive
		}
		p.mu.Lock()
		m := p.cur
		p.mu.Unlock()
		if m == nil {
			_ = tx.Respond(sip.NewResponseFromRequest(req, 488, "Not Acceptable Here", nil))
			return
		}
		res := sip.NewResponseFromRequest(req, 200, "OK", m.answerWith(dir))
		res.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
		res.AppendHeader(&sip.ContactHeader{Address: sip.Uri{Scheme: "sip", Host: p.env.Domain}})
		_ = tx.Respond(res)
		p.reinvite <- dir
	})
	srv.OnBye(func(req *sip.Request, tx sip.ServerTransaction) {
		_ = tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
		p.byes <- req
	})
	srv.OnAck(func(*sip.Request, sip.ServerTransaction) {})
}

func waitFor(t *testing.T, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timeout waiting for %s", what)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func TestEdgeCancelAndOptions(t *testing.T) {
	env := teamstest.StartFederation(t, teamstest.FederationOptions{})
	alice := env.Tenant.AddUserUPN("alice@contoso.test", "", simteams.UserOptions{AnswerAfter: -1})
	p := newPhoneApp(t, env, env.Certificate)
	ctx := testCtx(t)

	// OPTIONS: answered for the Phone App domain's certificate only.
	opt := func(p *phoneApp) int {
		t.Helper()
		req := sip.NewRequest(sip.OPTIONS, sip.Uri{Scheme: "sip", Host: env.Edge.Name, Port: env.Edge.Port})
		from := &sip.FromHeader{Address: sip.Uri{Scheme: "sip", Host: env.Domain}}
		from.Params.Add("tag", sip.GenerateTagN(8))
		req.AppendHeader(from)
		req.AppendHeader(&sip.ContactHeader{Address: sip.Uri{Scheme: "sip", Host: env.Domain}})
		req.SetTransport("TLS")
		res, err := p.cli.Do(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		return res.StatusCode
	}
	if st := opt(p); st != 200 {
		t.Errorf("OPTIONS answered %d", st)
	}
	otherCert, err := env.PKI.Issue("other.test")
	if err != nil {
		t.Fatal(err)
	}
	if st := opt(newPhoneApp(t, env, otherCert)); st != 403 {
		t.Errorf("OPTIONS with another domain's certificate answered %d", st)
	}

	// CANCEL while ringing: 487, and the call is gone from the user.
	c := p.invite(ctx, alice.UPN, inviteOpts{body: newMedia(t).offer("RTP/SAVP")})
	in, err := alice.Incoming(ctx)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "180 Ringing", func() bool {
		for _, r := range c.provisional() {
			if r.StatusCode == 180 {
				return true
			}
		}
		return false
	})
	inv := c.req
	cancel := sip.NewRequest(sip.CANCEL, inv.Recipient)
	cancel.AppendHeader(sip.HeaderClone(inv.Via()))
	for _, h := range []sip.Header{inv.From(), inv.To(), inv.CallID()} {
		cancel.AppendHeader(sip.HeaderClone(h))
	}
	cancel.AppendHeader(&sip.CSeqHeader{SeqNo: inv.CSeq().SeqNo, MethodName: sip.CANCEL})
	mf := sip.MaxForwardsHeader(70)
	cancel.AppendHeader(&mf)
	cancel.SetTransport("TLS")
	cancel.SetDestination(inv.Destination())
	cancel.SetBody(nil)
	if res, err := p.cli.Do(ctx, cancel, func(*sipgo.Client, *sip.Request) error { return nil }); err != nil || res.StatusCode != 200 {
		t.Fatalf("CANCEL: %v %v", res, err)
	}
	if res := c.wait(ctx); res.StatusCode != 487 {
		t.Fatalf("INVITE after CANCEL: %s", res.StartLine())
	}
	<-in.Done()
	if r := in.EndReason(); r != "cancelled" || len(alice.Calls()) != 0 {
		t.Errorf("end reason %q, %d calls left", r, len(alice.Calls()))
	}
}

// When the caller's connection is gone, the edge reaches the caller at its
// Contact (a Phone App service that listens gets the BYE there).
func TestEdgeByeAfterCallerConnectionClosed(t *testing.T) {
	env := teamstest.StartFederation(t, teamstest.FederationOptions{})
	alice := env.Tenant.AddUserUPN("alice@contoso.test", "", simteams.UserOptions{AnswerAfter: 0})
	p := newPhoneApp(t, env, env.Certificate)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tln := tls.NewListener(ln, &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{env.Certificate},
		ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: env.PKI.Pool()})
	srv, err := sipgo.NewServer(p.ua)
	if err != nil {
		t.Fatal(err)
	}
	srv.OnBye(func(req *sip.Request, tx sip.ServerTransaction) {
		_ = tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
		p.byes <- req
	})
	srv.OnAck(func(*sip.Request, sip.ServerTransaction) {})
	go func() { _ = srv.ServeTLS(tln) }()
	t.Cleanup(func() { tln.Close() })

	ctx := testCtx(t)
	m := newMedia(t)
	c := p.invite(ctx, alice.UPN, inviteOpts{body: m.offer("RTP/SAVP"), contactPort: ln.Addr().(*net.TCPAddr).Port})
	if res := c.wait(ctx); res.StatusCode != 200 {
		t.Fatalf("call: %s", res.StartLine())
	}
	in := alice.Calls()[0]
	conn, err := p.ua.TransportLayer().GetConnection("tls", fmt.Sprintf("127.0.0.1:%d", env.Edge.Port))
	if err != nil || conn == nil {
		t.Fatalf("the Phone App's connection to the edge: %v", err)
	}
	conn.Close()
	waitFor(t, ctx, "the edge to see the connection closed", func() bool { return !in.CallerConnOpen() })
	if err := in.Hangup(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case bye := <-p.byes:
		if bye.CallID().Value() != c.req.CallID().Value() {
			t.Error("BYE for another call")
		}
	case <-ctx.Done():
		t.Fatal("no BYE at the Contact")
	}
}
