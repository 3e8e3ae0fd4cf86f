package b2bua_test

import (
	"context"
	"crypto/rand"
	"log/slog"
	"math/big"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pbx2teams/pbx2teams"
	"github.com/pbx2teams/pbx2teams/media"
	simteams "github.com/pbx2teams/pbx2teams/msim/teams"
	"github.com/pbx2teams/pbx2teams/msim/teams/teamstest"
	"github.com/pbx2teams/pbx2teams/sip/b2bua"
	"github.com/pbx2teams/pbx2teams/sip/federation"
	"github.com/pbx2teams/pbx2teams/sip/sipx"
	"github.com/pbx2teams/pbx2teams/sip/teams"
)

func testLogger() *slog.Logger {
	level := slog.LevelWarn
	if os.Getenv("B2BUA_DEBUG") != "" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}

// directory is an in-memory b2bua.Directory.
type directory struct {
	mu    sync.Mutex
	users []*pbx2teams.User
	pbx   map[string]*pbx2teams.PBXSettings
}

func (d *directory) add(u *pbx2teams.User) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.users = append(d.users, u)
}

func (d *directory) UserByContact(_ context.Context, cu string) (*pbx2teams.User, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, u := range d.users {
		if u.ContactUser == cu {
			c := *u
			return &c, nil
		}
	}
	return nil, pbx2teams.ErrNotFound
}

func (d *directory) UserByPhoneNumber(_ context.Context, acct, n string) (*pbx2teams.User, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, u := range d.users {
		if u.AccountID == acct && u.PhoneNumber == n {
			c := *u
			return &c, nil
		}
	}
	return nil, pbx2teams.ErrNotFound
}

func (d *directory) PBXSettings(_ context.Context, acct string) (*pbx2teams.PBXSettings, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if p := d.pbx[acct]; p != nil {
		c := *p
		return &c, nil
	}
	return nil, pbx2teams.ErrNotFound
}

// registrations is a fixed b2bua.Registrations.
type registrations struct {
	mu   sync.Mutex
	live map[string][]netip.Addr
	src  b2bua.Registrations // when set, asked first (the registration engine)
}

func (r *registrations) PBXAddresses(id string) ([]netip.Addr, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.src != nil {
		if a, ok := r.src.PBXAddresses(id); ok {
			return a, ok
		}
	}
	a, ok := r.live[id]
	return a, ok
}

func (r *registrations) set(id string, addrs ...netip.Addr) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if addrs == nil {
		delete(r.live, id)
		return
	}
	r.live[id] = addrs
}

// customers maps labels under the test FQDN to accounts.
type customers struct {
	base   string
	labels map[string]string // label → account
}

func (c customers) CustomerByFQDN(host string) (string, bool) {
	l, ok := teams.LabelOf(host, c.base)
	if !ok {
		return "", false
	}
	a, ok := c.labels[l]
	return a, ok
}

func (c customers) FQDN(acct string) (string, bool) {
	for l, a := range c.labels {
		if a == acct {
			return teams.CustomerFQDN(l, c.base), true
		}
	}
	return "", false
}

// recorder collects call records.
type recorder struct {
	mu   sync.Mutex
	recs []*b2bua.Record
	trs  []*b2bua.Trace
	ch   chan *b2bua.Record
}

func (r *recorder) CallEnded(rec *b2bua.Record, tr *b2bua.Trace) {
	r.mu.Lock()
	r.recs = append(r.recs, rec)
	r.trs = append(r.trs, tr)
	r.mu.Unlock()
	select {
	case r.ch <- rec:
	default:
	}
}

// next waits for the next call record.
func (r *recorder) next(t testing.TB) *b2bua.Record {
	t.Helper()
	select {
	case rec := <-r.ch:
		return rec
	case <-time.After(15 * time.Second):
		t.Fatal("no call record")
		return nil
	}
}

func (r *recorder) trace(id string) *b2bua.Trace {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, rec := range r.recs {
		if rec.ID == id {
			return r.trs[i]
		}
	}
	return nil
}

var (
	portMu   sync.Mutex
	portNext int
)

// relayPorts hands each test its own port range for the relay, above
// the kernel's ephemeral range (32768-60999) and the benchmarks' relay
// ranges, so that other processes on the machine do not take them.
func relayPorts() (int, int) {
	const base, slots = 61000, 45
	portMu.Lock()
	defer portMu.Unlock()
	if portNext == 0 {
		n, _ := rand.Int(rand.Reader, big.NewInt(slots))
		portNext = int(n.Int64()) + 1
	}
	slot := portNext % slots
	portNext++
	return base + slot*100, base + slot*100 + 99
}

