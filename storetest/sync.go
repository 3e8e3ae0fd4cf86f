package storetest

import (
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/pbx2teams/pbx2teams"
)

// syncTests are the Microsoft 365 sync parts of the suite.
var syncTests = []struct {
	name string
	fn   func(t *testing.T, s pbx2teams.Store)
}{
	{"SyncJobs", testSyncJobs},
	{"SyncState", testSyncState},
	{"UnseenUsersRemoved", testUnseenUsersRemoved},
	{"AppInstalls", testAppInstalls},
	{"UpsertDirectoryUsersBatch", testUpsertDirectoryUsers},
}

func testSyncJobs(t *testing.T, s pbx2teams.Store) {
	ctx := ctxOf(t)
	tr := mkTree(t, s)
	j := &pbx2teams.SyncJob{ID: "job_1", AccountID: tr.c1.ID, Status: pbx2teams.SyncRunning, Mode: "full", Trigger: "manual",
		RequestedBy: "admin@contoso.example", StartedAt: T0}
	must(t, s.CreateSyncJob(ctx, j))
	// A second running job of the same customer is refused; another
	// customer's is not.
	wantCode(t, s.CreateSyncJob(ctx, &pbx2teams.SyncJob{ID: "job_2", AccountID: tr.c1.ID, Status: pbx2teams.SyncRunning,
		Mode: "full", Trigger: "auto", StartedAt: T0.Add(time.Second)}), pbx2teams.EConflict)
	must(t, s.CreateSyncJob(ctx, &pbx2teams.SyncJob{ID: "job_3", AccountID: tr.c2.ID, Status: pbx2teams.SyncRunning,
		Mode: "delta", Trigger: "auto", StartedAt: T0}))
	run, err := s.RunningSyncJob(ctx, tr.c1.ID)
	must(t, err)
	if run.ID != "job_1" || run.RequestedBy != "admin@contoso.example" {
		t.Fatalf("running job %+v", run)
	}
	end := T0.Add(time.Minute)
	j.Status, j.FinishedAt, j.Log = pbx2teams.SyncSucceeded, &end, "<00:00> line one\n<00:01> line two\n"
	j.Counts = pbx2teams.SyncCounts{Seen: 10, Added: 3, Conflicts: 1}
	j.Counts.Exclude("calling plan")
	j.Warnings = []string{"CONFLICT megan"}
	must(t, s.FinishSyncJob(ctx, j))
	wantCode(t, s.FinishSyncJob(ctx, &pbx2teams.SyncJob{ID: "job_1", AccountID: tr.c2.ID}), pbx2teams.ENotFound)
	got, err := s.SyncJob(ctx, tr.c1.ID, "job_1")
	must(t, err)
	if got.Status != pbx2teams.SyncSucceeded || got.Log != j.Log || got.Counts.Seen != 10 || got.Counts.ExcludedWhy["calling plan"] != 1 ||
		len(got.Warnings) != 1 || got.Mode != "full" || got.Trigger != "manual" {
		t.Fatalf("finished job %+v", got)
	}
	sameTime(t, "StartedAt", got.StartedAt, T0)
	sameTimePtr(t, "FinishedAt", got.FinishedAt, &end)
	_, err = s.SyncJob(ctx, tr.c2.ID, "job_1")
	wantCode(t, err, pbx2teams.ENotFound)
	// Now a new one may start.
	must(t, s.CreateSyncJob(ctx, &pbx2teams.SyncJob{ID: "job_4", AccountID: tr.c1.ID, Status: pbx2teams.SyncRunning,
		Mode: "delta", Trigger: "auto", StartedAt: T0.Add(2 * time.Minute)}))
	jobs, err := s.SyncJobs(ctx, tr.c1.ID, 10)
	must(t, err)
	if len(jobs) != 2 || jobs[0].ID != "job_4" || jobs[1].ID != "job_1" || jobs[1].Log != "" {
		t.Fatalf("jobs newest first without logs: %+v", jobs)
	}
	n, err := s.FailRunningSyncJobs(ctx, "restarted", T0.Add(time.Hour))
	must(t, err)
	if n != 2 {
		t.Fatalf("failed %d running jobs; want 2", n)
	}
	got, err = s.SyncJob(ctx, tr.c2.ID, "job_3")
	must(t, err)
	if got.Status != pbx2teams.SyncFailed || got.Error != "restarted" || got.FinishedAt == nil {
		t.Fatalf("crashed job %+v", got)
	}
	_, err = s.RunningSyncJob(ctx, tr.c1.ID)
	wantCode(t, err, pbx2teams.ENotFound)
}

