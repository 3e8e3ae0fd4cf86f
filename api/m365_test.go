package api

import (
	"bytes"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/pbx2teams/pbx2teams"
	"github.com/pbx2teams/pbx2teams/msim"
)

// TestSyncThroughAPI runs a Microsoft 365 sync of customer A1 through the
// API against the simulator on loopback: Sync Now answers 202 with the
// running job, a second request meanwhile 409, the status follows the run,
// and the finished job (with its diagnostic log), the synced users, the
// tenant's and a user's readiness, the group search and the Phone App
// package are read back. Outsiders and viewers cannot start it.
func TestSyncThroughAPI(t *testing.T) {
	f := newFixture(t)
	base := acct(f.a1.ID) + "/teams"
	// Hold the first user page so that the run is still going when the
	// second request comes (no timing is asserted: the run simply lasts
	// at least this long).
	f.sim.InjectFault(msim.Fault{PathPrefix: "/v1.0/users", Method: "GET", DelayMS: 1500, Count: 1})

	// Outsiders and viewers are refused and start nothing.
	for _, c := range []*client{f.b1Key, f.b1Sess, f.partnerBKey} {
		if r := c.call("POST", base+"/sync", m{}); r.status != 404 {
			t.Fatalf("sync of A1 as %s: %s", c.name, r)
		}
	}
	for _, c := range []*client{f.a1Viewer, f.a1ViewerKey} {
		if r := c.call("POST", base+"/sync", m{}); r.status != 403 || r.err(t).Code != pbx2teams.EForbidden {
			t.Fatalf("sync of A1 as viewer %s: %s", c.name, r)
		}
	}
	// A session without its CSRF token cannot start a sync either.
	noCSRF := *f.a1Admin
	noCSRF.csrf = ""
	if r := noCSRF.call("POST", base+"/sync", nil); r.status != 403 {
		t.Fatalf("sync without CSRF token: %s", r)
	}
	if jobs, _ := f.svc.SyncJobs(f.ctx, pbx2teams.System, f.a1.ID, 10); len(jobs) != 1 {
		t.Fatalf("refused requests created jobs: %+v", jobs)
	}

	var job pbx2teams.SyncJob
	r := f.a1Admin.ok(202, "POST", base+"/sync", m{"diagnostic": true, "full": true}, &job)
	if job.Status != pbx2teams.SyncRunning || !job.Diagnostic || job.Mode != pbx2teams.SyncModeFull || job.AccountID != f.a1.ID {
		t.Fatalf("started job: %s", r.body)
	}
	if loc := r.header.Get("Location"); loc != base+"/sync/jobs/"+job.ID {
		t.Fatalf("Location = %q", loc)
	}
	// A second one while it runs: 409 with the service's explanation.
	r = f.a1Key.call("POST", base+"/sync", nil)
	if r.status != 409 {
		t.Fatalf("second sync: %s", r)
	}
	if eb := r.err(t); eb.Code != pbx2teams.EConflict || !strings.Contains(eb.Message, "already running") {
		t.Fatalf("second sync: %s", r.body)
	}
	var st syncStatusResponse
	f.a1Viewer.ok(200, "GET", base+"/sync/status", nil, &st)
	if !st.Running || st.Job == nil || st.Job.ID != job.ID {
		t.Fatalf("status while running: %+v", st)
	}

	// Follow the status until the run ends (bounded by the test context).
	for st.Running {
		select {
		case <-f.ctx.Done():
			t.Fatalf("the sync did not finish: %+v", st)
		case <-time.After(50 * time.Millisecond):
		}
		st = syncStatusResponse{}
		f.a1Key.ok(200, "GET", base+"/sync/status", nil, &st)
	}
	if st.Job == nil || st.Job.ID != job.ID || st.Job.Status != pbx2teams.SyncSucceeded || st.Job.FinishedAt == nil {
		t.Fatalf("status after the run: %+v", st)
	}

	var list syncJobList
	f.a1Key.ok(200, "GET", base+"/sync/jobs?limit=10", nil, &list)
	if len(list.Jobs) != 2 || list.Jobs[0].ID != job.ID || list.Jobs[1].ID != f.job.ID {
		t.Fatalf("jobs: %+v", list)
	}
	if list.Jobs[0].Log != "" {
		t.Errorf("the job list carries logs: %q", list.Jobs[0].Log)
	}
	var done pbx2teams.SyncJob
	f.a1Viewer.ok(200, "GET", base+"/sync/jobs/"+job.ID, nil, &done)
	if done.Status != pbx2teams.SyncSucceeded || done.Counts.Seen == 0 || done.Counts.Added == 0 {
		t.Fatalf("finished job: %+v", done)
	}
	if !strings.Contains(done.Log, "GRAPH>") {
		t.Errorf("diagnostic job log has no Graph requests:\n%s", done.Log)
	}
	if r := f.b1Key.call("GET", acct(f.b1.ID)+"/teams/sync/jobs/"+job.ID, nil); r.status != 404 {
		t.Errorf("A1's job through B1: %s", r)
	}
	if r := f.a1Key.call("GET", base+"/sync/jobs?limit=0", nil); r.status != 400 {
		t.Errorf("limit=0: %s", r)
	}

	// The directory's users arrived.
	var page userPage
	f.a1Key.ok(200, "GET", acct(f.a1.ID)+"/users?search=contoso.example&limit=500", nil, &page)
	if page.Total == 0 || len(page.Users) == 0 {
		t.Fatalf("no synced users: %+v", page)
	}
	var person *pbx2teams.User
	for _, u := range page.Users {
		if u.Kind == pbx2teams.KindPerson && u.Enabled && !u.Deleted {
			person = u.User
			break
		}
	}
	if person == nil {
		t.Fatalf("no enabled person among the synced users: %+v", page.Users)
	}

	// Readiness of the tenant and of that user.
	var rd pbx2teams.Readiness
	f.a1Viewer.ok(200, "GET", base+"/readiness", nil, &rd)
	if len(rd.Checks) == 0 || rd.Checks[0].Key != "connected" || rd.Checks[0].State != pbx2teams.CheckPass || rd.Checks[0].Detail != "Contoso" {
		t.Fatalf("tenant readiness: %+v", rd)
	}
	var urd userReadinessResponse
	f.a1Key.ok(200, "GET", acct(f.a1.ID)+"/users/"+person.ID+"/readiness", nil, &urd)
	if urd.User.User == nil || urd.User.ID != person.ID || len(urd.Checks) == 0 {
		t.Fatalf("user readiness: %+v", urd)
	}
	for _, c := range urd.Checks {
		if c.Key == "" || c.State == "" || (c.State == pbx2teams.CheckFail && c.Fix == "" && c.Detail == "") {
			t.Errorf("user readiness check without outcome or explanation: %+v", c)
		}
	}
	if r := f.b1Key.call("GET", acct(f.b1.ID)+"/users/"+person.ID+"/readiness", nil); r.status != 404 {
		t.Errorf("A1's user readiness through B1: %s", r)
	}

	// Group search (Large Tenant Mode picker).
	var gl groupList
	f.a1Key.ok(200, "GET", base+"/groups?q="+url.QueryEscape("Teams Voice"), nil, &gl)
	found := false
	for _, g := range gl.Groups {
		found = found || (g.DisplayName == "Teams Voice Users" && g.ID != "")
	}
	if !found {
		t.Fatalf("group search: %+v", gl)
	}
	if r := f.a1Key.call("GET", base+"/groups?q="+strings.Repeat("x", 101), nil); r.status != 400 {
		t.Errorf("overlong q: %s", r)
	}

	// The Phone App's Teams package.
	r = f.a1Viewer.raw("GET", base+"/phone-app.zip", "", nil)
	if r.status != 200 || r.header.Get("Content-Type") != "application/zip" || !bytes.HasPrefix(r.body, []byte("PK\x03\x04")) {
		t.Fatalf("phone-app.zip: %d %s %.40q", r.status, r.header.Get("Content-Type"), r.body)
	}
	if !strings.Contains(r.header.Get("Content-Disposition"), "attachment") {
		t.Errorf("phone-app.zip Content-Disposition = %q", r.header.Get("Content-Disposition"))
	}

	// A body the API cannot read is refused before anything starts.
	if r := f.a1Key.raw("POST", base+"/sync", "application/json", []byte(`{"ful":true}`)); r.status != 400 {
		t.Errorf("misspelt field: %s", r)
	}
	if jobs, _ := f.svc.SyncJobs(f.ctx, pbx2teams.System, f.a1.ID, 10); len(jobs) != 2 {
		t.Errorf("jobs after the refused request: %d", len(jobs))
	}
}