const (
	acct  = "acct-contoso"
	label = "contoso"
)

// env is a B2BUA between a PBX stack on 127.0.0.1 and the Teams
// simulator, with one customer (contoso) and its tenant.
type env struct {
	*teamstest.Env
	PBX      *sipx.Stack
	Relay    *media.Relay
	B2BUA    *b2bua.B2BUA
	Dir      *directory
	Regs     *registrations
	Rec      *recorder
	Tenant   *simteams.Tenant
	Customer string // the customer's SBC FQDN

	// Phone App: the link, the simulator's edge, and what
	// OnPhoneAppRejected was told.
	Link     *federation.Link
	Edge     *simteams.Edge
	rejMu    sync.Mutex
	rejected []rejection

	pwMu      sync.Mutex
	passwords map[string]string // SIP username → password (default "pw-" + username)
}

func (e *env) cfgPassword(user, pw string) {
	e.pwMu.Lock()
	e.passwords[user] = pw
	e.pwMu.Unlock()
}

func (e *env) password(u *pbx2teams.User) (string, error) {
	e.pwMu.Lock()
	defer e.pwMu.Unlock()
	if pw, ok := e.passwords[u.SIPUsername]; ok {
		return pw, nil
	}
	return "pw-" + u.SIPUsername, nil
}

func freeUDPPort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

type envOptions struct {
	// phoneApp starts the simulator's federation edge and the Phone App
	// leg toward it.
	phoneApp bool
	teams    teamstest.Options
	b2bua    func(*b2bua.Config)
	relay    func(*media.Config)
	pbxTCP   bool
}

