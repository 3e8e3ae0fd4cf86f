package msim

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Permission sets per API: application roles and delegated scopes, any one
// of which is enough (least privileged first, as Microsoft documents them).
var (
	permUsers       = []string{"User.Read.All", "User.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"}
	permUsersScp    = []string{"User.Read.All", "User.ReadBasic.All", "User.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"}
	permGroups      = []string{"GroupMember.Read.All", "Group.Read.All", "Group.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"}
	permOrg         = []string{"Organization.Read.All", "Organization.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"}
	permOrgScp      = []string{"User.Read", "Organization.Read.All", "Directory.Read.All"}
	permDomains     = []string{"Domain.Read.All", "Domain.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"}
	permSkus        = []string{"LicenseAssignment.Read.All", "Organization.Read.All", "Directory.Read.All"}
	permCatalogRead = []string{"AppCatalog.Read.All", "AppCatalog.ReadWrite.All", "AppCatalog.Submit", "Directory.Read.All", "Directory.ReadWrite.All"}
	permCatalogPub  = []string{"AppCatalog.Submit", "AppCatalog.ReadWrite.All", "Directory.ReadWrite.All"}
	permInstallRead = []string{"TeamsAppInstallation.ReadForUser.All", "TeamsAppInstallation.ReadSelfForUser.All",
		"TeamsAppInstallation.ReadWriteSelfForUser.All", "TeamsAppInstallation.ReadWriteForUser.All"}
	permInstallReadScp = []string{"TeamsAppInstallation.ReadForUser", "TeamsAppInstallation.ReadSelfForUser",
		"TeamsAppInstallation.ReadWriteSelfForUser", "TeamsAppInstallation.ReadWriteForUser"}
	permInstallWrite    = []string{"TeamsAppInstallation.ReadWriteSelfForUser.All", "TeamsAppInstallation.ReadWriteForUser.All"}
	permInstallWriteScp = []string{"TeamsAppInstallation.ReadWriteSelfForUser", "TeamsAppInstallation.ReadWriteForUser"}
	permContacts        = []string{"Contacts.Read", "Contacts.ReadWrite"}
)

