package api

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/pbx2teams/pbx2teams"
)

// TestCallLog reads A1's call log through the API: the list with its
// filters and pages, one call with its advice, the SIP trace, and that B1
// reaches none of it.
func TestCallLog(t *testing.T) {
	f := newFixtureOn(t, newEnvNoSync(t, Options{}))
	ctx := f.ctx
	t0 := f.call.StartedAt
	failed := &pbx2teams.CallRecord{AccountID: f.a1.ID, UserID: f.bob.ID, Direction: pbx2teams.DirectionOutbound,
		Route: pbx2teams.RouteDirectRouting, From: "+441632960102", To: "2099", StartedAt: t0.Add(10 * time.Minute),
		EndedAt: t0.Add(10 * time.Minute), Result: pbx2teams.ResultRejected, PBXStatus: 404, TeamsStatus: 0,
		EndedBy: "pbx", Advice: "The PBX does not know extension 2099; check the number dialled."}
	if err := f.svc.RecordCall(ctx, failed, nil); err != nil {
		t.Fatal(err)
	}
	base := "/api/v1/accounts/" + f.a1.ID + "/calls"

	var page pbx2teams.CallPage
	f.a1Viewer.ok(200, "GET", base, nil, &page)
	if len(page.Calls) != 2 || page.Calls[0].ID != failed.ID || page.Calls[1].ID != f.call.ID || page.NextCursor != "" {
		t.Fatalf("call log = %+v", page)
	}
	if c := page.Calls[1]; c.From != "+441632960900" || c.Duration() != time.Minute || c.Media.PacketsFromPBX != 3000 || c.UserID != f.alice.ID {
		t.Errorf("answered call in the list = %+v", c)
	}
	// Filters and paging.
	page = pbx2teams.CallPage{}
	f.a1Key.ok(200, "GET", base+"?user="+url.QueryEscape(f.alice.ID), nil, &page)
	if len(page.Calls) != 1 || page.Calls[0].ID != f.call.ID {
		t.Errorf("alice's calls = %+v", page.Calls)
	}
	page = pbx2teams.CallPage{}
	f.a1Key.ok(200, "GET", base+"?result=rejected", nil, &page)
	if len(page.Calls) != 1 || page.Calls[0].ID != failed.ID {
		t.Errorf("rejected calls = %+v", page.Calls)
	}
	page = pbx2teams.CallPage{}
	f.a1Key.ok(200, "GET", base+"?limit=1", nil, &page)
	if len(page.Calls) != 1 || page.Calls[0].ID != failed.ID || page.NextCursor == "" {
		t.Fatalf("first page = %+v", page)
	}
	next := page.NextCursor
	page = pbx2teams.CallPage{}
	f.a1Key.ok(200, "GET", base+"?limit=1&cursor="+url.QueryEscape(next), nil, &page)
	if len(page.Calls) != 1 || page.Calls[0].ID != f.call.ID || page.NextCursor != "" {
		t.Fatalf("second page = %+v", page)
	}
	if r := f.a1Key.call("GET", base+"?result=exploded", nil); r.status != http.StatusBadRequest || r.err(t).Details[0].Field != "result" {
		t.Errorf("bad result filter: %s", r)
	}
	if r := f.a1Key.call("GET", base+"?limit=1000", nil); r.status != http.StatusBadRequest {
		t.Errorf("limit 1000: %s", r)
	}
	if r := f.a1Key.call("GET", base+"?cursor=garbage", nil); r.status != http.StatusUnprocessableEntity {
		t.Errorf("bad cursor: %s", r)
	}

	// One call, its advice; the trace.
	var c pbx2teams.CallRecord
	f.a1Viewer.ok(200, "GET", base+"/"+failed.ID, nil, &c)
	if c.Advice != failed.Advice || c.PBXStatus != 404 || c.Result != pbx2teams.ResultRejected {
		t.Errorf("failed call = %+v", c)
	}
	var tr pbx2teams.CallTrace
	f.a1Viewer.ok(200, "GET", base+"/"+f.call.ID+"/trace", nil, &tr)
	if tr.CallRecordID != f.call.ID || tr.CallID != "fixture-call@pbx" || len(tr.Messages) != 2 ||
		tr.Messages[1].Summary != "SIP/2.0 200 OK" || tr.Messages[1].Direction != "out" || tr.Messages[1].Leg != "pbx" {
		t.Errorf("trace = %+v", tr)
	}
	if r := f.a1Key.call("GET", base+"/"+failed.ID+"/trace", nil); r.status != http.StatusNotFound || !strings.Contains(r.err(t).Message, "7 days") {
		t.Errorf("trace of a call without one: %s", r)
	}

	// B1 cannot reach A1's call, not even through its own account.
	for _, path := range []string{
		base, base + "/" + f.call.ID, base + "/" + f.call.ID + "/trace",
		"/api/v1/accounts/" + f.b1.ID + "/calls/" + f.call.ID, "/api/v1/accounts/" + f.b1.ID + "/calls/" + f.call.ID + "/trace",
	} {
		r := f.b1Key.call("GET", path, nil)
		if r.status != http.StatusNotFound || strings.Contains(string(r.body), f.call.From) {
			t.Errorf("B1 GET %s: %s", path, r)
		}
	}
	var bpage pbx2teams.CallPage
	f.b1Key.ok(200, "GET", "/api/v1/accounts/"+f.b1.ID+"/calls", nil, &bpage)
	if len(bpage.Calls) != 0 {
		t.Errorf("B1's log shows %+v", bpage.Calls)
	}
}

