package msim

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
)

// Fixture is the JSON shape of a seed file: app registrations and tenants.
// See testdata/sandbox.json for a complete example.
type Fixture struct {
	Apps    []App        `json:"apps,omitempty"`
	Tenants []TenantSpec `json:"tenants,omitempty"`
}

// TenantSpec describes one tenant of a fixture.
type TenantSpec struct {
	ID                string       `json:"id,omitempty"` // GUID; generated when empty
	DisplayName       string       `json:"displayName"`
	CountryLetterCode string       `json:"countryLetterCode,omitempty"`
	City              string       `json:"city,omitempty"`
	Domains           []DomainSpec `json:"domains"`
	// Federation defaults to external access on, all domains allowed.
	Federation *Federation `json:"federation,omitempty"`
	// Consents lists client ids already granted admin consent.
	Consents  []string       `json:"consents,omitempty"`
	Users     []UserSpec     `json:"users,omitempty"`
	Groups    []GroupSpec    `json:"groups,omitempty"`
	TeamsApps []TeamsAppSpec `json:"teamsApps,omitempty"`
	// Generate appends generated users and groups after the listed ones.
	Generate *GenerateSpec `json:"generate,omitempty"`
}

// DomainSpec is a verified domain of a tenant. The first domain is the
// initial one unless one says so; the default one is used for UPNs.
type DomainSpec struct {
	Name    string `json:"name"`
	Default bool   `json:"default,omitempty"`
	Initial bool   `json:"initial,omitempty"`
}

// TeamsAppSpec preloads an app in a tenant's Teams app catalog.
type TeamsAppSpec struct {
	ID                 string `json:"id,omitempty"`
	ExternalID         string `json:"externalId,omitempty"`
	DisplayName        string `json:"displayName"`
	DistributionMethod string `json:"distributionMethod,omitempty"` // organization (default) or store
	Version            string `json:"version,omitempty"`
	AzureADAppID       string `json:"azureADAppId,omitempty"`
}

// GenerateSpec generates a tenant's users: a licence mix and groups for
// Large Tenant Mode. Fractions are of all generated users; zero values take
// the defaults shown. Generation is deterministic for a seed.
type GenerateSpec struct {
	Users int   `json:"users"`
	Seed  int64 `json:"seed,omitempty"` // default 1
	// TeamsPhone users hold Teams Phone (E5, or E3 + MCOEV); default 0.6.
	TeamsPhone float64 `json:"teamsPhone,omitempty"`
	// CallingPlan: share of Teams Phone users that also hold a Calling Plan; default 0.05.
	CallingPlan float64 `json:"callingPlan,omitempty"`
	// PhoneApp users hold Teams without Teams Phone and are in the Phone App group; default 0.25.
	PhoneApp float64 `json:"phoneApp,omitempty"`
	// Conflicts: share of Teams Phone users also put in the Phone App group; default 0.005.
	Conflicts        float64 `json:"conflicts,omitempty"`
	MeetingRooms     float64 `json:"meetingRooms,omitempty"`     // default 0.01
	ResourceAccounts float64 `json:"resourceAccounts,omitempty"` // default 0.01
	Disabled         float64 `json:"disabled,omitempty"`         // default 0.02
	Guests           float64 `json:"guests,omitempty"`           // default 0.01
	Islands          float64 `json:"islands,omitempty"`          // default 0.01 (coexistence mode)
	// NestedGroups under the voice group (members split among them); default 3.
	NestedGroups int `json:"nestedGroups,omitempty"`
	// ContactsPerUser personal contacts for each of the first 100 users; default 0.
	ContactsPerUser int `json:"contactsPerUser,omitempty"`
}

//go:embed testdata/sandbox.json
var sandboxJSON []byte

// SandboxFixture returns the built-in sandbox fixture: the "Contoso" tenant
// (about 20 users covering every user kind and readiness case) and the two
// sandbox app registrations.
func SandboxFixture() []byte { return append([]byte(nil), sandboxJSON...) }

// Sandbox app registrations of the built-in fixture.
const (
	SandboxSyncClientID         = "6a1f3c2e-9b8d-4e5f-a1b2-c3d4e5f60718"
	SandboxSyncClientSecret     = "sandbox-sync-secret"
	SandboxPhoneAppClientID     = "0b7d9e41-2c5a-4f83-9d16-7e8f9a0b1c2d"
	SandboxPhoneAppClientSecret = "sandbox-phoneapp-secret"
	SandboxTenantID             = "3f2504e0-4f89-41d3-9a0c-0305e82c3301"
)

