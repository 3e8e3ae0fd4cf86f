package msim

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"
)

// guid is a directory object id, kept as 16 bytes rather than a 36-byte
// string so a tenant of 100,000 users stays small.
type guid [16]byte

func newGUID() guid {
	var g guid
	_, _ = rand.Read(g[:])
	g[6] = g[6]&0x0f | 0x40
	g[8] = g[8]&0x3f | 0x80
	return g
}

func (g guid) String() string { return string(g.append(nil)) }

// append writes g in the 8-4-4-4-12 form.
func (g guid) append(b []byte) []byte {
	var s [36]byte
	hex.Encode(s[0:8], g[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], g[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], g[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], g[8:10])
	s[23] = '-'
	hex.Encode(s[24:], g[10:])
	return append(b, s[:]...)
}

func parseGUID(s string) (guid, bool) {
	var g guid
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return g, false
	}
	h := s[0:8] + s[9:13] + s[14:18] + s[19:23] + s[24:]
	if _, err := hex.Decode(g[:], []byte(h)); err != nil {
		return g, false
	}
	return g, true
}

// Field bits: one per user property the simulator serves. They drive
// $select and what a delta query tracks.
const (
	fID uint32 = 1 << iota
	fUPN
	fDisplayName
	fGivenName
	fSurname
	fMail
	fJobTitle
	fDepartment
	fMobilePhone
	fBusinessPhones
	fOfficeLocation
	fPreferredLanguage
	fUsageLocation
	fAccountEnabled
	fUserType
	fAssignedLicenses
	fAssignedPlans
	fCreatedDateTime
	fOnPremisesSyncEnabled
	fCompanyName
	fRemoved uint32 = 1 << 31 // change-log marker: the user was deleted
)

// userProps lists the user properties in the order Graph's metadata has
// them; $select names are matched case-insensitively against it.
var userProps = []struct {
	name string
	bit  uint32
}{
	{"id", fID},
	{"accountEnabled", fAccountEnabled},
	{"assignedLicenses", fAssignedLicenses},
	{"assignedPlans", fAssignedPlans},
	{"businessPhones", fBusinessPhones},
	{"companyName", fCompanyName},
	{"createdDateTime", fCreatedDateTime},
	{"department", fDepartment},
	{"displayName", fDisplayName},
	{"givenName", fGivenName},
	{"jobTitle", fJobTitle},
	{"mail", fMail},
	{"mobilePhone", fMobilePhone},
	{"officeLocation", fOfficeLocation},
	{"onPremisesSyncEnabled", fOnPremisesSyncEnabled},
	{"preferredLanguage", fPreferredLanguage},
	{"surname", fSurname},
	{"usageLocation", fUsageLocation},
	{"userPrincipalName", fUPN},
	{"userType", fUserType},
}

// defaultUserProps is what Graph returns for a user without $select.
const defaultUserProps = fBusinessPhones | fDisplayName | fGivenName | fID | fJobTitle | fMail |
	fMobilePhone | fOfficeLocation | fPreferredLanguage | fSurname | fUPN

// Coexistence (TeamsUpgradePolicy) modes, as Teams PowerShell names them.
var coexModes = []string{"TeamsOnly", "Islands", "SfBOnly", "SfBWithTeamsCollab", "SfBWithTeamsCollabAndMeetings"}

func coexIndex(mode string) (uint8, bool) {
	if mode == "" {
		return 0, true
	}
	for i, m := range coexModes {
		if strings.EqualFold(m, mode) {
			return uint8(i), true
		}
	}
	return 0, false
}

// capability statuses of a user's plans (assignedPlans capabilityStatus).
var planStatuses = []string{"Enabled", "Warning", "Suspended", "LockedOut"}

// user flags
const (
	uEnabled uint8 = 1 << iota
	uGuest
	uDeleted     // soft-deleted: @removed reason "changed"
	uHardDeleted // permanently deleted: @removed reason "deleted"
	uAdmin       // may sign in on the consent pages
)