func denied(w http.ResponseWriter) {
	graphError(w, 403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.")
}

func unsupported(w http.ResponseWriter, msg string) {
	graphError(w, 400, "Request_UnsupportedQuery", msg)
}

func notFound(w http.ResponseWriter, id string) {
	graphError(w, 404, "Request_ResourceNotFound", fmt.Sprintf("Resource '%s' does not exist or one of its queried reference-property objects are not present.", id))
}

// routeKey names a request for Stats: ids become {id}.
func routeKey(method string, segs []string) string {
	out := make([]string, len(segs))
	for i, s := range segs {
		out[i] = s
		if i > 0 {
			switch segs[i-1] {
			case "users", "groups", "teamsApps", "installedApps", "contacts":
				if s != "delta" && s != "delta()" && s != "$count" {
					out[i] = "{id}"
				}
			}
		}
	}
	return method + " /v1.0/" + strings.Join(out, "/")
}

func (s *Sim) serveGraph(w http.ResponseWriter, r *http.Request, rest string) {
	segs := strings.Split(strings.Trim(rest, "/"), "/")
	p := s.authenticate(w, r)
	if p == nil {
		return
	}
	g := &gctx{s: s, w: w, r: r, p: p, t: p.tenant, q: r.URL.Query(), base: s.base(r)}
	switch segs[0] {
	case "organization":
		g.organization()
	case "domains":
		g.domains()
	case "subscribedSkus":
		g.subscribedSkus()
	case "users":
		g.users(segs[1:])
	case "me":
		if !p.delegated {
			graphError(w, 400, "BadRequest", "/me request is only valid with delegated authentication flow.")
			return
		}
		g.userSub(p.user, segs[1:])
	case "groups":
		g.groups(segs[1:])
	case "appCatalogs":
		if len(segs) < 2 || segs[1] != "teamsApps" {
			graphError(w, 400, "BadRequest", "Resource not found for the segment 'appCatalogs'.")
			return
		}
		g.teamsApps(segs[2:])
	default:
		graphError(w, 400, "BadRequest", fmt.Sprintf("Resource not found for the segment '%s'.", segs[0]))
	}
}

// gctx is one Graph request in flight.
type gctx struct {
	s    *Sim
	w    http.ResponseWriter
	r    *http.Request
	p    *principal
	t    *tenant
	q    url.Values
	base string
}

func (g *gctx) need(roles, scopes []string) bool {
	if g.p.has(roles, scopes) {
		return true
	}
	denied(g.w)
	return false
}

func (g *gctx) eventual() bool {
	return strings.EqualFold(g.r.Header.Get("ConsistencyLevel"), "eventual")
}

func (g *gctx) countParam() bool { return strings.EqualFold(g.q.Get("$count"), "true") }

func (g *gctx) top(def int) (int, bool) {
	v := g.q.Get("$top")
	if v == "" {
		return def, true
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > 999 {
		unsupported(g.w, fmt.Sprintf("Invalid page size specified: '%s'. Must be between 1 and 999 inclusive.", v))
		return 0, false
	}
	return n, true
}

// skip decodes $skiptoken of a list (0 if absent).
func (g *gctx) skip() (uint64, bool) {
	v := g.q.Get("$skiptoken")
	if v == "" {
		return 0, true
	}
	pt, err := g.s.decodeToken(v)
	if err != nil || pt.kind != 'l' {
		graphError(g.w, 400, "Request_BadRequest", "The specified page token value is invalid or has expired.")
		return 0, false
	}
	return pt.pos, true
}

// nextLink is the request URL with a new $skiptoken, as Graph builds them.
func (g *gctx) nextLink(pos uint64) string {
	q := url.Values{}
	for k, v := range g.q {
		q[k] = v
	}
	q.Set("$skiptoken", g.s.encodeToken(pageToken{kind: 'l', pos: pos}))
	return g.base + g.r.URL.Path + "?" + strings.ReplaceAll(q.Encode(), "%24", "$")
}

// page writes a collection response from pre-encoded values.
func (g *gctx) page(context string, count int, next, delta string, values []byte) {
	b := make([]byte, 0, len(values)+512)
	b = append(b, `{"@odata.context":`...)
	b = appendStr(b, g.base+"/v1.0/$metadata#"+context)
	if count >= 0 {
		b = append(b, `,"@odata.count":`...)
		b = strconv.AppendInt(b, int64(count), 10)
	}
	if next != "" {
		b = append(b, `,"@odata.nextLink":`...)
		b = appendStr(b, next)
	}
	if delta != "" {
		b = append(b, `,"@odata.deltaLink":`...)
		b = appendStr(b, delta)
	}
	b = append(b, `,"value":[`...)
	b = append(b, values...)
	b = append(b, "]}"...)
	g.w.Header().Set("Content-Type", "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8")
	g.w.Header().Set("request-id", newGUID().String())
	_, _ = g.w.Write(b)
}

func (g *gctx) entity(context string, v []byte) {
	b := make([]byte, 0, len(v)+200)
	b = append(b, `{"@odata.context":`...)
	b = appendStr(b, g.base+"/v1.0/$metadata#"+context)
	if len(v) > 2 {
		b = append(b, ',')
		b = append(b, v[1:]...)
	} else {
		b = append(b, '}')
	}
	g.w.Header().Set("Content-Type", "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8")
	_, _ = g.w.Write(b)
}

// userSelect parses $select for users: the bit set and the context suffix.
func userSelect(v string) (uint32, string, error) {
	if v == "" {
		return defaultUserProps, "", nil
	}
	sel := fID
	var names []string
	for _, n := range strings.Split(v, ",") {
		n = strings.TrimSpace(n)
		found := false
		for _, p := range userProps {
			if strings.EqualFold(p.name, n) {
				sel |= p.bit
				names = append(names, p.name)
				found = true
			}
		}
		if !found {
			return 0, "", fmt.Errorf("Could not find a property named '%s' on type 'microsoft.graph.user'.", n)
		}
	}
	return sel, "(" + strings.Join(names, ",") + ")", nil
}

func groupSelect(v string) (uint32, error) {
	if v == "" {
		return allGroupProps, nil
	}
	sel := gID
	for _, n := range strings.Split(v, ",") {
		n = strings.TrimSpace(n)
		found := false
		for _, p := range groupProps {
			if strings.EqualFold(p.name, n) {
				sel |= p.bit
				found = true
			}
		}
		if !found {
			return 0, fmt.Errorf("Could not find a property named '%s' on type 'microsoft.graph.group'.", n)
		}
	}
	return sel, nil
}

var userFilterProps = []string{"id", "userPrincipalName", "displayName", "givenName", "surname", "mail", "jobTitle",
	"department", "mobilePhone", "usageLocation", "accountEnabled", "userType", "businessPhones", "assignedLicenses", "assignedPlans"}

var groupFilterProps = []string{"id", "displayName", "description", "mailNickname", "mail", "securityEnabled", "mailEnabled", "groupTypes"}

// parseFilterFor parses $filter and checks its properties and whether it
// needs advanced query headers; on failure it has written the 400.
func (g *gctx) parseFilterFor(resource string, allowed []string) (*filter, bool) {
	f, err := parseFilter(g.q.Get("$filter"))
	if err != nil {
		unsupported(g.w, err.Error())
		return nil, false
	}
	if f == nil {
		return nil, true
	}
	for _, p := range f.props {
		if !contains(allowed, p) {
			unsupported(g.w, fmt.Sprintf("Unsupported or invalid query filter clause specified for property '%s' of resource '%s'.", p, resource))
			return nil, false
		}
	}
	if f.advanced && !(g.eventual() && g.countParam()) {
		unsupported(g.w, "Operators 'ne', 'not' and 'endsWith' are advanced queries: add $count=true and the header ConsistencyLevel: eventual.")
		return nil, false
	}
	return f, true
}

func (g *gctx) organization() {
	if !g.need(permOrg, permOrgScp) {
		return
	}
	t := g.t
	t.mu.RLock()
	defer t.mu.RUnlock()
	var doms []map[string]any
	for _, d := range t.domains {
		doms = append(doms, map[string]any{"capabilities": "Email, OfficeCommunicationsOnline", "isDefault": d.isDefault,
			"isInitial": d.isInitial, "name": d.name, "type": "Managed"})
	}
	org := map[string]any{
		"id": t.idStr, "deletedDateTime": nil, "businessPhones": []string{}, "city": t.city, "country": nil,
		"countryLetterCode": t.country, "createdDateTime": time.Unix(t.created, 0).UTC().Format(time.RFC3339),
		"displayName": t.name, "preferredLanguage": "en", "tenantType": "AAD", "verifiedDomains": doms,
		"onPremisesSyncEnabled": nil,
	}
	v, _ := json.Marshal(org)
	g.page("organization", -1, "", "", v)
}

func (g *gctx) domains() {
	if !g.need(permDomains, []string{"Domain.Read.All", "Directory.Read.All"}) {
		return
	}
	t := g.t
	t.mu.RLock()
	defer t.mu.RUnlock()
	var vals []byte
	for i, d := range t.domains {
		if i > 0 {
			vals = append(vals, ',')
		}
		v, _ := json.Marshal(map[string]any{
			"authenticationType": "Managed", "availabilityStatus": nil, "id": d.name, "isAdminManaged": true,
			"isDefault": d.isDefault, "isInitial": d.isInitial, "isRoot": true, "isVerified": true,
			"passwordNotificationWindowInDays": 14, "passwordValidityPeriodInDays": 2147483647,
			"supportedServices": []string{"Email", "OfficeCommunicationsOnline"}, "state": nil,
		})
		vals = append(vals, v...)
	}
	g.page("domains", -1, "", "", vals)
}

func (g *gctx) subscribedSkus() {
	if !g.need(permSkus, []string{"Organization.Read.All", "Directory.Read.All"}) {
		return
	}
	t := g.t
	t.mu.RLock()
	var used [32]int
	var held uint32
	for i := range t.users {
		u := &t.users[i]
		if u.deleted() {
			continue
		}
		held |= u.skus
		for b := 0; b < len(Catalogue); b++ {
			if u.skus&(1<<uint(b)) != 0 {
				used[b]++
			}
		}
	}
	t.mu.RUnlock()
	var vals []byte
	for i, sku := range Catalogue {
		if held&(1<<uint(i)) == 0 {
			continue
		}
		var plans []map[string]any
		for _, p := range sku.Plans {
			plans = append(plans, map[string]any{"servicePlanId": p.ID, "servicePlanName": p.Name, "provisioningStatus": "Success", "appliesTo": "User"})
		}
		v, _ := json.Marshal(map[string]any{
			"accountId": t.idStr, "appliesTo": "User", "capabilityStatus": "Enabled", "consumedUnits": used[i],
			"id": t.idStr + "_" + sku.ID, "skuId": sku.ID, "skuPartNumber": sku.PartNumber,
			"prepaidUnits": map[string]int{"enabled": used[i] + 10, "suspended": 0, "warning": 0, "lockedOut": 0},
			"servicePlans": plans,
		})
		if len(vals) > 0 {
			vals = append(vals, ',')
		}
		vals = append(vals, v...)
	}
	g.page("subscribedSkus", -1, "", "", vals)
}

func (g *gctx) users(segs []string) {
	if len(segs) == 0 || segs[0] == "" {
		if g.r.Method != http.MethodGet {
			graphError(g.w, 405, "Request_BadRequest", "The simulator does not support creating users through Graph; use its admin API.")
			return
		}
		g.listUsers(false)
		return
	}
	switch segs[0] {
	case "delta", "delta()":
		g.usersDelta()
		return
	case "$count":
		g.listUsers(true)
		return
	}
	g.userSub(segs[0], segs[1:])
}

// userSub serves /users/{id}/... and /me/...
func (g *gctx) userSub(key string, segs []string) {
	g.t.mu.RLock()
	ui, ok := g.t.findUser(key)
	g.t.mu.RUnlock()
	if !ok {
		notFound(g.w, key)
		return
	}
	self := g.p.delegated && g.p.user == g.t.users[ui].id.String()
	if len(segs) == 0 {
		if !self && !g.need(permUsers, permUsersScp) {
			return
		}
		sel, ctx, err := userSelect(g.q.Get("$select"))
		if err != nil {
			graphError(g.w, 400, "Request_BadRequest", err.Error())
			return
		}
		g.t.mu.RLock()
		v := appendUser(nil, &g.t.users[ui], sel, false)
		g.t.mu.RUnlock()
		g.entity("users"+ctx+"/$entity", v)
		return
	}
	switch {
	case segs[0] == "contacts":
		if !(self && g.p.has(nil, permContacts)) && !(!g.p.delegated && g.p.has(permContacts, nil)) {
			denied(g.w)
			return
		}
		g.contacts(ui)
	case segs[0] == "teamwork" && len(segs) >= 2 && segs[1] == "installedApps":
		g.installedApps(ui, segs[2:])
	default:
		graphError(g.w, 400, "BadRequest", fmt.Sprintf("Resource not found for the segment '%s'.", segs[0]))
	}
}

func (g *gctx) listUsers(countOnly bool) {
	if !g.need(permUsers, permUsersScp) {
		return
	}
	sel, selCtx, err := userSelect(g.q.Get("$select"))
	if err != nil {
		graphError(g.w, 400, "Request_BadRequest", err.Error())
		return
	}
	top, ok := g.top(100)
	if !ok {
		return
	}
	f, ok := g.parseFilterFor("User", userFilterProps)
	if !ok {
		return
	}
	if g.q.Has("$orderby") {
		unsupported(g.w, "The simulator does not support $orderby on users; page in directory order.")
		return
	}
	var terms []searchTerm
	var and bool
	if g.q.Has("$search") {
		if !g.eventual() {
			unsupported(g.w, "Request with $search query parameter only works through MSGraph with a special request header: 'ConsistencyLevel: eventual'")
			return
		}
		if terms, and, err = parseSearch(g.q.Get("$search"), "displayName", "mail", "userPrincipalName", "givenName", "surname"); err != nil {
			unsupported(g.w, err.Error())
			return
		}
	}
	if countOnly && !g.eventual() {
		unsupported(g.w, "Count is not supported without the header ConsistencyLevel: eventual.")
		return
	}
	pos, ok := g.skip()
	if !ok {
		return
	}
	t := g.t
	match := func(u *user) (bool, error) {
		if u.deleted() {
			return false, nil
		}
		if len(terms) > 0 {
			hit := and
			for _, st := range terms {
				v, _ := userObj{u}.prop(st.prop)
				sv, _ := v.(string)
				m := searchMatch(sv, st.val)
				if and {
					hit = hit && m
				} else {
					hit = hit || m
				}
			}
			if !hit {
				return false, nil
			}
		}
		if f == nil {
			return true, nil
		}
		return f.match(userObj{u})
	}
	t.mu.RLock()
	count := -1
	if (countOnly || g.countParam()) && g.eventual() && pos == 0 {
		count = 0
		for i := range t.users {
			if ok, err := match(&t.users[i]); err != nil {
				t.mu.RUnlock()
				unsupported(g.w, err.Error())
				return
			} else if ok {
				count++
			}
		}
	}
	if countOnly {
		t.mu.RUnlock()
		g.w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(g.w, strconv.Itoa(count))
		return
	}
	vals := make([]byte, 0, top*600)
	n := 0
	i := pos
	for ; i < uint64(len(t.users)) && n < top; i++ {
		u := &t.users[i]
		ok, err := match(u)
		if err != nil {
			t.mu.RUnlock()
			unsupported(g.w, err.Error())
			return
		}
		if !ok {
			continue
		}
		if n > 0 {
			vals = append(vals, ',')
		}
		vals = appendUser(vals, u, sel, false)
		n++
	}
	more := i < uint64(len(t.users))
	t.mu.RUnlock()
	next := ""
	if more {
		next = g.nextLink(i)
	}
	g.page("users"+selCtx, count, next, "", vals)
}

// usersDelta serves /users/delta: an initial round over every user, then
// deltaLinks that replay the tenant's change log.
func (g *gctx) usersDelta() {
	if !g.need(permUsers, permUsersScp) {
		return
	}
	t := g.t
	s := g.s
	deltaURL := g.base + "/v1.0/users/delta"
	var pt pageToken
	switch {
	case g.q.Get("$skiptoken") != "" || (g.q.Get("$deltatoken") != "" && g.q.Get("$deltatoken") != "latest"):
		raw := g.q.Get("$skiptoken")
		if raw == "" {
			raw = g.q.Get("$deltatoken")
		}
		var err error
		pt, err = s.decodeToken(raw)
		if err != nil || pt.kind == 'l' {
			graphError(g.w, 400, "Request_BadRequest", "The delta or skip token is not valid.")
			return
		}
	default:
		if g.q.Has("$top") || g.q.Has("$orderby") || g.q.Has("$expand") {
			unsupported(g.w, "$top, $orderby and $expand are not supported with delta queries on users.")
			return
		}
		if g.q.Has("$filter") {
			unsupported(g.w, "The simulator supports no $filter on users/delta.")
			return
		}
		sel, _, err := userSelect(g.q.Get("$select"))
		if err != nil {
			graphError(g.w, 400, "Request_BadRequest", err.Error())
			return
		}
		t.mu.RLock()
		pt = pageToken{kind: 'i', epoch: t.epoch, sel: sel, to: uint64(len(t.users)), from: t.seq()}
		t.mu.RUnlock()
		if g.q.Get("$deltatoken") == "latest" {
			pt.kind = 'd'
			pt.to = pt.from
		}
	}
	t.mu.RLock()
	defer t.mu.RUnlock()
	if pt.epoch != t.epoch {
		sel := make([]string, 0)
		for _, p := range userProps {
			if pt.sel&p.bit != 0 {
				sel = append(sel, p.name)
			}
		}
		g.w.Header().Set("Location", deltaURL+"?$select="+strings.Join(sel, ","))
		graphError(g.w, 410, "syncStateNotFound", "The sync state for this delta token was not found or has expired. Restart synchronization without a token.")
		return
	}
	ctx := "users"
	size := g.s.opts.DeltaPageSize
	vals := make([]byte, 0, size*600)
	n := 0
	next, delta := "", ""
	switch pt.kind {
	case 'd': // a stored deltaLink: start the changes window at its sequence
		pt = pageToken{kind: 'c', epoch: pt.epoch, sel: pt.sel, from: pt.to, to: t.seq()}
		fallthrough
	case 'c':
		changed := t.changedSince(pt.from, pt.to, pt.sel)
		i := pt.pos
		for ; i < uint64(len(changed)) && n < size; i++ {
			if n > 0 {
				vals = append(vals, ',')
			}
			vals = appendDeltaUser(vals, &t.users[changed[i]], pt.sel)
			n++
		}
		if i < uint64(len(changed)) {
			pt.pos = i
			next = deltaURL + "?$skiptoken=" + s.encodeToken(pt)
		} else {
			delta = deltaURL + "?$deltatoken=" + s.encodeToken(pageToken{kind: 'd', epoch: pt.epoch, sel: pt.sel, to: pt.to})
		}
	case 'i':
		i := pt.pos
		for ; i < pt.to && n < size; i++ {
			u := &t.users[i]
			if u.deleted() {
				continue
			}
			if n > 0 {
				vals = append(vals, ',')
			}
			vals = appendUser(vals, u, pt.sel, false)
			n++
		}
		if i < pt.to {
			pt.pos = i
			next = deltaURL + "?$skiptoken=" + s.encodeToken(pt)
		} else {
			delta = deltaURL + "?$deltatoken=" + s.encodeToken(pageToken{kind: 'd', epoch: pt.epoch, sel: pt.sel, to: pt.from})
		}
	}
	g.page(ctx, -1, next, delta, vals)
}

// changedSince lists, once each in first-change order, the users changed in
// the log window (from, to] in a property of sel, or added or removed.
func (t *tenant) changedSince(from, to uint64, sel uint32) []int32 {
	if to > uint64(len(t.log)) {
		to = uint64(len(t.log))
	}
	if from >= to {
		return nil
	}
	seen := make(map[int32]struct{}, to-from)
	var out []int32
	for _, c := range t.log[from:to] {
		if c.mask&(sel|fRemoved) == 0 {
			continue
		}
		if _, dup := seen[c.user]; dup {
			continue
		}
		seen[c.user] = struct{}{}
		out = append(out, c.user)
	}
	return out
}

// appendDeltaUser writes a changed user, or its @removed stub.
func appendDeltaUser(b []byte, u *user, sel uint32) []byte {
	if !u.deleted() {
		return appendUser(b, u, sel, false)
	}
	b = append(b, `{"id":"`...)
	b = u.id.append(b)
	if u.flags&uHardDeleted != 0 {
		return append(b, `","@removed":{"reason":"deleted"}}`...)
	}
	return append(b, `","@removed":{"reason":"changed"}}`...)
}

func (g *gctx) groups(segs []string) {
	if !g.need(permGroups, permGroups) {
		return
	}
	if len(segs) == 0 || segs[0] == "" {
		g.listGroups()
		return
	}
	t := g.t
	t.mu.RLock()
	gi, ok := -1, false
	if id, isID := parseGUID(segs[0]); isID {
		gi, ok = t.groupByID[id]
	}
	t.mu.RUnlock()
	if !ok {
		notFound(g.w, segs[0])
		return
	}
	if len(segs) == 1 {
		sel, err := groupSelect(g.q.Get("$select"))
		if err != nil {
			graphError(g.w, 400, "Request_BadRequest", err.Error())
			return
		}
		t.mu.RLock()
		v := appendGroup(nil, t.groups[gi], sel, false, t.defaultDomain())
		t.mu.RUnlock()
		g.entity("groups/$entity", v)
		return
	}
	switch segs[1] {
	case "members", "transitiveMembers":
		usersOnly := false
		if len(segs) == 3 {
			if segs[2] != "microsoft.graph.user" {
				unsupported(g.w, fmt.Sprintf("The cast '%s' is not supported here.", segs[2]))
				return
			}
			if !(g.eventual() && g.countParam()) {
				unsupported(g.w, "An OData cast on members is an advanced query: add $count=true and the header ConsistencyLevel: eventual.")
				return
			}
			usersOnly = true
		}
		g.members(gi, segs[1] == "transitiveMembers", usersOnly)
	default:
		graphError(g.w, 400, "BadRequest", fmt.Sprintf("Resource not found for the segment '%s'.", segs[1]))
	}
}

func (g *gctx) listGroups() {
	sel, err := groupSelect(g.q.Get("$select"))
	if err != nil {
		graphError(g.w, 400, "Request_BadRequest", err.Error())
		return
	}
	top, ok := g.top(100)
	if !ok {
		return
	}
	f, ok := g.parseFilterFor("Group", groupFilterProps)
	if !ok {
		return
	}
	var terms []searchTerm
	var and bool
	if g.q.Has("$search") {
		if !g.eventual() {
			unsupported(g.w, "Request with $search query parameter only works through MSGraph with a special request header: 'ConsistencyLevel: eventual'")
			return
		}
		if terms, and, err = parseSearch(g.q.Get("$search"), "displayName", "description", "mailNickname"); err != nil {
			unsupported(g.w, err.Error())
			return
		}
	}
	pos, ok := g.skip()
	if !ok {
		return
	}
	t := g.t
	t.mu.RLock()
	dom := t.defaultDomain()
	match := func(gr *group) (bool, error) {
		if len(terms) > 0 {
			hit := and
			for _, st := range terms {
				v, _ := groupObj{gr, dom}.prop(st.prop)
				sv, _ := v.(string)
				m := searchMatch(sv, st.val)
				if and {
					hit = hit && m
				} else {
					hit = hit || m
				}
			}
			if !hit {
				return false, nil
			}
		}
		return f.match(groupObj{gr, dom})
	}
	count := -1
	if g.countParam() && g.eventual() && pos == 0 {
		count = 0
		for _, gr := range t.groups {
			if ok, _ := match(gr); ok {
				count++
			}
		}
	}
	var vals []byte
	n := 0
	i := pos
	for ; i < uint64(len(t.groups)) && n < top; i++ {
		ok, err := match(t.groups[i])
		if err != nil {
			t.mu.RUnlock()
			unsupported(g.w, err.Error())
			return
		}
		if !ok {
			continue
		}
		if n > 0 {
			vals = append(vals, ',')
		}
		vals = appendGroup(vals, t.groups[i], sel, false, dom)
		n++
	}
	more := i < uint64(len(t.groups))
	t.mu.RUnlock()
	next := ""
	if more {
		next = g.nextLink(i)
	}
	g.page("groups", count, next, "", vals)
}

// members serves members and transitiveMembers of a group.
func (g *gctx) members(gi int, transitive, usersOnly bool) {
	top, ok := g.top(100)
	if !ok {
		return
	}
	// $select applies to every member type; a name must exist on one.
	usel, gsel := defaultUserProps, uint32(allGroupProps)
	if v := g.q.Get("$select"); v != "" {
		usel, gsel = fID, gID
		for _, n := range strings.Split(v, ",") {
			n = strings.TrimSpace(n)
			found := false
			for _, p := range userProps {
				if strings.EqualFold(p.name, n) {
					usel |= p.bit
					found = true
				}
			}
			for _, p := range groupProps {
				if strings.EqualFold(p.name, n) {
					gsel |= p.bit
					found = true
				}
			}
			if !found {
				graphError(g.w, 400, "Request_BadRequest", fmt.Sprintf("Could not find a property named '%s' on type 'microsoft.graph.directoryObject'.", n))
				return
			}
		}
	}
	// Without a user-read permission Graph shows only the type and id.
	if !g.p.has(permUsers, permUsersScp) {
		usel = fID
	}
	pos, ok := g.skip()
	if !ok {
		return
	}
	t := g.t
	t.mu.RLock()
	var refs []ref
	if transitive {
		refs = t.flatten(gi)
	} else {
		refs = t.directMembers(gi)
	}
	dom := t.defaultDomain()
	count := -1
	if g.countParam() && g.eventual() && pos == 0 {
		count = 0
		for _, m := range refs {
			if m >= 0 || !usersOnly {
				count++
			}
		}
	}
	vals := make([]byte, 0, top*400)
	n := 0
	i := pos
	for ; i < uint64(len(refs)) && n < top; i++ {
		m := refs[i]
		if m < 0 && usersOnly {
			continue
		}
		if n > 0 {
			vals = append(vals, ',')
		}
		if m >= 0 {
			vals = appendUser(vals, &t.users[m], usel, true)
		} else {
			vals = appendGroup(vals, t.groups[-m-1], gsel, true, dom)
		}
		n++
	}
	more := i < uint64(len(refs))
	t.mu.RUnlock()
	next := ""
	if more {
		next = g.nextLink(i)
	}
	ctx := "directoryObjects"
	if usersOnly {
		ctx = "users"
	}
	g.page(ctx, count, next, "", vals)
}

// ---- Teams app catalog ----

type appJSON struct {
	ID                 string       `json:"id"`
	ExternalID         string       `json:"externalId"`
	DisplayName        string       `json:"displayName"`
	DistributionMethod string       `json:"distributionMethod"`
	AppDefinitions     []appDefJSON `json:"appDefinitions,omitempty"`
}

type appDefJSON struct {
	ID                   string  `json:"id"`
	TeamsAppID           string  `json:"teamsAppId"`
	AzureADAppID         *string `json:"azureADAppId"`
	DisplayName          string  `json:"displayName"`
	Version              string  `json:"version"`
	PublishingState      string  `json:"publishingState"`
	ShortDescription     string  `json:"shortDescription"`
	Description          string  `json:"description"`
	LastModifiedDateTime string  `json:"lastModifiedDateTime"`
}

func appToJSON(a *teamsApp, expand bool) appJSON {
	out := appJSON{ID: a.id.String(), ExternalID: a.externalID, DisplayName: a.displayName, DistributionMethod: a.distribution}
	if expand {
		for _, d := range a.defs {
			var aad *string
			if d.azureADAppID != "" {
				v := d.azureADAppID
				aad = &v
			}
			out.AppDefinitions = append(out.AppDefinitions, appDefJSON{ID: d.id.String(), TeamsAppID: out.ID,
				AzureADAppID: aad, DisplayName: d.displayName, Version: d.version, PublishingState: d.state,
				ShortDescription: d.description, Description: d.description,
				LastModifiedDateTime: time.Unix(d.modified, 0).UTC().Format(time.RFC3339)})
		}
		if out.AppDefinitions == nil {
			out.AppDefinitions = []appDefJSON{}
		}
	}
	return out
}

type appObj struct{ a *teamsApp }

func (o appObj) prop(name string) (any, bool) {
	switch name {
	case "id":
		return o.a.id.String(), true
	case "externalId":
		return nullable(o.a.externalID), true
	case "displayName":
		return o.a.displayName, true
	case "distributionMethod":
		return o.a.distribution, true
	}
	return nil, false
}

func expands(q url.Values, name string) bool {
	for _, e := range strings.Split(q.Get("$expand"), ",") {
		e, _, _ = strings.Cut(strings.TrimSpace(e), "(")
		if strings.EqualFold(e, name) {
			return true
		}
	}
	return false
}

func (g *gctx) teamsApps(segs []string) {
	t := g.t
	if len(segs) == 0 || segs[0] == "" {
		switch g.r.Method {
		case http.MethodGet:
			if !g.need(permCatalogRead, permCatalogRead) {
				return
			}
			f, ok := g.parseFilterFor("teamsApp", []string{"id", "externalId", "displayName", "distributionMethod"})
			if !ok {
				return
			}
			exp := expands(g.q, "appDefinitions")
			t.mu.RLock()
			var vals []byte
			for _, a := range t.catalog {
				ok, err := f.match(appObj{a})
				if err != nil {
					t.mu.RUnlock()
					unsupported(g.w, err.Error())
					return
				}
				if !ok {
					continue
				}
				v, _ := json.Marshal(appToJSON(a, exp))
				if len(vals) > 0 {
					vals = append(vals, ',')
				}
				vals = append(vals, v...)
			}
			t.mu.RUnlock()
			g.page("appCatalogs/teamsApps", -1, "", "", vals)
		case http.MethodPost:
			g.publish(nil)
		default:
			graphError(g.w, 405, "BadRequest", "Method not allowed.")
		}
		return
	}
	id, ok := parseGUID(segs[0])
	t.mu.RLock()
	var app *teamsApp
	for _, a := range t.catalog {
		if ok && a.id == id {
			app = a
		}
	}
	t.mu.RUnlock()
	if app == nil {
		graphError(g.w, 404, "NotFound", fmt.Sprintf("App with id '%s' was not found in the app catalog.", segs[0]))
		return
	}
	switch {
	case len(segs) == 1 && g.r.Method == http.MethodGet:
		if !g.need(permCatalogRead, permCatalogRead) {
			return
		}
		t.mu.RLock()
		v, _ := json.Marshal(appToJSON(app, expands(g.q, "appDefinitions")))
		t.mu.RUnlock()
		g.entity("appCatalogs/teamsApps/$entity", v)
	case len(segs) == 1 && g.r.Method == http.MethodDelete:
		if !g.delegatedPublisher() {
			return
		}
		t.mu.Lock()
		for i, a := range t.catalog {
			if a == app {
				t.catalog = append(t.catalog[:i], t.catalog[i+1:]...)
				break
			}
		}
		for ui, list := range t.installs {
			kept := list[:0]
			for _, in := range list {
				if in.app != app {
					kept = append(kept, in)
				}
			}
			t.installs[ui] = kept
		}
		t.mu.Unlock()
		g.w.WriteHeader(204)
	case len(segs) == 2 && segs[1] == "appDefinitions" && g.r.Method == http.MethodPost:
		g.publish(app)
	default:
		graphError(g.w, 400, "BadRequest", "Unsupported request on the app catalog.")
	}
}

// delegatedPublisher enforces Graph's rule that the org catalog is written
// only with a signed-in user's token.
func (g *gctx) delegatedPublisher() bool {
	if !g.p.delegated {
		graphError(g.w, 403, "Forbidden", "Application permissions are not supported for this API: publishing to the organization's app catalog needs a delegated (signed-in user) token.")
		return false
	}
	if !g.p.has(nil, permCatalogPub) {
		denied(g.w)
		return false
	}
	return true
}

var (
	reGUID   = regexp.MustCompile(`^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$`)
	reColor  = regexp.MustCompile(`^#[0-9a-fA-F]{6}$`)
	reHTTPS  = regexp.MustCompile(`^[Hh][Tt][Tt][Pp][Ss]?://`)
	reSemver = regexp.MustCompile(`^\d+\.\d+\.\d+`)
)

type manifestProblem struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Target  string `json:"target"`
}

// parsePackage reads a Teams app package and validates its manifest the
// way the catalog does (required fields, patterns, icons present).
func parsePackage(body []byte) (map[string]any, []manifestProblem) {
	zr, err := zip.NewReader(bytes.NewReader(body), int64(len(body)))
	if err != nil {
		return nil, []manifestProblem{{"InvalidPackage", "The app package is not a valid zip file.", "package"}}
	}
	files := map[string]*zip.File{}
	for _, f := range zr.File {
		files[f.Name] = f
	}
	mf := files["manifest.json"]
	if mf == nil {
		return nil, []manifestProblem{{"ManifestNotFound", "manifest.json was not found at the root of the package.", "manifest.json"}}
	}
	rc, err := mf.Open()
	if err != nil {
		return nil, []manifestProblem{{"InvalidPackage", "manifest.json cannot be read.", "manifest.json"}}
	}
	raw, _ := io.ReadAll(io.LimitReader(rc, 1<<20))
	rc.Close()
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, []manifestProblem{{"InvalidJson", "manifest.json is not valid JSON: " + err.Error(), "manifest.json"}}
	}
	var probs []manifestProblem
	req := func(obj map[string]any, prefix string, keys ...string) {
		for _, k := range keys {
			if v, ok := obj[k]; !ok || v == nil || v == "" {
				probs = append(probs, manifestProblem{"SchemaError_Required", "Required properties are missing from object: " + k, prefix + k})
			}
		}
	}
	str := func(obj map[string]any, k string) string { s, _ := obj[k].(string); return s }
	sub := func(k string) map[string]any { o, _ := m[k].(map[string]any); return o }
	req(m, "", "manifestVersion", "version", "id", "developer", "name", "description", "icons", "accentColor")
	if id := str(m, "id"); id != "" && !reGUID.MatchString(id) {
		probs = append(probs, manifestProblem{"SchemaError_Pattern", "String does not match the GUID pattern.", "id"})
	}
	if v := str(m, "version"); v != "" && !reSemver.MatchString(v) {
		probs = append(probs, manifestProblem{"SchemaError_Pattern", "version must be a semantic version.", "version"})
	}
	if c := str(m, "accentColor"); c != "" && !reColor.MatchString(c) {
		probs = append(probs, manifestProblem{"SchemaError_Pattern", "accentColor must look like #RRGGBB.", "accentColor"})
	}
	if d := sub("developer"); d != nil {
		req(d, "developer.", "name", "websiteUrl", "privacyUrl", "termsOfUseUrl")
		for _, k := range []string{"websiteUrl", "privacyUrl", "termsOfUseUrl"} {
			if v := str(d, k); v != "" && !reHTTPS.MatchString(v) {
				probs = append(probs, manifestProblem{"SchemaError_Pattern", k + " must be an https URL.", "developer." + k})
			}
		}
	}
	if n := sub("name"); n != nil {
		req(n, "name.", "short", "full")
		if len(str(n, "short")) > 30 {
			probs = append(probs, manifestProblem{"SchemaError_MaxLength", "name.short is longer than 30 characters.", "name.short"})
		}
	}
	if d := sub("description"); d != nil {
		req(d, "description.", "short", "full")
		if len(str(d, "short")) > 80 {
			probs = append(probs, manifestProblem{"SchemaError_MaxLength", "description.short is longer than 80 characters.", "description.short"})
		}
	}
	if ic := sub("icons"); ic != nil {
		req(ic, "icons.", "color", "outline")
		for _, k := range []string{"color", "outline"} {
			if f := str(ic, k); f != "" && files[f] == nil {
				probs = append(probs, manifestProblem{"IconNotFound", fmt.Sprintf("Failed to find icon %q file in the package.", f), "icons." + k})
			}
		}
	}
	if tabs, ok := m["staticTabs"].([]any); ok && len(tabs) > 16 {
		probs = append(probs, manifestProblem{"SchemaError_MaxItems", "staticTabs holds at most 16 items.", "staticTabs"})
	}
	return m, probs
}