// TestSBCLabelAPI: the Teams settings carry the SBC label and FQDN; PATCH
// changes the label, refusing a bad form and another customer's label.
func TestSBCLabelAPI(t *testing.T) {
	f := newFixtureOn(t, newEnvNoSync(t, Options{SBCBaseFQDN: "sbc.provider.example"}))
	a1 := "/api/v1/accounts/" + f.a1.ID + "/teams"
	b1 := "/api/v1/accounts/" + f.b1.ID + "/teams"
	var ts teamsView
	f.a1Viewer.ok(200, "GET", a1, nil, &ts)
	if ts.SBCLabel != "customer-alpha-one" || ts.SBCFQDN != "customer-alpha-one.sbc.provider.example" {
		t.Fatalf("A1's Teams settings: label %q, fqdn %q", ts.SBCLabel, ts.SBCFQDN)
	}
	r := f.a1Key.call("PATCH", a1, m{"sbc_label": "alpha_one"})
	if r.status != http.StatusUnprocessableEntity || !strings.Contains(r.err(t).Message, "lowercase letters a-z, digits 0-9 and '-'") {
		t.Fatalf("bad label: %s", r)
	}
	if r := f.a1Viewer.call("PATCH", a1, m{"sbc_label": "alpha"}); r.status != http.StatusForbidden {
		t.Fatalf("viewer's change: %s", r)
	}
	f.a1Admin.ok(200, "PATCH", a1, m{"sbc_label": "Alpha"}, &ts)
	if ts.SBCLabel != "alpha" || ts.SBCFQDN != "alpha.sbc.provider.example" {
		t.Fatalf("after the change: %q %q", ts.SBCLabel, ts.SBCFQDN)
	}
	if r := f.b1Key.call("PATCH", b1, m{"sbc_label": "alpha"}); r.status != http.StatusConflict || !strings.Contains(r.err(t).Message, "already used by another customer") {
		t.Fatalf("B1 taking A1's label: %s", r)
	}
	if acc, err := f.svc.AccountBySBCLabel(f.ctx, "alpha"); err != nil || acc.ID != f.a1.ID {
		t.Fatalf("AccountBySBCLabel = %+v, %v", acc, err)
	}
	// Without a base FQDN configured, no sbc_fqdn.
	g := newFixtureOn(t, newEnvNoSync(t, Options{}))
	r = g.a1Key.call("GET", "/api/v1/accounts/"+g.a1.ID+"/teams", nil)
	if r.status != 200 || strings.Contains(string(r.body), "sbc_fqdn") || !strings.Contains(string(r.body), `"sbc_label":"customer-alpha-one"`) {
		t.Fatalf("without a base FQDN: %s", r)
	}
}