// user is one directory user, kept compact: strings only where they vary,
// licences as bit sets over Catalogue and planTable.
type user struct {
	id          guid
	upn         string
	displayName string
	givenName   string
	surname     string
	mail        string
	jobTitle    string
	department  string
	mobile      string
	phone       string // the one businessPhones entry, if any
	usage       string // usageLocation
	created     int64  // unix seconds
	licensedAt  int64  // assignedDateTime of the current plans
	skus        uint32 // bit i = Catalogue[i]
	removedSkus uint32 // licences taken away: their plans show as Deleted
	disabled    uint32 // bit i = planTable[i] disabled in every SKU of the user
	flags       uint8
	coex        uint8
	status      uint8 // index into planStatuses
}

func (u *user) enabled() bool { return u.flags&uEnabled != 0 }
func (u *user) deleted() bool { return u.flags&(uDeleted|uHardDeleted) != 0 }

// planTable lists every distinct plan of the catalogue; user.disabled is a
// bit set over it.
var planTable, planIdx = func() ([]Plan, map[string]int) {
	var t []Plan
	idx := map[string]int{}
	for _, s := range Catalogue {
		for _, p := range s.Plans {
			if _, ok := idx[p.ID]; !ok {
				idx[p.ID] = len(t)
				idx[p.Name] = len(t)
				t = append(t, p)
			}
		}
	}
	if len(t) > 32 {
		panic("msim: more than 32 service plans")
	}
	return t, idx
}()

// change is one entry of a tenant's change log; its sequence number is its
// index + 1. Delta queries replay the log from a token's sequence number.
type change struct {
	user int32
	mask uint32
}

// ref is a group member: a user index (>= 0) or a group index g as -(g+1).
type ref int32

type group struct {
	id          guid
	displayName string
	description string
	mailNick    string
	security    bool
	mailEnabled bool
	unified     bool
	created     int64
	members     []ref
}

type teamsApp struct {
	id           guid
	externalID   string
	displayName  string
	distribution string // organization, store, sideloaded
	defs         []*appDef
}

type appDef struct {
	id           guid
	version      string
	displayName  string
	description  string
	azureADAppID string
	state        string // published, submitted
	modified     int64
}

type install struct {
	id  string
	app *teamsApp
}

type contact struct {
	id        guid
	display   string
	given     string
	surname   string
	company   string
	jobTitle  string
	business  []string
	mobile    string
	home      []string
	emails    []string
	createdAt int64
}

// grant is an app's standing in a tenant: its service principal exists once
// an admin consents; revoking keeps a record so token errors can tell
// "never connected" from "consent revoked".
type grant struct {
	state string // "granted" or "revoked"
	spID  guid
	at    time.Time
}

// Federation is a tenant's Teams external access configuration (what
// Get-CsTenantFederationConfiguration shows); Graph does not expose it.
type Federation struct {
	// AllowFederatedUsers turns external access on; without it no domain is
	// reachable.
	AllowFederatedUsers bool `json:"allowFederatedUsers"`
	// AllowAllKnownDomains allows every domain not blocked; otherwise only
	// AllowedDomains are reachable.
	AllowAllKnownDomains bool     `json:"allowAllKnownDomains"`
	AllowedDomains       []string `json:"allowedDomains"`
	BlockedDomains       []string `json:"blockedDomains"`
}

// Allows reports whether users of the tenant can talk to users of domain.
func (f Federation) Allows(domain string) bool {
	if !f.AllowFederatedUsers {
		return false
	}
	d := strings.ToLower(strings.TrimSuffix(domain, "."))
	match := func(list []string) bool {
		for _, x := range list {
			x = strings.ToLower(x)
			if d == x || strings.HasSuffix(d, "."+x) {
				return true
			}
		}
		return false
	}
	if match(f.BlockedDomains) {
		return false
	}
	return f.AllowAllKnownDomains || match(f.AllowedDomains)
}