func (g *gctx) publish(existing *teamsApp) {
	if !g.delegatedPublisher() {
		return
	}
	ct := g.r.Header.Get("Content-Type")
	if !strings.HasPrefix(ct, "application/zip") {
		graphError(g.w, 415, "UnsupportedMediaType", "The app package must be sent as application/zip.")
		return
	}
	body, err := io.ReadAll(io.LimitReader(g.r.Body, 10<<20))
	if err != nil {
		graphError(g.w, 400, "BadRequest", "The app package could not be read.")
		return
	}
	m, probs := parsePackage(body)
	if len(probs) > 0 {
		graphErrorInner(g.w, 400, "BadRequest", probs[0].Target+" | "+probs[0].Message,
			map[string]any{"code": "UnableToParseTeamsAppManifest", "details": probs})
		return
	}
	t := g.t
	t.mu.RLock()
	ui, _ := t.findUser(g.p.user)
	admin := ui >= 0 && t.users[ui].flags&uAdmin != 0
	t.mu.RUnlock()
	review := strings.EqualFold(g.q.Get("requiresReview"), "true")
	if !admin && !review {
		graphError(g.w, 403, "Forbidden", "Only a Teams service administrator can publish an app directly; send requiresReview=true to submit it for review.")
		return
	}
	name, _ := m["name"].(map[string]any)
	desc, _ := m["description"].(map[string]any)
	wai, _ := m["webApplicationInfo"].(map[string]any)
	def := &appDef{id: newGUID(), state: "published", modified: g.s.now().Unix()}
	def.version, _ = m["version"].(string)
	def.displayName, _ = name["short"].(string)
	def.description, _ = desc["short"].(string)
	if wai != nil {
		def.azureADAppID, _ = wai["id"].(string)
	}
	if review {
		def.state = "submitted"
	}
	ext, _ := m["id"].(string)
	t.mu.Lock()
	defer t.mu.Unlock()
	if existing != nil {
		if !strings.EqualFold(existing.externalID, ext) {
			graphError(g.w, 400, "BadRequest", "The manifest id of an update must match the app's externalId.")
			return
		}
		existing.defs = append(existing.defs, def)
		existing.displayName = def.displayName
		v, _ := json.Marshal(appToJSON(&teamsApp{id: existing.id, externalID: existing.externalID, displayName: def.displayName,
			distribution: existing.distribution, defs: []*appDef{def}}, true).AppDefinitions[0])
		g.w.Header().Set("Content-Type", "application/json")
		g.w.WriteHeader(201)
		_, _ = g.w.Write(v)
		return
	}
	for _, a := range t.catalog {
		if strings.EqualFold(a.externalID, ext) {
			graphError(g.w, 409, "Conflict", fmt.Sprintf("An app with the manifest id '%s' already exists in the app catalog (id %s); update it through its appDefinitions.", ext, a.id))
			return
		}
	}
	app := &teamsApp{id: newGUID(), externalID: ext, displayName: def.displayName, distribution: "organization", defs: []*appDef{def}}
	t.catalog = append(t.catalog, app)
	v, _ := json.Marshal(appToJSON(app, false))
	b := append([]byte(`{"@odata.context":`), appendStr(nil, g.base+"/v1.0/$metadata#appCatalogs/teamsApps/$entity")...)
	b = append(b, ',')
	b = append(b, v[1:]...)
	g.w.Header().Set("Content-Type", "application/json")
	g.w.Header().Set("Location", g.base+"/v1.0/appCatalogs/teamsApps/"+app.id.String())
	g.w.WriteHeader(201)
	_, _ = g.w.Write(b)
}

