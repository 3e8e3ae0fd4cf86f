package b2bua_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/pion/rtp"

	msdp "github.com/pbx2teams/pbx2teams/media/sdp"
)

// phone is a minimal SIP desk phone / PBX for tests, built on sipgo's own
// dialog code (independent of the B2BUA's): it places calls with a plain
// RTP G.711 offer, sends a recognisable payload every 20 ms and counts
// what comes back.
type phone struct {
	t     *testing.T
	ua    *sipgo.UserAgent
	srv   *sipgo.Server
	cli   *sipgo.Client
	cache *sipgo.DialogClientCache
	port  int
	rtp   *net.UDPConn

	mu       sync.Mutex
	remote   netip.AddrPort
	rx, echo int
	sending  bool
	muted    bool
	version  int
	frame    []byte
	byes     int
	reinvDir []string // directions of re-INVITEs received
	done     chan struct{}
	incoming chan *sip.Request
	inTx     chan sip.ServerTransaction
}

func newPhone(t *testing.T) *phone {
	t.Helper()
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("test-phone"))
	if err != nil {
		t.Fatal(err)
	}
	srv, _ := sipgo.NewServer(ua)
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := pc.LocalAddr().(*net.UDPAddr).Port
	cli, _ := sipgo.NewClient(ua, sipgo.WithClientHostname("127.0.0.1"), sipgo.WithClientPort(port))
	r, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	p := &phone{t: t, ua: ua, srv: srv, cli: cli, port: port, rtp: r, done: make(chan struct{}),
		incoming: make(chan *sip.Request, 4), inTx: make(chan sip.ServerTransaction, 4)}
	p.frame = bytes.Repeat([]byte{0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88}, 20)
	contact := sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: "phone", Host: "127.0.0.1", Port: port}}
	p.cache = sipgo.NewDialogClientCache(cli, contact)
	srv.OnBye(func(req *sip.Request, tx sip.ServerTransaction) {
		p.mu.Lock()
		p.byes++
		p.mu.Unlock()
		if err := p.cache.ReadBye(req, tx); err != nil {
			_ = tx.Respond(sip.NewResponseFromRequest(req, 481, "No dialog", nil))
		}
	})
	srv.OnAck(func(*sip.Request, sip.ServerTransaction) {})
	srv.OnInvite(func(req *sip.Request, tx sip.ServerTransaction) {
		if !req.To().Params.Has("tag") {
			_ = tx.Respond(sip.NewResponseFromRequest(req, 486, "Busy", nil))
			return
		}
		dir := msdp.SendRecv
		if sd, err := msdp.Parse(req.Body()); err == nil && len(sd.Media) > 0 {
			dir = sd.Media[0].Direction
		}
		p.mu.Lock()
		p.reinvDir = append(p.reinvDir, dir.String())
		p.sending = dir.Receives()
		p.mu.Unlock()
		res := sip.NewResponseFromRequest(req, 200, "OK", p.offerDir(dir.Reverse()))
		res.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
		res.AppendHeader(&contact)
		_ = tx.Respond(res)
	})
	ready := make(chan struct{})
	go func() {
		close(ready)
		_ = srv.ServeUDP(pc)
	}()
	<-ready
	go p.readRTP()
	go p.sendRTP()
	t.Cleanup(func() {
		close(p.done)
		r.Close()
		pc.Close()
		ua.Close()
	})
	return p
}

func (p *phone) offer() []byte { return p.offerDir(msdp.SendRecv) }

func (p *phone) offerDir(d msdp.Direction) []byte {
	p.mu.Lock()
	p.version++
	v := p.version
	p.mu.Unlock()
	return []byte(fmt.Sprintf("v=0\r\no=phone 1 %d IN IP4 127.0.0.1\r\ns=call\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"+
		"m=audio %d RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n"+
		"a=fmtp:101 0-16\r\na=ptime:20\r\na=%s\r\n", v, p.rtp.LocalAddr().(*net.UDPAddr).Port, d))
}

// reinvite sends a re-INVITE with direction d and returns the status and
// the direction of the answer.
func (p *phone) reinvite(ctx context.Context, s *sipgo.DialogClientSession, d msdp.Direction) (int, string, error) {
	req := sip.NewRequest(sip.INVITE, s.InviteResponse.Contact().Address)
	req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	req.SetBody(p.offerDir(d))
	res, err := s.Do(ctx, req)
	if err != nil {
		return 0, "", err
	}
	if res.IsSuccess() {
		ack := sip.NewRequest(sip.ACK, s.InviteResponse.Contact().Address)
		ack.AppendHeader(&sip.CSeqHeader{SeqNo: res.CSeq().SeqNo, MethodName: sip.ACK})
		_ = s.WriteRequest(ack)
	}
	dir := ""
	if sd, err := msdp.Parse(res.Body()); err == nil && len(sd.Media) > 0 {
		dir = sd.Media[0].Direction.String()
		p.mu.Lock()
		p.sending = d.Sends() && sd.Media[0].Direction.Receives()
		p.mu.Unlock()
	}
	return res.StatusCode, dir, nil
}

