// Package registration keeps a SIP registration with the customer's PBX for
// every configured user, like a desk phone would: REGISTER with digest
// authentication over UDP, TCP or TLS, refreshed before the granted expiry,
// with backoff on failures, a per-PBX rate limit and NAT keep-alives.
//
// One scheduler goroutine drives all registrations from a min-heap of next
// action times; due registrations wait in a per-PBX queue for a token of
// that PBX's rate limiter, and each attempt (one REGISTER exchange, with
// its digest challenge and server failover) runs on a pool of at most
// MaxInFlight worker goroutines. Nothing runs per registration while it is
// idle, and an idle registration costs a few hundred bytes.
//
// Use: build a sipx.Stack, New an Engine with it, Set every configured user
// (Remove the unconfigured, suspended or deleted), Run, and read State and
// Stats for the portal, API and metrics.
package registration

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo/sip"

	pbx2teams "github.com/pbx2teams/pbx2teams"
	"github.com/pbx2teams/pbx2teams/sip/sipx"
)

var defaultResolver sipx.Resolver = net.DefaultResolver

// Engine keeps the registrations. Its methods are safe for concurrent use.
type Engine struct {
	cfg   Config
	st    *sipx.Stack
	log   *slog.Logger
	start time.Time

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	kick   chan struct{}
	work   chan *attempt // hands attempts to idle workers
	// Headers every REGISTER carries, shared (sipgo only reads them).
	uaHeader sip.Header

	mu       sync.Mutex
	regs     map[string]*reg
	heap     timerHeap
	ready    []*hop
	profiles map[string]*profile
	hops     map[string]*hop
	intern   map[string]string
	inflight int
	counts   [numStates]int
	failures map[string]uint64
	closed   bool

	sent      atomic.Uint64 // REGISTER requests sent, including retries
	rateMu    sync.Mutex
	rateRing  [11]uint64
	rateIdx   int
	rateTicks int
}

// New creates an engine; call Run to start it.
func New(cfg Config) (*Engine, error) {
	if cfg.Stack == nil {
		return nil, errors.New("registration: Config.Stack is required")
	}
	cfg.defaults()
	ctx, cancel := context.WithCancel(context.Background())
	return &Engine{
		cfg: cfg, st: cfg.Stack, log: cfg.Logger, start: time.Now(),
		ctx: ctx, cancel: cancel, kick: make(chan struct{}, 1), work: make(chan *attempt),
		regs: map[string]*reg{}, profiles: map[string]*profile{}, hops: map[string]*hop{},
		intern: map[string]string{}, failures: map[string]uint64{},
		uaHeader: sip.NewHeader("User-Agent", cfg.Stack.UserAgentName()),
	}, nil
}

// clock returns the engine's monotonic clock: nanoseconds since New.
func (e *Engine) clock() int64 { return int64(time.Since(e.start)) }

func (e *Engine) wall(t int64) time.Time { return e.start.Add(time.Duration(t)).Round(0) }

func (e *Engine) wake() {
	select {
	case e.kick <- struct{}{}:
	default:
	}
}

// internStr shares equal strings (realms, reasons) among registrations.
// Called with e.mu held.
func (e *Engine) internStr(s string) string {
	if s == "" {
		return ""
	}
	if v, ok := e.intern[s]; ok {
		return v
	}
	if len(e.intern) < 50000 {
		e.intern[s] = s
	}
	return s
}

func jitter(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return mrand.Int64N(int64(d))
}

func newCallID() uint64 {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return binary.LittleEndian.Uint64(b[:]) | 1
}

