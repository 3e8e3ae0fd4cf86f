package phoneapp_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pbx2teams/pbx2teams"
	"github.com/pbx2teams/pbx2teams/m365"
	"github.com/pbx2teams/pbx2teams/msim"
	"github.com/pbx2teams/pbx2teams/phoneapp"
)

// Tenants and users of the fixture. Contoso and Fabrikam are connected to
// customers; Northwind is not.
const (
	tenantContoso   = "11111111-0000-4000-8000-00000000000a"
	tenantFabrikam  = "22222222-0000-4000-8000-00000000000b"
	tenantNorthwind = "33333333-0000-4000-8000-00000000000c"
	oidAlice        = "a1a1a1a1-0000-4000-8000-000000000001" // Contoso, Phone App user
	oidBob          = "b2b2b2b2-0000-4000-8000-000000000002" // Contoso, standard user
	oidErin         = "e5e5e5e5-0000-4000-8000-000000000005" // Contoso, never synced
	oidGus          = "06060606-0000-4000-8000-000000000006" // Contoso, Phone App but disabled
	oidFrank        = "f6f6f6f6-0000-4000-8000-000000000006" // Fabrikam, Phone App user
	oidNed          = "d4d4d4d4-0000-4000-8000-000000000004" // Northwind
	audience        = "api://localhost/0b7d9e41-2c5a-4f83-9d16-7e8f9a0b1c2d"
	accountA        = "cust-a"
	accountB        = "cust-b"
)

// testUsers is a test double of the service's user lookup: each customer
// account is connected to one tenant, and a user is found by (tenant,
// object id) within that customer only, as the real adapter must.
type testUsers struct {
	tenantOf map[string]string // account → tenant
	users    []pbx2teams.User
}

func (d *testUsers) PhoneAppUser(ctx context.Context, tenantID, objectID string) (*pbx2teams.User, error) {
	for _, u := range d.users {
		if d.tenantOf[u.AccountID] == tenantID && u.ObjectID == objectID {
			c := u
			return &c, nil
		}
	}
	return nil, pbx2teams.ErrNotFound
}

// testRegistrations is a test double of the SIP engine's registration
// states.
type testRegistrations struct {
	mu sync.Mutex
	m  map[string]pbx2teams.RegistrationState
}

func (r *testRegistrations) RegistrationState(userID string) (pbx2teams.RegistrationState, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s, ok := r.m[userID]
	return s, ok
}

func (r *testRegistrations) set(userID string, s pbx2teams.RegistrationState) {
	r.mu.Lock()
	r.m[userID] = s
	r.mu.Unlock()
}

// testContacts is a test double of the contact search, filtering a fixed
// list with phoneapp.MatchContact.
type testContacts struct{ list []phoneapp.Contact }

func (c *testContacts) Contacts(ctx context.Context, u *pbx2teams.User, q string, limit int) ([]phoneapp.Contact, error) {
	var out []phoneapp.Contact
	for _, x := range c.list {
		if phoneapp.MatchContact(x, q) && len(out) < limit {
			out = append(out, x)
		}
	}
	return out, nil
}

// testDialler is an in-memory test double of pbx2teams.Dialler (the B2BUA
// in production). Dial creates a call ringing the user in Teams; Advance
// plays the rest of a callback-first set-up; while connected the packet
// counters grow. It records every action for assertions and can be told to
// fail the next call of a method.
type testDialler struct {
	mu       sync.Mutex
	calls    map[string]*pbx2teams.LiveCall
	watchers map[string]map[int]chan pbx2teams.LiveCall
	nextID   int
	nextW    int
	actions  []string
	fail     map[string]error
	ended    []pbx2teams.CallRecord
	// OnDial is told about every new call (the browser test rings the
	// simulated Teams user with it).
	OnDial func(u *pbx2teams.User, lc pbx2teams.LiveCall)
	// OnEnd is told when a call ends.
	OnEnd func(lc pbx2teams.LiveCall)
	stop  chan struct{}
}

func newTestDialler() *testDialler {
	d := &testDialler{calls: map[string]*pbx2teams.LiveCall{}, watchers: map[string]map[int]chan pbx2teams.LiveCall{},
		fail: map[string]error{}, stop: make(chan struct{})}
	go d.media()
	return d
}

func (d *testDialler) Close() { close(d.stop) }