// NewSandbox returns a simulator seeded with SandboxFixture.
func NewSandbox(opts Options) (*Sim, error) {
	s := New(opts)
	if err := s.LoadJSON(strings.NewReader(string(sandboxJSON))); err != nil {
		return nil, err
	}
	return s, nil
}

// LoadFile loads a JSON fixture file.
func (s *Sim) LoadFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return s.LoadJSON(f)
}

// LoadJSON loads a JSON fixture.
func (s *Sim) LoadJSON(r io.Reader) error {
	var f Fixture
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return fmt.Errorf("msim: fixture: %w", err)
	}
	return s.Load(f)
}

// Load registers the fixture's apps and creates its tenants.
func (s *Sim) Load(f Fixture) error {
	for _, a := range f.Apps {
		if err := s.RegisterApp(a); err != nil {
			return fmt.Errorf("msim: fixture app: %w", err)
		}
	}
	for _, ts := range f.Tenants {
		if _, err := s.AddTenant(ts); err != nil {
			return fmt.Errorf("msim: fixture tenant %q: %w", ts.DisplayName, err)
		}
	}
	return nil
}

// AddTenant creates a tenant and returns its id.
func (s *Sim) AddTenant(ts TenantSpec) (string, error) {
	id := newGUID()
	if ts.ID != "" {
		g, ok := parseGUID(ts.ID)
		if !ok {
			return "", badSpec("tenant id %q is not a GUID", ts.ID)
		}
		id = g
	}
	if ts.DisplayName == "" {
		return "", badSpec("a tenant needs a displayName")
	}
	t := newTenant(id, ts.DisplayName)
	if ts.CountryLetterCode != "" {
		t.country = ts.CountryLetterCode
	}
	if ts.City != "" {
		t.city = ts.City
	}
	if len(ts.Domains) == 0 {
		return "", badSpec("tenant %s needs at least one domain", ts.DisplayName)
	}
	hasInitial, hasDefault := false, false
	for _, d := range ts.Domains {
		hasInitial = hasInitial || d.Initial
		hasDefault = hasDefault || d.Default
	}
	for i, d := range ts.Domains {
		if d.Name == "" || !strings.Contains(d.Name, ".") {
			return "", badSpec("domain %q is not a domain name", d.Name)
		}
		t.domains = append(t.domains, domain{name: strings.ToLower(d.Name),
			isInitial: d.Initial || (!hasInitial && i == 0), isDefault: d.Default || (!hasDefault && i == 0)})
	}
	if ts.Federation != nil {
		t.federation = *ts.Federation
	}
	now := s.now()
	for _, u := range ts.Users {
		if _, err := t.addUser(u, now); err != nil {
			return "", fmt.Errorf("user %s: %w", u.UserPrincipalName, err)
		}
	}
	// Groups first, then members, so nested groups may be listed in any order.
	for _, g := range ts.Groups {
		if _, err := t.addGroup(GroupSpec{ID: g.ID, DisplayName: g.DisplayName, Description: g.Description,
			MailNickname: g.MailNickname, SecurityEnabled: g.SecurityEnabled, MailEnabled: g.MailEnabled, GroupTypes: g.GroupTypes}, now); err != nil {
			return "", err
		}
	}
	for i, g := range ts.Groups {
		if err := t.changeMembers(i, g.Members, nil); err != nil {
			return "", fmt.Errorf("group %s: %w", g.DisplayName, err)
		}
	}
	for _, a := range ts.TeamsApps {
		app := &teamsApp{id: newGUID(), externalID: a.ExternalID, displayName: a.DisplayName, distribution: a.DistributionMethod}
		if a.ID != "" {
			g, ok := parseGUID(a.ID)
			if !ok {
				return "", badSpec("teams app id %q is not a GUID", a.ID)
			}
			app.id = g
		}
		if app.distribution == "" {
			app.distribution = "organization"
		}
		v := a.Version
		if v == "" {
			v = "1.0.0"
		}
		app.defs = []*appDef{{id: newGUID(), version: v, displayName: a.DisplayName, azureADAppID: a.AzureADAppID, state: "published", modified: now.Unix()}}
		t.catalog = append(t.catalog, app)
	}
	if ts.Generate != nil {
		if err := generate(t, *ts.Generate, now.Unix()); err != nil {
			return "", err
		}
	}
	if err := s.addTenant(t); err != nil {
		return "", err
	}
	for _, c := range ts.Consents {
		if err := s.GrantConsent(t.idStr, c); err != nil {
			return "", err
		}
	}
	return t.idStr, nil
}

