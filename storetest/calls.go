package storetest

import (
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/pbx2teams/pbx2teams"
)

// callTests are the call log and SBC label parts of the suite.
var callTests = []struct {
	name string
	fn   func(t *testing.T, s pbx2teams.Store)
}{
	{"CallRoundTrip", testCallRoundTrip},
	{"CallsPagination", testCallsPagination},
	{"CallsFilters", testCallsFilters},
	{"CallsTenantIsolation", testCallsTenantIsolation},
	{"CallsPrune", testCallsPrune},
	{"CallInTxRollback", testCallInTxRollback},
	{"SBCLabel", testSBCLabel},
	{"AccountsByTenant", testAccountsByTenant},
}

func mkCall(accountID, userID string, started time.Time, result string) *pbx2teams.CallRecord {
	return &pbx2teams.CallRecord{AccountID: accountID, UserID: userID, Direction: pbx2teams.DirectionInbound,
		Route: pbx2teams.RouteDirectRouting, From: "+441632960001", To: "+441632960201", StartedAt: started,
		EndedAt: started.Add(30 * time.Second), Result: result, PBXStatus: 200, TeamsStatus: 200}
}

func testCallRoundTrip(t *testing.T, s pbx2teams.Store) {
	ctx := ctxOf(t)
	tr := mkTree(t, s)
	rec := &pbx2teams.CallRecord{
		AccountID: tr.c1.ID, UserID: "usr_alice", Direction: pbx2teams.DirectionOutbound, Route: pbx2teams.RoutePhoneApp,
		From: "+441632960201", FromName: "Alice “A” Able", To: "2002", StartedAt: T0, AnsweredAt: T0.Add(3 * time.Second),
		EndedAt: T0.Add(95 * time.Second), Result: pbx2teams.ResultAnswered, PBXStatus: 200, TeamsStatus: 200,
		EndedBy: "teams", Advice: "", TeamsPeer: "sip.pstnhub.microsoft.com", AddedDelay: 1234567 * time.Nanosecond,
		Media: pbx2teams.CallMedia{Codec: "PCMU", PacketsFromPBX: 4600, PacketsToPBX: 4598, PacketsFromMS: 4598, PacketsToMS: 4600,
			LostFromPBX: 2, LostFromMS: -1, JitterPBX: 1500 * time.Microsecond, JitterMS: 800 * time.Microsecond, SRTPFailures: 1, SRTPPBX: true},
	}
	trace := &pbx2teams.CallTrace{CallID: "a84b4c76e66710@pbx", Dropped: 3, Messages: []pbx2teams.TraceMessage{
		{At: T0, Leg: "pbx", Direction: "in", Summary: "INVITE sip:+441632960201@x SIP/2.0", Message: "INVITE sip:+441632960201@x SIP/2.0\r\nVia: …\r\n\r\n"},
		{At: T0.Add(time.Millisecond), Leg: "teams", Direction: "out", Summary: "INVITE sip:+441632960201@sip.pstnhub.microsoft.com SIP/2.0"},
		{At: T0.Add(3 * time.Second), Leg: "teams", Direction: "in", Summary: "SIP/2.0 200 OK"},
	}}
	must(t, s.AppendCall(ctx, rec, trace))
	if rec.ID == "" || trace.CallRecordID != rec.ID {
		t.Fatalf("AppendCall did not set the IDs: %q %q", rec.ID, trace.CallRecordID)
	}
	got, err := s.Call(ctx, tr.c1.ID, rec.ID)
	must(t, err)
	want := *rec
	want.StartedAt, want.AnsweredAt, want.EndedAt = micro(rec.StartedAt), micro(rec.AnsweredAt), micro(rec.EndedAt)
	if !reflect.DeepEqual(*got, want) {
		t.Errorf("Call =\n%+v\nwant\n%+v", *got, want)
	}
	gt, err := s.CallTrace(ctx, tr.c1.ID, rec.ID)
	must(t, err)
	if gt.CallRecordID != rec.ID || gt.CallID != trace.CallID || gt.Dropped != 3 || len(gt.Messages) != 3 {
		t.Fatalf("CallTrace = %+v", gt)
	}
	for i, m := range gt.Messages {
		w := trace.Messages[i]
		if !m.At.Equal(micro(w.At)) || m.Leg != w.Leg || m.Direction != w.Direction || m.Summary != w.Summary || m.Message != w.Message {
			t.Errorf("trace message %d = %+v, want %+v", i, m, w)
		}
	}

	// A call never answered keeps a zero AnsweredAt; one without a trace
	// has none.
	failed := mkCall(tr.c1.ID, "", T0.Add(time.Hour), pbx2teams.ResultRejected)
	failed.Advice = "The PBX refused the call."
	must(t, s.AppendCall(ctx, failed, nil))
	got, err = s.Call(ctx, tr.c1.ID, failed.ID)
	must(t, err)
	if !got.AnsweredAt.IsZero() || got.Advice != failed.Advice || got.UserID != "" || got.Result != pbx2teams.ResultRejected {
		t.Errorf("failed call = %+v", got)
	}
	_, err = s.CallTrace(ctx, tr.c1.ID, failed.ID)
	wantCode(t, err, pbx2teams.ENotFound)
	_, err = s.Call(ctx, tr.c1.ID, "call_missing")
	wantCode(t, err, pbx2teams.ENotFound)

	// The same ID twice is a conflict; an unknown account is not found.
	dup := mkCall(tr.c1.ID, "", T0, pbx2teams.ResultAnswered)
	dup.ID = rec.ID
	wantCode(t, s.AppendCall(ctx, dup, nil), pbx2teams.EConflict)
	wantCode(t, s.AppendCall(ctx, mkCall("acc_missing", "", T0, pbx2teams.ResultAnswered), nil), pbx2teams.ENotFound)
}