// media grows the counters of connected calls, as the relay would.
func (d *testDialler) media() {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-d.stop:
			return
		case <-t.C:
		}
		d.mu.Lock()
		for _, c := range d.calls {
			if c.State == pbx2teams.CallConnected {
				c.PacketsToUser += 5
				c.PacketsFromUser += 5
				d.publishLocked(c)
			}
		}
		d.mu.Unlock()
	}
}

func (d *testDialler) failNext(method string, err error) {
	d.mu.Lock()
	d.fail[method] = err
	d.mu.Unlock()
}

func (d *testDialler) Actions() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.actions...)
}

func (d *testDialler) hasAction(a string) bool {
	for _, x := range d.Actions() {
		if x == a {
			return true
		}
	}
	return false
}

func (d *testDialler) Ended() []pbx2teams.CallRecord {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]pbx2teams.CallRecord(nil), d.ended...)
}

// begin records an action and returns the injected failure, if any.
func (d *testDialler) begin(method, action string) error {
	d.actions = append(d.actions, action)
	if err := d.fail[method]; err != nil {
		delete(d.fail, method)
		return err
	}
	return nil
}

func (d *testDialler) publishLocked(c *pbx2teams.LiveCall) {
	for _, ch := range d.watchers[c.UserID] {
		select {
		case ch <- *c:
		default: // a slow reader misses this state; the test double keeps going
		}
	}
}

func (d *testDialler) call(u *pbx2teams.User, id string) (*pbx2teams.LiveCall, error) {
	c := d.calls[id]
	if c == nil || c.UserID != u.ID {
		return nil, pbx2teams.Errorf(pbx2teams.ENotFound, "That call has already ended.")
	}
	return c, nil
}

func (d *testDialler) Dial(ctx context.Context, u *pbx2teams.User, number string) (*pbx2teams.LiveCall, error) {
	d.mu.Lock()
	if err := d.begin("Dial", "dial "+number); err != nil {
		d.mu.Unlock()
		return nil, err
	}
	d.nextID++
	c := &pbx2teams.LiveCall{ID: fmt.Sprintf("c%d", d.nextID), AccountID: u.AccountID, UserID: u.ID,
		Direction: pbx2teams.DirectionOutbound, Remote: number, State: pbx2teams.CallRingingYou, StartedAt: time.Now(),
		CanAttendedTransfer: true}
	d.calls[c.ID] = c
	d.publishLocked(c)
	cp := *c
	hook := d.OnDial
	d.mu.Unlock()
	if hook != nil {
		hook(u, cp)
	}
	return &cp, nil
}

// Advance plays the callback-first set-up once the user answered in
// Teams: dialling, ringing, connected.
func (d *testDialler) Advance(id string) {
	for _, st := range []string{pbx2teams.CallDialling, pbx2teams.CallRinging, pbx2teams.CallConnected} {
		d.mu.Lock()
		c := d.calls[id]
		if c == nil {
			d.mu.Unlock()
			return
		}
		c.State = st
		if st == pbx2teams.CallConnected {
			c.AnsweredAt = time.Now()
		}
		d.publishLocked(c)
		d.mu.Unlock()
		time.Sleep(50 * time.Millisecond)
	}
}

// End ends a call as the far end or Teams would.
func (d *testDialler) End(id, state, reason string) {
	d.mu.Lock()
	c := d.calls[id]
	if c == nil {
		d.mu.Unlock()
		return
	}
	c.State, c.Reason = state, reason
	d.publishLocked(c)
	delete(d.calls, id)
	rec := pbx2teams.CallRecord{ID: "rec-" + c.ID, AccountID: c.AccountID, UserID: c.UserID, Direction: c.Direction,
		Route: pbx2teams.RoutePhoneApp, To: c.Remote, StartedAt: c.StartedAt, AnsweredAt: c.AnsweredAt, EndedAt: time.Now(),
		Result: pbx2teams.ResultAnswered}
	if c.AnsweredAt.IsZero() {
		rec.Result = pbx2teams.ResultCancelled
	}
	d.ended = append(d.ended, rec)
	cp := *c
	hook := d.OnEnd
	d.mu.Unlock()
	if hook != nil {
		hook(cp)
	}
}

func (d *testDialler) Hangup(ctx context.Context, u *pbx2teams.User, id string) error {
	d.mu.Lock()
	err := d.begin("Hangup", "hangup "+id)
	if err == nil {
		_, err = d.call(u, id)
	}
	d.mu.Unlock()
	if err != nil {
		return err
	}
	d.End(id, pbx2teams.CallEnded, "You hung up.")
	return nil
}