// Set adds or updates a user's registration. A change of PBX, transport,
// SIP username or Contact user unregisters the old binding and registers
// anew; a change of credentials or expiry re-registers promptly; an
// identical Account changes nothing (use Refresh to retry a failed one).
func (e *Engine) Set(acc Account) error {
	acc.normalise()
	if err := validate(&acc, e.st); err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return pbx2teams.Errorf(pbx2teams.EUnavailable, "The registration engine is shut down.")
	}
	now := e.clock()
	prof := e.profileFor(&acc)
	authUser := acc.AuthUsername
	if authUser == acc.Username {
		authUser = ""
	}
	r := e.regs[acc.UserID]
	if r == nil {
		r = &reg{userID: acc.UserID, prof: prof, username: acc.Username, authUser: authUser,
			password: acc.Password, contactUser: acc.ContactUser, callID: newCallID(),
			cseq: uint32(mrand.IntN(1000)) + 1, heapIdx: -1, state: stRegistering}
		e.regs[acc.UserID] = r
		e.counts[stRegistering]++
		r.due = now + jitter(e.cfg.StartJitter)
		e.heap.push(r)
		e.wake()
		return nil
	}
	same := r.prof == prof && r.username == acc.Username && r.authUser == authUser &&
		r.password == acc.Password && r.contactUser == acc.ContactUser
	if same && r.flags&fRemoving == 0 {
		e.release(prof)
		return nil
	}
	moved := r.prof.hop != prof.hop || r.prof.domainHost != prof.domainHost ||
		r.prof.transport != prof.transport || r.username != acc.Username || r.contactUser != acc.ContactUser
	if moved && r.flags&fBound != 0 && r.flags&fRemoving == 0 {
		e.ghost(r)
	}
	if moved {
		e.unbind(r)
		r.callID, r.cseq = newCallID(), uint32(mrand.IntN(1000))+1
		r.nonce, r.opaque, r.realm, r.chal, r.nc = "", "", "", 0, 0
	}
	if r.prof != prof {
		e.release(r.prof)
		r.prof = prof
	} else {
		e.release(prof)
	}
	r.username, r.authUser, r.password, r.contactUser = acc.Username, authUser, acc.Password, acc.ContactUser
	r.flags &^= fRemoving | fDropped
	r.gen++
	r.failures, r.minExp = 0, 0
	e.setState(r, stRegistering, 0, "")
	e.reschedule(r, now+jitter(e.cfg.StartJitter))
	return nil
}

// reschedule sets r's next action unless an attempt is running or it waits
// for a token (then the attempt picks up the new settings, or its result
// is discarded because r.gen changed).
func (e *Engine) reschedule(r *reg, due int64) {
	if r.flags&(fInFlight|fQueued) != 0 {
		return
	}
	r.due = due
	if r.heapIdx >= 0 {
		e.heap.fix(r)
	} else {
		e.heap.push(r)
	}
	e.wake()
}

func (e *Engine) setState(r *reg, st uint8, status int, reason string) {
	if r.flags&fGhost == 0 && r.state != st {
		e.counts[r.state]--
		e.counts[st]++
	}
	r.state, r.status, r.reason = st, uint16(status), e.internStr(reason)
}

// unbind forgets r's binding for keep-alive accounting.
func (e *Engine) unbind(r *reg) {
	if r.flags&fBound != 0 {
		r.flags &^= fBound
		r.prof.hop.bound--
	}
}

// ghost queues an unregistration of r's current binding, made with r's
// current (old) settings, independent of r. Its CSeq jumps ahead of any
// attempt of r still running.
func (e *Engine) ghost(r *reg) {
	g := &reg{userID: r.userID, prof: r.prof, username: r.username, authUser: r.authUser,
		password: r.password, contactUser: r.contactUser, nonce: r.nonce, opaque: r.opaque,
		realm: r.realm, callID: r.callID, cseq: r.cseq + 64, nc: r.nc + 64, chal: r.chal,
		heapIdx: -1, state: stRemoving, flags: fGhost | fRemoving | fBound, target: r.target}
	r.prof.refs++
	r.prof.hop.bound++
	g.due = e.clock()
	e.heap.push(g)
	e.wake()
}

// Remove unregisters a user (Expires: 0 for our Contact only) and then
// forgets it. Unknown users are ignored.
func (e *Engine) Remove(userID string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if r := e.regs[userID]; r != nil {
		e.remove(r)
	}
}

func (e *Engine) remove(r *reg) {
	if r.flags&fRemoving != 0 {
		return
	}
	r.flags |= fRemoving
	r.gen++
	e.setState(r, stRemoving, 0, "")
	if r.flags&(fBound|fInFlight) != 0 {
		e.reschedule(r, e.clock())
		return
	}
	e.forget(r)
}

