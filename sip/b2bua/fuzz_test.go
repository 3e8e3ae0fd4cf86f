package b2bua

import (
	"context"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/emiago/sipgo/siptest"

	"github.com/pbx2teams/pbx2teams"
	"github.com/pbx2teams/pbx2teams/media"
	msdp "github.com/pbx2teams/pbx2teams/media/sdp"
	"github.com/pbx2teams/pbx2teams/sip/teams"
)

// The fuzz targets feed arbitrary bytes to the B2BUA's SIP and SDP entry
// points: parsed requests go through the request handlers of both sides
// (screening, dialog matching, customer and user lookup, Replaces), the
// dialog construction and response building, and the header helpers;
// bodies go through the relay's offer handling and SDP comparison. None
// may panic. Seeds are in testdata/fuzz.

type fuzzDir struct{}

func (fuzzDir) UserByContact(_ context.Context, cu string) (*pbx2teams.User, error) {
	if cu == "fuzzcontact" {
		return &pbx2teams.User{ID: "u1", AccountID: "a1", Enabled: true, Type: pbx2teams.ServiceStandard,
			PhoneNumber: "+15550100", SIPUsername: "1001", ContactUser: cu}, nil
	}
	return nil, pbx2teams.ErrNotFound
}

func (fuzzDir) UserByPhoneNumber(_ context.Context, acct, n string) (*pbx2teams.User, error) {
	return nil, pbx2teams.ErrNotFound
}

func (fuzzDir) PBXSettings(context.Context, string) (*pbx2teams.PBXSettings, error) {
	return nil, pbx2teams.ErrNotFound
}

type fuzzRegs struct{}

func (fuzzRegs) PBXAddresses(string) ([]netip.Addr, bool) {
	return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, true
}

type fuzzCustomers struct{}

func (fuzzCustomers) CustomerByFQDN(host string) (string, bool) {
	return "a1", host == "contoso.sbc.fuzz.test"
}
func (fuzzCustomers) FQDN(string) (string, bool) { return "", false }

var (
	fuzzOnce  sync.Once
	fuzzB     *B2BUA
	fuzzRelay *media.Relay
)

// fuzzSetup builds a B2BUA whose lookups never lead to an outgoing call,
// so a fuzz iteration stays in process.
func fuzzSetup(t testing.TB) *B2BUA {
	fuzzOnce.Do(func() {
		tr, err := teams.New(teams.Config{FQDN: "sbc.fuzz.test", Listen: "127.0.0.1:0", Transport: "udp", OptionsInterval: -1})
		if err != nil {
			t.Fatal(err)
		}
		fuzzRelay, err = media.NewRelay(media.Config{BindIP: netip.MustParseAddr("127.0.0.1"), PortMin: 29000, PortMax: 29099, Workers: 1})
		if err != nil {
			t.Fatal(err)
		}
		b := &B2BUA{dialogs: map[string]*leg{}, calls: map[*call]struct{}{}}
		b.cfg = Config{Trunk: tr, Relay: fuzzRelay, Directory: fuzzDir{}, Registrations: fuzzRegs{}, Customers: fuzzCustomers{},
			Passwords: func(*pbx2teams.User) (string, error) { return "x", nil }, RingTimeout: time.Second, TraceLimit: 10}
		b.log = discardLogger()
		b.pbx = &side{b: b, name: "pbx", clients: nil, deflt: "udp", ua: "fuzz"}
		b.teams = newTeamsSide(b, tr)
		fuzzB = b
	})
	return fuzzB
}