// Generate creates a tenant of generated users (see GenerateSpec) and
// returns its id. name and domain may be empty.
func (s *Sim) Generate(name, domainName string, spec GenerateSpec) (string, error) {
	if name == "" {
		name = "Fabrikam " + strconv.Itoa(spec.Users)
	}
	if domainName == "" {
		domainName = "fabrikam" + strconv.Itoa(len(s.allTenants())+1) + ".onmicrosoft.com"
	}
	return s.AddTenant(TenantSpec{DisplayName: name, Domains: []DomainSpec{{Name: domainName}}, Generate: &spec})
}

var (
	firstNames = []string{"Ada", "Ben", "Chloe", "Dev", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jonas", "Kemi", "Liam",
		"Maya", "Nils", "Olga", "Priya", "Quinn", "Rosa", "Sami", "Tomas", "Uma", "Viktor", "Wen", "Xavier", "Yara", "Zoe",
		"Amir", "Bianca", "Carlos", "Daria", "Emil", "Fatima", "Gustav", "Hana", "Ivan", "Julia", "Kai", "Lena", "Marco", "Nora"}
	surnames = []string{"Abbott", "Baker", "Costa", "Dubois", "Evans", "Fischer", "Garcia", "Hughes", "Ito", "Jensen", "Kowalski",
		"Lopez", "Moreau", "Nakamura", "Okafor", "Petrov", "Quist", "Rossi", "Schmidt", "Tanaka", "Ueda", "Varga", "Weber",
		"Xu", "Yilmaz", "Zhang", "Andersen", "Bauer", "Clarke", "Diaz", "Eriksen", "Ferreira", "Gomez", "Horvat", "Ivanova"}
	jobTitles   = []string{"Engineer", "Sales Manager", "Accountant", "Support Specialist", "Designer", "Analyst", "Consultant", "Receptionist"}
	departments = []string{"Engineering", "Sales", "Finance", "Support", "Marketing", "Operations", "Legal", "HR"}
)

func frac(v, def float64) float64 {
	if v <= 0 {
		return def
	}
	return v
}

func rngGUID(r *rand.Rand) guid {
	var g guid
	a, b := r.Uint64(), r.Uint64()
	for i := 0; i < 8; i++ {
		g[i] = byte(a >> (8 * i))
		g[8+i] = byte(b >> (8 * i))
	}
	g[6] = g[6]&0x0f | 0x40
	g[8] = g[8]&0x3f | 0x80
	return g
}