type domain struct {
	name      string
	isDefault bool
	isInitial bool
}

// tenant is one simulated Microsoft 365 organisation.
type tenant struct {
	mu sync.RWMutex

	id      guid
	idStr   string
	name    string
	country string
	city    string
	created int64
	domains []domain

	users []user
	byID  map[guid]int32
	byUPN map[string]int32
	log   []change
	epoch uint32 // bumped to expire every delta token

	groups      []*group
	groupByID   map[guid]int
	memberEpoch uint64 // bumped on membership changes; keys the flattening cache
	cacheMu     sync.Mutex
	flatCache   map[int]flatEntry

	grants   map[string]*grant // by client id
	catalog  []*teamsApp
	installs map[int32][]install
	contacts map[int32][]contact

	federation Federation
}

type flatEntry struct {
	epoch uint64
	refs  []ref
}

func newTenant(id guid, name string) *tenant {
	return &tenant{
		id: id, idStr: id.String(), name: name, country: "GB", city: "London",
		created:    time.Now().Add(-400 * 24 * time.Hour).Unix(),
		byID:       map[guid]int32{},
		byUPN:      map[string]int32{},
		groupByID:  map[guid]int{},
		flatCache:  map[int]flatEntry{},
		grants:     map[string]*grant{},
		installs:   map[int32][]install{},
		contacts:   map[int32][]contact{},
		federation: Federation{AllowFederatedUsers: true, AllowAllKnownDomains: true},
	}
}

func (t *tenant) seq() uint64 { return uint64(len(t.log)) }

func (t *tenant) record(i int32, mask uint32) { t.log = append(t.log, change{i, mask}) }

// findUser resolves an id or a userPrincipalName; deleted users are not found.
func (t *tenant) findUser(key string) (int32, bool) {
	var i int32
	var ok bool
	if g, isID := parseGUID(key); isID {
		i, ok = t.byID[g]
	} else {
		i, ok = t.byUPN[strings.ToLower(key)]
	}
	if !ok || t.users[i].deleted() {
		return -1, false
	}
	return i, true
}

func (t *tenant) findGroup(key string) (int, bool) {
	if g, ok := parseGUID(key); ok {
		i, ok := t.groupByID[g]
		return i, ok
	}
	for i, g := range t.groups {
		if strings.EqualFold(g.displayName, key) {
			return i, true
		}
	}
	return -1, false
}

func (t *tenant) defaultDomain() string {
	for _, d := range t.domains {
		if d.isDefault {
			return d.name
		}
	}
	if len(t.domains) > 0 {
		return t.domains[0].name
	}
	return "example.onmicrosoft.com"
}

// UserSpec describes a user in a fixture, in the admin API and for
// Sim.AddUser. Licences are SKU part numbers (e.g. "SPE_E5", "MCOEV") or
// skuIds; DisabledPlans are service plan names or ids switched off in every
// SKU the user holds (assignedLicenses.disabledPlans).
type UserSpec struct {
	ID                string        `json:"id,omitempty"`
	UserPrincipalName string        `json:"userPrincipalName"`
	DisplayName       string        `json:"displayName,omitempty"`
	GivenName         string        `json:"givenName,omitempty"`
	Surname           string        `json:"surname,omitempty"`
	Mail              string        `json:"mail,omitempty"`
	JobTitle          string        `json:"jobTitle,omitempty"`
	Department        string        `json:"department,omitempty"`
	MobilePhone       string        `json:"mobilePhone,omitempty"`
	BusinessPhones    []string      `json:"businessPhones,omitempty"`
	UsageLocation     string        `json:"usageLocation,omitempty"`
	AccountEnabled    *bool         `json:"accountEnabled,omitempty"` // default true
	UserType          string        `json:"userType,omitempty"`       // Member (default) or Guest
	Licenses          []string      `json:"licenses,omitempty"`
	DisabledPlans     []string      `json:"disabledPlans,omitempty"`
	LicenseStatus     string        `json:"licenseStatus,omitempty"`   // Enabled (default), Warning, Suspended, LockedOut
	CoexistenceMode   string        `json:"coexistenceMode,omitempty"` // TeamsOnly (default), Islands, SfBOnly, ...
	Admin             bool          `json:"admin,omitempty"`           // can sign in on the consent pages
	Contacts          []ContactSpec `json:"contacts,omitempty"`
}

