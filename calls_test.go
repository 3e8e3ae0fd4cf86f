package pbx2teams_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/pbx2teams/pbx2teams"
)

func viewerOf(t *testing.T, svc *pbx2teams.Service, by *pbx2teams.Principal, accountID, email string) *pbx2teams.Principal {
	t.Helper()
	_, pw, err := svc.CreateAdmin(context.Background(), by, accountID, email, "", pbx2teams.RoleViewer, "")
	must(t, err)
	return signIn(t, svc, email, pw)
}

// sipInvite is an INVITE as the B2BUA would trace it: with a digest
// Authorization header and an SDES key.
const sipInvite = "INVITE sip:2002@pbx.contoso.example SIP/2.0\r\n" +
	"Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds\r\n" +
	"Authorization: Digest username=\"201\", realm=\"pbx\", nonce=\"abc\", uri=\"sip:2002@pbx\", response=\"6629fae49393a05397450978507c4ef1\"\r\n" +
	"proxy-authorization: Digest username=\"201\", response=\"0123456789abcdef0123456789abcdef\"\r\n" +
	"Content-Type: application/sdp\r\n\r\n" +
	"v=0\r\nm=audio 4000 RTP/SAVP 0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:32\r\n"

func TestRecordCallAndReadRules(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	t0 := time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC)
	rec := &pbx2teams.CallRecord{AccountID: f.custA.ID, UserID: f.users[0].ID, Direction: pbx2teams.DirectionOutbound,
		Route: pbx2teams.RouteDirectRouting, From: "+441632960201", To: "2002", StartedAt: t0, AnsweredAt: t0.Add(2 * time.Second),
		EndedAt: t0.Add(62 * time.Second), Result: pbx2teams.ResultAnswered, PBXStatus: 200, TeamsStatus: 200}
	tr := &pbx2teams.CallTrace{CallID: "c1@teams", Messages: []pbx2teams.TraceMessage{
		{At: t0, Leg: "pbx", Direction: "out", Summary: "INVITE sip:2002@pbx.contoso.example SIP/2.0\r\nVia: x", Message: sipInvite},
	}}
	must(t, f.svc.RecordCall(ctx, rec, tr))
	if !strings.HasPrefix(rec.ID, "call_") {
		t.Fatalf("RecordCall gave the ID %q", rec.ID)
	}
	failed := &pbx2teams.CallRecord{AccountID: f.custA.ID, Direction: pbx2teams.DirectionInbound, Route: pbx2teams.RouteDirectRouting,
		From: "+441632960999", To: "+441632960555", StartedAt: t0.Add(time.Minute), EndedAt: t0.Add(time.Minute),
		Result: pbx2teams.ResultRejected, PBXStatus: 404, Advice: "No user has this number."}
	must(t, f.svc.RecordCall(ctx, failed, nil))
	wantCode(t, f.svc.RecordCall(ctx, &pbx2teams.CallRecord{}, nil), pbx2teams.EInvalid)

	// The stored trace holds no credential and no media key.
	got, err := f.svc.CallTrace(ctx, f.adminA, f.custA.ID, rec.ID)
	must(t, err)
	if len(got.Messages) != 1 {
		t.Fatalf("trace = %+v", got)
	}
	m := got.Messages[0]
	for _, secret := range []string{"6629fae49393a05397450978507c4ef1", "0123456789abcdef0123456789abcdef", "PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR", "nonce"} {
		if strings.Contains(m.Message, secret) || strings.Contains(m.Summary, secret) {
			t.Errorf("the stored trace holds %q:\n%s", secret, m.Message)
		}
	}
	if !strings.Contains(m.Message, "Authorization: [removed]") || !strings.Contains(m.Message, "inline:[removed]|2^20|1:32") ||
		!strings.Contains(m.Message, "Via: SIP/2.0/UDP 192.0.2.10:5060") {
		t.Errorf("scrubbed message lost its shape:\n%s", m.Message)
	}
	if m.Summary != "INVITE sip:2002@pbx.contoso.example SIP/2.0" {
		t.Errorf("summary = %q, want the start line only", m.Summary)
	}
	// The caller's own trace is left alone.
	if !strings.Contains(tr.Messages[0].Message, "6629fae4") {
		t.Error("RecordCall changed the caller's trace")
	}

	// Viewers of the customer and of its partner read the log.
	viewer := viewerOf(t, f.svc, f.adminA, f.custA.ID, "viewer@contoso.example")
	partnerViewer := viewerOf(t, f.svc, f.partA, f.partA.AccountID, "viewer@partner-a.example")
	for _, p := range []*pbx2teams.Principal{f.adminA, viewer, f.partA, partnerViewer, f.op} {
		page, err := f.svc.Calls(ctx, p, pbx2teams.CallQuery{AccountID: f.custA.ID})
		must(t, err)
		if len(page.Calls) != 2 || page.Calls[0].ID != failed.ID || page.Calls[1].ID != rec.ID {
			t.Fatalf("Calls as %s = %+v", p.Name, page.Calls)
		}
		c, err := f.svc.Call(ctx, p, f.custA.ID, failed.ID)
		must(t, err)
		if c.Advice != "No user has this number." || c.PBXStatus != 404 {
			t.Errorf("Call = %+v", c)
		}
	}
	page, err := f.svc.Calls(ctx, viewer, pbx2teams.CallQuery{AccountID: f.custA.ID, UserID: f.users[0].ID})
	must(t, err)
	if len(page.Calls) != 1 || page.Calls[0].ID != rec.ID {
		t.Errorf("one user's calls = %+v", page.Calls)
	}
	page, err = f.svc.Calls(ctx, viewer, pbx2teams.CallQuery{AccountID: f.custA.ID, Result: pbx2teams.ResultRejected})
	must(t, err)
	if len(page.Calls) != 1 || page.Calls[0].ID != failed.ID {
		t.Errorf("rejected calls = %+v", page.Calls)
	}
	_, err = f.svc.Calls(ctx, viewer, pbx2teams.CallQuery{AccountID: f.custA.ID, Result: "exploded"})
	wantCode(t, err, pbx2teams.EInvalid)

	// Another customer's admin, another partner: not found, by list, by ID
	// through their own account, and for the trace.
	for _, p := range []*pbx2teams.Principal{f.adminB, f.partB} {
		_, err := f.svc.Calls(ctx, p, pbx2teams.CallQuery{AccountID: f.custA.ID})
		wantCode(t, err, pbx2teams.ENotFound)
		_, err = f.svc.Call(ctx, p, f.custA.ID, rec.ID)
		wantCode(t, err, pbx2teams.ENotFound)
		_, err = f.svc.Call(ctx, p, f.custB.ID, rec.ID)
		wantCode(t, err, pbx2teams.ENotFound)
		_, err = f.svc.CallTrace(ctx, p, f.custB.ID, rec.ID)
		wantCode(t, err, pbx2teams.ENotFound)
	}
	_, err = f.svc.Calls(ctx, nil, pbx2teams.CallQuery{AccountID: f.custA.ID})
	wantCode(t, err, pbx2teams.EUnauthenticated)
	// A call without a trace: not found, saying why.
	_, err = f.svc.CallTrace(ctx, f.adminA, f.custA.ID, failed.ID)
	wantCode(t, err, pbx2teams.ENotFound)
	if msg := pbx2teams.ErrorMessage(err); !strings.Contains(msg, "7 days") {
		t.Errorf("missing trace message %q", msg)
	}
}

