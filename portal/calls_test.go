package portal_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/pbx2teams/pbx2teams"
	"github.com/pbx2teams/pbx2teams/portal"
)

// recordCalls stores, as the B2BUA would, an answered call of the user with
// a trace and a failed call with advice in acc; it returns both.
func recordCalls(t *testing.T, svc *pbx2teams.Service, acc string, u *pbx2teams.User) (answered, failed *pbx2teams.CallRecord) {
	t.Helper()
	ctx := context.Background()
	t0 := time.Now().Add(-2 * time.Hour).UTC().Truncate(time.Second)
	answered = &pbx2teams.CallRecord{AccountID: acc, UserID: u.ID, Direction: pbx2teams.DirectionInbound, Route: pbx2teams.RouteDirectRouting,
		From: "+441632960900", FromName: "Reception", To: "+441632960201", StartedAt: t0, AnsweredAt: t0.Add(5 * time.Second),
		EndedAt: t0.Add(125 * time.Second), Result: pbx2teams.ResultAnswered, PBXStatus: 200, TeamsStatus: 200, EndedBy: "teams",
		TeamsPeer: "sip.pstnhub.microsoft.com", AddedDelay: 2 * time.Millisecond,
		Media: pbx2teams.CallMedia{Codec: "PCMU", PacketsFromPBX: 6000, PacketsToPBX: 5990, PacketsFromMS: 5990, PacketsToMS: 6000,
			LostFromPBX: 3, LostFromMS: 7, JitterPBX: 1200 * time.Microsecond, JitterMS: 2500 * time.Microsecond}}
	invite := "INVITE sip:+441632960201@sip.pstnhub.microsoft.com SIP/2.0\r\nVia: SIP/2.0/TLS 192.0.2.1:5061\r\nContent-Type: application/sdp\r\n\r\nv=0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|2^31\r\n"
	msgs := []struct {
		leg, dir, summary, full string
		at                      time.Duration
	}{
		{"pbx", "in", "INVITE sip:+441632960201@contoso.sbc.example SIP/2.0", "", 0},
		{"pbx", "out", "SIP/2.0 100 Trying", "", 2 * time.Millisecond},
		{"teams", "out", "INVITE sip:+441632960201@sip.pstnhub.microsoft.com SIP/2.0", invite, 3 * time.Millisecond},
		{"teams", "in", "SIP/2.0 180 Ringing", "", time.Second},
		{"pbx", "out", "SIP/2.0 180 Ringing", "", time.Second + time.Millisecond},
		{"teams", "in", "SIP/2.0 200 OK", "", 5 * time.Second},
		{"pbx", "out", "SIP/2.0 200 OK", "", 5*time.Second + time.Millisecond},
		{"teams", "in", "BYE sip:pbx2teams SIP/2.0", "", 125 * time.Second},
	}
	tr := &pbx2teams.CallTrace{CallID: "7f3a9@pbx.contoso.example"}
	for _, m := range msgs {
		tr.Messages = append(tr.Messages, pbx2teams.TraceMessage{At: t0.Add(m.at), Leg: m.leg, Direction: m.dir, Summary: m.summary, Message: m.full})
	}
	must(t, svc.RecordCall(ctx, answered, tr))
	failed = &pbx2teams.CallRecord{AccountID: acc, UserID: u.ID, Direction: pbx2teams.DirectionInbound, Route: pbx2teams.RouteDirectRouting,
		From: "+441632960901", To: "+441632960201", StartedAt: t0.Add(time.Hour), EndedAt: t0.Add(time.Hour + time.Second),
		Result: pbx2teams.ResultDeclined, PBXStatus: 603, TeamsStatus: 403, EndedBy: "teams",
		Advice: "Teams refused the call (403): the user has no Teams Phone licence or is not enabled for Direct Routing. Check the user's voice settings in the Teams admin center."}
	must(t, svc.RecordCall(ctx, failed, nil))
	return answered, failed
}