var fuzzSeeds = []string{
	"INVITE sip:fuzzcontact@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1\r\nFrom: \"Desk\" <sip:2002@pbx.test>;tag=a\r\nTo: <sip:1001@pbx.test>\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\nContact: <sip:2002@127.0.0.1:5070>\r\nSession-Expires: 90;refresher=uac\r\nSupported: timer\r\nContent-Type: application/sdp\r\nContent-Length: 0\r\n\r\n",
	"INVITE sip:1002@contoso.sbc.fuzz.test:5061;user=phone;transport=tls SIP/2.0\r\nVia: SIP/2.0/TLS 52.114.1.1:5061;branch=z9hG4bK2\r\nFrom: <sip:+15550100@sip.pstnhub.microsoft.com;user=phone>;tag=b\r\nTo: <sip:1002@contoso.sbc.fuzz.test;user=phone>\r\nCall-ID: c2\r\nCSeq: 1 INVITE\r\nContact: <sip:sip.pstnhub.microsoft.com:5061;transport=tls>\r\nContent-Length: 0\r\n\r\n",
	"INVITE sip:x@contoso.sbc.fuzz.test SIP/2.0\r\nVia: SIP/2.0/TLS 1.2.3.4;branch=z9hG4bK3\r\nFrom: <sip:+1555@a>;tag=q\r\nTo: <sip:x@b>\r\nCall-ID: c3\r\nCSeq: 1 INVITE\r\nReplaces: c1;to-tag=a;from-tag=b\r\nContent-Length: 0\r\n\r\n",
	"BYE sip:fuzzcontact@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bK4\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\nCall-ID: c4\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n",
	"REFER sip:x@y SIP/2.0\r\nVia: SIP/2.0/TLS h;branch=z9hG4bK5\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\nCall-ID: c5\r\nCSeq: 3 REFER\r\nRefer-To: <sip:+1555@sip.pstnhub.microsoft.com;x-m=1?Replaces=abc>\r\nReferred-By: <sip:sip.pstnhub.microsoft.com;x-t=1>\r\nContent-Length: 0\r\n\r\n",
	"INVITE sip:fuzzcontact@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bK6\r\nFrom: anonymous <sip:anonymous@anonymous.invalid>;tag=z\r\nTo: <sip:1@2>;tag=x\r\nCall-ID: c6\r\nCSeq: 5 INVITE\r\nRecord-Route: <sip:p1;lr>, <sip:p2>\r\nP-Asserted-Identity: \"Bob\" <sip:+4420@x>, <tel:+4420>\r\nContent-Length: 0\r\n\r\n",
}

func FuzzSIPRequest(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	b := fuzzSetup(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		msg, err := sip.ParseMessage(data)
		if err != nil {
			return
		}
		req, ok := msg.(*sip.Request)
		if !ok {
			return
		}
		// Helpers first: they read headers any peer can send.
		if f := req.From(); f != nil {
			callerOf(req)
		}
		sessionExpires(req)
		supportsTimer(req)
		fromAny(req, []netip.Addr{netip.MustParseAddr("127.0.0.1")})
		for _, h := range req.GetHeaders("Record-Route") {
			parseURIs(h.Value())
		}
		if h := req.GetHeader("Replaces"); h != nil {
			parseReplaces(h.Value())
		}
		teams.E164(req.Recipient.User)
		teams.LabelOf(req.Recipient.Host, "sbc.fuzz.test")
		redact(req.String())

		if wellFormed(req) {
			// Dialog construction and the messages built from it.
			c := &call{b: b, id: "fuzz", log: b.log, done: make(chan struct{}), tb: &traceBuf{limit: 4}}
			l := newUAS(c, b.pbx, req, nil)
			l.contact = &sip.ContactHeader{Address: sip.Uri{Scheme: "sip", Host: "127.0.0.1"}}
			l.response(180, "Ringing", nil)
			l.response(200, "OK", []byte("v=0\r\n"))
			l.requestSeq(sip.BYE, 7)
			l.updateTarget(req)
			c.trace(l, "in", req)
			c.tb.render(true)
		}
		if _, err := sip.ServerTxKeyMake(req); err != nil {
			return
		}
		for _, s := range []*side{b.pbx, b.teams} {
			tx := siptest.NewServerTxRecorder(req)
			switch {
			case req.IsInvite():
				b.onInvite(s, req, tx)
			case req.IsAck():
				b.onAck(s, req, tx)
			default:
				b.onInDialog(s, req, tx)
			}
			tx.Terminate()
		}
	})
}

const fuzzSDPSeed = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n" +
	"m=audio 40000 RTP/SAVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n" +
	"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|2^31|1:1\r\na=rtcp-mux\r\na=sendonly\r\n"

func FuzzSDP(f *testing.F) {
	f.Add([]byte(fuzzSDPSeed))
	f.Add([]byte("v=0\r\nm=audio 0 RTP/AVP 0\r\n"))
	f.Add([]byte("v=0\nc=IN IP4 0.0.0.0\nm=audio 5004 RTP/AVP 18 0\na=inactive\n"))
	b := fuzzSetup(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		sameMedia(data, data)
		sameMedia([]byte(fuzzSDPSeed), data)
		if s, err := msdp.Parse(data); err == nil && len(s.Media) > 0 {
			_ = s.Media[0].Direction
		}
		// The relay is where a peer's SDP lands first, from either side.
		c := b.cfg.Relay.NewCall("fuzz", media.WithSecurity(media.LegB, media.SecuritySRTP))
		if _, err := c.OfferFromA(data); err == nil {
			_, _ = c.AnswerFromB([]byte(fuzzSDPSeed))
		}
		c.CancelOffer()
		if _, err := c.OfferFromB(data); err == nil {
			_, _ = c.AnswerFromA(data)
		}
		c.Close()
	})
}