func TestPruneCalls(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	ages := []time.Duration{time.Hour, 8 * 24 * time.Hour, 91 * 24 * time.Hour}
	var ids []string
	for _, age := range ages {
		rec := &pbx2teams.CallRecord{AccountID: f.custA.ID, Direction: pbx2teams.DirectionInbound, Route: pbx2teams.RouteDirectRouting,
			StartedAt: now.Add(-age), EndedAt: now.Add(-age).Add(time.Minute), Result: pbx2teams.ResultAnswered}
		must(t, f.svc.RecordCall(ctx, rec, &pbx2teams.CallTrace{CallID: "x", Messages: []pbx2teams.TraceMessage{{At: rec.StartedAt, Leg: "pbx", Direction: "in", Summary: "INVITE"}}}))
		ids = append(ids, rec.ID)
	}
	traces, records, err := f.svc.PruneCalls(ctx, now)
	must(t, err)
	if traces != 2 || records != 1 {
		t.Fatalf("PruneCalls = %d traces, %d records; want 2, 1", traces, records)
	}
	if _, err := f.svc.CallTrace(ctx, f.adminA, f.custA.ID, ids[0]); err != nil {
		t.Errorf("the fresh trace was pruned: %v", err)
	}
	_, err = f.svc.CallTrace(ctx, f.adminA, f.custA.ID, ids[1])
	wantCode(t, err, pbx2teams.ENotFound)
	if _, err := f.svc.Call(ctx, f.adminA, f.custA.ID, ids[1]); err != nil {
		t.Errorf("the 8-day-old record was pruned: %v", err)
	}
	_, err = f.svc.Call(ctx, f.adminA, f.custA.ID, ids[2])
	wantCode(t, err, pbx2teams.ENotFound)

	// Shorter retentions, configured on the service.
	f.svc.CallTraceRetention = 30 * time.Minute
	f.svc.CallRecordRetention = 2 * 24 * time.Hour
	traces, records, err = f.svc.PruneCalls(ctx, now)
	must(t, err)
	if traces != 1 || records != 1 {
		t.Fatalf("PruneCalls with short retention = %d, %d; want 1, 1", traces, records)
	}
}