// ContactSpec is one personal contact of a user (Outlook contacts, what
// /me/contacts lists).
type ContactSpec struct {
	DisplayName    string   `json:"displayName"`
	GivenName      string   `json:"givenName,omitempty"`
	Surname        string   `json:"surname,omitempty"`
	CompanyName    string   `json:"companyName,omitempty"`
	JobTitle       string   `json:"jobTitle,omitempty"`
	BusinessPhones []string `json:"businessPhones,omitempty"`
	MobilePhone    string   `json:"mobilePhone,omitempty"`
	HomePhones     []string `json:"homePhones,omitempty"`
	Emails         []string `json:"emails,omitempty"`
}

// UserPatch changes some properties of a user; nil fields stay as they are.
// Every change is recorded so that a following delta query returns the user.
type UserPatch struct {
	DisplayName     *string   `json:"displayName,omitempty"`
	GivenName       *string   `json:"givenName,omitempty"`
	Surname         *string   `json:"surname,omitempty"`
	Mail            *string   `json:"mail,omitempty"`
	JobTitle        *string   `json:"jobTitle,omitempty"`
	Department      *string   `json:"department,omitempty"`
	MobilePhone     *string   `json:"mobilePhone,omitempty"`
	BusinessPhones  *[]string `json:"businessPhones,omitempty"`
	UsageLocation   *string   `json:"usageLocation,omitempty"`
	AccountEnabled  *bool     `json:"accountEnabled,omitempty"`
	Licenses        *[]string `json:"licenses,omitempty"` // replaces the set
	AddLicenses     []string  `json:"addLicenses,omitempty"`
	RemoveLicenses  []string  `json:"removeLicenses,omitempty"`
	DisabledPlans   *[]string `json:"disabledPlans,omitempty"`
	LicenseStatus   *string   `json:"licenseStatus,omitempty"`
	CoexistenceMode *string   `json:"coexistenceMode,omitempty"`
}

// errBadSpec marks caller mistakes (the admin API answers 400 for them).
var errBadSpec = errors.New("invalid")

func badSpec(format string, a ...any) error {
	return fmt.Errorf("%w: %s", errBadSpec, fmt.Sprintf(format, a...))
}

func parseSKUs(names []string) (uint32, error) {
	var set uint32
	for _, n := range names {
		b, ok := skuBit(n)
		if !ok {
			return 0, badSpec("unknown licence %q (use a SKU part number such as SPE_E5 or MCOEV)", n)
		}
		set |= b
	}
	return set, nil
}

func parsePlans(names []string) (uint32, error) {
	var set uint32
	for _, n := range names {
		i, ok := planIdx[n]
		if !ok {
			return 0, badSpec("unknown service plan %q", n)
		}
		set |= 1 << uint(i)
	}
	return set, nil
}

func statusIndex(s string) (uint8, bool) {
	if s == "" {
		return 0, true
	}
	for i, x := range planStatuses {
		if strings.EqualFold(x, s) {
			return uint8(i), true
		}
	}
	return 0, false
}