// forget drops r now. A queued r is skipped when its turn comes.
func (e *Engine) forget(r *reg) {
	if r.heapIdx >= 0 {
		e.heap.remove(r)
	}
	if r.flags&fQueued != 0 {
		r.flags |= fDropped
	}
	e.unbind(r)
	if r.flags&fGhost == 0 {
		if e.regs[r.userID] == r {
			delete(e.regs, r.userID)
		}
		e.counts[r.state]--
	}
	e.release(r.prof)
}

// RemoveAccount removes all users of a customer.
func (e *Engine) RemoveAccount(accountID string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, r := range e.regs {
		if r.prof.accountID == accountID {
			e.remove(r)
		}
	}
}

// Refresh re-registers all users of a customer now (spread by the rate
// limit), including those that stopped retrying after a permanent
// failure: the admin pressed Save on the PBX settings.
func (e *Engine) Refresh(accountID string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.clock()
	for _, r := range e.regs {
		if r.prof.accountID != accountID || r.flags&fRemoving != 0 {
			continue
		}
		r.failures, r.minExp = 0, 0
		if r.state == stStopped || r.state == stFailed {
			e.setState(r, stRegistering, 0, "")
		}
		e.reschedule(r, now+jitter(e.cfg.StartJitter))
	}
}

func (e *Engine) profileFor(a *Account) *profile {
	key := a.AccountID + "\x00" + a.Domain + "\x00" + a.OutboundProxy + "\x00" + a.Transport + "\x00" + strconv.Itoa(a.Expiry)
	if p := e.profiles[key]; p != nil {
		p.refs++
		return p
	}
	dh, dp, _ := sipx.SplitHostPort(a.Domain)
	next := a.Domain
	if a.OutboundProxy != "" {
		next = a.OutboundProxy
	}
	nh, np, _ := sipx.SplitHostPort(next)
	hkey := a.Transport + "\x00" + nh + "\x00" + strconv.Itoa(int(np))
	h := e.hops[hkey]
	if h == nil {
		h = &hop{key: hkey, host: nh, port: np, transport: a.Transport}
		e.hops[hkey] = h
	}
	h.refs++
	p := &profile{key: key, accountID: a.AccountID, domainHost: dh, domainPort: dp,
		transport: a.Transport, expiry: uint32(a.Expiry), hop: h, refs: 1}
	if a.OutboundProxy != "" && a.OutboundProxy != a.Domain {
		// RFC 3261 §8.1.2: an outbound proxy is a pre-loaded route.
		route := "<sip:" + hostForURI(nh)
		if np != 0 {
			route += ":" + strconv.Itoa(int(np))
		}
		if a.Transport != "udp" {
			route += ";transport=" + a.Transport
		}
		p.route = sip.NewHeader("Route", route+";lr>")
	}
	e.profiles[key] = p
	return p
}

func (e *Engine) release(p *profile) {
	p.refs--
	if p.refs > 0 {
		return
	}
	delete(e.profiles, p.key)
	h := p.hop
	h.refs--
	if h.refs == 0 && h.queued() == 0 && h.inflight == 0 {
		delete(e.hops, h.key)
	}
}

// RegistrationState implements pbx2teams.RegistrationStates.
func (e *Engine) RegistrationState(userID string) (pbx2teams.RegistrationState, bool) {
	return e.State(userID)
}

