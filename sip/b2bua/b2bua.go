// Package b2bua is the call control of pbx2teams: a back-to-back user
// agent between the customer's PBX and Microsoft Teams, with every call's
// media anchored in the media relay. Standard users reach Teams through
// Direct Routing (package teams); Phone App users through the Phone App
// leg to the federation edge (package federation), with callback-first
// dialling driven by the Phone App tab (Dialler).
//
// PBX → Teams: the PBX sends an INVITE to a user's registration Contact
// (sip:<ContactUser>@<our address>). The B2BUA accepts it only for a
// configured user with a live registration, from the addresses of the PBX
// that registration is held with; anything else (a toll-fraud scanner
// trying random users) is answered 404 or 403 and rings nobody. The user's
// Teams number is then called through the trunk, with the caller's number
// and name.
//
// Teams → PBX: Microsoft sends an INVITE to the customer's SBC subdomain.
// The subdomain gives the customer, the caller's number gives the user,
// and the call goes to the PBX as that user (From their extension, digest
// authentication with their credentials) through the customer's PBX
// settings.
//
// Both legs are full dialogs of their own: responses, early media,
// CANCEL, BYE, re-INVITEs (hold as a=inactive toward Teams), session
// timers and Teams' REFER transfers are mapped between them.
package b2bua

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/pbx2teams/pbx2teams"
	"github.com/pbx2teams/pbx2teams/media"
	"github.com/pbx2teams/pbx2teams/sip/federation"
	"github.com/pbx2teams/pbx2teams/sip/sipx"
	"github.com/pbx2teams/pbx2teams/sip/teams"
)

// Directory is the part of the store the B2BUA reads; pbx2teams.Store
// implements it.
type Directory interface {
	// UserByContact finds the configured user whose registration Contact
	// user part is contactUser, in any account.
	UserByContact(ctx context.Context, contactUser string) (*pbx2teams.User, error)
	// UserByPhoneNumber finds the configured user of an account by E.164
	// number.
	UserByPhoneNumber(ctx context.Context, accountID, number string) (*pbx2teams.User, error)
	// PBXSettings returns a customer's PBX connection settings.
	PBXSettings(ctx context.Context, accountID string) (*pbx2teams.PBXSettings, error)
}

// Registrations tells whether a user holds a live PBX registration and
// which addresses that PBX has; INVITEs for the user are accepted only
// from those. The registration engine implements it (see
// RegistrationsFromStates for an adapter over pbx2teams.RegistrationStates).
type Registrations interface {
	PBXAddresses(userID string) ([]netip.Addr, bool)
}

// Customers maps customers to their SBC subdomain FQDN and back.
type Customers interface {
	// CustomerByFQDN returns the account whose SBC subdomain is host.
	CustomerByFQDN(host string) (accountID string, ok bool)
	// FQDN returns the SBC subdomain FQDN of an account.
	FQDN(accountID string) (string, bool)
}

// Config configures a B2BUA.
type Config struct {
	// PBX is the SIP stack facing PBXs, shared with the registration
	// engine: INVITEs arrive at the Contact the engine registers.
	PBX *sipx.Stack
	// Trunk is the Teams Direct Routing trunk.
	Trunk *teams.Trunk
	// PhoneApp is the Phone App leg to the federation edge; nil disables
	// calls for Phone App users (they are refused like unknown users).
	PhoneApp *federation.Link
	// OnPhoneAppRejected is told when the federation edge refuses a call
	// to a Phone App user with 403, 404, 480 or 603 (warning is the
	// edge's Warning text, e.g. "External access does not allow
	// <domain>"): the service keeps it as the user's readiness result.
	// Called from the call's goroutine; it must not block for long.
	OnPhoneAppRejected func(u *pbx2teams.User, status int, warning string)
	// Relay anchors the media of every call.
	Relay *media.Relay
	// Directory, Registrations and Customers are the lookups; Passwords
	// opens a user's SIP password (pbx2teams.Service.SIPPassword).
	Directory     Directory
	Registrations Registrations
	Customers     Customers
	Passwords     func(*pbx2teams.User) (string, error)
	// Resolver resolves PBX domains (RFC 3263); default net.DefaultResolver.
	Resolver sipx.Resolver
	// Recorder receives a record (and trace) of every call; optional.
	Recorder Recorder
	// Collapse183 turns Teams' 183 with SDP into 180 without SDP toward
	// the PBX, for PBXs and networks that stop local ringback on 183.
	Collapse183 bool
	// RingTimeout ends an unanswered call (default 3 min).
	RingTimeout time.Duration
	// SessionExpires is the session interval asked for in INVITEs toward
	// Teams (default 1800 s, as Microsoft uses).
	SessionExpires time.Duration
	// TeamsMedia is the SRTP policy toward Teams. Default
	// media.SecuritySRTP; media.SecurityFollow exists only for benchmarks
	// against peers without SRTP.
	TeamsMedia media.Security
	// TraceLimit bounds the SIP messages kept per call for its trace
	// (default 60; negative disables traces; no traces without Recorder).
	TraceLimit int
	// TraceFull keeps every message's full text in every call's trace.
	// By default answered calls keep the ladder (each message's start
	// line) and calls that failed keep the full messages too.
	TraceFull bool
	Logger    *slog.Logger
}