// testCallsPagination walks the log a page at a time, with many calls
// sharing a start time: every call comes exactly once, newest first.
func testCallsPagination(t *testing.T, s pbx2teams.Store) {
	ctx := ctxOf(t)
	tr := mkTree(t, s)
	var all []*pbx2teams.CallRecord
	for i := 0; i < 23; i++ {
		// Groups of 4 calls share a start time.
		c := mkCall(tr.c1.ID, "usr_a", T0.Add(time.Duration(i/4)*time.Second), pbx2teams.ResultAnswered)
		c.ID = fmt.Sprintf("call_%02d", (i*7)%23) // IDs not in time order
		must(t, s.AppendCall(ctx, c, nil))
		all = append(all, c)
	}
	must(t, s.AppendCall(ctx, mkCall(tr.c2.ID, "usr_b", T0.Add(time.Hour), pbx2teams.ResultAnswered), nil))
	for _, limit := range []int{1, 5, 7, 23, 50} {
		var got []pbx2teams.CallRecord
		cursor := ""
		for pages := 0; ; pages++ {
			if pages > 30 {
				t.Fatalf("limit %d: no end of pages", limit)
			}
			page, err := s.Calls(ctx, pbx2teams.CallQuery{AccountID: tr.c1.ID, Cursor: cursor, Limit: limit})
			must(t, err)
			if len(page.Calls) > limit {
				t.Fatalf("limit %d: page of %d", limit, len(page.Calls))
			}
			got = append(got, page.Calls...)
			if page.NextCursor == "" {
				break
			}
			cursor = page.NextCursor
		}
		if len(got) != len(all) {
			t.Fatalf("limit %d: %d calls, want %d", limit, len(got), len(all))
		}
		seen := map[string]bool{}
		for i, c := range got {
			if seen[c.ID] {
				t.Fatalf("limit %d: %s twice", limit, c.ID)
			}
			seen[c.ID] = true
			if c.AccountID != tr.c1.ID {
				t.Fatalf("limit %d: a call of another account: %+v", limit, c)
			}
			if i > 0 {
				p := got[i-1]
				if c.StartedAt.After(p.StartedAt) || c.StartedAt.Equal(p.StartedAt) && c.ID > p.ID {
					t.Fatalf("limit %d: %s (%v) after %s (%v): not newest first", limit, c.ID, c.StartedAt, p.ID, p.StartedAt)
				}
			}
		}
	}
	_, err := s.Calls(ctx, pbx2teams.CallQuery{AccountID: tr.c1.ID, Cursor: "not a cursor"})
	wantCode(t, err, pbx2teams.EInvalid)
}