// addUser inserts a user; the caller holds t.mu for writing.
func (t *tenant) addUser(s UserSpec, now time.Time) (int32, error) {
	if s.UserPrincipalName == "" || !strings.Contains(s.UserPrincipalName, "@") {
		return -1, badSpec("userPrincipalName %q must look like name@domain", s.UserPrincipalName)
	}
	key := strings.ToLower(s.UserPrincipalName)
	if _, dup := t.byUPN[key]; dup {
		return -1, badSpec("a user with userPrincipalName %q already exists", s.UserPrincipalName)
	}
	u := user{
		upn: s.UserPrincipalName, displayName: s.DisplayName, givenName: s.GivenName, surname: s.Surname,
		mail: s.Mail, jobTitle: s.JobTitle, department: s.Department, mobile: s.MobilePhone,
		usage: s.UsageLocation, created: now.Unix(), licensedAt: now.Unix(), flags: uEnabled,
	}
	if s.ID != "" {
		g, ok := parseGUID(s.ID)
		if !ok {
			return -1, badSpec("id %q is not a GUID", s.ID)
		}
		u.id = g
	} else {
		u.id = newGUID()
	}
	if _, dup := t.byID[u.id]; dup {
		return -1, badSpec("a user with id %s already exists", s.ID)
	}
	if u.displayName == "" {
		u.displayName = strings.TrimSpace(s.GivenName + " " + s.Surname)
	}
	if len(s.BusinessPhones) > 1 {
		return -1, badSpec("businessPhones holds at most one number")
	}
	if len(s.BusinessPhones) == 1 {
		u.phone = s.BusinessPhones[0]
	}
	if s.AccountEnabled != nil && !*s.AccountEnabled {
		u.flags &^= uEnabled
	}
	switch strings.ToLower(s.UserType) {
	case "", "member":
	case "guest":
		u.flags |= uGuest
	default:
		return -1, badSpec("userType %q must be Member or Guest", s.UserType)
	}
	if s.Admin {
		u.flags |= uAdmin
	}
	var err error
	if u.skus, err = parseSKUs(s.Licenses); err != nil {
		return -1, err
	}
	if u.disabled, err = parsePlans(s.DisabledPlans); err != nil {
		return -1, err
	}
	var ok bool
	if u.coex, ok = coexIndex(s.CoexistenceMode); !ok {
		return -1, badSpec("coexistenceMode %q must be one of %s", s.CoexistenceMode, strings.Join(coexModes, ", "))
	}
	if u.status, ok = statusIndex(s.LicenseStatus); !ok {
		return -1, badSpec("licenseStatus %q must be one of %s", s.LicenseStatus, strings.Join(planStatuses, ", "))
	}
	i := int32(len(t.users))
	t.users = append(t.users, u)
	t.byID[u.id] = i
	t.byUPN[key] = i
	for _, c := range s.Contacts {
		t.contacts[i] = append(t.contacts[i], contactFromSpec(c, now))
	}
	t.record(i, ^fRemoved)
	return i, nil
}

func contactFromSpec(c ContactSpec, now time.Time) contact {
	return contact{id: newGUID(), display: c.DisplayName, given: c.GivenName, surname: c.Surname,
		company: c.CompanyName, jobTitle: c.JobTitle, business: c.BusinessPhones, mobile: c.MobilePhone,
		home: c.HomePhones, emails: c.Emails, createdAt: now.Unix()}
}