// ---- per-user app installations ----

type installObj struct{ in install }

func (o installObj) prop(name string) (any, bool) {
	switch name {
	case "id":
		return o.in.id, true
	case "teamsApp":
		return appObj{o.in.app}, true
	}
	return nil, false
}

func installID(u guid, a guid) string {
	return b64([]byte(u.String() + "##" + a.String()))
}

func (g *gctx) installedApps(ui int32, segs []string) {
	t := g.t
	switch {
	case len(segs) == 0 && g.r.Method == http.MethodGet:
		if !g.need(permInstallRead, permInstallReadScp) {
			return
		}
		f, ok := g.parseFilterFor("userScopeTeamsAppInstallation", []string{"id", "teamsApp"})
		if !ok {
			return
		}
		expApp, expDef := expands(g.q, "teamsApp"), expands(g.q, "teamsAppDefinition")
		t.mu.RLock()
		var vals []byte
		for _, in := range t.installs[ui] {
			if ok, err := f.match(installObj{in}); err != nil {
				t.mu.RUnlock()
				unsupported(g.w, err.Error())
				return
			} else if !ok {
				continue
			}
			vals = g.appendInstall(vals, in, expApp, expDef)
		}
		t.mu.RUnlock()
		g.page("users('"+t.users[ui].id.String()+"')/teamwork/installedApps", -1, "", "", vals)
	case len(segs) == 0 && g.r.Method == http.MethodPost:
		g.install(ui)
	case len(segs) == 1 && (g.r.Method == http.MethodDelete || g.r.Method == http.MethodGet):
		write := g.r.Method == http.MethodDelete
		if write && !g.need(permInstallWrite, permInstallWriteScp) {
			return
		}
		if !write && !g.need(permInstallRead, permInstallReadScp) {
			return
		}
		t.mu.Lock()
		list := t.installs[ui]
		idx := -1
		for i, in := range list {
			if in.id == segs[0] {
				idx = i
			}
		}
		if idx < 0 {
			t.mu.Unlock()
			graphError(g.w, 404, "NotFound", fmt.Sprintf("No installation '%s' for this user.", segs[0]))
			return
		}
		in := list[idx]
		if !write {
			v := g.appendInstall(nil, in, expands(g.q, "teamsApp"), expands(g.q, "teamsAppDefinition"))
			t.mu.Unlock()
			g.entity("users('"+t.users[ui].id.String()+"')/teamwork/installedApps/$entity", v)
			return
		}
		if !g.selfAllowed(in.app) {
			t.mu.Unlock()
			return
		}
		t.installs[ui] = append(list[:idx:idx], list[idx+1:]...)
		t.mu.Unlock()
		g.w.WriteHeader(204)
	default:
		graphError(g.w, 400, "BadRequest", "Unsupported request on installedApps.")
	}
}