// PBXAddresses returns every address the user's PBX was resolved to (all
// SRV/A targets of its next hop, not only the one registered with), and
// whether the user holds a live registration. Call control accepts the
// user's INVITEs only from these: a PBX cluster may send from any node.
func (e *Engine) PBXAddresses(userID string) ([]netip.Addr, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	r := e.regs[userID]
	if r == nil || r.state != stRegistered || r.expiresAt <= e.clock() {
		return nil, false
	}
	h := r.prof.hop
	out := make([]netip.Addr, 0, len(h.targets))
	for _, t := range h.targets {
		a := t.Addr.Addr().Unmap()
		if !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out, true
}

// State returns the live state of a user's registration.
func (e *Engine) State(userID string) (pbx2teams.RegistrationState, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	r := e.regs[userID]
	if r == nil {
		return pbx2teams.RegistrationState{}, false
	}
	now := e.clock()
	s := pbx2teams.RegistrationState{UserID: userID, StatusCode: int(r.status), Reason: r.reason}
	switch r.state {
	case stRegistered:
		s.State = pbx2teams.RegRegistered
		if r.expiresAt <= now { // not refreshed in time (still trying)
			s.State = pbx2teams.RegFailed
			if s.Reason == "" {
				s.Reason = "The registration expired before the PBX answered its refresh."
			}
		}
	case stFailed:
		s.State = pbx2teams.RegFailed
		if r.flags&fBound != 0 && r.expiresAt > now {
			s.State = pbx2teams.RegRegistered // old binding still valid
		}
	case stStopped:
		s.State = pbx2teams.RegFailed
	case stRemoving:
		s.State = pbx2teams.RegStopped
	default:
		s.State = pbx2teams.RegRegistering
	}
	if r.lastOK != 0 {
		t := e.wall(r.lastOK)
		s.LastSuccess = &t
	}
	if r.state != stStopped && r.state != stRemoving {
		due := r.due
		if r.flags&(fInFlight|fQueued) != 0 || due < now {
			due = now
		}
		t := e.wall(due)
		s.NextRefresh = &t
	}
	h := r.prof.hop
	if int(r.target) < len(h.targets) {
		s.PBXAddress = h.targets[r.target].String()
	}
	return s, true
}

// Stats are the engine's figures for metrics.
type Stats struct {
	Registrations int            // users known to the engine
	ByState       map[string]int // registered, registering, failed, stopped
	RegistersSent uint64         // REGISTER requests sent since start (counter)
	RegisterRate  float64        // REGISTER requests per second over the last 10 s
	Failures      map[string]uint64
	InFlight      int // attempts running
	Queued        int // due, waiting for a rate-limit token
	PBXs          int // distinct next-hop PBXs
}

// Stats returns counts by state, the REGISTER rate and failures by kind:
// SIP status codes ("403", "503") or "timeout", "transport", "dns", "tls",
// "auth" (unsupported challenge).
func (e *Engine) Stats() Stats {
	e.mu.Lock()
	s := Stats{Registrations: len(e.regs), ByState: map[string]int{}, Failures: make(map[string]uint64, len(e.failures)),
		InFlight: e.inflight, PBXs: len(e.hops)}
	s.ByState[pbx2teams.RegRegistered] = e.counts[stRegistered]
	s.ByState[pbx2teams.RegRegistering] = e.counts[stRegistering]
	s.ByState[pbx2teams.RegFailed] = e.counts[stFailed] + e.counts[stStopped]
	s.ByState[pbx2teams.RegStopped] = e.counts[stRemoving]
	for k, v := range e.failures {
		s.Failures[k] = v
	}
	for _, h := range e.hops {
		s.Queued += h.queued()
	}
	e.mu.Unlock()
	s.RegistersSent = e.sent.Load()
	e.rateMu.Lock()
	n := min(e.rateTicks, len(e.rateRing)-1)
	if n > 0 {
		cur := e.rateRing[e.rateIdx]
		old := e.rateRing[(e.rateIdx-n+len(e.rateRing))%len(e.rateRing)]
		s.RegisterRate = float64(cur-old) / float64(n)
	}
	e.rateMu.Unlock()
	return s
}

// Run drives the registrations until ctx ends or Close is called.
func (e *Engine) Run(ctx context.Context) error {
	stop := context.AfterFunc(ctx, e.cancel)
	defer stop()
	e.wg.Add(2)
	defer e.wg.Done()
	go e.housekeeping()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		wait := e.dispatch()
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(wait)
		select {
		case <-e.ctx.Done():
			return nil
		case <-e.kick:
		case <-timer.C:
		}
	}
}

// Close stops the engine and waits for running attempts. Bindings stay at
// the PBXs: a restarted engine takes them over with the same Contacts.
func (e *Engine) Close() error {
	e.mu.Lock()
	e.closed = true
	e.mu.Unlock()
	e.cancel()
	e.wg.Wait()
	return nil
}