func testSyncState(t *testing.T, s pbx2teams.Store) {
	ctx := ctxOf(t)
	tr := mkTree(t, s)
	_, err := s.SyncState(ctx, tr.c1.ID)
	wantCode(t, err, pbx2teams.ENotFound)
	st := &pbx2teams.SyncState{AccountID: tr.c1.ID, DeltaLink: "https://graph.example/v1.0/users/delta?$deltatoken=x",
		LastFullAt: ptr(T0), PhoneAppCatalogID: "cat-1", UpdatedAt: T0}
	must(t, s.PutSyncState(ctx, st))
	st.LastRunAt, st.PhoneAppError = ptr(T0.Add(time.Minute)), "revoked"
	must(t, s.PutSyncState(ctx, st))
	got, err := s.SyncState(ctx, tr.c1.ID)
	must(t, err)
	if got.DeltaLink != st.DeltaLink || got.PhoneAppCatalogID != "cat-1" || got.PhoneAppError != "revoked" {
		t.Fatalf("state %+v", got)
	}
	sameTimePtr(t, "LastFullAt", got.LastFullAt, &T0)
	sameTimePtr(t, "LastRunAt", got.LastRunAt, ptr(T0.Add(time.Minute)))
	all, err := s.SyncStates(ctx)
	must(t, err)
	if len(all) != 1 || all[0].AccountID != tr.c1.ID {
		t.Fatalf("states %+v", all)
	}
}

func testUnseenUsersRemoved(t *testing.T, s pbx2teams.Store) {
	ctx := ctxOf(t)
	tr := mkTree(t, s)
	var us []*pbx2teams.User
	for i := 1; i <= 4; i++ {
		u := dirUser(tr.c1.ID, i, "User")
		must(t, s.UpsertDirectoryUser(ctx, u))
		us = append(us, u)
	}
	other := dirUser(tr.c2.ID, 9, "Other")
	must(t, s.UpsertDirectoryUser(ctx, other))
	configure(t, s, us[0], pbx2teams.ServiceStandard, "1001", "+441234567001", "c-1")
	// Users 3 and 4 are seen again by a later run.
	later := T0.Add(time.Hour)
	for _, u := range us[2:] {
		u.SyncedAt = &later
		must(t, s.UpsertDirectoryUser(ctx, u))
	}
	got, err := s.UsersByObjectIDs(ctx, tr.c1.ID, []string{"obj-00001", "obj-00003", "obj-00009", "missing"})
	must(t, err)
	var objs []string
	for _, u := range got {
		objs = append(objs, u.ObjectID)
	}
	sort.Strings(objs)
	if len(objs) != 2 || objs[0] != "obj-00001" || objs[1] != "obj-00003" {
		t.Fatalf("users by object ids (another account's left out): %v", objs)
	}
	n, sample, err := s.MarkUnseenUsersRemoved(ctx, tr.c1.ID, later, 1)
	must(t, err)
	if n != 2 || len(sample) != 1 {
		t.Fatalf("removed %d %v; want 2 with a sample of 1", n, sample)
	}
	u1, _ := s.User(ctx, tr.c1.ID, us[0].ID)
	u2, _ := s.User(ctx, tr.c1.ID, us[1].ID)
	u3, _ := s.User(ctx, tr.c1.ID, us[2].ID)
	o, _ := s.User(ctx, tr.c2.ID, other.ID)
	if !u1.Deleted || !u1.Suspended || !u2.Deleted || u2.Suspended || u3.Deleted || o.Deleted {
		t.Fatalf("after removal: u1 %+v u2 %+v u3 %+v other %+v", u1, u2, u3, o)
	}
	std, _, err := s.CountLicenceUse(ctx, tr.c1.ID)
	must(t, err)
	if std != 0 {
		t.Fatalf("a removed user still consumes a licence: %d", std)
	}
	// Already removed users are not counted again.
	n, _, err = s.MarkUnseenUsersRemoved(ctx, tr.c1.ID, later, 5)
	must(t, err)
	if n != 0 {
		t.Fatalf("removed again: %d", n)
	}
}