func (d *testDialler) Hold(ctx context.Context, u *pbx2teams.User, id string, on bool) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.begin("Hold", fmt.Sprintf("hold %s %v", id, on)); err != nil {
		return err
	}
	c, err := d.call(u, id)
	if err != nil {
		return err
	}
	if c.State != pbx2teams.CallConnected && c.State != pbx2teams.CallHeld {
		return pbx2teams.Errorf(pbx2teams.EConflict, "Only a connected call can be put on hold.")
	}
	c.State = pbx2teams.CallConnected
	if on {
		c.State = pbx2teams.CallHeld
	}
	d.publishLocked(c)
	return nil
}

func (d *testDialler) Transfer(ctx context.Context, u *pbx2teams.User, id, target string) error {
	d.mu.Lock()
	err := d.begin("Transfer", "transfer "+id+" "+target)
	if err == nil {
		_, err = d.call(u, id)
	}
	d.mu.Unlock()
	if err != nil {
		return err
	}
	d.End(id, pbx2teams.CallTransferred, "Transferred to "+target+".")
	return nil
}

func (d *testDialler) AttendedTransfer(ctx context.Context, u *pbx2teams.User, id, other string) error {
	d.mu.Lock()
	err := d.begin("AttendedTransfer", "attended "+id+" "+other)
	if err == nil {
		_, err = d.call(u, id)
	}
	if err == nil {
		_, err = d.call(u, other)
	}
	d.mu.Unlock()
	if err != nil {
		return err
	}
	d.End(id, pbx2teams.CallTransferred, "Joined.")
	d.End(other, pbx2teams.CallTransferred, "Joined.")
	return nil
}

func (d *testDialler) DTMF(ctx context.Context, u *pbx2teams.User, id, digits string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.begin("DTMF", "dtmf "+id+" "+digits); err != nil {
		return err
	}
	_, err := d.call(u, id)
	return err
}

func (d *testDialler) Calls(u *pbx2teams.User) []pbx2teams.LiveCall {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []pbx2teams.LiveCall
	for _, c := range d.calls {
		if c.UserID == u.ID {
			out = append(out, *c)
		}
	}
	return out
}

func (d *testDialler) Watch(u *pbx2teams.User) (<-chan pbx2teams.LiveCall, func()) {
	d.mu.Lock()
	defer d.mu.Unlock()
	ch := make(chan pbx2teams.LiveCall, 256)
	if d.watchers[u.ID] == nil {
		d.watchers[u.ID] = map[int]chan pbx2teams.LiveCall{}
	}
	d.nextW++
	n := d.nextW
	d.watchers[u.ID][n] = ch
	return ch, func() {
		d.mu.Lock()
		delete(d.watchers[u.ID], n)
		d.mu.Unlock()
	}
}

// fixture is the Graph simulator (identity), the service's lookups as test
// doubles, and the Phone App handler on a loopback server.
type fixture struct {
	sim     *msim.Sim
	idp     *httptest.Server
	srv     *httptest.Server
	mux     *http.ServeMux
	dialler *testDialler
	regs    *testRegistrations
	cfg     phoneapp.Config
}

func userSpec(id, upn, name string) msim.UserSpec {
	return msim.UserSpec{ID: id, UserPrincipalName: upn, DisplayName: name}
}