// dispatch moves due registrations to their hop queues and starts as many
// attempts as tokens and in-flight limits allow. It returns how long to
// sleep at most.
func (e *Engine) dispatch() time.Duration {
	var starts []*attempt
	e.mu.Lock()
	now := e.clock()
	for len(e.heap) > 0 && e.heap[0].due <= now {
		r := e.heap.pop()
		h := r.prof.hop
		r.flags |= fQueued
		h.enqueue(r)
		if !h.ready {
			h.ready = true
			e.ready = append(e.ready, h)
		}
	}
	next := int64(time.Hour)
	if len(e.heap) > 0 {
		next = e.heap[0].due - now
	}
	rate, burst := e.cfg.RateLimit, e.cfg.RateBurst
	for i := 0; i < len(e.ready); {
		h := e.ready[i]
		if h.queued() == 0 {
			h.ready = false
			e.ready[i] = e.ready[len(e.ready)-1]
			e.ready[len(e.ready)-1] = nil
			e.ready = e.ready[:len(e.ready)-1]
			if h.refs == 0 && h.inflight == 0 {
				delete(e.hops, h.key)
			}
			continue
		}
		h.refill(now, rate, burst)
		for h.queued() > 0 && h.tokens >= 1 && e.inflight < e.cfg.MaxInFlight && h.inflight < e.cfg.MaxInFlightPerPBX {
			r := h.dequeue()
			r.flags &^= fQueued
			if r.flags&fDropped != 0 {
				continue
			}
			if r.prof.hop != h { // moved to another PBX while waiting
				e.reschedule(r, now)
				continue
			}
			a := e.prepare(r, now)
			if a == nil {
				continue
			}
			h.tokens--
			h.inflight++
			e.inflight++
			starts = append(starts, a)
		}
		if h.queued() > 0 && h.tokens < 1 {
			next = min(next, int64((1-h.tokens)/rate*float64(time.Second))+1)
		}
		i++
	}
	e.mu.Unlock()
	for _, a := range starts {
		select {
		case e.work <- a: // an idle worker takes it
		default:
			e.wg.Add(1)
			go e.worker(a)
		}
	}
	if next < int64(time.Millisecond) {
		next = int64(time.Millisecond)
	}
	return time.Duration(next)
}

// prepare snapshots r for an attempt, or returns nil when there is
// nothing to send (a removed registration with no binding).
func (e *Engine) prepare(r *reg, now int64) *attempt {
	if r.flags&fRemoving != 0 && r.flags&fBound == 0 {
		e.forget(r)
		return nil
	}
	a := &attempt{e: e, r: r, gen: r.gen, prof: r.prof, hop: r.prof.hop, username: r.username,
		authUser: r.auth(), password: r.password, contactUser: r.contactUser, callID: r.callID,
		cseq: r.cseq, expiry: r.prof.expiry, nc: r.nc}
	if r.minExp > a.expiry {
		a.expiry = r.minExp
	}
	if r.flags&fRemoving != 0 {
		a.expiry = 0
	}
	h := r.prof
	sharing := !e.cfg.NoSharedNonce && h.sharedFlags&chValid != 0 && h.shareFails < 3
	switch {
	case r.chal&chValid != 0:
		a.chal = sipx.Challenge{Realm: r.realm, Nonce: r.nonce, Opaque: r.opaque, QOP: r.chal&chQOP != 0,
			HasOpaque: r.chal&chOpaque != 0, Algorithm: chalAlgorithm(r.chal)}
		a.chalFlags = r.chal
		a.nc = r.nc + 1
		if h.sharedFlags&chValid != 0 && r.nonce == h.shared.Nonce {
			h.sharedNC++ // one count for all users of the shared nonce
			a.nc, a.shared = h.sharedNC, true
		}
	case sharing && r.flags&fRemoving == 0:
		a.chal, a.chalFlags, a.shared = h.shared, h.sharedFlags, true
		h.sharedNC++
		a.nc = h.sharedNC
	}
	r.flags |= fInFlight
	if r.state == stRemoving || r.state == stStopped {
		return a
	}
	if r.flags&fBound == 0 && r.state != stRegistering && r.state != stFailed {
		e.setState(r, stRegistering, int(r.status), r.reason)
	}
	return a
}

func chalAlgorithm(f uint8) string {
	switch {
	case f&chSHA256 != 0 && f&chSess != 0:
		return sipx.AlgSHA256Sess
	case f&chSHA256 != 0:
		return sipx.AlgSHA256
	case f&chSess != 0:
		return sipx.AlgMD5Sess
	}
	return sipx.AlgMD5
}