func (p *phone) reinvites() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.reinvDir...)
}

// call places a call to ruri and returns the session and the provisional
// statuses seen; err is *sipgo.ErrDialogResponse for a failure status.
func (p *phone) call(ctx context.Context, ruri string, from string) (*sipgo.DialogClientSession, []int, error) {
	var u sip.Uri
	if err := sip.ParseUri(ruri, &u); err != nil {
		return nil, nil, err
	}
	req := sip.NewRequest(sip.INVITE, u)
	f := &sip.FromHeader{DisplayName: "Desk " + from, Address: sip.Uri{Scheme: "sip", User: from, Host: "127.0.0.1"}}
	f.Params.Add("tag", sip.GenerateTagN(8))
	req.AppendHeader(f)
	req.AppendHeader(&sip.ToHeader{Address: u})
	req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	req.SetBody(p.offer())
	s, err := p.cache.WriteInvite(ctx, req)
	if err != nil {
		return nil, nil, err
	}
	var prov []int
	err = s.WaitAnswer(ctx, sipgo.AnswerOptions{OnResponse: func(r *sip.Response) error {
		if r.IsProvisional() {
			prov = append(prov, r.StatusCode)
		}
		return nil
	}})
	if err != nil {
		return s, prov, err
	}
	if err := s.Ack(ctx); err != nil {
		return s, prov, err
	}
	p.useAnswer(s.InviteResponse.Body())
	return s, prov, nil
}

// callDelayed places a call without SDP and answers the offer of the 200
// in the ACK.
func (p *phone) callDelayed(ctx context.Context, ruri string, from string) (*sipgo.DialogClientSession, error) {
	var u sip.Uri
	if err := sip.ParseUri(ruri, &u); err != nil {
		return nil, err
	}
	req := sip.NewRequest(sip.INVITE, u)
	f := &sip.FromHeader{DisplayName: "Desk " + from, Address: sip.Uri{Scheme: "sip", User: from, Host: "127.0.0.1"}}
	f.Params.Add("tag", sip.GenerateTagN(8))
	req.AppendHeader(f)
	req.AppendHeader(&sip.ToHeader{Address: u})
	s, err := p.cache.WriteInvite(ctx, req)
	if err != nil {
		return nil, err
	}
	if err := s.WaitAnswer(ctx, sipgo.AnswerOptions{}); err != nil {
		return s, err
	}
	offer := s.InviteResponse.Body()
	if len(offer) == 0 {
		return s, fmt.Errorf("200 without an offer")
	}
	ack := sip.NewRequest(sip.ACK, s.InviteResponse.Contact().Address)
	ack.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	ack.SetBody(p.offer())
	if err := s.WriteAck(ctx, ack); err != nil {
		return s, err
	}
	p.useAnswer(offer)
	return s, nil
}

func (p *phone) useAnswer(body []byte) {
	sd, err := msdp.Parse(body)
	if err != nil || len(sd.Media) == 0 {
		p.t.Errorf("phone: unusable answer: %v\n%s", err, body)
		return
	}
	m := sd.Media[0]
	p.mu.Lock()
	p.remote = netip.AddrPortFrom(m.Addr, uint16(m.Port))
	p.sending = true
	p.mu.Unlock()
}

func (p *phone) sendRTP() {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	seq, ts := uint16(1), uint32(0)
	for {
		select {
		case <-p.done:
			return
		case <-t.C:
		}
		p.mu.Lock()
		dst, on := p.remote, p.sending && !p.muted
		p.mu.Unlock()
		if !on {
			continue
		}
		pkt := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 0, SequenceNumber: seq, Timestamp: ts, SSRC: 0x1234}, Payload: p.frame}
		seq++
		ts += 160
		b, _ := pkt.Marshal()
		_, _ = p.rtp.WriteToUDPAddrPort(b, dst)
	}
}

func (p *phone) readRTP() {
	buf := make([]byte, 2048)
	for {
		n, _, err := p.rtp.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		var pkt rtp.Packet
		if pkt.Unmarshal(buf[:n]) != nil {
			continue
		}
		p.mu.Lock()
		p.rx++
		if bytes.Equal(pkt.Payload, p.frame) {
			p.echo++
		}
		p.mu.Unlock()
	}
}

// mute stops the phone sending RTP.
func (p *phone) mute() {
	p.mu.Lock()
	p.muted = true
	p.mu.Unlock()
}

// counts returns RTP packets received and how many were our own frames.
func (p *phone) counts() (rx, echo int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.rx, p.echo
}

func (p *phone) byeCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.byes
}