func testAppInstalls(t *testing.T, s pbx2teams.Store) {
	ctx := ctxOf(t)
	tr := mkTree(t, s)
	for _, o := range []string{"obj-b", "obj-a", "obj-c"} {
		must(t, s.PutAppInstall(ctx, &pbx2teams.AppInstall{AccountID: tr.c1.ID, ObjectID: o, CatalogAppID: "cat", InstalledAt: T0}))
	}
	must(t, s.PutAppInstall(ctx, &pbx2teams.AppInstall{AccountID: tr.c2.ID, ObjectID: "obj-a", CatalogAppID: "cat", InstalledAt: T0}))
	must(t, s.PutAppInstall(ctx, &pbx2teams.AppInstall{AccountID: tr.c1.ID, ObjectID: "obj-a", CatalogAppID: "cat", InstallationID: "inst-a", InstalledAt: T0}))
	in, err := s.AppInstall(ctx, tr.c1.ID, "obj-a")
	must(t, err)
	if in.InstallationID != "inst-a" {
		t.Fatalf("install %+v", in)
	}
	page, err := s.AppInstalls(ctx, tr.c1.ID, "obj-a", 10)
	must(t, err)
	if len(page) != 2 || page[0].ObjectID != "obj-b" || page[1].ObjectID != "obj-c" {
		t.Fatalf("installs after obj-a: %+v", page)
	}
	must(t, s.DeleteAppInstall(ctx, tr.c1.ID, "obj-a"))
	must(t, s.DeleteAppInstall(ctx, tr.c1.ID, "obj-a"))
	_, err = s.AppInstall(ctx, tr.c1.ID, "obj-a")
	wantCode(t, err, pbx2teams.ENotFound)
	if _, err := s.AppInstall(ctx, tr.c2.ID, "obj-a"); err != nil {
		t.Fatalf("another customer's install was removed: %v", err)
	}
}

func testUpsertDirectoryUsers(t *testing.T, s pbx2teams.Store) {
	ctx := ctxOf(t)
	tr := mkTree(t, s)
	first := dirUser(tr.c1.ID, 1, "First")
	must(t, s.UpsertDirectoryUser(ctx, first))
	configure(t, s, first, pbx2teams.ServiceStandard, "1001", "+441234567001", "c-1")
	var batch []*pbx2teams.User
	for i := 1; i <= 250; i++ { // more than one statement's worth
		u := dirUser(tr.c1.ID, i, fmt.Sprintf("Batch %03d", i))
		u.Enabled = i != 1
		batch = append(batch, u)
	}
	must(t, s.UpsertDirectoryUsers(ctx, batch))
	if batch[0].ID != first.ID {
		t.Fatalf("existing user got a new ID %s; want %s", batch[0].ID, first.ID)
	}
	page, err := s.Users(ctx, pbx2teams.UserQuery{AccountID: tr.c1.ID, Limit: 500})
	must(t, err)
	if page.Total != 250 {
		t.Fatalf("%d users after the batch; want 250", page.Total)
	}
	got, err := s.User(ctx, tr.c1.ID, first.ID)
	must(t, err)
	if got.DisplayName != "Batch 001" || got.Enabled || got.Type != pbx2teams.ServiceStandard || got.SIPUsername != "1001" {
		t.Fatalf("identity not updated or configuration lost: %+v", got)
	}
	for _, u := range batch {
		if u.ID == "" {
			t.Fatalf("user %s has no ID after the batch", u.ObjectID)
		}
	}
}