// B2BUA is the call control. Create it with New before starting the
// stacks (it registers request handlers), then Start the trunk and the
// PBX stack.
type B2BUA struct {
	cfg   Config
	log   *slog.Logger
	pbx   *side
	teams *side
	fed   *side // the Phone App leg; nil without Config.PhoneApp
	live  *liveHub

	mu      sync.Mutex
	dialogs map[string]*leg // Call-ID + our tag → leg
	calls   map[*call]struct{}
	closed  bool

	active   atomic.Int64
	total    atomic.Uint64
	rejected atomic.Uint64
}

// New creates the B2BUA and registers its handlers on both stacks.
func New(cfg Config) (*B2BUA, error) {
	if cfg.PBX == nil || cfg.Trunk == nil || cfg.Relay == nil || cfg.Directory == nil || cfg.Registrations == nil ||
		cfg.Customers == nil || cfg.Passwords == nil {
		return nil, errors.New("b2bua: PBX, Trunk, Relay, Directory, Registrations, Customers and Passwords are required")
	}
	if cfg.Resolver == nil {
		cfg.Resolver = net.DefaultResolver
	}
	if cfg.RingTimeout <= 0 {
		cfg.RingTimeout = 3 * time.Minute
	}
	if cfg.SessionExpires <= 0 {
		cfg.SessionExpires = 1800 * time.Second
	}
	if cfg.TeamsMedia == media.SecurityFollow && cfg.Trunk.Transport() == "tls" {
		// Benchmark-only setting; never toward Microsoft.
		cfg.TeamsMedia = media.SecuritySRTP
	}
	if cfg.TeamsMedia == 0 && cfg.Trunk.Transport() == "tls" {
		cfg.TeamsMedia = media.SecuritySRTP
	}
	if cfg.TraceLimit == 0 {
		cfg.TraceLimit = 60
	}
	if cfg.Recorder == nil {
		cfg.TraceLimit = -1 // nobody would read the traces
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	b := &B2BUA{cfg: cfg, log: cfg.Logger.With("component", "b2bua"), dialogs: map[string]*leg{}, calls: map[*call]struct{}{}}
	var err error
	if b.pbx, err = newPBXSide(b, cfg.PBX); err != nil {
		return nil, err
	}
	b.teams = newTeamsSide(b, cfg.Trunk)
	b.register(cfg.PBX.Server, b.pbx)
	b.register(cfg.Trunk.Server(), b.teams)
	b.live = newLiveHub(b)
	if cfg.PhoneApp != nil {
		b.fed = newFedSide(b, cfg.PhoneApp)
		b.register(cfg.PhoneApp.Server(), b.fed)
	}
	return b, nil
}

func (b *B2BUA) register(srv *sipgo.Server, s *side) {
	srv.OnInvite(func(req *sip.Request, tx sip.ServerTransaction) { b.onInvite(s, req, tx) })
	srv.OnAck(func(req *sip.Request, tx sip.ServerTransaction) { b.onAck(s, req, tx) })
	for _, m := range []sip.RequestMethod{sip.BYE, sip.UPDATE, sip.INFO, sip.REFER, sip.NOTIFY, sip.CANCEL, sip.PRACK, sip.MESSAGE, sip.SUBSCRIBE} {
		srv.OnRequest(m, func(req *sip.Request, tx sip.ServerTransaction) { b.onInDialog(s, req, tx) })
	}
}

// Close hangs up every call.
func (b *B2BUA) Close() error {
	b.mu.Lock()
	b.closed = true
	b.live.close()
	calls := make([]*call, 0, len(b.calls))
	for c := range b.calls {
		calls = append(calls, c)
	}
	b.mu.Unlock()
	var wg sync.WaitGroup
	for _, c := range calls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.hangup(endShutdown, "The service is shutting down.")
		}()
	}
	wg.Wait()
	return nil
}

// Stats are the B2BUA's figures for metrics.
type Stats struct {
	Active   int64  // calls in progress
	Total    uint64 // calls accepted since start
	Rejected uint64 // INVITEs refused before any leg was created
}

