package b2bua

import (
	"context"
	"fmt"
	"net"
	"strings"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/pbx2teams/pbx2teams/sip/federation"
	"github.com/pbx2teams/pbx2teams/sip/sipx"
	"github.com/pbx2teams/pbx2teams/sip/teams"
)

// side is one of the two user agents the B2BUA speaks through: the PBX
// stack or the Teams trunk.
type side struct {
	b       *B2BUA
	name    string // "pbx" or "teams", for records and logs
	teams   bool
	clients map[string]*sipgo.Client // by lower-case transport
	deflt   string                   // default transport
	udp     sip.Addr                 // PBX side: requests over UDP leave from the listener
	ua      string
	trunk   *teams.Trunk
	fed     *federation.Link // the Phone App side
	stack   *sipx.Stack
}

// newFedSide is the Phone App leg's side: a Teams side (relay leg B,
// SRTP) reached through the federation edge.
func newFedSide(b *B2BUA, l *federation.Link) *side {
	return &side{b: b, name: "teams", teams: true, fed: l, deflt: "tls", ua: "pbx2teams",
		clients: map[string]*sipgo.Client{"tls": l.Client()}}
}

func newPBXSide(b *B2BUA, st *sipx.Stack) (*side, error) {
	s := &side{b: b, name: "pbx", clients: map[string]*sipgo.Client{}, ua: st.UserAgentName(), stack: st}
	for _, tr := range []string{"udp", "tcp", "tls"} {
		if !st.HasTransport(tr) {
			continue
		}
		c, err := sipgo.NewClient(st.UA, sipgo.WithClientHostname(st.AdvertisedHost()), sipgo.WithClientPort(st.Port(tr)))
		if err != nil {
			return nil, err
		}
		s.clients[tr] = c
		if s.deflt == "" {
			s.deflt = tr
		}
	}
	if s.deflt == "" {
		return nil, fmt.Errorf("b2bua: the PBX stack has no listener")
	}
	if st.HasTransport("udp") {
		s.udp = st.UDPLocalAddr()
	}
	return s, nil
}

func newTeamsSide(b *B2BUA, tr *teams.Trunk) *side {
	return &side{b: b, name: "teams", teams: true, trunk: tr, deflt: tr.Transport(), ua: "pbx2teams",
		clients: map[string]*sipgo.Client{tr.Transport(): tr.Client()}}
}

func (s *side) client(transport string) *sipgo.Client {
	if c := s.clients[strings.ToLower(transport)]; c != nil {
		return c
	}
	return s.clients[s.deflt]
}

// decorate adds the side's identification headers to a message we send.
func (s *side) decorate(m sip.Message) {
	if s.fed != nil {
		s.fed.AddHeaders(m)
		return
	}
	if s.teams {
		s.trunk.AddHeaders(m)
		return
	}
	if _, ok := m.(*sip.Response); ok {
		m.AppendHeader(sip.NewHeader("Server", s.ua))
	} else {
		m.AppendHeader(sip.NewHeader("User-Agent", s.ua))
	}
}

// prepare sets what the transport layer needs on a request we send.
func (s *side) prepare(req *sip.Request) {
	tr := strings.ToLower(req.Transport())
	if _, ok := s.clients[tr]; !ok {
		tr = s.deflt
		req.SetTransport(strings.ToUpper(tr))
	}
	if tr == "udp" && s.udp.IP != nil {
		s.udp.Copy(&req.Laddr)
	}
	if req.Body() == nil {
		req.SetBody(nil)
	}
}

// request sends a request in a new client transaction.
func (s *side) request(ctx context.Context, req *sip.Request) (sip.ClientTransaction, error) {
	s.prepare(req)
	return s.client(req.Transport()).TransactionRequest(ctx, req, sipgo.ClientRequestAddVia)
}

// write sends a request outside any transaction (ACK for a 2xx).
func (s *side) write(req *sip.Request) error {
	s.prepare(req)
	return s.client(req.Transport()).WriteRequest(req, sipgo.ClientRequestAddVia)
}

// reply answers a request that belongs to no call (or before one exists).
func (s *side) reply(req *sip.Request, tx sip.ServerTransaction, code int, reason, warning string) {
	res := sip.NewResponseFromRequest(req, code, reason, nil)
	if warning != "" {
		res.AppendHeader(sip.NewHeader("Warning", `399 pbx2teams "`+sanitizeQuoted(warning)+`"`))
	}
	s.decorate(res)
	_ = tx.Respond(res)
}

// sanitizeQuoted makes s safe inside a quoted header value.
func sanitizeQuoted(s string) string {
	s = strings.Map(func(r rune) rune {
		if r == '"' || r == '\\' || r < 0x20 || r == 0x7f {
			return '\''
		}
		return r
	}, s)
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}

// sourceIP is the address a request came from.
func sourceIP(req *sip.Request) (net.IP, bool) {
	host, _, err := net.SplitHostPort(req.Source())
	if err != nil {
		return nil, false
	}
	ip := net.ParseIP(host)
	return ip, ip != nil
}