func TestSBCLabelDefaultsAndRules(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	// A customer gets the slug of its name.
	ts, err := f.svc.TeamsSettings(ctx, f.adminA, f.custA.ID)
	must(t, err)
	if ts.SBCLabel != "contoso" {
		t.Fatalf("Contoso's default label = %q", ts.SBCLabel)
	}
	// A second customer of the same name gets a suffixed one, even when
	// its settings are first read by a viewer.
	dup, err := f.svc.CreateAccount(ctx, f.partB, f.partB.AccountID, pbx2teams.KindCustomer, "Contoso")
	must(t, err)
	// The label is stored when the customer is created, before anyone reads it.
	if stored, err := f.svc.Store.TeamsSettings(ctx, dup.ID); err != nil || !strings.HasPrefix(stored.SBCLabel, "contoso-") {
		t.Fatalf("label stored at creation: %+v (%v)", stored, err)
	}
	viewer := viewerOf(t, f.svc, f.partB, dup.ID, "viewer@contoso2.example")
	ts2, err := f.svc.TeamsSettings(ctx, viewer, dup.ID)
	must(t, err)
	if !strings.HasPrefix(ts2.SBCLabel, "contoso-") || len(ts2.SBCLabel) != len("contoso-")+4 || !pbx2teams.ValidSBCLabel(ts2.SBCLabel) {
		t.Fatalf("the second Contoso's label = %q", ts2.SBCLabel)
	}
	again, err := f.svc.TeamsSettings(ctx, viewer, dup.ID)
	must(t, err)
	if again.SBCLabel != ts2.SBCLabel {
		t.Fatalf("the label changed between reads: %q then %q", ts2.SBCLabel, again.SBCLabel)
	}
	// Odd names still make a label.
	for name, want := range map[string]string{
		"  Café Müller & Söhne GmbH ":    "cafe-muller-sohne-gmbh",
		"株式会社":                           "customer",
		"--ACME--":                       "acme",
		strings.Repeat("long name ", 10): "long-name-long-name-long-name-long-name-long-name-long-name-lon",
	} {
		acc, err := f.svc.CreateAccount(ctx, f.partA, f.partA.AccountID, pbx2teams.KindCustomer, name)
		must(t, err)
		ts, err := f.svc.TeamsSettings(ctx, f.partA, acc.ID)
		must(t, err)
		if ts.SBCLabel != want {
			t.Errorf("label of %q = %q, want %q", name, ts.SBCLabel, want)
		}
	}

	// Invalid labels: refused with the allowed form, nothing changes.
	for _, bad := range []string{"", "-contoso", "contoso-", "con_toso", "con.toso", "contoso uk", strings.Repeat("a", 64), "xn--contoso", "ćontoso"} {
		_, err := f.svc.SetSBCLabel(ctx, f.adminA, f.custA.ID, bad)
		wantCode(t, err, pbx2teams.EInvalid)
		if msg := pbx2teams.ErrorMessage(err); !strings.Contains(msg, "lowercase letters a-z, digits 0-9 and '-'") || !strings.Contains(msg, "63") {
			t.Errorf("message for %q: %q", bad, msg)
		}
	}
	// Viewers may not change it; other trees do not see the customer.
	_, err = f.svc.SetSBCLabel(ctx, viewer, dup.ID, "contoso-two")
	wantCode(t, err, pbx2teams.EForbidden)
	_, err = f.svc.SetSBCLabel(ctx, f.adminB, f.custA.ID, "fabrikam-owns-you")
	wantCode(t, err, pbx2teams.ENotFound)
	// Taken by another customer: conflict.
	_, err = f.svc.SetSBCLabel(ctx, f.partB, dup.ID, "Contoso")
	wantCode(t, err, pbx2teams.EConflict)
	if msg := pbx2teams.ErrorMessage(err); !strings.Contains(msg, "already used by another customer") {
		t.Errorf("conflict message %q", msg)
	}
	// The customer admin changes its own (upper case typed is lowered);
	// its partner changes it back. Both are audited.
	ts, err = f.svc.SetSBCLabel(ctx, f.adminA, f.custA.ID, " Contoso-UK ")
	must(t, err)
	if ts.SBCLabel != "contoso-uk" {
		t.Fatalf("label after change = %q", ts.SBCLabel)
	}
	acc, err := f.svc.AccountBySBCLabel(ctx, "CONTOSO-UK")
	must(t, err)
	if acc.ID != f.custA.ID {
		t.Fatalf("AccountBySBCLabel = %s", acc.ID)
	}
	_, err = f.svc.AccountBySBCLabel(ctx, "contoso")
	wantCode(t, err, pbx2teams.ENotFound)
	// The freed label can go to the other Contoso, through the Teams options.
	l := "contoso"
	ts2, err = f.svc.SetTeamsOptions(ctx, f.partB, dup.ID, pbx2teams.TeamsOptions{SBCLabel: &l})
	must(t, err)
	if ts2.SBCLabel != "contoso" {
		t.Fatalf("label through SetTeamsOptions = %q", ts2.SBCLabel)
	}
	_, err = f.svc.SetSBCLabel(ctx, f.partA, f.custA.ID, "contoso")
	wantCode(t, err, pbx2teams.EConflict)
	audit, err := f.svc.Audit(ctx, f.op, f.custA.ID, 0, 50)
	must(t, err)
	found := false
	for _, e := range audit {
		if e.Action == "teams.sbc_label" && strings.Contains(e.Detail, "contoso → contoso-uk") && e.ActorName == "admin@contoso.example" {
			found = true
		}
	}
	if !found {
		t.Errorf("no audit entry for the label change: %+v", audit)
	}
	// Other Teams options keep the label.
	on := true
	ts, err = f.svc.SetTeamsOptions(ctx, f.adminA, f.custA.ID, pbx2teams.TeamsOptions{LargeTenantMode: &on})
	must(t, err)
	if ts.SBCLabel != "contoso-uk" {
		t.Errorf("label after another option = %q", ts.SBCLabel)
	}

	if host, ok := pbx2teams.SBCLabelOf("Contoso-UK.sbc.provider.example.", "sbc.provider.example"); !ok || host != "contoso-uk" {
		t.Errorf("SBCLabelOf = %q %v", host, ok)
	}
	if _, ok := pbx2teams.SBCLabelOf("a.b.sbc.provider.example", "sbc.provider.example"); ok {
		t.Error("SBCLabelOf accepted two labels")
	}
	if got := pbx2teams.SBCFQDN("contoso", "sbc.provider.example."); got != "contoso.sbc.provider.example" {
		t.Errorf("SBCFQDN = %q", got)
	}
}

