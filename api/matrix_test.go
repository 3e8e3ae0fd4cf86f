package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/pbx2teams/pbx2teams"
)

// matrixCase says how to call one endpoint in the permission matrix: the
// body of a write (valid, so that a refusal can only come from the
// permission check) and who legitimately calls it.
type matrixCase struct {
	body        func(n int) (contentType string, body []byte)
	legit       func(f *fixture) *client
	legitStatus int
	// prepare, if set, brings the fixture into the state the legitimate
	// call needs, just before it is made.
	prepare func(f *fixture)
}

func jsonBody(v any) func(int) (string, []byte) {
	return func(int) (string, []byte) {
		b, _ := json.Marshal(v)
		return "application/json", b
	}
}

// matrixCases has one entry per route ("METHOD path" as in the route
// table). TestPermissionMatrix fails for a route without one, so a new
// endpoint cannot escape the matrix.
var matrixCases = map[string]matrixCase{
	"GET /api/v1/openapi.json": {legitStatus: 200},
	"GET /api/v1/me":           {legitStatus: 200},
	"GET /api/v1/accounts":     {legitStatus: 200},
	"POST /api/v1/accounts": {legitStatus: 201, legit: func(f *fixture) *client { return f.partnerAKey },
		body: func(n int) (string, []byte) {
			return "application/json", []byte(fmt.Sprintf(`{"kind":"customer","name":"Matrix customer %d"}`, n))
		}},
	"GET /api/v1/accounts/{id}":          {legitStatus: 200},
	"GET /api/v1/accounts/{id}/children": {legitStatus: 200},
	"GET /api/v1/accounts/{id}/admins":   {legitStatus: 200},
	"POST /api/v1/accounts/{id}/admins": {legitStatus: 201, body: func(n int) (string, []byte) {
		return "application/json", []byte(fmt.Sprintf(`{"email":"matrix%d@example.com","role":"viewer"}`, n))
	}},
	"GET /api/v1/accounts/{id}/licences": {legitStatus: 200},
	"PUT /api/v1/accounts/{id}/licences/{sku}": {legitStatus: 200, legit: func(f *fixture) *client { return f.partnerAKey },
		body: jsonBody(m{"quantity": 20})},
	"GET /api/v1/accounts/{id}/pbx":         {legitStatus: 200},
	"PUT /api/v1/accounts/{id}/pbx":         {legitStatus: 200, body: jsonBody(m{"domain": "pbx.matrix.example", "transport": "tcp"})},
	"GET /api/v1/accounts/{id}/teams":       {legitStatus: 200},
	"PATCH /api/v1/accounts/{id}/teams":     {legitStatus: 200, body: jsonBody(m{"large_tenant_mode": true})},
	"GET /api/v1/accounts/{id}/users":       {legitStatus: 200},
	"GET /api/v1/accounts/{id}/users/{uid}": {legitStatus: 200},
	"PUT /api/v1/accounts/{id}/users/{uid}/config": {legitStatus: 200,
		body: jsonBody(m{"type": "standard", "sip_username": "1001", "password": "pw-matrix", "phone_number": "+441632960101"})},
	"DELETE /api/v1/accounts/{id}/users/{uid}/config":  {legitStatus: 200},
	"POST /api/v1/accounts/{id}/users/{uid}/test-call": {legitStatus: 200, body: jsonBody(m{}), prepare: (*fixture).makeAlicePhoneApp},
	"GET /api/v1/accounts/{id}/users.csv":              {legitStatus: 200},
	"POST /api/v1/accounts/{id}/users.csv": {legitStatus: 200, body: func(int) (string, []byte) {
		return "text/csv", []byte("email,sip_username,password,phone_number\nbob@a1.example,1002,pw-bob,+441632960102\n")
	}},
	"GET /api/v1/accounts/{id}/calls":              {legitStatus: 200},
	"GET /api/v1/accounts/{id}/calls/{call}":       {legitStatus: 200},
	"GET /api/v1/accounts/{id}/calls/{call}/trace": {legitStatus: 200},
	"GET /api/v1/accounts/{id}/audit":              {legitStatus: 200},
	"GET /api/v1/accounts/{id}/apikeys":            {legitStatus: 200},
	"POST /api/v1/accounts/{id}/apikeys":           {legitStatus: 201, body: jsonBody(m{"name": "matrix key"})},
	"DELETE /api/v1/accounts/{id}/apikeys/{kid}":   {legitStatus: 204},

	"GET /api/v1/accounts/{id}/users/{uid}/readiness": {legitStatus: 200},
	"GET /api/v1/accounts/{id}/teams/readiness":       {legitStatus: 200},
	"GET /api/v1/accounts/{id}/teams/groups":          {legitStatus: 200},
	"GET /api/v1/accounts/{id}/teams/phone-app.zip":   {legitStatus: 200},
	"GET /api/v1/accounts/{id}/teams/sync/status":     {legitStatus: 200},
	"GET /api/v1/accounts/{id}/teams/sync/jobs":       {legitStatus: 200},
	"GET /api/v1/accounts/{id}/teams/sync/jobs/{job}": {legitStatus: 200},
	"POST /api/v1/accounts/{id}/teams/sync":           {legitStatus: 202, body: jsonBody(m{"full": true})},
}