// updateUser applies p; the caller holds t.mu for writing.
func (t *tenant) updateUser(i int32, p UserPatch, now time.Time) error {
	u := t.users[i] // copy: apply only if every field is valid
	var mask uint32
	set := func(dst *string, v *string, bit uint32) {
		if v != nil && *dst != *v {
			*dst = *v
			mask |= bit
		}
	}
	set(&u.displayName, p.DisplayName, fDisplayName)
	set(&u.givenName, p.GivenName, fGivenName)
	set(&u.surname, p.Surname, fSurname)
	set(&u.mail, p.Mail, fMail)
	set(&u.jobTitle, p.JobTitle, fJobTitle)
	set(&u.department, p.Department, fDepartment)
	set(&u.mobile, p.MobilePhone, fMobilePhone)
	set(&u.usage, p.UsageLocation, fUsageLocation)
	if p.BusinessPhones != nil {
		if len(*p.BusinessPhones) > 1 {
			return badSpec("businessPhones holds at most one number")
		}
		v := ""
		if len(*p.BusinessPhones) == 1 {
			v = (*p.BusinessPhones)[0]
		}
		set(&u.phone, &v, fBusinessPhones)
	}
	if p.AccountEnabled != nil && *p.AccountEnabled != u.enabled() {
		u.flags ^= uEnabled
		mask |= fAccountEnabled
	}
	skus := u.skus
	if p.Licenses != nil {
		s, err := parseSKUs(*p.Licenses)
		if err != nil {
			return err
		}
		skus = s
	}
	add, err := parseSKUs(p.AddLicenses)
	if err != nil {
		return err
	}
	rem, err := parseSKUs(p.RemoveLicenses)
	if err != nil {
		return err
	}
	skus = (skus | add) &^ rem
	if skus != u.skus {
		u.removedSkus = (u.removedSkus | (u.skus &^ skus)) &^ skus
		u.skus = skus
		u.licensedAt = now.Unix()
		mask |= fAssignedLicenses | fAssignedPlans
	}
	if p.DisabledPlans != nil {
		d, err := parsePlans(*p.DisabledPlans)
		if err != nil {
			return err
		}
		if d != u.disabled {
			u.disabled = d
			mask |= fAssignedLicenses | fAssignedPlans
		}
	}
	if p.LicenseStatus != nil {
		s, ok := statusIndex(*p.LicenseStatus)
		if !ok {
			return badSpec("licenseStatus %q must be one of %s", *p.LicenseStatus, strings.Join(planStatuses, ", "))
		}
		if s != u.status {
			u.status = s
			mask |= fAssignedPlans
		}
	}
	if p.CoexistenceMode != nil {
		c, ok := coexIndex(*p.CoexistenceMode)
		if !ok {
			return badSpec("coexistenceMode %q must be one of %s", *p.CoexistenceMode, strings.Join(coexModes, ", "))
		}
		u.coex = c // not a Graph property: no delta change
	}
	t.users[i] = u
	if mask != 0 {
		t.record(i, mask)
	}
	return nil
}

// deleteUser soft- or hard-deletes a user; it disappears from lists and
// groups, and the next delta reports it as @removed.
func (t *tenant) deleteUser(i int32, hard bool) {
	u := &t.users[i]
	if hard {
		u.flags |= uHardDeleted
	} else {
		u.flags |= uDeleted
	}
	delete(t.byUPN, strings.ToLower(u.upn))
	delete(t.installs, i)
	t.memberEpoch++
	t.record(i, fRemoved)
}

// GroupSpec describes a group. Members are user ids or userPrincipalNames,
// or "group:<id or displayName>" for a nested group.
type GroupSpec struct {
	ID              string   `json:"id,omitempty"`
	DisplayName     string   `json:"displayName"`
	Description     string   `json:"description,omitempty"`
	MailNickname    string   `json:"mailNickname,omitempty"`
	SecurityEnabled *bool    `json:"securityEnabled,omitempty"` // default true
	MailEnabled     bool     `json:"mailEnabled,omitempty"`
	GroupTypes      []string `json:"groupTypes,omitempty"` // ["Unified"] for a Microsoft 365 group
	Members         []string `json:"members,omitempty"`
}

func (t *tenant) addGroup(s GroupSpec, now time.Time) (int, error) {
	if strings.TrimSpace(s.DisplayName) == "" {
		return -1, badSpec("a group needs a displayName")
	}
	g := &group{displayName: s.DisplayName, description: s.Description, mailNick: s.MailNickname,
		security: true, mailEnabled: s.MailEnabled, created: now.Unix()}
	if s.ID != "" {
		id, ok := parseGUID(s.ID)
		if !ok {
			return -1, badSpec("group id %q is not a GUID", s.ID)
		}
		g.id = id
	} else {
		g.id = newGUID()
	}
	if _, dup := t.groupByID[g.id]; dup {
		return -1, badSpec("a group with id %s already exists", s.ID)
	}
	if s.SecurityEnabled != nil {
		g.security = *s.SecurityEnabled
	}
	for _, gt := range s.GroupTypes {
		if strings.EqualFold(gt, "Unified") {
			g.unified = true
		}
	}
	if g.mailNick == "" {
		g.mailNick = strings.ToLower(strings.Join(strings.Fields(s.DisplayName), ""))
	}
	t.groupByID[g.id] = len(t.groups)
	t.groups = append(t.groups, g)
	return len(t.groups) - 1, nil
}