// TestEnsureSBCLabels: customers without a label (a database from before
// labels) all get distinct ones.
func TestEnsureSBCLabels(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		_, err := f.svc.CreateAccount(ctx, f.partA, f.partA.AccountID, pbx2teams.KindCustomer, "Same Name")
		must(t, err)
	}
	accs, err := f.svc.Accounts(ctx, f.op)
	must(t, err)
	without := 0
	for _, a := range accs {
		if ts, err := f.svc.Store.TeamsSettings(ctx, a.ID); a.Kind == pbx2teams.KindCustomer && (err != nil || ts.SBCLabel == "") {
			without++
		}
	}
	n, err := f.svc.EnsureSBCLabels(ctx)
	must(t, err)
	if n != without {
		t.Errorf("EnsureSBCLabels assigned %d, want %d", n, without)
	}
	if n, err := f.svc.EnsureSBCLabels(ctx); err != nil || n != 0 {
		t.Errorf("second EnsureSBCLabels = %d, %v", n, err)
	}
	seen := map[string]string{}
	for _, a := range accs {
		if a.Kind != pbx2teams.KindCustomer {
			continue
		}
		ts, err := f.svc.Store.TeamsSettings(ctx, a.ID)
		must(t, err)
		if !pbx2teams.ValidSBCLabel(ts.SBCLabel) {
			t.Errorf("%s has label %q", a.Name, ts.SBCLabel)
		}
		if other, ok := seen[ts.SBCLabel]; ok {
			t.Errorf("%s and %s share %q", a.ID, other, ts.SBCLabel)
		}
		seen[ts.SBCLabel] = a.ID
	}
}

