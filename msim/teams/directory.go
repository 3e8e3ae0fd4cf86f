package teams

import (
	"strings"
	"sync"
	"time"

	"github.com/pbx2teams/pbx2teams/msim"
)

// Directory is where the simulator finds tenants and users it was not
// given with AddTenant and AddUser: in the sandbox, the Graph simulator's
// tenants (GraphDirectory). Methods must be safe for concurrent use; the
// simulator calls them for every call it routes, so changes (a user's
// coexistence mode, a tenant's external access) apply to the next call.
type Directory interface {
	// TenantByDomain returns the id of the tenant that owns a verified
	// domain (or whose id is domain).
	TenantByDomain(domain string) (tenantID string, ok bool)
	// UserByUPN finds a user by userPrincipalName (a federated call's
	// Request-URI).
	UserByUPN(upn string) (DirectoryUser, bool)
	// UserByNumber finds a tenant's user by E.164 number (a Direct Routing
	// call's Request-URI).
	UserByNumber(tenantID, number string) (DirectoryUser, bool)
	// FederationAllows applies the tenant's external access settings to a
	// federated caller's domain.
	FederationAllows(tenantID, domain string) (bool, error)
}

// DirectoryUser is a user as a Directory reports it.
type DirectoryUser struct {
	TenantID    string
	UPN         string
	Number      string // E.164, "" when the user has none
	DisplayName string
	// Coexistence is the TeamsUpgradePolicy mode ("TeamsOnly", "Islands",
	// "SfBOnly", ...); "" counts as TeamsOnly.
	Coexistence string
	// Disabled accounts cannot sign in to Teams, so nothing rings.
	Disabled bool
}

// SandboxUserOptions is how users found in a Directory behave unless
// Config.DirectoryUserOptions says otherwise: one device that answers 2 s
// after ringing and echoes the caller's audio, so a person trying the
// sandbox hears the call connect; the call ends when the caller hangs up.
// A page driving a user by hand sets AnswerAfter to -1 with SetOptions.
func SandboxUserOptions() UserOptions {
	return UserOptions{Endpoints: 1, AnswerAfter: 2 * time.Second, Media: Echo}
}

// GraphDir is a Directory over the Graph simulator: its tenants (by id or
// verified domain), users (UPN, business phone as the Direct Routing
// number, coexistence mode, account enabled) and external access
// settings, read live on every lookup.
type GraphDir struct {
	g *msim.Sim

	mu      sync.Mutex
	domains map[string]string // extra domain → tenant id
}

// GraphDirectory returns the Directory of a Graph simulator, to put in
// Config.Directory.
func GraphDirectory(g *msim.Sim) *GraphDir {
	return &GraphDir{g: g, domains: map[string]string{}}
}

// AddDomain maps a domain the Graph simulator does not list (e.g. the
// customer's SBC subdomain, such as contoso.sbc.example) to a tenant, so
// Direct Routing calls from that FQDN find the tenant.
func (d *GraphDir) AddDomain(tenantKey, domain string) bool {
	id, ok := d.g.TenantID(tenantKey)
	if !ok {
		return false
	}
	d.mu.Lock()
	d.domains[strings.ToLower(strings.TrimSuffix(domain, "."))] = id
	d.mu.Unlock()
	return true
}

// TenantByDomain implements Directory.
func (d *GraphDir) TenantByDomain(domain string) (string, bool) {
	domain = strings.ToLower(strings.TrimSuffix(domain, "."))
	d.mu.Lock()
	id, ok := d.domains[domain]
	d.mu.Unlock()
	if ok {
		return id, true
	}
	return d.g.TenantID(domain)
}

// UserByUPN implements Directory.
func (d *GraphDir) UserByUPN(upn string) (DirectoryUser, bool) {
	u, ok := d.g.TeamsUserByUPN(upn)
	return fromGraph(u), ok
}

// UserByNumber implements Directory.
func (d *GraphDir) UserByNumber(tenantID, number string) (DirectoryUser, bool) {
	u, ok := d.g.TeamsUserByNumber(tenantID, number)
	return fromGraph(u), ok
}

// FederationAllows implements Directory.
func (d *GraphDir) FederationAllows(tenantID, domain string) (bool, error) {
	return d.g.FederationAllows(tenantID, domain)
}

func fromGraph(u msim.TeamsUser) DirectoryUser {
	return DirectoryUser{TenantID: u.TenantID, UPN: u.UserPrincipalName, Number: u.PhoneNumber,
		DisplayName: u.DisplayName, Coexistence: u.CoexistenceMode, Disabled: !u.AccountEnabled}
}

// directoryTenant returns the simulated tenant mirroring a directory
// tenant, made on first use.
func (s *Sim) directoryTenant(id string) *Tenant {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t, ok := s.dirTenants[id]; ok {
		return t
	}
	t := newTenant(s, id)
	t.fromDirectory = true
	s.dirTenants[id] = t
	return t
}

// directoryUser returns the simulated user of a directory user, made on
// first use (with Config.DirectoryUserOptions) and kept, so its calls and
// any options set on it persist; its coexistence mode and account state
// are refreshed from du.
func (s *Sim) directoryUser(du DirectoryUser) *User {
	t := s.directoryTenant(du.TenantID)
	key := strings.ToLower(du.UPN)
	t.mu.Lock()
	u := t.byUPN[key]
	if u == nil {
		opts := *s.cfg.DirectoryUserOptions
		if opts.Name == "" {
			opts.Name = du.DisplayName
		}
		u = newUser(t, du.Number, du.UPN, opts)
		t.byUPN[key] = u
		if du.Number != "" {
			t.users[du.Number] = u
		}
	}
	t.mu.Unlock()
	u.mu.Lock()
	u.coex = du.Coexistence
	u.disabled = du.Disabled
	u.mu.Unlock()
	return u
}

// UserByUPN returns the simulated user with a UPN: one added with
// AddUserUPN, else the Directory's (nil if neither knows it). Use it to
// drive a user by hand: Calls, then Answer, Decline, Hangup, Hold, ...
func (s *Sim) UserByUPN(upn string) *User {
	key := strings.ToLower(upn)
	s.mu.Lock()
	tenants := append([]*Tenant(nil), s.tenants...)
	s.mu.Unlock()
	for _, t := range tenants {
		t.mu.Lock()
		u := t.byUPN[key]
		t.mu.Unlock()
		if u != nil {
			return u
		}
	}
	if s.cfg.Directory == nil {
		return nil
	}
	du, ok := s.cfg.Directory.UserByUPN(upn)
	if !ok {
		return nil
	}
	return s.directoryUser(du)
}

// CallsOf lists the calls of the user with a UPN that are ringing or
// established (oldest first); none if the user is unknown.
func (s *Sim) CallsOf(upn string) []*Call {
	u := s.UserByUPN(upn)
	if u == nil {
		return nil
	}
	return u.Calls()
}