func testCallsFilters(t *testing.T, s pbx2teams.Store) {
	ctx := ctxOf(t)
	tr := mkTree(t, s)
	results := []string{pbx2teams.ResultAnswered, pbx2teams.ResultBusy, pbx2teams.ResultAnswered, pbx2teams.ResultFailed}
	for i := 0; i < 12; i++ {
		user := []string{"usr_a", "usr_b", ""}[i%3]
		must(t, s.AppendCall(ctx, mkCall(tr.c1.ID, user, T0.Add(time.Duration(i)*time.Minute), results[i%4]), nil))
	}
	count := func(q pbx2teams.CallQuery, check func(c pbx2teams.CallRecord) bool) int {
		t.Helper()
		q.AccountID, q.Limit = tr.c1.ID, 100
		page, err := s.Calls(ctx, q)
		must(t, err)
		for _, c := range page.Calls {
			if !check(c) {
				t.Errorf("query %+v returned %+v", q, c)
			}
		}
		return len(page.Calls)
	}
	if n := count(pbx2teams.CallQuery{UserID: "usr_a"}, func(c pbx2teams.CallRecord) bool { return c.UserID == "usr_a" }); n != 4 {
		t.Errorf("calls of usr_a = %d, want 4", n)
	}
	if n := count(pbx2teams.CallQuery{Result: pbx2teams.ResultAnswered}, func(c pbx2teams.CallRecord) bool { return c.Result == pbx2teams.ResultAnswered }); n != 6 {
		t.Errorf("answered calls = %d, want 6", n)
	}
	if n := count(pbx2teams.CallQuery{UserID: "usr_b", Result: pbx2teams.ResultBusy}, func(c pbx2teams.CallRecord) bool {
		return c.UserID == "usr_b" && c.Result == pbx2teams.ResultBusy
	}); n != 1 {
		t.Errorf("busy calls of usr_b = %d, want 1", n)
	}
	if n := count(pbx2teams.CallQuery{}, func(pbx2teams.CallRecord) bool { return true }); n != 12 {
		t.Errorf("all calls = %d, want 12", n)
	}
}

// testCallsTenantIsolation: account A cannot list, read or read the trace
// of a call of B by its ID.
func testCallsTenantIsolation(t *testing.T, s pbx2teams.Store) {
	ctx := ctxOf(t)
	tr := mkTree(t, s)
	b := mkCall(tr.c3.ID, "usr_b", T0, pbx2teams.ResultAnswered)
	must(t, s.AppendCall(ctx, b, &pbx2teams.CallTrace{CallID: "cid-b", Messages: []pbx2teams.TraceMessage{{At: T0, Leg: "pbx", Direction: "in", Summary: "INVITE"}}}))
	a := mkCall(tr.c1.ID, "usr_b", T0, pbx2teams.ResultAnswered)
	must(t, s.AppendCall(ctx, a, nil))
	_, err := s.Call(ctx, tr.c1.ID, b.ID)
	wantCode(t, err, pbx2teams.ENotFound)
	_, err = s.CallTrace(ctx, tr.c1.ID, b.ID)
	wantCode(t, err, pbx2teams.ENotFound)
	page, err := s.Calls(ctx, pbx2teams.CallQuery{AccountID: tr.c1.ID, UserID: "usr_b"})
	must(t, err)
	if len(page.Calls) != 1 || page.Calls[0].ID != a.ID {
		t.Errorf("A's calls of usr_b = %+v, want only %s", page.Calls, a.ID)
	}
	// B still reads its own.
	if _, err := s.CallTrace(ctx, tr.c3.ID, b.ID); err != nil {
		t.Errorf("B's own trace: %v", err)
	}
}