// TestCallLogWriter: calls queued by the SIP engine are stored in the
// background, in batches; a call of an unknown account does not spoil its
// batch; with the database busy and the queue full, calls are dropped and
// counted instead of blocking.
func TestCallLogWriter(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	t0 := time.Date(2026, 11, 21, 8, 0, 0, 0, time.UTC)
	mk := func(acc string, i int) *pbx2teams.CallRecord {
		return &pbx2teams.CallRecord{AccountID: acc, Direction: pbx2teams.DirectionInbound, Route: pbx2teams.RouteDirectRouting,
			From: "+441632960001", To: "+441632960201", StartedAt: t0.Add(time.Duration(i) * time.Second), Result: pbx2teams.ResultAnswered}
	}
	w := f.svc.NewCallLogWriter(0)
	for i := 0; i < 300; i++ {
		acc := f.custA.ID
		switch i {
		case 10:
			acc = "acc_missing" // refused by the store
		case 20:
			acc = "" // never known
		}
		w.CallEnded(mk(acc, i), &pbx2teams.CallTrace{CallID: "c", Messages: []pbx2teams.TraceMessage{{At: t0, Leg: "pbx", Direction: "in", Summary: "INVITE", Message: sipInvite}}})
	}
	w.Close()
	w.CallEnded(mk(f.custA.ID, 999), nil) // after Close: ignored
	n := 0
	q := pbx2teams.CallQuery{AccountID: f.custA.ID, Limit: 200}
	for {
		page, err := f.svc.Calls(ctx, f.adminA, q)
		must(t, err)
		n += len(page.Calls)
		for _, c := range page.Calls {
			if c.ID == "" {
				t.Fatal("a stored call without an ID")
			}
		}
		if page.NextCursor == "" {
			break
		}
		q.Cursor = page.NextCursor
	}
	if n != 298 || w.Dropped() != 0 {
		t.Fatalf("stored %d calls (dropped %d), want 298", n, w.Dropped())
	}
	page, err := f.svc.Calls(ctx, f.adminA, pbx2teams.CallQuery{AccountID: f.custA.ID, Limit: 1})
	must(t, err)
	tr, err := f.svc.CallTrace(ctx, f.adminA, f.custA.ID, page.Calls[0].ID)
	must(t, err)
	if strings.Contains(tr.Messages[0].Message, "6629fae4") {
		t.Error("the writer stored a credential")
	}

	// Busy database, queue of one: calls are dropped, not waited for.
	hold, held := make(chan struct{}), make(chan struct{})
	go func() {
		_ = f.svc.Store.InTx(ctx, func(pbx2teams.Queries) error {
			close(held)
			<-hold
			return nil
		})
	}()
	<-held
	w = f.svc.NewCallLogWriter(1)
	for i := 0; i < 10; i++ {
		w.CallEnded(mk(f.custB.ID, i), nil)
	}
	if w.Dropped() < 7 {
		t.Errorf("dropped %d of 10 with a queue of one and a busy database", w.Dropped())
	}
	close(hold)
	w.Close()
	page, err = f.svc.Calls(ctx, f.adminB, pbx2teams.CallQuery{AccountID: f.custB.ID})
	must(t, err)
	if int64(len(page.Calls)) != 10-w.Dropped() {
		t.Errorf("stored %d, dropped %d, of 10", len(page.Calls), w.Dropped())
	}
}
