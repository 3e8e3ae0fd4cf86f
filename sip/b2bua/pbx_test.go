package b2bua_test

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"
	"github.com/pion/rtp"

	msdp "github.com/pbx2teams/pbx2teams/media/sdp"
)

// fakePBX is a small PBX for Teams → PBX tests: it challenges every INVITE
// (407, digest, checked with icholy/digest), rings, answers with plain
// RTP PCMU and echoes the RTP it receives (audio and RFC 4733 events).
type fakePBX struct {
	t        *testing.T
	port     int
	password map[string]string // auth user → password
	answer   int               // final status; 200 answers
	ringFor  time.Duration

	mu      sync.Mutex
	invites []*sip.Request // authorised INVITEs
	byes    int
	cancels int
	rx      int
	srv     *sipgo.Server
	cli     *sipgo.Client
	calls   map[string]*sipgo.DialogServerSession
}

func newFakePBX(t *testing.T, passwords map[string]string) *fakePBX {
	t.Helper()
	ua, _ := sipgo.NewUA(sipgo.WithUserAgent("fake-pbx"))
	srv, _ := sipgo.NewServer(ua)
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &fakePBX{t: t, port: pc.LocalAddr().(*net.UDPAddr).Port, password: passwords, answer: 200, srv: srv,
		calls: map[string]*sipgo.DialogServerSession{}}
	p.cli, _ = sipgo.NewClient(ua, sipgo.WithClientHostname("127.0.0.1"), sipgo.WithClientPort(p.port))
	dua := sipgo.DialogUA{Client: p.cli, ContactHDR: sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: "pbx", Host: "127.0.0.1", Port: p.port}}}
	srv.OnInvite(func(req *sip.Request, tx sip.ServerTransaction) { p.onInvite(&dua, req, tx) })
	srv.OnAck(func(req *sip.Request, tx sip.ServerTransaction) {
		p.mu.Lock()
		s := p.calls[req.CallID().Value()]
		p.mu.Unlock()
		if s != nil {
			_ = s.ReadAck(req, tx)
		}
	})
	srv.OnBye(func(req *sip.Request, tx sip.ServerTransaction) {
		p.mu.Lock()
		p.byes++
		s := p.calls[req.CallID().Value()]
		p.mu.Unlock()
		if s != nil {
			_ = s.ReadBye(req, tx)
			return
		}
		_ = tx.Respond(sip.NewResponseFromRequest(req, 481, "No dialog", nil))
	})
	go srv.ServeUDP(pc)
	t.Cleanup(func() { pc.Close(); ua.Close() })
	return p
}

var pbxChallenge = digest.Challenge{Realm: "pbx.test", Nonce: "d2b2fe3c", Algorithm: "MD5", QOP: []string{"auth"}}

func (p *fakePBX) onInvite(dua *sipgo.DialogUA, req *sip.Request, tx sip.ServerTransaction) {
	h := req.GetHeader("Proxy-Authorization")
	if h == nil {
		res := sip.NewResponseFromRequest(req, 407, "Proxy Authentication Required", nil)
		res.AppendHeader(sip.NewHeader("Proxy-Authenticate", pbxChallenge.String()))
		_ = tx.Respond(res)
		return
	}
	cred, err := digest.ParseCredentials(h.Value())
	ok := err == nil
	if ok {
		want, err := digest.Digest(&pbxChallenge, digest.Options{Method: "INVITE", URI: cred.URI, Username: cred.Username,
			Password: p.password[cred.Username], Cnonce: cred.Cnonce, Count: cred.Nc})
		ok = err == nil && want.Response == cred.Response
	}
	if !ok {
		_ = tx.Respond(sip.NewResponseFromRequest(req, 403, "Bad credentials", nil))
		return
	}
	p.mu.Lock()
	p.invites = append(p.invites, req)
	p.mu.Unlock()
	s, err := dua.ReadInvite(req, tx)
	if err != nil {
		return
	}
	p.mu.Lock()
	p.calls[req.CallID().Value()] = s
	p.mu.Unlock()
	_ = s.Respond(180, "Ringing", nil)
	select {
	case <-time.After(p.ringFor):
	case <-s.Context().Done():
		p.mu.Lock()
		p.cancels++
		p.mu.Unlock()
		return
	}
	if p.answer != 200 {
		_ = s.Respond(p.answer, "Nope", nil)
		return
	}
	offer, err := msdp.Parse(req.Body())
	if err != nil {
		_ = s.Respond(488, "Bad SDP", nil)
		return
	}
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return
	}
	go p.echo(conn, s)
	m := offer.Media[0]
	dtmf := ""
	if te, ok := m.TelephoneEvent(); ok {
		dtmf = fmt.Sprintf(" %d", te.PT)
	}
	body := fmt.Sprintf("v=0\r\no=pbx 1 1 IN IP4 127.0.0.1\r\ns=pbx\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"+
		"m=audio %d RTP/AVP 0%s\r\na=rtpmap:0 PCMU/8000\r\n", conn.LocalAddr().(*net.UDPAddr).Port, dtmf)
	if dtmf != "" {
		body += fmt.Sprintf("a=rtpmap:%s telephone-event/8000\r\na=fmtp:%s 0-16\r\n", dtmf[1:], dtmf[1:])
	}
	_ = s.RespondSDP([]byte(body))
}

// echo sends back every RTP packet to where it came from until the call
// ends.
func (p *fakePBX) echo(c *net.UDPConn, s *sipgo.DialogServerSession) {
	defer c.Close()
	go func() { <-s.Context().Done(); c.SetDeadline(time.Now()) }()
	buf := make([]byte, 2048)
	for {
		n, from, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		var h rtp.Header
		if _, err := h.Unmarshal(buf[:n]); err != nil {
			continue
		}
		p.mu.Lock()
		p.rx++
		p.mu.Unlock()
		_, _ = c.WriteToUDPAddrPort(buf[:n], from)
	}
}

// hangup sends BYE on the PBX's only call (the Teams call-ID is not the
// PBX leg's, so any established call is taken).
func (p *fakePBX) hangup(ctx context.Context, _ string) error {
	p.mu.Lock()
	var s *sipgo.DialogServerSession
	for _, c := range p.calls {
		s = c
	}
	p.mu.Unlock()
	if s == nil {
		return fmt.Errorf("no call at the PBX")
	}
	return s.Bye(ctx)
}

func (p *fakePBX) domain() string { return fmt.Sprintf("127.0.0.1:%d", p.port) }

func (p *fakePBX) addr() netip.Addr { return netip.MustParseAddr("127.0.0.1") }

func (p *fakePBX) stats() (invites []*sip.Request, byes, cancels, rx int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]*sip.Request(nil), p.invites...), p.byes, p.cancels, p.rx
}