func chalFlags(c *sipx.Challenge, proxy bool) uint8 {
	f := chValid
	if c.QOP {
		f |= chQOP
	}
	if proxy {
		f |= chProxy
	}
	if c.HasOpaque {
		f |= chOpaque
	}
	switch c.Algorithm {
	case sipx.AlgSHA256:
		f |= chSHA256
	case sipx.AlgSHA256Sess:
		f |= chSHA256 | chSess
	case sipx.AlgMD5Sess:
		f |= chSess
	}
	return f
}

// worker runs attempts until it has been idle for a while. Workers are
// reused rather than started per attempt: their stacks have grown to what
// a SIP transaction needs. There are never more than MaxInFlight.
func (e *Engine) worker(a *attempt) {
	defer e.wg.Done()
	idle := time.NewTimer(workerIdle)
	defer idle.Stop()
	txTimer := time.NewTimer(time.Hour)
	txTimer.Stop()
	for {
		a.timer = txTimer
		a.do(e.ctx)
		e.finish(a)
		e.wake()
		idle.Reset(workerIdle)
		select {
		case a = <-e.work:
		case <-idle.C:
			return
		case <-e.ctx.Done():
			return
		}
	}
}

const workerIdle = 20 * time.Second

// finish applies an attempt's outcome to its registration.
func (e *Engine) finish(a *attempt) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.inflight--
	a.hop.inflight--
	now := e.clock()
	r := a.r
	r.flags &^= fInFlight
	out := &a.out
	if out.failKey != "" {
		e.failures[out.failKey]++
	}
	if out.aborted { // engine shutting down
		return
	}
	if r.callID == a.callID { // same dialog: keep CSeq and nonce going
		if out.sentCSeq > r.cseq {
			r.cseq = out.sentCSeq
		}
		if out.chalOK {
			r.realm = e.internStr(out.chal.Realm)
			r.nonce, r.opaque = out.chal.Nonce, out.chal.Opaque
			r.chal, r.nc = out.chalFlags, out.nc
		}
		if out.target >= 0 && out.target < 256 {
			r.target = uint8(out.target)
		}
	}
	if out.answered && out.target >= 0 {
		a.hop.current = out.target
	}
	e.learnNonce(a, out)
	if a.expiry == 0 && out.kind == okDone {
		e.unbind(r) // unregistered
	}

	if r.flags&fRemoving != 0 {
		if a.expiry == 0 || r.flags&fGhost != 0 {
			// Unregistered (or gave up trying): forget.
			if out.kind != okDone && r.flags&fGhost == 0 {
				e.log.Debug("unregister failed; the binding will expire at the PBX", "user", r.userID, "reason", out.reason)
			}
			e.forget(r)
			return
		}
		// A registration finished after Remove: unregister what it made.
		if out.kind == okDone {
			e.bind(r, now)
		}
		e.reschedule(r, now)
		return
	}
	if r.gen != a.gen {
		// The settings changed while the attempt ran. If it created a
		// binding under settings that are now gone, unregister it.
		moved := a.prof.hop != r.prof.hop || a.username != r.username ||
			a.contactUser != r.contactUser || a.prof.domainHost != r.prof.domainHost
		switch {
		case out.kind != okDone || a.expiry == 0:
		case moved:
			g := &reg{userID: r.userID, prof: a.prof, username: a.username, password: a.password,
				contactUser: a.contactUser, callID: a.callID, cseq: out.sentCSeq + 1, heapIdx: -1,
				state: stRemoving, flags: fGhost | fRemoving | fBound}
			if a.authUser != a.username {
				g.authUser = a.authUser
			}
			a.prof.refs++
			a.prof.hop.bound++
			g.due = now
			e.heap.push(g)
		default:
			e.bind(r, now)
			r.expiresAt = now + int64(out.granted)*int64(time.Second)
		}
		e.reschedule(r, now)
		return
	}

	switch out.kind {
	case okDone:
		e.bind(r, now)
		r.failures, r.lastOK = 0, now
		r.granted = out.granted
		if out.minExp > 0 {
			r.minExp = out.minExp
		}
		r.expiresAt = now + int64(out.granted)*int64(time.Second)
		e.setState(r, stRegistered, out.status, "")
		e.reschedule(r, now+refreshDelay(out.granted))
	case failPermanent:
		e.setState(r, stStopped, out.status, out.reason)
		e.log.Warn("registration stopped until its settings change", "user", r.userID, "pbx", a.hop.host,
			"status", out.status, "reason", out.reason)
		if r.heapIdx >= 0 {
			e.heap.remove(r)
		}
	default: // transient
		if r.failures < 255 {
			r.failures++
		}
		if out.minExp > 0 {
			r.minExp = out.minExp
		}
		delay := e.backoff(r.failures)
		if out.retryAfter > 0 {
			delay = out.retryAfter + time.Duration(jitter(out.retryAfter/10+time.Second))
		}
		st := uint8(stFailed)
		if r.flags&fBound != 0 && r.expiresAt > now {
			st = stRegistered // the previous binding is still valid
		}
		e.setState(r, st, out.status, out.reason)
		if r.failures == 1 || r.failures%8 == 0 {
			e.log.Info("registration failed; retrying", "user", r.userID, "pbx", a.hop.host,
				"status", out.status, "reason", out.reason, "retry_in", delay.Round(time.Second))
		}
		e.reschedule(r, now+int64(delay))
	}
}

