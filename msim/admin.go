package msim

import (
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
)

func timeUnix(sec int64) time.Time { return time.Unix(sec, 0) }

func (s *Sim) mustTenant(key string) (*tenant, error) {
	t := s.tenant(key)
	if t == nil {
		return nil, badSpec("no tenant %q", key)
	}
	return t, nil
}

// TenantIDs lists the ids of all tenants in creation order.
func (s *Sim) TenantIDs() []string {
	var out []string
	for _, t := range s.allTenants() {
		out = append(out, t.idStr)
	}
	return out
}

// AddUser creates a user in a tenant and returns its object id.
func (s *Sim) AddUser(tenantKey string, u UserSpec) (string, error) {
	t, err := s.mustTenant(tenantKey)
	if err != nil {
		return "", err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	i, err := t.addUser(u, s.now())
	if err != nil {
		return "", err
	}
	return t.users[i].id.String(), nil
}

// UpdateUser changes a user (by id or UPN).
func (s *Sim) UpdateUser(tenantKey, userKey string, p UserPatch) error {
	return s.changeUser(tenantKey, userKey, func(t *tenant, i int32) error { return t.updateUser(i, p, s.now()) })
}

// DeleteUser deletes a user: soft (restorable; delta reason "changed") or
// hard (delta reason "deleted").
func (s *Sim) DeleteUser(tenantKey, userKey string, hard bool) error {
	return s.changeUser(tenantKey, userKey, func(t *tenant, i int32) error { t.deleteUser(i, hard); return nil })
}

// changeUser runs fn on a user (by id or UPN) under its tenant's write lock.
func (s *Sim) changeUser(tenantKey, userKey string, fn func(t *tenant, i int32) error) error {
	t, err := s.mustTenant(tenantKey)
	if err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	i, ok := t.findUser(userKey)
	if !ok {
		return badSpec("no user %q", userKey)
	}
	return fn(t, i)
}

// AddGroup creates a group (members resolved as in GroupSpec) and returns its id.
func (s *Sim) AddGroup(tenantKey string, g GroupSpec) (string, error) {
	t, err := s.mustTenant(tenantKey)
	if err != nil {
		return "", err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	// Resolve members before creating, so a bad member changes nothing.
	var refs []ref
	for _, k := range g.Members {
		r, err := t.resolveMember(k)
		if err != nil {
			return "", err
		}
		refs = append(refs, r)
	}
	gi, err := t.addGroup(g, s.now())
	if err != nil {
		return "", err
	}
	t.groups[gi].members = refs
	t.memberEpoch++
	return t.groups[gi].id.String(), nil
}

// ChangeGroupMembers adds and removes members of a group (by id or display
// name); member keys are as in GroupSpec.Members.
func (s *Sim) ChangeGroupMembers(tenantKey, groupKey string, add, remove []string) error {
	t, err := s.mustTenant(tenantKey)
	if err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	gi, ok := t.findGroup(groupKey)
	if !ok {
		return badSpec("no group %q", groupKey)
	}
	return t.changeMembers(gi, add, remove)
}

// GroupID returns the id of the group with that display name.
func (s *Sim) GroupID(tenantKey, displayName string) (string, error) {
	t, err := s.mustTenant(tenantKey)
	if err != nil {
		return "", err
	}
	t.mu.RLock()
	defer t.mu.RUnlock()
	gi, ok := t.findGroup(displayName)
	if !ok {
		return "", badSpec("no group %q", displayName)
	}
	return t.groups[gi].id.String(), nil
}

// SetCoexistence sets a user's Teams upgrade (coexistence) mode: TeamsOnly,
// Islands, SfBOnly, SfBWithTeamsCollab or SfBWithTeamsCollabAndMeetings.
func (s *Sim) SetCoexistence(tenantKey, userKey, mode string) error {
	return s.UpdateUser(tenantKey, userKey, UserPatch{CoexistenceMode: &mode})
}

// Coexistence returns a user's coexistence mode.
func (s *Sim) Coexistence(tenantKey, userKey string) (string, error) {
	st, err := s.UserState(tenantKey, userKey)
	return st.CoexistenceMode, err
}

// Federation returns a tenant's external access settings.
func (s *Sim) Federation(tenantKey string) (Federation, error) {
	t, err := s.mustTenant(tenantKey)
	if err != nil {
		return Federation{}, err
	}
	t.mu.RLock()
	defer t.mu.RUnlock()
	f := t.federation
	f.AllowedDomains = sortedStrings(f.AllowedDomains)
	f.BlockedDomains = sortedStrings(f.BlockedDomains)
	return f, nil
}

// SetFederation replaces a tenant's external access settings.
func (s *Sim) SetFederation(tenantKey string, f Federation) error {
	t, err := s.mustTenant(tenantKey)
	if err != nil {
		return err
	}
	t.mu.Lock()
	t.federation = f
	t.mu.Unlock()
	return nil
}

// FederationAllows reports whether the tenant's users may talk to domain
// over external access (what the federation edge enforces).
func (s *Sim) FederationAllows(tenantKey, domainName string) (bool, error) {
	f, err := s.Federation(tenantKey)
	if err != nil {
		return false, err
	}
	return f.Allows(domainName), nil
}

// ResetDelta expires every delta token of the tenant: the next delta call
// with an old token answers 410 Gone (syncStateNotFound).
func (s *Sim) ResetDelta(tenantKey string) error {
	t, err := s.mustTenant(tenantKey)
	if err != nil {
		return err
	}
	t.mu.Lock()
	t.epoch++
	t.mu.Unlock()
	return nil
}

// InstalledApp is one Teams app installed for a user.
type InstalledApp struct {
	InstallationID string `json:"id"`
	AppID          string `json:"teamsAppId"`
	ExternalID     string `json:"externalId"`
	DisplayName    string `json:"displayName"`
}

// UserState is everything the simulator knows about a user, including the
// Teams facts Graph does not show.
type UserState struct {
	ID                string         `json:"id"`
	UserPrincipalName string         `json:"userPrincipalName"`
	DisplayName       string         `json:"displayName"`
	AccountEnabled    bool           `json:"accountEnabled"`
	UserType          string         `json:"userType"`
	Licenses          []string       `json:"licenses"`
	DisabledPlans     []string       `json:"disabledPlans"`
	LicenseStatus     string         `json:"licenseStatus"`
	CoexistenceMode   string         `json:"coexistenceMode"`
	Admin             bool           `json:"admin"`
	InstalledApps     []InstalledApp `json:"installedApps"`
}

// UserState returns a user's state (by id or UPN).
func (s *Sim) UserState(tenantKey, userKey string) (UserState, error) {
	t, err := s.mustTenant(tenantKey)
	if err != nil {
		return UserState{}, err
	}
	t.mu.RLock()
	defer t.mu.RUnlock()
	i, ok := t.findUser(userKey)
	if !ok {
		return UserState{}, badSpec("no user %q", userKey)
	}
	u := &t.users[i]
	st := UserState{ID: u.id.String(), UserPrincipalName: u.upn, DisplayName: u.displayName, AccountEnabled: u.enabled(),
		UserType: "Member", Licenses: skuNames(u.skus), LicenseStatus: planStatuses[u.status], CoexistenceMode: coexModes[u.coex],
		Admin: u.flags&uAdmin != 0, InstalledApps: []InstalledApp{}, DisabledPlans: []string{}}
	if u.flags&uGuest != 0 {
		st.UserType = "Guest"
	}
	for pi, p := range planTable {
		if u.disabled&(1<<uint(pi)) != 0 {
			st.DisabledPlans = append(st.DisabledPlans, p.Name)
		}
	}
	for _, in := range t.installs[i] {
		st.InstalledApps = append(st.InstalledApps, InstalledApp{in.id, in.app.id.String(), in.app.externalID, in.app.displayName})
	}
	return st, nil
}

// ChangeSummary counts the changes RandomChanges made.
type ChangeSummary struct {
	Updated         int `json:"updated"`
	LicenceChanges  int `json:"licenceChanges"`
	Disabled        int `json:"disabled"`
	Enabled         int `json:"enabled"`
	Added           int `json:"added"`
	Deleted         int `json:"deleted"`
	DistinctChanged int `json:"distinctChanged"` // distinct users a delta will return
}

// RandomChanges makes n changes to distinct users of a tenant (renames,
// licence changes, disables, additions, deletions) for delta tests and
// benchmarks; deterministic for a seed.
func (s *Sim) RandomChanges(tenantKey string, n int, seed int64) (ChangeSummary, error) {
	var sum ChangeSummary
	t, err := s.mustTenant(tenantKey)
	if err != nil {
		return sum, err
	}
	r := rand.New(rand.NewPCG(uint64(seed), 7))
	t.mu.Lock()
	defer t.mu.Unlock()
	now := s.now()
	touched := map[int32]bool{}
	live := len(t.users)
	if live == 0 {
		return sum, badSpec("tenant has no users")
	}
	dom := t.defaultDomain()
	for k := 0; k < n; k++ {
		x := r.IntN(100)
		if x < 7 {
			i, err := t.addUser(UserSpec{UserPrincipalName: "new" + strconv.Itoa(len(t.users)) + "." + strconv.FormatInt(seed, 10) + "@" + dom,
				DisplayName: "New Starter " + strconv.Itoa(len(t.users)), Licenses: []string{"SPE_E3"}}, now)
			if err == nil {
				touched[i] = true
				sum.Added++
			}
			continue
		}
		var i int32 = -1
		for tries := 0; tries < 50; tries++ {
			c := int32(r.IntN(live))
			if !touched[c] && !t.users[c].deleted() {
				i = c
				break
			}
		}
		if i < 0 {
			continue
		}
		touched[i] = true
		u := &t.users[i]
		switch {
		case x < 12:
			t.deleteUser(i, r.IntN(2) == 0)
			sum.Deleted++
		case x < 20:
			v := !u.enabled()
			_ = t.updateUser(i, UserPatch{AccountEnabled: &v}, now)
			if v {
				sum.Enabled++
			} else {
				sum.Disabled++
			}
		case x < 30:
			p := UserPatch{AddLicenses: []string{"MCOEV"}}
			if b, _ := skuBit("MCOEV"); u.skus&b != 0 {
				p = UserPatch{RemoveLicenses: []string{"MCOEV"}}
			}
			_ = t.updateUser(i, p, now)
			sum.LicenceChanges++
		default:
			name := u.displayName + " (" + strconv.Itoa(k) + ")"
			title := jobTitles[r.IntN(len(jobTitles))]
			_ = t.updateUser(i, UserPatch{DisplayName: &name, JobTitle: &title}, now)
			sum.Updated++
		}
	}
	sum.DistinctChanged = len(touched)
	return sum, nil
}

// ---- admin HTTP API ----

func adminErr(w http.ResponseWriter, err error) {
	status := 500
	if errors.Is(err, errBadSpec) {
		status = 400
		if strings.Contains(err.Error(), "no tenant") || strings.Contains(err.Error(), "no user") || strings.Contains(err.Error(), "no group") {
			status = 404
		}
	}
	writeJSON(w, status, map[string]string{"error": errText(err)})
}

func decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(io.LimitReader(r.Body, 64<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeJSON(w, 400, map[string]string{"error": "bad JSON body: " + err.Error()})
		return false
	}
	return true
}

type tenantSummary struct {
	ID          string            `json:"id"`
	DisplayName string            `json:"displayName"`
	Domains     []string          `json:"domains"`
	Users       int               `json:"users"`
	Groups      int               `json:"groups"`
	Federation  Federation        `json:"federation"`
	Consents    map[string]string `json:"consents"`
}

func (s *Sim) summary(t *tenant) tenantSummary {
	t.mu.RLock()
	defer t.mu.RUnlock()
	ts := tenantSummary{ID: t.idStr, DisplayName: t.name, Groups: len(t.groups), Federation: t.federation, Consents: map[string]string{}}
	for _, d := range t.domains {
		ts.Domains = append(ts.Domains, d.name)
	}
	for i := range t.users {
		if !t.users[i].deleted() {
			ts.Users++
		}
	}
	for k, g := range t.grants {
		if !strings.HasPrefix(k, "roles:") {
			ts.Consents[k] = g.state
		}
	}
	return ts
}

// serveAdmin is the simulator's own JSON API (documented in doc.go).
func (s *Sim) serveAdmin(w http.ResponseWriter, r *http.Request, rest string) {
	segs := strings.Split(strings.Trim(rest, "/"), "/")
	m := r.Method
	switch {
	case segs[0] == "stats" && m == http.MethodGet:
		writeJSON(w, 200, s.Stats())
	case segs[0] == "stats" && m == http.MethodDelete:
		s.ResetStats()
		w.WriteHeader(204)
	case segs[0] == "faults" && m == http.MethodGet:
		writeJSON(w, 200, s.Faults())
	case segs[0] == "faults" && m == http.MethodPost:
		var f Fault
		if decodeBody(w, r, &f) {
			s.InjectFault(f)
			w.WriteHeader(204)
		}
	case segs[0] == "faults" && m == http.MethodDelete:
		s.ClearFaults()
		w.WriteHeader(204)
	case segs[0] == "apps" && m == http.MethodGet:
		s.mu.RLock()
		var out []App
		for _, a := range s.apps {
			cp := *a
			cp.ClientSecret = ""
			out = append(out, cp)
		}
		s.mu.RUnlock()
		writeJSON(w, 200, out)
	case segs[0] == "apps" && m == http.MethodPost:
		var a App
		if decodeBody(w, r, &a) {
			if err := s.RegisterApp(a); err != nil {
				adminErr(w, err)
				return
			}
			w.WriteHeader(204)
		}
	case segs[0] == "tokens" && len(segs) == 2 && segs[1] == "user" && m == http.MethodPost:
		var o UserTokenOptions
		if decodeBody(w, r, &o) {
			tok, err := s.MintUserToken(o)
			if err != nil {
				adminErr(w, err)
				return
			}
			writeJSON(w, 200, map[string]string{"token": tok})
		}
	case segs[0] == "tenants":
		s.adminTenants(w, r, segs[1:])
	default:
		writeJSON(w, 404, map[string]string{"error": "unknown admin endpoint"})
	}
}

func (s *Sim) adminTenants(w http.ResponseWriter, r *http.Request, segs []string) {
	m := r.Method
	if len(segs) == 0 || segs[0] == "" {
		switch m {
		case http.MethodGet:
			out := []tenantSummary{}
			for _, t := range s.allTenants() {
				out = append(out, s.summary(t))
			}
			writeJSON(w, 200, out)
		case http.MethodPost:
			var ts TenantSpec
			if !decodeBody(w, r, &ts) {
				return
			}
			id, err := s.AddTenant(ts)
			if err != nil {
				adminErr(w, err)
				return
			}
			writeJSON(w, 201, map[string]string{"id": id})
		default:
			w.WriteHeader(405)
		}
		return
	}
	t := s.tenant(segs[0])
	if t == nil {
		writeJSON(w, 404, map[string]string{"error": "no tenant " + segs[0]})
		return
	}
	tid := t.idStr
	sub := segs[1:]
	ok204 := func(err error) {
		if err != nil {
			adminErr(w, err)
			return
		}
		w.WriteHeader(204)
	}
	switch {
	case len(sub) == 0 && m == http.MethodGet:
		writeJSON(w, 200, s.summary(t))
	case len(sub) == 1 && sub[0] == "users" && m == http.MethodPost:
		var u UserSpec
		if decodeBody(w, r, &u) {
			id, err := s.AddUser(tid, u)
			if err != nil {
				adminErr(w, err)
				return
			}
			writeJSON(w, 201, map[string]string{"id": id})
		}
	case len(sub) == 2 && sub[0] == "users":
		switch m {
		case http.MethodGet:
			st, err := s.UserState(tid, sub[1])
			if err != nil {
				adminErr(w, err)
				return
			}
			writeJSON(w, 200, st)
		case http.MethodPatch:
			var p UserPatch
			if decodeBody(w, r, &p) {
				ok204(s.UpdateUser(tid, sub[1], p))
			}
		case http.MethodDelete:
			ok204(s.DeleteUser(tid, sub[1], r.URL.Query().Get("hard") == "true"))
		default:
			w.WriteHeader(405)
		}
	case len(sub) == 1 && sub[0] == "groups" && m == http.MethodPost:
		var g GroupSpec
		if decodeBody(w, r, &g) {
			id, err := s.AddGroup(tid, g)
			if err != nil {
				adminErr(w, err)
				return
			}
			writeJSON(w, 201, map[string]string{"id": id})
		}
	case len(sub) == 3 && sub[0] == "groups" && sub[2] == "members" && m == http.MethodPost:
		var body struct {
			Add    []string `json:"add"`
			Remove []string `json:"remove"`
		}
		if decodeBody(w, r, &body) {
			ok204(s.ChangeGroupMembers(tid, sub[1], body.Add, body.Remove))
		}
	case len(sub) == 1 && sub[0] == "federation" && m == http.MethodGet:
		f, _ := s.Federation(tid)
		writeJSON(w, 200, f)
	case len(sub) == 1 && sub[0] == "federation" && m == http.MethodPut:
		var f Federation
		if decodeBody(w, r, &f) {
			ok204(s.SetFederation(tid, f))
		}
	case len(sub) == 2 && sub[0] == "consent" && m == http.MethodGet:
		writeJSON(w, 200, map[string]string{"state": s.ConsentState(tid, sub[1])})
	case len(sub) == 2 && sub[0] == "consent" && m == http.MethodPut:
		var body struct {
			State string `json:"state"`
		}
		if !decodeBody(w, r, &body) {
			return
		}
		switch body.State {
		case "granted":
			ok204(s.GrantConsent(tid, sub[1]))
		case "revoked":
			ok204(s.RevokeConsent(tid, sub[1]))
		case "none":
			ok204(s.RemoveServicePrincipal(tid, sub[1]))
		default:
			writeJSON(w, 400, map[string]string{"error": `state must be "granted", "revoked" or "none"`})
		}
	case len(sub) == 1 && sub[0] == "changes" && m == http.MethodPost:
		var body struct {
			Count int   `json:"count"`
			Seed  int64 `json:"seed"`
		}
		if decodeBody(w, r, &body) {
			sum, err := s.RandomChanges(tid, body.Count, body.Seed)
			if err != nil {
				adminErr(w, err)
				return
			}
			writeJSON(w, 200, sum)
		}
	case len(sub) == 2 && sub[0] == "delta" && sub[1] == "reset" && m == http.MethodPost:
		ok204(s.ResetDelta(tid))
	default:
		writeJSON(w, 404, map[string]string{"error": "unknown admin endpoint"})
	}
}