// TestPermissionMatrix calls every endpoint, driven by the route table:
//   - as admins and API keys of customer B1 and of partner B, aimed at
//     partner A's and customer A1's resources (and at A1's users and keys
//     through their own account): every call is refused with 404 or 403, no
//     response names A's accounts, and nothing changes;
//   - as a viewer (session and key) of A1 and of partner A: every write is
//     refused with 403 and nothing changes, every read of A1 succeeds;
//   - as the legitimate admin: every call succeeds.
func TestPermissionMatrix(t *testing.T) {
	f := newFixture(t)
	ctx := f.ctx
	// Keys to revoke, one per account (so that revoking one does not lock
	// out a client of the test).
	victims := map[string]string{}
	for _, acc := range []string{f.partnerA.ID, f.a1.ID, f.partnerB.ID, f.b1.ID} {
		_, k, err := f.svc.CreateAPIKey(ctx, f.operator, acc, "victim", "")
		if err != nil {
			t.Fatal(err)
		}
		victims[acc] = k.ID
	}
	paViewer := f.key(f.partnerA.ID, pbx2teams.RoleViewer)
	paViewerSess := f.session(f.partnerA.ID, "viewer@alpha.example", pbx2teams.RoleViewer)
	// Secrets of A that must not show up in a refused response.
	leaks := []string{f.partnerA.ID, f.a1.ID, f.partnerA.Name, f.a1.Name, f.alice.UPN, victims[f.a1.ID], f.job.ID, f.call.ID, f.call.From}

	fill := func(path, accountID, userID, keyID string) string {
		return strings.NewReplacer("{id}", accountID, "{uid}", userID, "{sku}", string(pbx2teams.SKUPBXUser), "{kid}", keyID, "{job}", f.job.ID, "{call}", f.call.ID).Replace(path)
	}
	n, refused := 0, 0
	send := func(c *client, rt route, path, parentID string) response {
		t.Helper()
		mc := matrixCases[rt.method+" "+rt.path]
		if mc.body == nil {
			return c.raw(rt.method, path, "", nil)
		}
		n++
		ct, body := mc.body(n)
		if rt.path == Prefix+"/accounts" && rt.method == "POST" && parentID != "" {
			var v map[string]any
			_ = json.Unmarshal(body, &v)
			v["parent_id"] = parentID
			body, _ = json.Marshal(v)
		}
		return c.raw(rt.method, path, ct, body)
	}

	routes := (&server{}).routes()
	for _, rt := range routes {
		if _, ok := matrixCases[rt.method+" "+rt.path]; !ok {
			t.Fatalf("route %s %s has no permission matrix case; add one to matrixCases", rt.method, rt.path)
		}
		if rt.method != "GET" && matrixCases[rt.method+" "+rt.path].body == nil && rt.method != "DELETE" {
			t.Fatalf("write route %s %s needs a body in matrixCases", rt.method, rt.path)
		}
	}

	outsiders := []*client{f.b1Key, f.b1Sess, f.partnerBKey, f.partnerBSess}
	before := f.snapshot()
	for _, rt := range routes {
		key := rt.method + " " + rt.path
		for _, c := range outsiders {
			own := f.b1.ID // a customer the outsider may reach
			type attempt struct{ path, parent string }
			var attempts []attempt
			switch {
			case rt.public:
				continue
			case !strings.Contains(rt.path, "{id}"):
				// Not aimed at an account: it must simply not show A.
				if rt.method == "POST" {
					attempts = []attempt{{rt.path, f.partnerA.ID}, {rt.path, f.a1.ID}}
					break
				}
				r := send(c, rt, rt.path, "")
				if r.status != 200 {
					t.Fatalf("%s as %s: %s", key, c.name, r)
				}
				for _, s := range leaks {
					if strings.Contains(string(r.body), s) {
						t.Fatalf("%s as %s shows %q of A: %s", key, c.name, s, r.body)
					}
				}
				continue
			default:
				for _, target := range []string{f.partnerA.ID, f.a1.ID} {
					attempts = append(attempts, attempt{path: fill(rt.path, target, f.alice.ID, victims[target])})
				}
				// A's user, key, sync job or call reached through the outsider's
				// own account.
				if strings.Contains(rt.path, "{uid}") || strings.Contains(rt.path, "{kid}") || strings.Contains(rt.path, "{job}") || strings.Contains(rt.path, "{call}") {
					attempts = append(attempts, attempt{path: fill(rt.path, own, f.alice.ID, victims[f.a1.ID])})
				}
			}
			for _, a := range attempts {
				r := send(c, rt, a.path, a.parent)
				if r.status != http.StatusNotFound && r.status != http.StatusForbidden {
					t.Errorf("%s %s as %s: got %s, want 404 or 403", rt.method, a.path, c.name, r)
					continue
				}
				refused++
				eb := r.err(t)
				for _, s := range leaks[2:] {
					if strings.Contains(eb.Message, s) {
						t.Errorf("%s %s as %s: the refusal names %q: %s", rt.method, a.path, c.name, s, eb.Message)
					}
				}
			}
		}
	}
	f.assertUnchanged(before, "outsiders' requests")
	t.Logf("%d outsider requests over %d routes refused", refused, len(routes))

	// Viewers: writes refused with 403, reads allowed.
	viewers := []*client{f.a1Viewer, f.a1ViewerKey, paViewer, paViewerSess}
	before = f.snapshot()
	for _, rt := range routes {
		if rt.public {
			continue
		}
		for _, c := range viewers {
			path := fill(rt.path, f.a1.ID, f.alice.ID, victims[f.a1.ID])
			r := send(c, rt, path, f.a1.ID)
			if safeMethod(rt.method) {
				if r.status != 200 {
					t.Errorf("%s %s as viewer %s: %s", rt.method, path, c.name, r)
				}
				continue
			}
			if r.status != http.StatusForbidden || r.err(t).Code != pbx2teams.EForbidden {
				t.Errorf("%s %s as viewer %s: got %s, want 403", rt.method, path, c.name, r)
			}
		}
	}
	f.assertUnchanged(before, "viewers' writes")
	if got := f.caller.calls(); len(got) != 0 {
		t.Fatalf("refused test calls rang %v", got)
	}

	// The legitimate admins succeed.
	for _, rt := range routes {
		mc := matrixCases[rt.method+" "+rt.path]
		c := f.a1Key
		if mc.legit != nil {
			c = mc.legit(f)
		}
		if mc.prepare != nil {
			mc.prepare(f)
		}
		path := fill(rt.path, f.a1.ID, f.alice.ID, victims[f.a1.ID])
		r := send(c, rt, path, f.partnerA.ID)
		if r.status != mc.legitStatus {
			t.Errorf("%s %s as %s: got %s, want %d", rt.method, path, c.name, r, mc.legitStatus)
		}
	}
	// The legitimate writes did change things (so the refusals above were
	// refusals and not no-ops).
	f.eng.Wait()
	jobs, err := f.svc.SyncJobs(ctx, pbx2teams.System, f.a1.ID, 10)
	// (It ran in groups mode, as the PATCH above turned Large Tenant Mode
	// on; with no group chosen it failed, saying so.)
	if err != nil || len(jobs) != 2 || jobs[0].ID == f.job.ID || jobs[0].FinishedAt == nil || jobs[0].Mode != pbx2teams.SyncModeGroups {
		t.Errorf("the admin's sync did not run: %v %+v", err, jobs)
	}
	if got := f.caller.calls(); len(got) != 1 || got[0] != f.alice.UPN {
		t.Errorf("the admin's test call rang %v, want alice once", got)
	}
	if u := f.user(f.bob.ID); u.SIPUsername != "1002" {
		t.Errorf("bob was not imported: %+v", u)
	}
	ls, _ := f.svc.Licences(ctx, pbx2teams.System, f.a1.ID)
	if ls[0].Quantity != 20 {
		t.Errorf("licence not set: %+v", ls)
	}
	keys, _ := f.svc.APIKeys(ctx, pbx2teams.System, f.a1.ID)
	for _, k := range keys {
		if k.ID == victims[f.a1.ID] && k.RevokedAt == nil {
			t.Error("victim key not revoked")
		}
	}
}