func TestCallsTab(t *testing.T) {
	t.Parallel()
	f := newFixture(t, portal.Options{SBCBaseFQDN: "sbc.provider.example"})
	alice := f.usersA[0]
	answered, failed := recordCalls(t, f.svc, f.custA.ID, alice)

	// A viewer reads the log, one user's calls and the details.
	c := f.signedIn("viewer@contoso.example")
	res, body := c.get("/a/" + f.custA.ID + "/calls")
	wantStatus(t, res, body, 200)
	wantContains(t, body, `data-call="`+answered.ID+`"`, `data-call="`+failed.ID+`"`, "Alice", "+441632960900", "Declined", "603 Decline", "403 Forbidden", "2:00")
	if strings.Index(body, failed.ID) > strings.Index(body, answered.ID) {
		t.Error("the log is not newest first")
	}
	res, body = c.get("/a/" + f.custA.ID + "/calls?result=answered")
	wantStatus(t, res, body, 200)
	wantContains(t, body, answered.ID)
	wantLacks(t, body, `data-call="`+failed.ID+`"`)
	res, body = c.get("/a/" + f.custA.ID + "/calls?user=" + url.QueryEscape(f.usersA[1].UPN))
	wantStatus(t, res, body, 200)
	wantContains(t, body, "No call matches the filter", "Calls of")
	res, body = c.get("/a/" + f.custA.ID + "/calls?user=nobody@contoso.example")
	wantContains(t, body, "No user nobody@contoso.example")
	res, body = c.get("/a/" + f.custA.ID + "/calls/" + failed.ID)
	wantStatus(t, res, body, 200)
	wantContains(t, body, failed.Advice, "No SIP trace is kept for this call")
	res, body = c.get("/a/" + f.custA.ID + "/calls/" + answered.ID)
	wantStatus(t, res, body, 200)
	wantContains(t, body, `data-leg="teams" data-dir="in"`, "SIP/2.0 180 Ringing", "inline:[removed]", "6000", "2.5 ms")
	wantLacks(t, body, "WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz")
	if n := strings.Count(body, `class="step `); n != 8 {
		t.Errorf("ladder has %d steps, want 8", n)
	}
	// The users tab links to each user's calls.
	res, body = c.get("/a/" + f.custA.ID + "/users")
	wantContains(t, body, `href="/a/`+f.custA.ID+`/calls?user=`+alice.ID+`"`)

	// Another customer's admin and partner: not found, nothing shown.
	for _, who := range []string{"admin@fabrikam.example", "b@partner.example"} {
		c := f.signedIn(who)
		for _, p := range []string{"/a/" + f.custA.ID + "/calls", "/a/" + f.custA.ID + "/calls/" + answered.ID, "/a/" + f.custB.ID + "/calls/" + answered.ID} {
			res, body := c.get(p)
			if res.StatusCode != http.StatusNotFound {
				t.Fatalf("%s GET %s: %d", who, p, res.StatusCode)
			}
			wantLacks(t, body, "+441632960900", "Contoso")
		}
	}
}

func TestSBCLabelOnTeamsTab(t *testing.T) {
	t.Parallel()
	f := newFixture(t, portal.Options{SBCBaseFQDN: "sbc.provider.example"})
	c := f.signedIn("admin@contoso.example")
	tab := "/a/" + f.custA.ID + "/teams"
	res, body := c.get(tab)
	wantStatus(t, res, body, 200)
	wantContains(t, body, `<code id="sbc-fqdn">contoso.sbc.provider.example</code>`)
	res, body = c.post(tab+"/sbc-label", url.Values{"sbc_label": {"Contoso_UK"}})
	wantStatus(t, res, body, http.StatusUnprocessableEntity)
	wantContains(t, body, "lowercase letters a-z, digits 0-9 and &#39;-&#39;", `value="Contoso_UK"`)
	res, body = c.post(tab+"/sbc-label", url.Values{"sbc_label": {"contoso-uk"}})
	wantStatus(t, res, body, http.StatusSeeOther)
	res, body = c.get(res.Header.Get("Location"))
	wantContains(t, body, "SBC label saved", `<code id="sbc-fqdn">contoso-uk.sbc.provider.example</code>`)
	// Fabrikam cannot take it.
	fb := f.signedIn("admin@fabrikam.example")
	fb.get("/a/" + f.custB.ID + "/teams")
	res, body = fb.post("/a/"+f.custB.ID+"/teams/sbc-label", url.Values{"sbc_label": {"contoso-uk"}})
	wantStatus(t, res, body, http.StatusConflict)
	wantContains(t, body, "already used by another customer")
	// A viewer sees the FQDN, not the form.
	v := f.signedIn("viewer@contoso.example")
	res, body = v.get(tab)
	wantContains(t, body, "contoso-uk.sbc.provider.example")
	wantLacks(t, body, `id="sbc-form"`)
}