func newFixture(t *testing.T, edit func(*phoneapp.Config)) *fixture {
	t.Helper()
	sim := msim.New(msim.Options{})
	for _, ts := range []msim.TenantSpec{
		{ID: tenantContoso, DisplayName: "Contoso", Domains: []msim.DomainSpec{{Name: "contoso.example"}}, Users: []msim.UserSpec{
			userSpec(oidAlice, "alice@contoso.example", "Alice Archer"), userSpec(oidBob, "bob@contoso.example", "Bob Baker"),
			userSpec(oidErin, "erin@contoso.example", "Erin Ellis"), userSpec(oidGus, "gus@contoso.example", "Gus Gray"),
			// Mallory's object id is Frank's, to show that a user is looked up within its own tenant only.
			userSpec(oidFrank, "mallory@contoso.example", "Mallory")}},
		{ID: tenantFabrikam, DisplayName: "Fabrikam", Domains: []msim.DomainSpec{{Name: "fabrikam.example"}}, Users: []msim.UserSpec{
			userSpec(oidFrank, "frank@fabrikam.example", "Frank Fisher")}},
		{ID: tenantNorthwind, DisplayName: "Northwind", Domains: []msim.DomainSpec{{Name: "northwind.example"}}, Users: []msim.UserSpec{
			userSpec(oidNed, "ned@northwind.example", "Ned North")}},
	} {
		if _, err := sim.AddTenant(ts); err != nil {
			t.Fatal(err)
		}
	}
	idp := httptest.NewServer(sim.Handler())
	t.Cleanup(idp.Close)

	users := &testUsers{tenantOf: map[string]string{accountA: tenantContoso, accountB: tenantFabrikam}, users: []pbx2teams.User{
		{ID: "u-alice", AccountID: accountA, ObjectID: oidAlice, UPN: "alice@contoso.example", DisplayName: "Alice Archer",
			Enabled: true, Type: pbx2teams.ServicePhoneApp, SIPUsername: "200", PhoneNumber: "+441632960200"},
		{ID: "u-bob", AccountID: accountA, ObjectID: oidBob, UPN: "bob@contoso.example", DisplayName: "Bob Baker",
			Enabled: true, Type: pbx2teams.ServiceStandard, SIPUsername: "201"},
		{ID: "u-gus", AccountID: accountA, ObjectID: oidGus, UPN: "gus@contoso.example", DisplayName: "Gus Gray",
			Enabled: false, Suspended: true, Type: pbx2teams.ServicePhoneApp, SIPUsername: "206"},
		{ID: "u-frank", AccountID: accountB, ObjectID: oidFrank, UPN: "frank@fabrikam.example", DisplayName: "Frank Fisher",
			Enabled: true, Type: pbx2teams.ServicePhoneApp, SIPUsername: "300"},
	}}
	regs := &testRegistrations{m: map[string]pbx2teams.RegistrationState{
		"u-alice": {UserID: "u-alice", State: pbx2teams.RegRegistered},
		"u-frank": {UserID: "u-frank", State: pbx2teams.RegFailed, StatusCode: 403, Reason: "Forbidden: wrong password"},
	}}
	d := newTestDialler()
	t.Cleanup(d.Close)
	f := &fixture{sim: sim, idp: idp, dialler: d, regs: regs}
	f.cfg = phoneapp.Config{
		Validator: &m365.SSOValidator{LoginURL: idp.URL, Audiences: []string{audience},
			Tenants: func(tid string) bool { return tid == tenantContoso || tid == tenantFabrikam }},
		Users:         users,
		Dialler:       d,
		Registrations: regs,
		Recent: func(ctx context.Context, accountID, userID string, limit int) ([]pbx2teams.CallRecord, error) {
			var out []pbx2teams.CallRecord
			ended := d.Ended()
			for i := len(ended) - 1; i >= 0 && len(out) < limit; i-- {
				if ended[i].AccountID == accountID && ended[i].UserID == userID {
					out = append(out, ended[i])
				}
			}
			return out, nil
		},
		Contacts: &testContacts{list: []phoneapp.Contact{
			{Name: "Ann Andrews", Number: "203", Label: "extension", Source: phoneapp.SourceDirectory},
			{Name: "Carlos Cruz", Number: "+44 7700 900123", Label: "mobile", Company: "Cruz Ltd", Source: phoneapp.SourceOutlook},
		}},
		FrameAncestors:   []string{"'self'"},
		Logger:           slog.New(slog.NewTextHandler(io.Discard, nil)),
		RegistrationPoll: 100 * time.Millisecond,
	}
	if edit != nil {
		edit(&f.cfg)
	}
	h, err := phoneapp.New(f.cfg)
	if err != nil {
		t.Fatal(err)
	}
	f.mux = http.NewServeMux()
	f.mux.Handle("/phone/", h)
	f.srv = httptest.NewServer(f.mux)
	t.Cleanup(f.srv.Close)
	if !strings.HasPrefix(f.srv.URL, "http://127.0.0.1:") {
		t.Fatalf("test server is not on loopback: %s", f.srv.URL)
	}
	return f
}

// token mints a Teams SSO token for upn in the tenant of its domain.
func (f *fixture) token(t *testing.T, upn string, edit func(*msim.UserTokenOptions)) string {
	t.Helper()
	o := msim.UserTokenOptions{Tenant: upn[strings.IndexByte(upn, '@')+1:], User: upn, Audience: audience}
	if edit != nil {
		edit(&o)
	}
	tok, err := f.sim.MintUserToken(o)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}