func newEnv(t *testing.T, o envOptions) *env {
	t.Helper()
	o.teams.Labels = append(o.teams.Labels, label)
	te := teamstest.Start(t, o.teams)
	lst := []sipx.Listen{{Transport: "udp", Addr: "127.0.0.1:0"}}
	if o.pbxTCP {
		lst = append(lst, sipx.Listen{Transport: "tcp", Addr: "127.0.0.1:0"})
	}
	st, err := sipx.NewStack(sipx.StackConfig{Listen: lst, AdvertisedHost: "127.0.0.1", Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	lo, hi := relayPorts()
	rcfg := media.Config{BindIP: netip.MustParseAddr("127.0.0.1"), PortMin: lo, PortMax: hi, Workers: 1,
		MediaTimeout: 30 * time.Second, Logger: testLogger()}
	if o.relay != nil {
		o.relay(&rcfg)
	}
	relay, err := media.NewRelay(rcfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { relay.Close() })
	e := &env{Env: te, PBX: st, Relay: relay, Dir: &directory{pbx: map[string]*pbx2teams.PBXSettings{}},
		Regs: &registrations{live: map[string][]netip.Addr{}}, Rec: &recorder{ch: make(chan *b2bua.Record, 64)},
		passwords: map[string]string{}}
	if o.phoneApp {
		e.startPhoneApp(t, te)
	}
	cfg := b2bua.Config{
		PhoneApp: e.Link, OnPhoneAppRejected: e.onRejected,
		PBX: st, Trunk: te.Trunk, Relay: relay, Directory: e.Dir, Registrations: e.Regs,
		Customers: customers{base: te.FQDN, labels: map[string]string{label: acct}},
		Passwords: e.password,
		Recorder:  e.Rec, RingTimeout: 20 * time.Second, Logger: testLogger(),
	}
	if o.b2bua != nil {
		o.b2bua(&cfg)
	}
	b, err := b2bua.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	e.B2BUA = b
	te.Trunk.Start()
	st.Start()
	if e.Link != nil {
		e.Link.Start()
	}
	te.WaitActive(t)
	e.Customer = te.Trunk.CustomerFQDN(label)
	e.Tenant = te.Sim.AddTenant("tenant-contoso", e.Customer, userDomain)
	e.Tenant.SetVoiceRoute(e.Customer)
	return e
}

// addUser configures a standard user with a live registration from the
// given PBX address.
func (e *env) addUser(ext, number string, pbxAddr netip.Addr) *pbx2teams.User {
	u := &pbx2teams.User{ID: "user-" + ext, AccountID: acct, UPN: ext + "@" + userDomain, DisplayName: "User " + ext,
		Enabled: true, Kind: pbx2teams.KindPerson, Type: pbx2teams.ServiceStandard, SIPUsername: ext,
		PhoneNumber: number, ContactUser: "c" + strings.Repeat("7", 4) + ext + "x9q"}
	e.Dir.add(u)
	if pbxAddr.IsValid() {
		e.Regs.set(u.ID, pbxAddr)
	}
	return u
}

// The Phone App domain of the tests and the customer's user domain.
const (
	phoneAppDomain = "phoneapp.pbx2teams.test"
	userDomain     = "contoso.test"
)

type rejection struct {
	userID  string
	status  int
	warning string
}

func (e *env) onRejected(u *pbx2teams.User, status int, warning string) {
	e.rejMu.Lock()
	e.rejected = append(e.rejected, rejection{u.ID, status, warning})
	e.rejMu.Unlock()
}

func (e *env) rejections() []rejection {
	e.rejMu.Lock()
	defer e.rejMu.Unlock()
	return append([]rejection(nil), e.rejected...)
}

// startPhoneApp starts the simulator's federation edge and a Phone App
// link to it with a certificate for the Phone App domain.
func (e *env) startPhoneApp(t *testing.T, te *teamstest.Env) {
	t.Helper()
	edge, err := te.Sim.StartEdge(simteams.EdgeConfig{PKI: te.PKI})
	if err != nil {
		t.Fatal(err)
	}
	// No DNS name for the edge: in-dialog requests go to the edge we
	// connected to, whatever its Contact says.
	cert, err := te.PKI.Issue(phoneAppDomain)
	if err != nil {
		t.Fatal(err)
	}
	link, err := federation.New(federation.Config{Domain: phoneAppDomain, Listen: "127.0.0.1:0", Certificate: &cert,
		Edge: net.JoinHostPort(edge.IP, strconv.Itoa(edge.Port)), EdgeName: edge.Name, EdgeRoots: te.PKI.Pool(),
		Resolver: te.DNS.Resolver(), RequestTimeout: 5 * time.Second, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { link.Close() })
	e.Link, e.Edge = link, edge
}

// addPhoneAppUser configures a Phone App user (no Teams number) with a
// live registration from the given PBX address, and the Teams user the
// federation edge rings for its UPN.
func (e *env) addPhoneAppUser(ext string, pbxAddr netip.Addr, opts simteams.UserOptions) (*pbx2teams.User, *simteams.User) {
	u := e.addUser(ext, "", pbxAddr)
	e.Dir.mu.Lock()
	u.Type = pbx2teams.ServicePhoneApp
	e.Dir.mu.Unlock()
	return u, e.Tenant.AddUserUPN(u.UPN, "", opts)
}

// liveWatch collects a user's live call states.
type liveWatch struct {
	ch     <-chan pbx2teams.LiveCall
	mu     sync.Mutex
	states []pbx2teams.LiveCall
}

func watchUser(t *testing.T, b *b2bua.B2BUA, u *pbx2teams.User) *liveWatch {
	ch, cancel := b.Watch(u)
	t.Cleanup(cancel)
	return &liveWatch{ch: ch}
}

// until waits for a state of the call (any call when id is "") and
// returns it.
func (w *liveWatch) until(t *testing.T, id, state string) pbx2teams.LiveCall {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case lc := <-w.ch:
			w.mu.Lock()
			w.states = append(w.states, lc)
			w.mu.Unlock()
			if (id == "" || lc.ID == id) && lc.State == state {
				return lc
			}
			if lc.ID == id && (lc.State == pbx2teams.CallEnded || lc.State == pbx2teams.CallTransferred) {
				t.Fatalf("call %s is over (%s: %s) while waiting for %q", id, lc.State, lc.Reason, state)
			}
		case <-timeout:
			w.mu.Lock()
			defer w.mu.Unlock()
			t.Fatalf("no live state %q for call %q; seen %+v", state, id, w.states)
			return pbx2teams.LiveCall{}
		}
	}
}

// reached returns a state of the call already seen, or waits for it.
func (w *liveWatch) reached(t *testing.T, id, state string) pbx2teams.LiveCall {
	t.Helper()
	w.mu.Lock()
	for _, lc := range w.states {
		if lc.ID == id && lc.State == state {
			w.mu.Unlock()
			return lc
		}
	}
	w.mu.Unlock()
	return w.until(t, id, state)
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// waitUntil polls cond until it holds or the time is up.
func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func teamsLabels(labels ...string) teamstest.Options { return teamstest.Options{Labels: labels} }

func teamstestSessionExpires(sec int) teamstest.Options {
	return teamstest.Options{Sim: func(c *simteams.Config) { c.SessionExpires = sec }}
}