func (g *gctx) appendInstall(b []byte, in install, expApp, expDef bool) []byte {
	m := map[string]any{"id": in.id}
	if expApp {
		m["teamsApp"] = appToJSON(in.app, false)
	}
	if expDef && len(in.app.defs) > 0 {
		m["teamsAppDefinition"] = appToJSON(in.app, true).AppDefinitions[len(in.app.defs)-1]
	}
	v, _ := json.Marshal(m)
	if len(b) > 0 {
		b = append(b, ',')
	}
	return append(b, v...)
}

// selfAllowed applies the ...SelfForUser permissions: an app holding only
// those may manage installations of itself (the catalog app whose
// webApplicationInfo.id is the caller's client id).
func (g *gctx) selfAllowed(a *teamsApp) bool {
	full := g.p.has([]string{"TeamsAppInstallation.ReadWriteForUser.All"}, []string{"TeamsAppInstallation.ReadWriteForUser"})
	if full {
		return true
	}
	for _, d := range a.defs {
		if strings.EqualFold(d.azureADAppID, g.p.appID) {
			return true
		}
	}
	graphError(g.w, 403, "Forbidden", "The caller may install only its own app (TeamsAppInstallation.ReadWriteSelfForUser): the app's webApplicationInfo.id differs from the caller's client id.")
	return false
}