// TestM365NotConfigured: on a node without the sync engine every
// Microsoft 365 endpoint answers 503 unavailable saying so, and the rest of
// the API works.
func TestM365NotConfigured(t *testing.T) {
	f := newFixtureOn(t, newEnvNoSync(t, Options{}))
	paths := map[string]string{
		"POST /teams/sync":         "",
		"GET /teams/sync/status":   "",
		"GET /teams/sync/jobs":     "",
		"GET /teams/sync/jobs/JOB": "",
		"GET /teams/groups?q=a":    "",
		"GET /teams/readiness":     "",
		"GET /teams/phone-app.zip": "",
		"GET /users/UID/readiness": "",
	}
	for k := range paths {
		method, p, _ := strings.Cut(k, " ")
		p = acct(f.a1.ID) + strings.NewReplacer("JOB", f.job.ID, "UID", f.alice.ID).Replace(p)
		r := f.a1Key.call(method, p, nil)
		if r.status != 503 {
			t.Errorf("%s %s: %s", method, p, r)
			continue
		}
		eb := r.err(t)
		if eb.Code != pbx2teams.EUnavailable || !strings.Contains(eb.Message, "Microsoft 365 is not configured on this node") {
			t.Errorf("%s %s: %s", method, p, r.body)
		}
		if r.header.Get("Retry-After") == "" {
			t.Errorf("%s %s: no Retry-After", method, p)
		}
	}
	var ts pbx2teams.TeamsSettings
	f.a1Key.ok(200, "GET", acct(f.a1.ID)+"/teams", nil, &ts)
	if ts.TenantName != "Contoso" {
		t.Fatalf("teams settings: %+v", ts)
	}
	if jobs, _ := f.svc.SyncJobs(f.ctx, pbx2teams.System, f.a1.ID, 10); len(jobs) != 1 {
		t.Fatalf("a sync started without an engine: %+v", jobs)
	}
}