func testCallsPrune(t *testing.T, s pbx2teams.Store) {
	ctx := ctxOf(t)
	tr := mkTree(t, s)
	trace := func() *pbx2teams.CallTrace {
		return &pbx2teams.CallTrace{CallID: "x", Messages: []pbx2teams.TraceMessage{{At: T0, Leg: "pbx", Direction: "in", Summary: "INVITE"}}}
	}
	var calls []*pbx2teams.CallRecord
	for i := 0; i < 4; i++ { // ended at T0+30s, +1d+30s, +2d+30s, +3d+30s
		c := mkCall(tr.c1.ID, "usr_a", T0.Add(time.Duration(i)*24*time.Hour), pbx2teams.ResultAnswered)
		must(t, s.AppendCall(ctx, c, trace()))
		calls = append(calls, c)
	}
	// Traces of calls ended before day 2: the first two.
	n, err := s.DeleteCallTracesBefore(ctx, T0.Add(48*time.Hour))
	must(t, err)
	if n != 2 {
		t.Errorf("DeleteCallTracesBefore = %d, want 2", n)
	}
	for i, c := range calls {
		_, err := s.CallTrace(ctx, tr.c1.ID, c.ID)
		if i < 2 {
			wantCode(t, err, pbx2teams.ENotFound)
		} else if err != nil {
			t.Errorf("trace %d: %v", i, err)
		}
		if _, err := s.Call(ctx, tr.c1.ID, c.ID); err != nil {
			t.Errorf("record %d dropped with its trace: %v", i, err)
		}
	}
	// Records of calls ended before day 3 (with the trace of the third).
	n, err = s.DeleteCallsBefore(ctx, T0.Add(72*time.Hour))
	must(t, err)
	if n != 3 {
		t.Errorf("DeleteCallsBefore = %d, want 3", n)
	}
	for i, c := range calls {
		_, err := s.Call(ctx, tr.c1.ID, c.ID)
		_, terr := s.CallTrace(ctx, tr.c1.ID, c.ID)
		if i < 3 {
			wantCode(t, err, pbx2teams.ENotFound)
			wantCode(t, terr, pbx2teams.ENotFound)
		} else if err != nil || terr != nil {
			t.Errorf("call %d: %v %v", i, err, terr)
		}
	}
}

// testCallInTxRollback: a call appended in a transaction that fails is not
// kept, trace included.
func testCallInTxRollback(t *testing.T, s pbx2teams.Store) {
	ctx := ctxOf(t)
	tr := mkTree(t, s)
	c := mkCall(tr.c1.ID, "usr_a", T0, pbx2teams.ResultAnswered)
	err := s.InTx(ctx, func(q pbx2teams.Queries) error {
		must(t, q.AppendCall(ctx, c, &pbx2teams.CallTrace{CallID: "x"}))
		return pbx2teams.Errorf(pbx2teams.EInvalid, "roll back")
	})
	wantCode(t, err, pbx2teams.EInvalid)
	_, err = s.Call(ctx, tr.c1.ID, c.ID)
	wantCode(t, err, pbx2teams.ENotFound)
	_, err = s.CallTrace(ctx, tr.c1.ID, c.ID)
	wantCode(t, err, pbx2teams.ENotFound)
}