func (g *gctx) install(ui int32) {
	if !g.need(permInstallWrite, permInstallWriteScp) {
		return
	}
	var body map[string]any
	if err := json.NewDecoder(io.LimitReader(g.r.Body, 1<<16)).Decode(&body); err != nil {
		graphError(g.w, 400, "BadRequest", "The request body is not valid JSON.")
		return
	}
	bind, _ := body["teamsApp@odata.bind"].(string)
	if bind == "" {
		graphError(g.w, 400, "BadRequest", "The request body must contain 'teamsApp@odata.bind'.")
		return
	}
	appID := bind[strings.LastIndex(bind, "/")+1:]
	appID = strings.TrimSuffix(strings.TrimPrefix(appID, "teamsApps('"), "')")
	t := g.t
	t.mu.Lock()
	defer t.mu.Unlock()
	var app *teamsApp
	for _, a := range t.catalog {
		if strings.EqualFold(a.id.String(), appID) {
			app = a
		}
	}
	if app == nil {
		graphError(g.w, 404, "NotFound", fmt.Sprintf("App with id '%s' was not found in the app catalog.", appID))
		return
	}
	published := false
	for _, d := range app.defs {
		if d.state == "published" {
			published = true
		}
	}
	if !published {
		graphError(g.w, 403, "Forbidden", "The app is not published in the organization's catalog yet (pending review).")
		return
	}
	if !g.selfAllowed(app) {
		return
	}
	u := &t.users[ui]
	cur, _ := userPlans(u)
	if cur&(1<<uint(planIdx[PlanTeams.ID])) == 0 {
		graphError(g.w, 403, "Forbidden", fmt.Sprintf("User '%s' has no Microsoft Teams licence, so apps cannot be installed for them.", u.id))
		return
	}
	for _, in := range t.installs[ui] {
		if in.app == app {
			graphError(g.w, 409, "Conflict", "The app is already installed for this user.")
			return
		}
	}
	t.installs[ui] = append(t.installs[ui], install{id: installID(u.id, app.id), app: app})
	g.w.WriteHeader(201)
}