// generate appends spec.Users users and the Large Tenant Mode groups to t.
func generate(t *tenant, spec GenerateSpec, now int64) error {
	if spec.Users < 0 || spec.Users > 2_000_000 {
		return badSpec("generate: users must be between 0 and 2,000,000")
	}
	seed := spec.Seed
	if seed == 0 {
		seed = 1
	}
	r := rand.New(rand.NewPCG(uint64(seed), 0x9e3779b97f4a7c15))
	pPhone := frac(spec.TeamsPhone, 0.6)
	pCalling := frac(spec.CallingPlan, 0.05)
	pApp := frac(spec.PhoneApp, 0.25)
	pConflict := frac(spec.Conflicts, 0.005)
	pRoom := frac(spec.MeetingRooms, 0.01)
	pRes := frac(spec.ResourceAccounts, 0.01)
	pDis := frac(spec.Disabled, 0.02)
	pGuest := frac(spec.Guests, 0.01)
	pIslands := frac(spec.Islands, 0.01)
	nested := spec.NestedGroups
	if nested <= 0 {
		nested = 3
	}
	dom := t.defaultDomain()
	bit := func(n string) uint32 { b, _ := skuBit(n); return b }
	e3, e5, mcoev, pstn1 := bit("SPE_E3"), bit("SPE_E5"), bit("MCOEV"), bit("MCOPSTN1")
	room, virt, basic := bit("MEETING_ROOM"), bit("PHONESYSTEM_VIRTUALUSER"), bit("O365_BUSINESS_ESSENTIALS")

	voice, _ := t.addGroup(GroupSpec{DisplayName: "Teams Voice Users", Description: "Standard PBX users (Direct Routing)"}, timeUnix(now))
	sub := make([]int, nested)
	for i := range sub {
		sub[i], _ = t.addGroup(GroupSpec{DisplayName: fmt.Sprintf("Teams Voice Users - Site %d", i+1)}, timeUnix(now))
		t.groups[voice].members = append(t.groups[voice].members, ref(-(sub[i] + 1)))
	}
	app, _ := t.addGroup(GroupSpec{DisplayName: "Phone App Users", Description: "Users of the Teams Phone App"}, timeUnix(now))

	t.users = append(make([]user, 0, len(t.users)+spec.Users), t.users...)
	base := len(t.users)
	for n := 0; n < spec.Users; n++ {
		gn := firstNames[r.IntN(len(firstNames))]
		sn := surnames[r.IntN(len(surnames))]
		idx := base + n
		u := user{id: rngGUID(r), givenName: gn, surname: sn, created: now, licensedAt: now, flags: uEnabled,
			jobTitle: jobTitles[r.IntN(len(jobTitles))], department: departments[r.IntN(len(departments))], usage: "GB"}
		local := strings.ToLower(gn) + "." + strings.ToLower(sn) + strconv.Itoa(idx)
		u.upn = local + "@" + dom
		u.mail = u.upn
		u.displayName = gn + " " + sn
		u.phone = "+4420" + fmt.Sprintf("%08d", idx)
		x := r.Float64()
		kind := "plain"
		switch {
		case x < pRoom:
			kind = "room"
		case x < pRoom+pRes:
			kind = "resource"
		case x < pRoom+pRes+pGuest:
			kind = "guest"
		case x < pRoom+pRes+pGuest+pPhone:
			kind = "phone"
		case x < pRoom+pRes+pGuest+pPhone+pApp:
			kind = "app"
		}
		var groupsOf []int
		switch kind {
		case "room":
			u.displayName = "Meeting Room " + strconv.Itoa(idx)
			u.upn = "room" + strconv.Itoa(idx) + "@" + dom
			u.givenName, u.surname, u.jobTitle, u.department, u.phone = "", "", "", "", ""
			u.mail = u.upn
			u.skus = room
		case "resource":
			u.displayName = "Auto Attendant " + strconv.Itoa(idx)
			u.upn = "aa" + strconv.Itoa(idx) + "@" + dom
			u.givenName, u.surname, u.jobTitle, u.department, u.mail = "", "", "", "", ""
			u.skus = virt
		case "guest":
			u.flags |= uGuest
			u.upn = local + "_partner.example#EXT#@" + dom
			u.skus = 0
			u.phone = ""
		case "phone":
			if r.IntN(2) == 0 {
				u.skus = e5
			} else {
				u.skus = e3 | mcoev
			}
			if r.Float64() < pCalling {
				u.skus |= pstn1
			}
			groupsOf = append(groupsOf, sub[r.IntN(nested)])
			if r.Float64() < pConflict/pPhone {
				groupsOf = append(groupsOf, app)
			}
		case "app":
			if r.IntN(3) == 0 {
				u.skus = basic
			} else {
				u.skus = e3
			}
			groupsOf = append(groupsOf, app)
		default:
			u.skus = e3
		}
		if kind != "room" && kind != "resource" && r.Float64() < pDis {
			u.flags &^= uEnabled
		}
		if r.Float64() < pIslands {
			u.coex = 1
		}
		t.users = append(t.users, u)
		t.byID[u.id] = int32(idx)
		t.byUPN[strings.ToLower(u.upn)] = int32(idx)
		t.log = append(t.log, change{int32(idx), ^fRemoved})
		for _, gi := range groupsOf {
			t.groups[gi].members = append(t.groups[gi].members, ref(idx))
		}
		if n < 100 && spec.ContactsPerUser > 0 {
			for c := 0; c < spec.ContactsPerUser; c++ {
				cg, cs := firstNames[r.IntN(len(firstNames))], surnames[r.IntN(len(surnames))]
				t.contacts[int32(idx)] = append(t.contacts[int32(idx)], contact{id: rngGUID(r), display: cg + " " + cs,
					given: cg, surname: cs, business: []string{fmt.Sprintf("+4420%08d", r.IntN(1e8))}, createdAt: now,
					emails: []string{strings.ToLower(cg+"."+cs) + "@partner.example"}})
			}
		}
	}
	t.memberEpoch++
	return nil
}