func testSBCLabel(t *testing.T, s pbx2teams.Store) {
	ctx := ctxOf(t)
	tr := mkTree(t, s)
	_, err := s.AccountBySBCLabel(ctx, "contoso")
	wantCode(t, err, pbx2teams.ENotFound)
	must(t, s.PutTeamsSettings(ctx, &pbx2teams.TeamsSettings{AccountID: tr.c1.ID, SyncIntervalMinutes: 60, SBCLabel: "contoso"}))
	id, err := s.AccountBySBCLabel(ctx, "contoso")
	must(t, err)
	if id != tr.c1.ID {
		t.Errorf("AccountBySBCLabel = %s, want %s", id, tr.c1.ID)
	}
	// Another customer cannot take it; nothing of its settings is written.
	err = s.PutTeamsSettings(ctx, &pbx2teams.TeamsSettings{AccountID: tr.c2.ID, SyncIntervalMinutes: 5, SBCLabel: "contoso"})
	wantCode(t, err, pbx2teams.EConflict)
	_, err = s.TeamsSettings(ctx, tr.c2.ID)
	wantCode(t, err, pbx2teams.ENotFound)
	// Saving without a label keeps the stored one (and reports it).
	in := &pbx2teams.TeamsSettings{AccountID: tr.c1.ID, SyncIntervalMinutes: 30, TenantID: "t1"}
	must(t, s.PutTeamsSettings(ctx, in))
	if in.SBCLabel != "contoso" {
		t.Errorf("after a put without a label, the struct has %q", in.SBCLabel)
	}
	got, err := s.TeamsSettings(ctx, tr.c1.ID)
	must(t, err)
	if got.SBCLabel != "contoso" || got.SyncIntervalMinutes != 30 || got.TenantID != "t1" {
		t.Errorf("TeamsSettings = %+v", got)
	}
	// Changing it frees the old one.
	must(t, s.PutTeamsSettings(ctx, &pbx2teams.TeamsSettings{AccountID: tr.c1.ID, SyncIntervalMinutes: 30, SBCLabel: "contoso-uk"}))
	_, err = s.AccountBySBCLabel(ctx, "contoso")
	wantCode(t, err, pbx2teams.ENotFound)
	must(t, s.PutTeamsSettings(ctx, &pbx2teams.TeamsSettings{AccountID: tr.c2.ID, SyncIntervalMinutes: 5, SBCLabel: "contoso"}))
	if id, err := s.AccountBySBCLabel(ctx, "contoso"); err != nil || id != tr.c2.ID {
		t.Errorf("AccountBySBCLabel after the move = %s, %v", id, err)
	}
	// Several customers without a label do not clash.
	must(t, s.PutTeamsSettings(ctx, &pbx2teams.TeamsSettings{AccountID: tr.c3.ID}))
	_, err = s.AccountBySBCLabel(ctx, "")
	wantCode(t, err, pbx2teams.ENotFound)
}

func testAccountsByTenant(t *testing.T, s pbx2teams.Store) {
	ctx := ctxOf(t)
	tr := mkTree(t, s)
	ids, err := s.AccountsByTenant(ctx, "tenant-a")
	must(t, err)
	if len(ids) != 0 {
		t.Fatalf("no tenant connected yet: %v", ids)
	}
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	later := at.Add(time.Hour)
	must(t, s.PutTeamsSettings(ctx, &pbx2teams.TeamsSettings{AccountID: tr.c2.ID, TenantID: "tenant-a", ConsentedAt: &later, SyncIntervalMinutes: 60}))
	must(t, s.PutTeamsSettings(ctx, &pbx2teams.TeamsSettings{AccountID: tr.c1.ID, TenantID: "tenant-a", ConsentedAt: &at, SyncIntervalMinutes: 60}))
	// Known tenant but consent not given: not connected.
	must(t, s.PutTeamsSettings(ctx, &pbx2teams.TeamsSettings{AccountID: tr.c3.ID, TenantID: "tenant-a", SyncIntervalMinutes: 60}))
	ids, err = s.AccountsByTenant(ctx, "tenant-a")
	must(t, err)
	if len(ids) != 2 || ids[0] != tr.c1.ID || ids[1] != tr.c2.ID {
		t.Fatalf("AccountsByTenant = %v, want [%s %s]", ids, tr.c1.ID, tr.c2.ID)
	}
	if ids, err := s.AccountsByTenant(ctx, "tenant-b"); err != nil || len(ids) != 0 {
		t.Fatalf("other tenant: %v %v", ids, err)
	}
}