// Stats returns the current figures.
func (b *B2BUA) Stats() Stats {
	return Stats{Active: b.active.Load(), Total: b.total.Load(), Rejected: b.rejected.Load()}
}

func dialogKey(callID, tag string) string { return callID + "\x00" + tag }

func (b *B2BUA) addDialog(l *leg) {
	b.mu.Lock()
	b.dialogs[l.key()] = l
	b.mu.Unlock()
}

func (b *B2BUA) removeDialog(l *leg) {
	b.mu.Lock()
	if b.dialogs[l.key()] == l {
		delete(b.dialogs, l.key())
	}
	b.mu.Unlock()
}

// findLeg finds the leg an in-dialog request belongs to: its Call-ID and
// our tag, which is the request's To-tag.
func (b *B2BUA) findLeg(req *sip.Request) *leg {
	cid, to := req.CallID(), req.To()
	if cid == nil || to == nil {
		return nil
	}
	tag, ok := to.Params.Get("tag")
	if !ok {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.dialogs[dialogKey(cid.Value(), tag)]
}

func (b *B2BUA) addCall(c *call) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return false
	}
	b.calls[c] = struct{}{}
	b.active.Add(1)
	b.total.Add(1)
	return true
}

func (b *B2BUA) removeCall(c *call) {
	b.mu.Lock()
	if _, ok := b.calls[c]; ok {
		delete(b.calls, c)
		b.active.Add(-1)
	}
	b.mu.Unlock()
}

// onInvite dispatches an INVITE: a re-INVITE to its dialog, a new call
// to the direction of its side.
func (b *B2BUA) onInvite(s *side, req *sip.Request, tx sip.ServerTransaction) {
	if !wellFormed(req) {
		s.reply(req, tx, 400, "Bad Request", "")
		return
	}
	if to := req.To(); to.Params.Has("tag") {
		l := b.findLeg(req)
		if l == nil {
			s.reply(req, tx, 481, "Call/Transaction Does Not Exist", "")
			return
		}
		l.c.onReinvite(l, req, tx)
		return
	}
	switch {
	case s == b.fed:
		// Phone App users place calls from the tab (callback-first); a
		// Teams user calling the Phone App domain is not a call we place.
		b.rejected.Add(1)
		s.reply(req, tx, 403, "Forbidden", "Place PBX calls from the Phone App tab")
	case s.teams:
		b.fromTeams(req, tx)
	default:
		b.toTeams(req, tx)
	}
}

func (b *B2BUA) onAck(s *side, req *sip.Request, tx sip.ServerTransaction) {
	if l := b.findLeg(req); l != nil {
		l.gotAck(req)
	}
}

func (b *B2BUA) onInDialog(s *side, req *sip.Request, tx sip.ServerTransaction) {
	if !wellFormed(req) {
		s.reply(req, tx, 400, "Bad Request", "")
		return
	}
	if req.Method == sip.CANCEL {
		// A CANCEL matching a pending INVITE is handled by the transaction
		// layer (200, then 487 to the INVITE); this one matched nothing.
		s.reply(req, tx, 481, "Call/Transaction Does Not Exist", "")
		return
	}
	l := b.findLeg(req)
	if l == nil {
		s.reply(req, tx, 481, "Call/Transaction Does Not Exist", "")
		return
	}
	l.c.onRequest(l, req, tx)
}

// wellFormed checks the headers every request handler relies on.
func wellFormed(req *sip.Request) bool {
	return req.CallID() != nil && req.From() != nil && req.To() != nil && req.CSeq() != nil && req.Via() != nil &&
		req.Recipient.Host != ""
}

// RegistrationsFromStates adapts a pbx2teams.RegistrationStates (the
// registration engine) to Registrations: a user is registered when its
// state is "registered", and its PBX address is the one the registration
// was sent to.
func RegistrationsFromStates(rs pbx2teams.RegistrationStates) Registrations {
	return statesAdapter{rs}
}

type statesAdapter struct{ rs pbx2teams.RegistrationStates }

func (a statesAdapter) PBXAddresses(userID string) ([]netip.Addr, bool) {
	st, ok := a.rs.RegistrationState(userID)
	if !ok || st.State != pbx2teams.RegRegistered {
		return nil, false
	}
	// "udp:192.0.2.1:5060", "192.0.2.1:5060" or "192.0.2.1"
	s := st.PBXAddress
	if i := strings.IndexByte(s, ':'); i > 0 && !strings.ContainsAny(s[:i], ".[") {
		s = s[i+1:]
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return []netip.Addr{ap.Addr().Unmap()}, true
	}
	if ip, err := netip.ParseAddr(strings.Trim(s, "[]")); err == nil {
		return []netip.Addr{ip.Unmap()}, true
	}
	return nil, true
}
