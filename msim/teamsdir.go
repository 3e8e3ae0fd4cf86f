package msim

import (
	"strings"
)

// TeamsUser is what the Teams side of the simulator (msim/teams: the
// Direct Routing proxies and the federation edge) needs to know of a
// directory user to route a call to it.
type TeamsUser struct {
	TenantID          string
	ID                string
	UserPrincipalName string
	DisplayName       string
	// PhoneNumber is the user's business phone in E.164 without spaces or
	// punctuation ("+44 20 7946 0101" becomes "+442079460101"), the number
	// a Direct Routing call is routed by; empty if the user has none.
	PhoneNumber     string
	CoexistenceMode string
	AccountEnabled  bool
}

// E164 normalises a phone number as Teams stores it: a leading + and
// digits only. It returns "" for an empty or digit-less input.
func E164(number string) string {
	var b strings.Builder
	for i, r := range number {
		switch {
		case r >= '0' && r <= '9':
			b.WriteRune(r)
		case r == '+' && i == 0:
			b.WriteRune(r)
		}
	}
	s := b.String()
	if s == "" || s == "+" {
		return ""
	}
	if s[0] != '+' {
		s = "+" + s
	}
	return s
}

func (t *tenant) teamsUser(i int32) TeamsUser {
	u := &t.users[i]
	return TeamsUser{TenantID: t.idStr, ID: u.id.String(), UserPrincipalName: u.upn, DisplayName: u.displayName,
		PhoneNumber: E164(u.phone), CoexistenceMode: coexModes[u.coex], AccountEnabled: u.enabled()}
}

// TenantID returns the id of the tenant known by key (its id or one of
// its verified domains, case-insensitive).
func (s *Sim) TenantID(key string) (string, bool) {
	t := s.tenant(key)
	if t == nil {
		return "", false
	}
	return t.idStr, true
}

// TeamsUserByUPN finds a user by userPrincipalName in the tenant owning
// the UPN's domain. Deleted users are not found.
func (s *Sim) TeamsUserByUPN(upn string) (TeamsUser, bool) {
	_, dom, ok := strings.Cut(upn, "@")
	if !ok {
		return TeamsUser{}, false
	}
	t := s.tenant(dom)
	if t == nil {
		return TeamsUser{}, false
	}
	t.mu.RLock()
	defer t.mu.RUnlock()
	i, ok := t.byUPN[strings.ToLower(upn)]
	if !ok || t.users[i].deleted() {
		return TeamsUser{}, false
	}
	return t.teamsUser(i), true
}

// TeamsUserByNumber finds the user of a tenant (by id or domain) whose
// business phone is number (compared in E.164). It scans the tenant, which
// is fine for a call rate of a simulator.
func (s *Sim) TeamsUserByNumber(tenantKey, number string) (TeamsUser, bool) {
	want := E164(number)
	if want == "" {
		return TeamsUser{}, false
	}
	t := s.tenant(tenantKey)
	if t == nil {
		return TeamsUser{}, false
	}
	t.mu.RLock()
	defer t.mu.RUnlock()
	for i := range t.users {
		u := &t.users[i]
		if u.phone != "" && !u.deleted() && E164(u.phone) == want {
			return t.teamsUser(int32(i)), true
		}
	}
	return TeamsUser{}, false
}