// resolveMember turns a member key into a ref.
func (t *tenant) resolveMember(key string) (ref, error) {
	if rest, ok := strings.CutPrefix(key, "group:"); ok {
		gi, ok := t.findGroup(rest)
		if !ok {
			return 0, badSpec("no group %q", rest)
		}
		return ref(-(gi + 1)), nil
	}
	if g, ok := parseGUID(key); ok {
		if gi, ok := t.groupByID[g]; ok {
			return ref(-(gi + 1)), nil
		}
	}
	ui, ok := t.findUser(key)
	if !ok {
		return 0, badSpec("no user %q", key)
	}
	return ref(ui), nil
}

func (t *tenant) changeMembers(gi int, add, remove []string) error {
	g := t.groups[gi]
	var addRefs, remRefs []ref
	for _, k := range add {
		r, err := t.resolveMember(k)
		if err != nil {
			return err
		}
		if r == ref(-(gi + 1)) {
			return badSpec("a group cannot be a member of itself")
		}
		addRefs = append(addRefs, r)
	}
	for _, k := range remove {
		r, err := t.resolveMember(k)
		if err != nil {
			return err
		}
		remRefs = append(remRefs, r)
	}
	have := make(map[ref]bool, len(g.members))
	for _, m := range g.members {
		have[m] = true
	}
	for _, r := range addRefs {
		if !have[r] {
			have[r] = true
			g.members = append(g.members, r)
		}
	}
	if len(remRefs) > 0 {
		drop := map[ref]bool{}
		for _, r := range remRefs {
			drop[r] = true
		}
		kept := g.members[:0]
		for _, m := range g.members {
			if !drop[m] {
				kept = append(kept, m)
			}
		}
		g.members = kept
	}
	t.memberEpoch++
	return nil
}

// flatten returns the transitive members of group gi: users and nested
// groups, each once, breadth first, deleted users left out. The result is
// cached until membership changes, so paging a big group stays cheap.
func (t *tenant) flatten(gi int) []ref {
	// The caller holds t.mu for reading; the cache has its own lock.
	t.cacheMu.Lock()
	defer t.cacheMu.Unlock()
	if e, ok := t.flatCache[gi]; ok && e.epoch == t.memberEpoch {
		return e.refs
	}
	seenU := map[int32]bool{}
	seenG := map[int]bool{gi: true}
	queue := []int{gi}
	var out []ref
	for len(queue) > 0 {
		g := t.groups[queue[0]]
		queue = queue[1:]
		for _, m := range g.members {
			if m >= 0 {
				if !seenU[int32(m)] && !t.users[m].deleted() {
					seenU[int32(m)] = true
					out = append(out, m)
				}
				continue
			}
			ng := int(-m) - 1
			if !seenG[ng] {
				seenG[ng] = true
				out = append(out, m)
				queue = append(queue, ng)
			}
		}
	}
	t.flatCache[gi] = flatEntry{t.memberEpoch, out}
	return out
}

// directMembers returns g's members without deleted users.
func (t *tenant) directMembers(gi int) []ref {
	var out []ref
	for _, m := range t.groups[gi].members {
		if m >= 0 && t.users[m].deleted() {
			continue
		}
		out = append(out, m)
	}
	return out
}

func sortedStrings(s []string) []string {
	out := append([]string(nil), s...)
	sort.Strings(out)
	return out
}