// learnNonce keeps the customer's shared challenge up to date: a challenge
// answered successfully becomes the one others use; a refused or stale
// shared nonce is dropped, and a PBX that keeps refusing shared nonces
// gets no more of them.
func (e *Engine) learnNonce(a *attempt, out *outcome) {
	h := a.prof
	// A refusal counts only if the fresh challenge then succeeded: a user
	// with a wrong password says nothing about sharing. A stale answer to
	// a shared nonce counts too (nonces bound to a Call-ID look stale to
	// everyone else); successes reset the count, so a nonce that merely
	// expired now and then does not stop sharing.
	refused := (out.sharedRefused || out.sharedStale) && out.kind == okDone
	if (refused || out.sharedStale) && h.shared.Nonce == a.chal.Nonce {
		h.sharedFlags = 0
	}
	if refused && h.shareFails < 255 {
		h.shareFails++
	}
	if out.kind != okDone || !out.chalOK {
		return
	}
	if a.shared && !out.freshChal {
		h.shareFails = 0
	}
	if out.freshChal && (h.sharedFlags&chValid == 0 || h.shared.Nonce != out.chal.Nonce) {
		h.shared = out.chal
		h.shared.Realm = e.internStr(out.chal.Realm)
		h.sharedFlags = out.chalFlags
		h.sharedNC = max(out.nc, 1)
	}
}

func (e *Engine) bind(r *reg, now int64) {
	if r.flags&fBound == 0 {
		r.flags |= fBound
		r.prof.hop.bound++
	}
}

// refreshDelay schedules a refresh at 75–85% of the granted expiry, so
// that registrations granted together spread out and the refresh has time
// to be retried before the binding lapses.
func refreshDelay(granted uint32) int64 {
	g := int64(granted) * int64(time.Second)
	d := g*75/100 + jitter(time.Duration(g/10))
	return max(d, int64(500*time.Millisecond))
}

// backoff is exponential from BackoffMin, capped at BackoffMax, with
// "equal jitter": half fixed, half random.
func (e *Engine) backoff(failures uint8) time.Duration {
	d := e.cfg.BackoffMin
	for i := uint8(1); i < failures && d < e.cfg.BackoffMax; i++ {
		d *= 2
	}
	d = min(d, e.cfg.BackoffMax)
	return d/2 + time.Duration(jitter(d/2+1))
}

// housekeeping samples the REGISTER rate every second and sends NAT
// keep-alives.
func (e *Engine) housekeeping() {
	defer e.wg.Done()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-e.ctx.Done():
			return
		case <-t.C:
		}
		e.rateMu.Lock()
		e.rateIdx = (e.rateIdx + 1) % len(e.rateRing)
		e.rateRing[e.rateIdx] = e.sent.Load()
		e.rateTicks++
		e.rateMu.Unlock()
		if e.cfg.KeepAlive > 0 {
			e.keepAlive()
		}
	}
}