// ---- contacts ----

type contactJSON struct {
	ETag                 string         `json:"@odata.etag"`
	ID                   string         `json:"id"`
	CreatedDateTime      string         `json:"createdDateTime"`
	LastModifiedDateTime string         `json:"lastModifiedDateTime"`
	DisplayName          string         `json:"displayName"`
	GivenName            *string        `json:"givenName"`
	Surname              *string        `json:"surname"`
	CompanyName          *string        `json:"companyName"`
	JobTitle             *string        `json:"jobTitle"`
	BusinessPhones       []string       `json:"businessPhones"`
	HomePhones           []string       `json:"homePhones"`
	MobilePhone          *string        `json:"mobilePhone"`
	EmailAddresses       []emailAddress `json:"emailAddresses"`
}

type emailAddress struct {
	Name    string `json:"name"`
	Address string `json:"address"`
}

func strPtr(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func (g *gctx) contacts(ui int32) {
	top := 10
	if v := g.q.Get("$top"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			graphError(g.w, 400, "ErrorInvalidUrlQuery", "The value of $top must be between 1 and 1000.")
			return
		}
		top = n
	}
	skip := 0
	if v := g.q.Get("$skip"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			graphError(g.w, 400, "ErrorInvalidUrlQuery", "The value of $skip is not valid.")
			return
		}
		skip = n
	}
	t := g.t
	t.mu.RLock()
	list := t.contacts[ui]
	uid := t.users[ui].id.String()
	var vals []byte
	end := skip + top
	if end > len(list) {
		end = len(list)
	}
	for i := skip; i < end; i++ {
		c := list[i]
		if c.business == nil {
			c.business = []string{}
		}
		if c.home == nil {
			c.home = []string{}
		}
		ems := []emailAddress{}
		for _, e := range c.emails {
			ems = append(ems, emailAddress{c.display, e})
		}
		ts := time.Unix(c.createdAt, 0).UTC().Format(time.RFC3339)
		v, _ := json.Marshal(contactJSON{ETag: `W/"` + b64(c.id[:6]) + `"`, ID: b64(c.id[:]), CreatedDateTime: ts,
			LastModifiedDateTime: ts, DisplayName: c.display, GivenName: strPtr(c.given), Surname: strPtr(c.surname),
			CompanyName: strPtr(c.company), JobTitle: strPtr(c.jobTitle), BusinessPhones: c.business, HomePhones: c.home,
			MobilePhone: strPtr(c.mobile), EmailAddresses: ems})
		if len(vals) > 0 {
			vals = append(vals, ',')
		}
		vals = append(vals, v...)
	}
	more := end < len(list)
	t.mu.RUnlock()
	next := ""
	if more {
		q := url.Values{}
		for k, v := range g.q {
			q[k] = v
		}
		q.Set("$skip", strconv.Itoa(end))
		q.Set("$top", strconv.Itoa(top))
		next = g.base + g.r.URL.Path + "?" + strings.ReplaceAll(q.Encode(), "%24", "$")
	}
	g.page("users('"+uid+"')/contacts", -1, next, "", vals)
}
