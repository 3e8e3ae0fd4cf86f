// Package storetest is the behaviour suite every pbx2teams.Store must pass.
// The sqlite and postgres packages run it against their databases:
//
//	func TestStore(t *testing.T) { storetest.Run(t, openFreshStore) }
//
// Each subtest opens its own fresh, empty store, and subtests run in
// parallel.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pbx2teams/pbx2teams"
)

// Run runs the suite; open must return a fresh, empty store and close it
// when the test ends.
func Run(t *testing.T, open func(t *testing.T) pbx2teams.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s pbx2teams.Store)
	}{
		{"Ping", testPing},
		{"AccountsTree", testAccountsTree},
		{"AccountsSubtreePrefix", testAccountsSubtreePrefix},
		{"Admins", testAdmins},
		{"Licences", testLicences},
		{"PBXSettings", testPBXSettings},
		{"TeamsSettings", testTeamsSettings},
		{"UpsertKeepsConfig", testUpsertKeepsConfig},
		{"UserLookups", testUserLookups},
		{"LongFields", testLongFields},
		{"UsersPagination", testUsersPagination},
		{"UsersSearch", testUsersSearch},
		{"UsersSearchMany", testUsersSearchMany},
		{"UsersTypeFilter", testUsersTypeFilter},
		{"CountLicenceUse", testCountLicenceUse},
		{"ContactAndPhoneLookups", testContactAndPhoneLookups},
		{"ConfiguredUsers", testConfiguredUsers},
		{"TenantIsolation", testTenantIsolation},
		{"Audit", testAudit},
		{"APIKeys", testAPIKeys},
		{"Sessions", testSessions},
		{"Settings", testSettings},
		{"InTxCommit", testInTxCommit},
		{"InTxRollback", testInTxRollback},
		{"LockAccountSerialises", testLockAccountSerialises},
	}
	tests = append(tests, syncTests...)
	tests = append(tests, callTests...)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Each subtest has its own store, so they may overlap; on
			// PostgreSQL most of a subtest's time is creating its database.
			t.Parallel()
			tc.fn(t, open(t))
		})
	}
}

// T0 is a time with nanoseconds and a non-UTC zone: stores keep UTC at
// microsecond precision.
var T0 = time.Date(2025, 3, 4, 5, 6, 7, 123456789, time.FixedZone("CET", 3600))

func ctxOf(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if got := pbx2teams.ErrorCode(err); got != code {
		t.Fatalf("error code = %q (err %v), want %q", got, err, code)
	}
}

func micro(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

func sameTime(t *testing.T, what string, got, want time.Time) {
	t.Helper()
	if !got.Equal(micro(want)) {
		t.Errorf("%s = %v, want %v", what, got, micro(want))
	}
}

func sameTimePtr(t *testing.T, what string, got, want *time.Time) {
	t.Helper()
	switch {
	case got == nil && want == nil:
	case got == nil || want == nil:
		t.Errorf("%s = %v, want %v", what, got, want)
	default:
		sameTime(t, what, *got, *want)
	}
}

func ptr[T any](v T) *T { return &v }

// tree is a small account tree:
//
//	op
//	├── p1 (partner)
//	│   ├── c1 (customer)
//	│   └── c2 (customer)
//	└── p2 (partner)
//	    └── c3 (customer)
type tree struct {
	op, p1, p2, c1, c2, c3 *pbx2teams.Account
}

func mkAccount(t *testing.T, s pbx2teams.Queries, parent *pbx2teams.Account, kind pbx2teams.AccountKind, name string) *pbx2teams.Account {
	t.Helper()
	a := &pbx2teams.Account{Kind: kind, Name: name, CreatedAt: T0}
	if parent != nil {
		a.ParentID = parent.ID
	}
	must(t, s.CreateAccount(ctxOf(t), a))
	return a
}

func mkTree(t *testing.T, s pbx2teams.Store) tree {
	t.Helper()
	var tr tree
	tr.op = mkAccount(t, s, nil, pbx2teams.KindOperator, "Operator")
	tr.p1 = mkAccount(t, s, tr.op, pbx2teams.KindPartner, "Partner One")
	tr.p2 = mkAccount(t, s, tr.op, pbx2teams.KindPartner, "Partner Two")
	tr.c1 = mkAccount(t, s, tr.p1, pbx2teams.KindCustomer, "Zeta Customer")
	tr.c2 = mkAccount(t, s, tr.p1, pbx2teams.KindCustomer, "Alpha Customer")
	tr.c3 = mkAccount(t, s, tr.p2, pbx2teams.KindCustomer, "Other Customer")
	return tr
}

func ids(as []pbx2teams.Account) []string {
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = a.ID
	}
	return out
}

func testPing(t *testing.T, s pbx2teams.Store) {
	must(t, s.Ping(ctxOf(t)))
}

func testAccountsTree(t *testing.T, s pbx2teams.Store) {
	ctx := ctxOf(t)
	tr := mkTree(t, s)

	if !strings.HasPrefix(tr.op.ID, "acc_") || len(tr.op.ID) < 12 {
		t.Errorf("generated account ID %q: want acc_ and random characters", tr.op.ID)
	}
	if tr.op.Path != "/"+tr.op.ID+"/" {
		t.Errorf("root path = %q", tr.op.Path)
	}
	if want := tr.p1.Path + tr.c1.ID + "/"; tr.c1.Path != want {
		t.Errorf("c1 path = %q, want %q", tr.c1.Path, want)
	}

	got, err := s.Account(ctx, tr.c1.ID)
	must(t, err)
	if got.ID != tr.c1.ID || got.ParentID != tr.p1.ID || got.Kind != pbx2teams.KindCustomer ||
		got.Name != "Zeta Customer" || got.Path != tr.c1.Path {
		t.Errorf("Account(c1) = %+v, want %+v", got, tr.c1)
	}
	sameTime(t, "CreatedAt", got.CreatedAt, T0)
	root, err := s.Account(ctx, tr.op.ID)
	must(t, err)
	if root.ParentID != "" {
		t.Errorf("root ParentID = %q, want empty", root.ParentID)
	}

	_, err = s.Account(ctx, "acc_missing")
	wantCode(t, err, pbx2teams.ENotFound)

	kids, err := s.ChildAccounts(ctx, tr.p1.ID)
	must(t, err)
	if want := []string{tr.c2.ID, tr.c1.ID}; !reflect.DeepEqual(ids(kids), want) {
		t.Errorf("ChildAccounts(p1) = %v, want %v (by name)", ids(kids), want)
	}
	kids, err = s.ChildAccounts(ctx, tr.c1.ID)
	must(t, err)
	if len(kids) != 0 {
		t.Errorf("ChildAccounts(leaf) = %v, want none", ids(kids))
	}

	sub, err := s.SubtreeAccounts(ctx, tr.p1.Path)
	must(t, err)
	wantSub := []*pbx2teams.Account{tr.p1, tr.c1, tr.c2}
	sort.Slice(wantSub, func(i, j int) bool { return wantSub[i].Path < wantSub[j].Path })
	if want := []string{wantSub[0].ID, wantSub[1].ID, wantSub[2].ID}; !reflect.DeepEqual(ids(sub), want) {
		t.Errorf("SubtreeAccounts(p1) = %v, want %v (by path)", ids(sub), want)
	}
	all, err := s.SubtreeAccounts(ctx, tr.op.Path)
	must(t, err)
	if len(all) != 6 || all[0].ID != tr.op.ID {
		t.Errorf("SubtreeAccounts(op) = %v, want 6 starting with the root", ids(all))
	}

	n, err := s.CountAccounts(ctx)
	must(t, err)
	if n != 6 {
		t.Errorf("CountAccounts = %d, want 6", n)
	}

	must(t, s.RenameAccount(ctx, tr.c1.ID, "Renamed"))
	got, err = s.Account(ctx, tr.c1.ID)
	must(t, err)
	if got.Name != "Renamed" {
		t.Errorf("after rename, name = %q", got.Name)
	}
	wantCode(t, s.RenameAccount(ctx, "acc_missing", "x"), pbx2teams.ENotFound)

	// A missing parent and a duplicate ID are refused.
	wantCode(t, s.CreateAccount(ctx, &pbx2teams.Account{ParentID: "acc_missing", Kind: pbx2teams.KindCustomer, Name: "x"}),
		pbx2teams.ENotFound)
	wantCode(t, s.CreateAccount(ctx, &pbx2teams.Account{ID: tr.c1.ID, ParentID: tr.p1.ID, Kind: pbx2teams.KindCustomer, Name: "dup"}),
		pbx2teams.EConflict)
	n, err = s.CountAccounts(ctx)
	must(t, err)
	if n != 6 {
		t.Errorf("after refused creates, CountAccounts = %d, want 6", n)
	}
}

// testAccountsSubtreePrefix checks that subtree matching is an exact prefix
// on whole path segments: no LIKE wildcards, no case folding.
func testAccountsSubtreePrefix(t *testing.T, s pbx2teams.Store) {
	ctx := ctxOf(t)
	op := &pbx2teams.Account{ID: "op", Kind: pbx2teams.KindOperator, Name: "op"}
	must(t, s.CreateAccount(ctx, op))
	for _, id := range []string{"p1", "p10", "a_c", "abc", "a%c", "AbC"} {
		must(t, s.CreateAccount(ctx, &pbx2teams.Account{ID: id, ParentID: "op", Kind: pbx2teams.KindPartner, Name: id}))
		must(t, s.CreateAccount(ctx, &pbx2teams.Account{ID: id + "-child", ParentID: id, Kind: pbx2teams.KindCustomer, Name: id}))
	}
	for _, id := range []string{"p1", "a_c", "abc", "a%c"} {
		sub, err := s.SubtreeAccounts(ctx, "/op/"+id+"/")
		must(t, err)
		if want := []string{id, id + "-child"}; !reflect.DeepEqual(ids(sub), want) {
			t.Errorf("SubtreeAccounts(/op/%s/) = %v, want %v", id, ids(sub), want)
		}
	}
	if err := s.CreateAccount(ctx, &pbx2teams.Account{ID: "a/b", ParentID: "op", Kind: pbx2teams.KindPartner, Name: "slash"}); err == nil {
		t.Error("an account ID with '/' was accepted")
	}
}

func testAdmins(t *testing.T, s pbx2teams.Store) {
	ctx := ctxOf(t)
	tr := mkTree(t, s)
	a := &pbx2teams.Admin{AccountID: tr.c1.ID, Email: "Alice@Example.COM", Name: "Alice",
		Role: pbx2teams.RoleCustomerAdmin, PasswordHash: "$argon2id$x", CreatedAt: T0}
	must(t, s.CreateAdmin(ctx, a))
	if !strings.HasPrefix(a.ID, "adm_") {
		t.Errorf("generated admin ID %q: want adm_ prefix", a.ID)
	}
	b := &pbx2teams.Admin{AccountID: tr.c1.ID, Email: "bob@example.com", Name: "Bob", Role: pbx2teams.RoleViewer, PasswordHash: "h"}
	must(t, s.CreateAdmin(ctx, b))

	got, err := s.Admin(ctx, a.ID)
	must(t, err)
	if got.Email != "Alice@Example.COM" || got.Name != "Alice" || got.Role != pbx2teams.RoleCustomerAdmin ||
		got.PasswordHash != "$argon2id$x" || got.AccountID != tr.c1.ID || got.Disabled {
		t.Errorf("Admin = %+v", got)
	}
	sameTime(t, "CreatedAt", got.CreatedAt, T0)

	byEmail, err := s.AdminByEmail(ctx, "alice@EXAMPLE.com")
	must(t, err)
	if byEmail.ID != a.ID {
		t.Errorf("AdminByEmail matched %q, want %q", byEmail.ID, a.ID)
	}
	_, err = s.AdminByEmail(ctx, "nobody@example.com")
	wantCode(t, err, pbx2teams.ENotFound)
	_, err = s.Admin(ctx, "adm_missing")
	wantCode(t, err, pbx2teams.ENotFound)

	// The same email in another case, even on another account, conflicts.
	dup := &pbx2teams.Admin{AccountID: tr.c2.ID, Email: "ALICE@example.com", Name: "Imposter", Role: pbx2teams.RoleCustomerAdmin}
	err = s.CreateAdmin(ctx, dup)
	wantCode(t, err, pbx2teams.EConflict)
	if msg := pbx2teams.ErrorMessage(err); !strings.Contains(msg, "ALICE@example.com") {
		t.Errorf("conflict message %q does not name the email", msg)
	}
	wantCode(t, s.CreateAdmin(ctx, &pbx2teams.Admin{AccountID: "acc_missing", Email: "x@example.com"}), pbx2teams.ENotFound)

	list, err := s.Admins(ctx, tr.c1.ID)
	must(t, err)
	if len(list) != 2 || list[0].ID != a.ID || list[1].ID != b.ID {
		t.Errorf("Admins(c1) = %+v, want alice then bob", list)
	}
	list, err = s.Admins(ctx, tr.c2.ID)
	must(t, err)
	if len(list) != 0 {
		t.Errorf("Admins(c2) = %+v, want none", list)
	}

	b.Email, b.Name, b.Role, b.PasswordHash, b.Disabled = "Robert@example.com", "Robert", pbx2teams.RoleCustomerAdmin, "h2", true
	must(t, s.UpdateAdmin(ctx, b))
	got, err = s.AdminByEmail(ctx, "robert@example.com")
	must(t, err)
	if got.ID != b.ID || got.Name != "Robert" || got.Role != pbx2teams.RoleCustomerAdmin || got.PasswordHash != "h2" || !got.Disabled {
		t.Errorf("after update, admin = %+v", got)
	}
	_, err = s.AdminByEmail(ctx, "bob@example.com")
	wantCode(t, err, pbx2teams.ENotFound)

	b.Email = "alice@example.com"
	wantCode(t, s.UpdateAdmin(ctx, b), pbx2teams.EConflict)
	wantCode(t, s.UpdateAdmin(ctx, &pbx2teams.Admin{ID: "adm_missing", Email: "z@example.com"}), pbx2teams.ENotFound)
}

func testLicences(t *testing.T, s pbx2teams.Store) {
	ctx := ctxOf(t)
	tr := mkTree(t, s)
	exp := T0.Add(30 * 24 * time.Hour)
	must(t, s.PutLicence(ctx, &pbx2teams.Licence{AccountID: tr.c1.ID, SKU: pbx2teams.SKUPhoneAppUser, Quantity: 5, ExpiresAt: &exp, UpdatedAt: T0}))
	must(t, s.PutLicence(ctx, &pbx2teams.Licence{AccountID: tr.c1.ID, SKU: pbx2teams.SKUPBXUser, Quantity: 10, UpdatedAt: T0}))
	must(t, s.PutLicence(ctx, &pbx2teams.Licence{AccountID: tr.c2.ID, SKU: pbx2teams.SKUPBXUser, Quantity: 99, UpdatedAt: T0}))

	ls, err := s.Licences(ctx, tr.c1.ID)
	must(t, err)
	if len(ls) != 2 || ls[0].SKU != pbx2teams.SKUPBXUser || ls[1].SKU != pbx2teams.SKUPhoneAppUser {
		t.Fatalf("Licences(c1) = %+v, want pbx-user then phone-app-user", ls)
	}
	if ls[0].Quantity != 10 || ls[0].ExpiresAt != nil || ls[0].AccountID != tr.c1.ID {
		t.Errorf("pbx-user licence = %+v", ls[0])
	}
	if ls[1].Quantity != 5 {
		t.Errorf("phone-app-user quantity = %d", ls[1].Quantity)
	}
	sameTimePtr(t, "ExpiresAt", ls[1].ExpiresAt, &exp)
	sameTime(t, "UpdatedAt", ls[1].UpdatedAt, T0)

	// Replacing changes quantity and removes the expiry; no second row.
	later := T0.Add(time.Hour)
	must(t, s.PutLicence(ctx, &pbx2teams.Licence{AccountID: tr.c1.ID, SKU: pbx2teams.SKUPhoneAppUser, Quantity: 7, UpdatedAt: later}))
	ls, err = s.Licences(ctx, tr.c1.ID)
	must(t, err)
	if len(ls) != 2 || ls[1].Quantity != 7 || ls[1].ExpiresAt != nil {
		t.Errorf("after replace, Licences(c1) = %+v", ls)
	}
	sameTime(t, "UpdatedAt after replace", ls[1].UpdatedAt, later)

	ls, err = s.Licences(ctx, tr.c3.ID)
	must(t, err)
	if len(ls) != 0 {
		t.Errorf("Licences(c3) = %+v, want none", ls)
	}
	wantCode(t, s.PutLicence(ctx, &pbx2teams.Licence{AccountID: "acc_missing", SKU: pbx2teams.SKUPBXUser, Quantity: 1}), pbx2teams.ENotFound)
}

func testPBXSettings(t *testing.T, s pbx2teams.Store) {
	ctx := ctxOf(t)
	tr := mkTree(t, s)
	_, err := s.PBXSettings(ctx, tr.c1.ID)
	wantCode(t, err, pbx2teams.ENotFound)

	in := &pbx2teams.PBXSettings{AccountID: tr.c1.ID, Domain: "pbx.example.com", OutboundProxy: "proxy.example.com:5061",
		Transport: pbx2teams.TransportTLS, RegisterExpiry: 600, Region: "eu-west", UpdatedAt: T0}
	must(t, s.PutPBXSettings(ctx, in))
	got, err := s.PBXSettings(ctx, tr.c1.ID)
	must(t, err)
	want := *in
	want.UpdatedAt = micro(T0)
	if !reflect.DeepEqual(*got, want) {
		t.Errorf("PBXSettings = %+v, want %+v", *got, want)
	}

	in2 := &pbx2teams.PBXSettings{AccountID: tr.c1.ID, Domain: "pbx2.example.com", Transport: pbx2teams.TransportUDP,
		RegisterExpiry: 3600, Region: "uk", UpdatedAt: T0.Add(time.Minute)}
	must(t, s.PutPBXSettings(ctx, in2))
	got, err = s.PBXSettings(ctx, tr.c1.ID)
	must(t, err)
	if got.Domain != "pbx2.example.com" || got.OutboundProxy != "" || got.Transport != pbx2teams.TransportUDP ||
		got.RegisterExpiry != 3600 || got.Region != "uk" {
		t.Errorf("after replace, PBXSettings = %+v", got)
	}
	_, err = s.PBXSettings(ctx, tr.c2.ID)
	wantCode(t, err, pbx2teams.ENotFound)
}

func testTeamsSettings(t *testing.T, s pbx2teams.Store) {
	ctx := ctxOf(t)
	tr := mkTree(t, s)
	_, err := s.TeamsSettings(ctx, tr.c1.ID)
	wantCode(t, err, pbx2teams.ENotFound)

	consented := T0.Add(time.Minute)
	authorized := T0.Add(2 * time.Minute)
	in := &pbx2teams.TeamsSettings{
		AccountID: tr.c1.ID, TenantID: "7e2b6f0a-tenant", TenantName: "Contoso", ConsentedAt: &consented,
		ConsentError: "", PhoneAppEnabled: true, PhoneAppAuthorizedAt: &authorized, LargeTenantMode: true,
		StandardGroups:      []pbx2teams.Group{{ID: "g1", DisplayName: "Sales"}, {ID: "g2", DisplayName: "Support \"EU\""}},
		PhoneAppGroup:       &pbx2teams.Group{ID: "g3", DisplayName: "Phone App users"},
		SyncIntervalMinutes: 60, UpdatedAt: T0,
	}
	must(t, s.PutTeamsSettings(ctx, in))
	got, err := s.TeamsSettings(ctx, tr.c1.ID)
	must(t, err)
	want := *in
	want.ConsentedAt, want.PhoneAppAuthorizedAt, want.UpdatedAt = ptr(micro(consented)), ptr(micro(authorized)), micro(T0)
	if !reflect.DeepEqual(*got, want) {
		t.Errorf("TeamsSettings =\n%+v\nwant\n%+v", *got, want)
	}

	// Replacing with no groups and no times clears them.
	in2 := &pbx2teams.TeamsSettings{AccountID: tr.c1.ID, ConsentError: "AADSTS65004: declined", SyncIntervalMinutes: 15}
	must(t, s.PutTeamsSettings(ctx, in2))
	got, err = s.TeamsSettings(ctx, tr.c1.ID)
	must(t, err)
	if got.TenantID != "" || got.ConsentedAt != nil || got.PhoneAppAuthorizedAt != nil || got.PhoneAppEnabled ||
		got.LargeTenantMode || len(got.StandardGroups) != 0 || got.PhoneAppGroup != nil ||
		got.ConsentError != "AADSTS65004: declined" || got.SyncIntervalMinutes != 15 || got.UpdatedAt.IsZero() {
		t.Errorf("after replace, TeamsSettings = %+v", got)
	}
	_, err = s.TeamsSettings(ctx, tr.c2.ID)
	wantCode(t, err, pbx2teams.ENotFound)
}

// dirUser returns a directory user as a sync would give it.
func dirUser(accountID string, n int, name string) *pbx2teams.User {
	synced := T0
	return &pbx2teams.User{
		AccountID: accountID, ObjectID: fmt.Sprintf("obj-%05d", n),
		UPN: fmt.Sprintf("User%05d@Contoso.example", n), DisplayName: name,
		Mail: fmt.Sprintf("user%05d@mail.example", n), Enabled: true, Kind: pbx2teams.KindPerson,
		HasTeamsPhone: n%2 == 0, SyncedAt: &synced,
	}
}

// configure gives u a PBX line of type typ.
func configure(t *testing.T, s pbx2teams.Queries, u *pbx2teams.User, typ pbx2teams.ServiceType, sip, phone, contact string) {
	t.Helper()
	u.Type, u.SIPUsername, u.AuthUsername, u.PhoneNumber, u.ContactUser = typ, sip, sip+"-auth", phone, contact
	u.PasswordEnc = []byte{1, 2, 3, 0, 255}
	u.ExternalID = "ext-" + sip
	u.UpdatedAt = T0
	must(t, s.UpdateUserConfig(ctxOf(t), u))
}

func testUpsertKeepsConfig(t *testing.T, s pbx2teams.Store) {
	ctx := ctxOf(t)
	tr := mkTree(t, s)

	// On insert, configuration fields in the struct are ignored.
	u := dirUser(tr.c1.ID, 1, "Ada Lovelace")
	u.Type, u.SIPUsername, u.ContactUser, u.PhoneNumber = pbx2teams.ServiceStandard, "ignored", "ignored", "+15550000"
	must(t, s.UpsertDirectoryUser(ctx, u))
	if !strings.HasPrefix(u.ID, "usr_") {
		t.Errorf("generated user ID %q: want usr_ prefix", u.ID)
	}
	got, err := s.User(ctx, tr.c1.ID, u.ID)
	must(t, err)
	if got.Type != pbx2teams.ServiceNone || got.SIPUsername != "" || got.ContactUser != "" || got.PhoneNumber != "" ||
		got.HasPassword || got.PasswordEnc != nil || got.Suspended {
		t.Errorf("new directory user has configuration: %+v", got)
	}
	if got.ObjectID != "obj-00001" || got.UPN != "User00001@Contoso.example" || got.DisplayName != "Ada Lovelace" ||
		got.Mail != "user00001@mail.example" || !got.Enabled || got.Kind != pbx2teams.KindPerson || got.HasTeamsPhone {
		t.Errorf("identity not stored: %+v", got)
	}
	sameTimePtr(t, "SyncedAt", got.SyncedAt, &T0)

	// Configure, then sync again with changed identity and a struct whose
	// configuration fields are empty: identity changes, configuration stays.
	configure(t, s, got, pbx2teams.ServicePhoneApp, "1001", "+441234567890", "c-secret-1")
	configured, err := s.User(ctx, tr.c1.ID, u.ID)
	must(t, err)
	if configured.Type != pbx2teams.ServicePhoneApp || configured.SIPUsername != "1001" || configured.AuthUsername != "1001-auth" ||
		!reflect.DeepEqual(configured.PasswordEnc, []byte{1, 2, 3, 0, 255}) || !configured.HasPassword ||
		configured.PhoneNumber != "+441234567890" || configured.ExternalID != "ext-1001" || configured.ContactUser != "c-secret-1" {
		t.Errorf("configuration not stored: %+v", configured)
	}
	sameTime(t, "UpdatedAt", configured.UpdatedAt, T0)

	synced2 := T0.Add(time.Hour)
	again := &pbx2teams.User{AccountID: tr.c1.ID, ObjectID: "obj-00001", UPN: "ada@contoso.example", DisplayName: "Ada King",
		Mail: "ada@mail.example", Enabled: false, Kind: pbx2teams.KindPerson, HasTeamsPhone: true, HasCallingPlan: true,
		SuggestedType: pbx2teams.ServiceStandard, Conflict: "in both groups", Deleted: true, SyncedAt: &synced2}
	must(t, s.UpsertDirectoryUser(ctx, again))
	if again.ID != u.ID {
		t.Errorf("upsert of the same object gave ID %q, want %q", again.ID, u.ID)
	}
	after, err := s.User(ctx, tr.c1.ID, u.ID)
	must(t, err)
	if after.UPN != "ada@contoso.example" || after.DisplayName != "Ada King" || after.Mail != "ada@mail.example" ||
		after.Enabled || !after.HasTeamsPhone || !after.HasCallingPlan || after.SuggestedType != pbx2teams.ServiceStandard ||
		after.Conflict != "in both groups" || !after.Deleted {
		t.Errorf("identity not updated: %+v", after)
	}
	sameTimePtr(t, "SyncedAt", after.SyncedAt, &synced2)
	if after.Type != configured.Type || after.SIPUsername != configured.SIPUsername || after.AuthUsername != configured.AuthUsername ||
		!reflect.DeepEqual(after.PasswordEnc, configured.PasswordEnc) || after.PhoneNumber != configured.PhoneNumber ||
		after.ExternalID != configured.ExternalID || after.ContactUser != configured.ContactUser ||
		after.Suspended != configured.Suspended || !after.UpdatedAt.Equal(configured.UpdatedAt) {
		t.Errorf("configuration changed by a directory upsert:\n%+v\nwas\n%+v", after, configured)
	}

	// Clearing the configuration works (password nil → no password).
	after.Type, after.SIPUsername, after.AuthUsername, after.PasswordEnc, after.PhoneNumber = "", "", "", nil, ""
	after.ContactUser, after.ExternalID, after.Suspended = "", "", true
	must(t, s.UpdateUserConfig(ctx, after))
	cleared, err := s.User(ctx, tr.c1.ID, u.ID)
	must(t, err)
	if cleared.Configured() || cleared.HasPassword || cleared.PasswordEnc != nil || !cleared.Suspended || cleared.ContactUser != "" {
		t.Errorf("after clearing, user = %+v", cleared)
	}

	// Caller-chosen IDs are kept; an empty object ID is refused.
	v := dirUser(tr.c1.ID, 2, "Bob")
	v.ID = "usr_chosen"
	must(t, s.UpsertDirectoryUser(ctx, v))
	if v.ID != "usr_chosen" {
		t.Errorf("caller's ID replaced by %q", v.ID)
	}
	wantCode(t, s.UpsertDirectoryUser(ctx, &pbx2teams.User{AccountID: tr.c1.ID, DisplayName: "x"}), pbx2teams.EInvalid)
	wantCode(t, s.UpsertDirectoryUser(ctx, dirUser("acc_missing", 3, "x")), pbx2teams.ENotFound)
	// Another object under an ID already used conflicts.
	w := dirUser(tr.c1.ID, 4, "Clash")
	w.ID = "usr_chosen"
	wantCode(t, s.UpsertDirectoryUser(ctx, w), pbx2teams.EConflict)
	wantCode(t, s.UpdateUserConfig(ctx, &pbx2teams.User{ID: "usr_missing", AccountID: tr.c1.ID}), pbx2teams.ENotFound)
}

func testUserLookups(t *testing.T, s pbx2teams.Store) {
	ctx := ctxOf(t)
	tr := mkTree(t, s)
	u := dirUser(tr.c1.ID, 7, "Grace Hopper")
	must(t, s.UpsertDirectoryUser(ctx, u))

	got, err := s.UserByUPN(ctx, tr.c1.ID, "USER00007@contoso.EXAMPLE")
	must(t, err)
	if got.ID != u.ID {
		t.Errorf("UserByUPN = %q, want %q", got.ID, u.ID)
	}
	got, err = s.UserByObjectID(ctx, tr.c1.ID, "obj-00007")
	must(t, err)
	if got.ID != u.ID {
		t.Errorf("UserByObjectID = %q, want %q", got.ID, u.ID)
	}
	_, err = s.UserByObjectID(ctx, tr.c1.ID, "OBJ-00007")
	wantCode(t, err, pbx2teams.ENotFound)
	_, err = s.UserByUPN(ctx, tr.c1.ID, "nobody@contoso.example")
	wantCode(t, err, pbx2teams.ENotFound)
	_, err = s.User(ctx, tr.c1.ID, "usr_missing")
	wantCode(t, err, pbx2teams.ENotFound)
}

// testLongFields stores a user with fields at the directory's maximum
// lengths in 4-byte characters, and finds it.
func testLongFields(t *testing.T, s pbx2teams.Store) {
	ctx := ctxOf(t)
	tr := mkTree(t, s)
	// Varied characters, so that a database cannot compress them away.
	seed := uint32(1)
	varied := func(n int, lo, span rune) string {
		var b strings.Builder
		for range n {
			seed = seed*1664525 + 1013904223
			b.WriteRune(lo + rune(seed>>8)%span)
		}
		return b.String()
	}
	name := varied(256, 0x1F300, 0x300) // Entra allows 256 characters; emoji take 4 bytes
	u := dirUser(tr.c1.ID, 1, name)
	u.UPN = "üüüüüüüüüü" + varied(54, 0x4E00, 0x5000) + "@" + varied(48, 'a', 26)
	u.Mail = varied(200, 0x4E00, 0x5000) + "@" + varied(55, 'a', 26)
	must(t, s.UpsertDirectoryUser(ctx, u))
	u.Type, u.SIPUsername, u.PhoneNumber, u.ContactUser = pbx2teams.ServiceStandard, varied(200, 0x4E00, 0x5000), "+15550001", "long"
	must(t, s.UpdateUserConfig(ctx, u))
	got, err := s.User(ctx, tr.c1.ID, u.ID)
	must(t, err)
	if got.DisplayName != name || got.UPN != u.UPN || got.Mail != u.Mail || got.SIPUsername != u.SIPUsername {
		t.Error("long fields did not round-trip")
	}
	page, err := s.Users(ctx, pbx2teams.UserQuery{AccountID: tr.c1.ID, Search: strings.Repeat("Ü", 10)})
	must(t, err)
	if page.Total != 1 || len(page.Users) != 1 || page.Users[0].ID != u.ID {
		t.Errorf("search in a long UPN: %+v", page)
	}
}

// seedUsers creates n users in accountID with display names that repeat
// (so the ID breaks ties) and vary in case.
func seedUsers(t *testing.T, s pbx2teams.Store, accountID string, n int) []*pbx2teams.User {
	t.Helper()
	ctx := ctxOf(t)
	var out []*pbx2teams.User
	names := []string{"alice", "Bob", "bob", "Émile", "Zoë", "zed", "Ann Lee", ""}
	must(t, s.InTx(ctx, func(q pbx2teams.Queries) error {
		for i := 0; i < n; i++ {
			u := dirUser(accountID, i, fmt.Sprintf("%s %d", names[i%len(names)], i%5))
			if err := q.UpsertDirectoryUser(ctx, u); err != nil {
				return err
			}
			out = append(out, u)
		}
		return nil
	}))
	return out
}

func keyLess(a, b *pbx2teams.User) bool {
	if a.DisplayName != b.DisplayName {
		return a.DisplayName < b.DisplayName
	}
	return a.ID < b.ID
}

func testUsersPagination(t *testing.T, s pbx2teams.Store) {
	ctx := ctxOf(t)
	tr := mkTree(t, s)
	const n = 237
	users := seedUsers(t, s, tr.c1.ID, n)
	seedUsers(t, s, tr.c2.ID, 30) // another tenant's users must not show

	sort.Slice(users, func(i, j int) bool { return keyLess(users[i], users[j]) })
	var walked []pbx2teams.User
	seen := map[string]bool{}
	cursor, pages := "", 0
	for {
		page, err := s.Users(ctx, pbx2teams.UserQuery{AccountID: tr.c1.ID, Cursor: cursor, Limit: 20})
		must(t, err)
		pages++
		if page.Total != n {
			t.Fatalf("page %d: Total = %d, want %d", pages, page.Total, n)
		}
		if len(page.Users) > 20 {
			t.Fatalf("page %d has %d users, limit 20", pages, len(page.Users))
		}
		for _, u := range page.Users {
			if seen[u.ID] {
				t.Fatalf("user %s returned twice", u.ID)
			}
			seen[u.ID] = true
			if u.AccountID != tr.c1.ID {
				t.Fatalf("user %s of account %s listed for %s", u.ID, u.AccountID, tr.c1.ID)
			}
		}
		walked = append(walked, page.Users...)
		if page.NextCursor == "" {
			break
		}
		if pages > n {
			t.Fatal("pagination does not end")
		}
		cursor = page.NextCursor
	}
	if want := (n + 19) / 20; pages != want {
		t.Errorf("walked %d pages, want %d", pages, want)
	}
	if len(walked) != n {
		t.Fatalf("walked %d users, want %d", len(walked), n)
	}
	for i := range walked {
		if walked[i].ID != users[i].ID {
			t.Fatalf("position %d: %q (%s), want %q (%s): order is by display name then ID, byte-wise",
				i, walked[i].DisplayName, walked[i].ID, users[i].DisplayName, users[i].ID)
		}
	}

	// Default and maximum limits.
	page, err := s.Users(ctx, pbx2teams.UserQuery{AccountID: tr.c1.ID})
	must(t, err)
	if len(page.Users) != 50 || page.NextCursor == "" {
		t.Errorf("default page: %d users, cursor %q; want 50 and a cursor", len(page.Users), page.NextCursor)
	}
	page, err = s.Users(ctx, pbx2teams.UserQuery{AccountID: tr.c1.ID, Limit: 100000})
	must(t, err)
	if len(page.Users) != n || page.NextCursor != "" {
		t.Errorf("limit above max: %d users, cursor %q; want all %d (max 500) and no cursor", len(page.Users), page.NextCursor, n)
	}
	// An exact fit has no next cursor.
	page, err = s.Users(ctx, pbx2teams.UserQuery{AccountID: tr.c2.ID, Limit: 30})
	must(t, err)
	if len(page.Users) != 30 || page.NextCursor != "" {
		t.Errorf("exact page: %d users, cursor %q", len(page.Users), page.NextCursor)
	}
	// An empty account has an empty page.
	page, err = s.Users(ctx, pbx2teams.UserQuery{AccountID: tr.c3.ID})
	must(t, err)
	if len(page.Users) != 0 || page.Total != 0 || page.NextCursor != "" || page.Users == nil {
		t.Errorf("empty account page = %+v, want no users (non-nil), total 0", page)
	}

	for _, bad := range []string{"!!!", "bm90IGpzb24", "WyJhIl0"} {
		_, err = s.Users(ctx, pbx2teams.UserQuery{AccountID: tr.c1.ID, Cursor: bad})
		wantCode(t, err, pbx2teams.EInvalid)
	}
}

func testUsersSearch(t *testing.T, s pbx2teams.Store) {
	ctx := ctxOf(t)
	tr := mkTree(t, s)
	users := seedUsers(t, s, tr.c1.ID, 60)
	other := seedUsers(t, s, tr.c2.ID, 60) // same UPNs in another tenant
	configure(t, s, users[3], pbx2teams.ServiceStandard, "SipName_42", "+441632960001", "c3")
	configure(t, s, other[3], pbx2teams.ServiceStandard, "SipName_42", "+441632960001", "c3-other")
	special := dirUser(tr.c1.ID, 500, "100% Name_0")
	must(t, s.UpsertDirectoryUser(ctx, special))

	search := func(term string) *pbx2teams.UserPage {
		t.Helper()
		page, err := s.Users(ctx, pbx2teams.UserQuery{AccountID: tr.c1.ID, Search: term, Limit: 500})
		must(t, err)
		if page.Total != len(page.Users) {
			t.Errorf("search %q: Total %d, but %d users on the only page", term, page.Total, len(page.Users))
		}
		for _, u := range page.Users {
			if u.AccountID != tr.c1.ID {
				t.Errorf("search %q returned user of account %s", term, u.AccountID)
			}
		}
		return page
	}
	one := func(term, wantID string) {
		t.Helper()
		page := search(term)
		if len(page.Users) != 1 || page.Users[0].ID != wantID {
			t.Errorf("search %q = %d users %v, want only %s", term, len(page.Users), userIDs(page.Users), wantID)
		}
	}
	one("USER00017@contoso", users[17].ID)      // UPN, any case
	one("user00017@MAIL.example", users[17].ID) // mail
	one("sipname_42", users[3].ID)              // SIP username
	one("+441632960001", users[3].ID)           // phone number
	one("1632960", users[3].ID)                 // part of the phone number
	one("0%", special.ID)                       // % is literal (as a wildcard it matches all)
	one("e_0", special.ID)                      // _ is literal (as a wildcard it matches "alice 0")
	one("  NAME_0 ", special.ID)                // trimmed, any case

	// Display name: "Zoë 2" style names; index 4 is "Zoë" in seedUsers.
	page := search("zoë")
	want := 0
	for _, u := range users {
		if strings.HasPrefix(u.DisplayName, "Zoë") {
			want++
		}
	}
	if want == 0 || len(page.Users) != want {
		t.Errorf("search zoë: %d users, want %d", len(page.Users), want)
	}
	page = search("no such user")
	if len(page.Users) != 0 || page.Total != 0 {
		t.Errorf("search with no match: %+v", page)
	}

	// A search spanning pages: Total is all matches, pages walk them all.
	var all []pbx2teams.User
	cursor := ""
	for {
		p, err := s.Users(ctx, pbx2teams.UserQuery{AccountID: tr.c1.ID, Search: "contoso", Cursor: cursor, Limit: 7})
		must(t, err)
		if p.Total != 61 {
			t.Fatalf("search contoso: Total %d, want 61", p.Total)
		}
		all = append(all, p.Users...)
		if p.NextCursor == "" {
			break
		}
		cursor = p.NextCursor
	}
	if len(all) != 61 {
		t.Errorf("search contoso walked %d users, want 61", len(all))
	}
}

// testUsersSearchMany walks searches matching a few hundred and a few
// thousand users (stores may answer the two differently) and checks each
// against the expected list.
func testUsersSearchMany(t *testing.T, s pbx2teams.Store) {
	ctx := ctxOf(t)
	tr := mkTree(t, s)
	users := seedUsers(t, s, tr.c1.ID, 2600)
	seedUsers(t, s, tr.c2.ID, 50)
	for i := 0; i < 2600; i += 10 {
		configure(t, s, users[i], pbx2teams.ServiceStandard, fmt.Sprintf("ext%04d", i), fmt.Sprintf("+1555%07d", i), fmt.Sprint("m", i))
	}
	sort.Slice(users, func(i, j int) bool { return keyLess(users[i], users[j]) })
	for _, c := range []struct {
		term string
		typ  pbx2teams.ServiceType
	}{{"contoso", ""}, {"bob", ""}, {"USER0", ""}, {"ext", ""}, {"+1555", "any"}, {"user001", "none"}, {"0 ", ""}} {
		var want []string
		for _, u := range users {
			text := strings.ToLower(strings.Join([]string{u.UPN, u.DisplayName, u.Mail, u.SIPUsername, u.PhoneNumber}, "\n"))
			if strings.Contains(text, strings.ToLower(strings.TrimSpace(c.term))) &&
				(c.typ == "" || (c.typ == "any") == u.Configured()) {
				want = append(want, u.ID)
			}
		}
		if len(want) == 0 {
			t.Fatalf("fixture: %q matches nothing", c.term)
		}
		var got []string
		cursor := ""
		for {
			p, err := s.Users(ctx, pbx2teams.UserQuery{AccountID: tr.c1.ID, Search: c.term, Type: c.typ, Cursor: cursor, Limit: 300})
			must(t, err)
			if p.Total != len(want) {
				t.Fatalf("search %q type %q: Total %d, want %d", c.term, c.typ, p.Total, len(want))
			}
			if cursor != "" && len(p.Users) == 0 {
				t.Fatalf("search %q type %q: a next cursor led to an empty page", c.term, c.typ)
			}
			got = append(got, userIDs(p.Users)...)
			if p.NextCursor == "" {
				break
			}
			cursor = p.NextCursor
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("search %q type %q: walked %d users, want %d in list order", c.term, c.typ, len(got), len(want))
		}
		// A page holding exactly the rest has no next cursor.
		if n := min(len(want), 500); n > 0 {
			p, err := s.Users(ctx, pbx2teams.UserQuery{AccountID: tr.c1.ID, Search: c.term, Type: c.typ, Limit: n})
			must(t, err)
			if len(p.Users) != n || (n == len(want)) != (p.NextCursor == "") {
				t.Errorf("search %q type %q limit %d: %d users, next cursor %q", c.term, c.typ, n, len(p.Users), p.NextCursor)
			}
		}
	}
}

func userIDs(us []pbx2teams.User) []string {
	out := make([]string, len(us))
	for i, u := range us {
		out[i] = u.ID
	}
	return out
}

func testUsersTypeFilter(t *testing.T, s pbx2teams.Store) {
	ctx := ctxOf(t)
	tr := mkTree(t, s)
	users := seedUsers(t, s, tr.c1.ID, 20)
	configure(t, s, users[0], pbx2teams.ServiceStandard, "s0", "", "k0")
	configure(t, s, users[1], pbx2teams.ServiceStandard, "s1", "", "k1")
	configure(t, s, users[2], pbx2teams.ServicePhoneApp, "p2", "", "k2")
	count := func(typ pbx2teams.ServiceType, search string) int {
		t.Helper()
		page, err := s.Users(ctx, pbx2teams.UserQuery{AccountID: tr.c1.ID, Type: typ, Search: search})
		must(t, err)
		if page.Total != len(page.Users) {
			t.Errorf("type %q: Total %d, %d users", typ, page.Total, len(page.Users))
		}
		for _, u := range page.Users {
			switch typ {
			case "any":
				if !u.Configured() {
					t.Errorf("type any returned unconfigured %s", u.ID)
				}
			case "none":
				if u.Configured() {
					t.Errorf("type none returned configured %s", u.ID)
				}
			case "":
			default:
				if u.Type != typ {
					t.Errorf("type %q returned %s of type %q", typ, u.ID, u.Type)
				}
			}
		}
		return page.Total
	}
	for _, c := range []struct {
		typ    pbx2teams.ServiceType
		search string
		want   int
	}{
		{"", "", 20}, {"any", "", 3}, {"none", "", 17}, {pbx2teams.ServiceStandard, "", 2},
		{pbx2teams.ServicePhoneApp, "", 1}, {pbx2teams.ServiceStandard, "s1", 1}, {"any", "p2", 1},
	} {
		if got := count(c.typ, c.search); got != c.want {
			t.Errorf("Users(type %q, search %q) total = %d, want %d", c.typ, c.search, got, c.want)
		}
	}
}

func testCountLicenceUse(t *testing.T, s pbx2teams.Store) {
	ctx := ctxOf(t)
	tr := mkTree(t, s)
	users := seedUsers(t, s, tr.c1.ID, 12)
	seedOther := seedUsers(t, s, tr.c2.ID, 3)
	configure(t, s, seedOther[0], pbx2teams.ServiceStandard, "o", "", "ko")

	std := []int{0, 1, 2, 3, 4, 5}
	app := []int{6, 7, 8, 9}
	for _, i := range std {
		configure(t, s, users[i], pbx2teams.ServiceStandard, fmt.Sprint("s", i), "", fmt.Sprint("ks", i))
	}
	for _, i := range app {
		configure(t, s, users[i], pbx2teams.ServicePhoneApp, fmt.Sprint("p", i), "", fmt.Sprint("kp", i))
	}
	check := func(wantStd, wantApp int) {
		t.Helper()
		st, pa, err := s.CountLicenceUse(ctx, tr.c1.ID)
		must(t, err)
		if st != wantStd || pa != wantApp {
			t.Errorf("CountLicenceUse = %d standard, %d phone app; want %d, %d", st, pa, wantStd, wantApp)
		}
	}
	check(6, 4)

	// Suspended, deleted and disabled users consume nothing.
	users[0].Suspended = true
	must(t, s.UpdateUserConfig(ctx, users[0]))
	del := dirUser(tr.c1.ID, 1, users[1].DisplayName)
	del.Deleted = true
	must(t, s.UpsertDirectoryUser(ctx, del))
	dis := dirUser(tr.c1.ID, 6, users[6].DisplayName)
	dis.Enabled = false
	must(t, s.UpsertDirectoryUser(ctx, dis))
	check(4, 3)

	st, pa, err := s.CountLicenceUse(ctx, tr.c3.ID)
	must(t, err)
	if st != 0 || pa != 0 {
		t.Errorf("CountLicenceUse(empty account) = %d, %d", st, pa)
	}
}

func testContactAndPhoneLookups(t *testing.T, s pbx2teams.Store) {
	ctx := ctxOf(t)
	tr := mkTree(t, s)
	a := seedUsers(t, s, tr.c1.ID, 3)
	b := seedUsers(t, s, tr.c2.ID, 3)
	configure(t, s, a[0], pbx2teams.ServiceStandard, "100", "+441632960100", "ctc-a0")
	configure(t, s, b[0], pbx2teams.ServicePhoneApp, "100", "+441632960100", "ctc-b0")

	got, err := s.UserByContact(ctx, "ctc-b0")
	must(t, err)
	if got.ID != b[0].ID || got.AccountID != tr.c2.ID {
		t.Errorf("UserByContact(ctc-b0) = %s of %s", got.ID, got.AccountID)
	}
	_, err = s.UserByContact(ctx, "ctc-none")
	wantCode(t, err, pbx2teams.ENotFound)
	_, err = s.UserByContact(ctx, "")
	wantCode(t, err, pbx2teams.ENotFound)

	got, err = s.UserByPhoneNumber(ctx, tr.c1.ID, "+441632960100")
	must(t, err)
	if got.ID != a[0].ID {
		t.Errorf("UserByPhoneNumber(c1) = %s, want %s", got.ID, a[0].ID)
	}
	got, err = s.UserByPhoneNumber(ctx, tr.c2.ID, "+441632960100")
	must(t, err)
	if got.ID != b[0].ID {
		t.Errorf("UserByPhoneNumber(c2) = %s, want %s", got.ID, b[0].ID)
	}
	_, err = s.UserByPhoneNumber(ctx, tr.c3.ID, "+441632960100")
	wantCode(t, err, pbx2teams.ENotFound)
	_, err = s.UserByPhoneNumber(ctx, tr.c1.ID, "")
	wantCode(t, err, pbx2teams.ENotFound)

	// A user whose line is removed keeps neither lookup, even if the
	// number and contact were left in place.
	a[1].PhoneNumber, a[1].ContactUser = "+441632960111", "ctc-a1"
	must(t, s.UpdateUserConfig(ctx, a[1])) // Type stays none
	_, err = s.UserByContact(ctx, "ctc-a1")
	wantCode(t, err, pbx2teams.ENotFound)
	_, err = s.UserByPhoneNumber(ctx, tr.c1.ID, "+441632960111")
	wantCode(t, err, pbx2teams.ENotFound)

	// Contact user parts are unique across all accounts.
	a[2].Type, a[2].ContactUser = pbx2teams.ServiceStandard, "ctc-b0"
	err = s.UpdateUserConfig(ctx, a[2])
	wantCode(t, err, pbx2teams.EConflict)
	stored, err2 := s.User(ctx, tr.c1.ID, a[2].ID)
	must(t, err2)
	if stored.Configured() || stored.ContactUser != "" {
		t.Errorf("a refused update changed the user: %+v", stored)
	}
	// Many unconfigured users share the empty contact.
	users, err := s.Users(ctx, pbx2teams.UserQuery{AccountID: tr.c1.ID, Type: "none"})
	must(t, err)
	if users.Total != 2 {
		t.Errorf("unconfigured users = %d, want 2", users.Total)
	}
}

func testConfiguredUsers(t *testing.T, s pbx2teams.Store) {
	ctx := ctxOf(t)
	tr := mkTree(t, s)
	a := seedUsers(t, s, tr.c1.ID, 10)
	b := seedUsers(t, s, tr.c3.ID, 10)
	var want []string
	for i := 0; i < 10; i += 2 {
		configure(t, s, a[i], pbx2teams.ServiceStandard, fmt.Sprint("a", i), "", fmt.Sprint("ka", i))
		configure(t, s, b[i+1], pbx2teams.ServicePhoneApp, fmt.Sprint("b", i), "", fmt.Sprint("kb", i))
		want = append(want, a[i].ID, b[i+1].ID)
	}
	sort.Strings(want)
	var got []string
	after := ""
	for {
		us, err := s.ConfiguredUsers(ctx, after, 3)
		must(t, err)
		if len(us) > 3 {
			t.Fatalf("ConfiguredUsers returned %d, limit 3", len(us))
		}
		if len(us) == 0 {
			break
		}
		for _, u := range us {
			if !u.Configured() || u.ContactUser == "" || !u.HasPassword {
				t.Errorf("ConfiguredUsers returned %+v", u)
			}
			got = append(got, u.ID)
		}
		after = us[len(us)-1].ID
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ConfiguredUsers walked %v, want %v", got, want)
	}
}

// testTenantIsolation checks that no method taking an account ID returns
// or changes another account's rows.
func testTenantIsolation(t *testing.T, s pbx2teams.Store) {
	ctx := ctxOf(t)
	tr := mkTree(t, s)
	a := seedUsers(t, s, tr.c1.ID, 5)
	b := seedUsers(t, s, tr.c2.ID, 5) // same object IDs and UPNs as a
	configure(t, s, a[0], pbx2teams.ServiceStandard, "100", "+441632960100", "iso-a0")
	if a[0].ObjectID != b[0].ObjectID || a[0].ID == b[0].ID {
		t.Fatalf("fixture: want same object ID, different users")
	}
	A, B := tr.c1.ID, tr.c2.ID

	_, err := s.User(ctx, B, a[0].ID)
	wantCode(t, err, pbx2teams.ENotFound)
	u, err := s.UserByUPN(ctx, B, a[0].UPN)
	must(t, err)
	if u.ID != b[0].ID {
		t.Errorf("UserByUPN(B) = %s, want B's own user %s", u.ID, b[0].ID)
	}
	u, err = s.UserByObjectID(ctx, B, a[0].ObjectID)
	must(t, err)
	if u.ID != b[0].ID {
		t.Errorf("UserByObjectID(B) = %s, want B's own user %s", u.ID, b[0].ID)
	}
	_, err = s.UserByPhoneNumber(ctx, B, "+441632960100")
	wantCode(t, err, pbx2teams.ENotFound)
	for _, q := range []pbx2teams.UserQuery{{AccountID: B}, {AccountID: B, Search: "100"}, {AccountID: B, Type: "any"},
		{AccountID: B, Search: "user00000"}} {
		page, err := s.Users(ctx, q)
		must(t, err)
		for _, u := range page.Users {
			if u.AccountID != B {
				t.Errorf("Users(%+v) returned %s of %s", q, u.ID, u.AccountID)
			}
		}
	}
	st, pa, err := s.CountLicenceUse(ctx, B)
	must(t, err)
	if st != 0 || pa != 0 {
		t.Errorf("CountLicenceUse(B) = %d, %d; A's users counted", st, pa)
	}

	// Writing A's user through B's account changes nothing.
	hijack := *a[0]
	hijack.AccountID = B
	hijack.ContactUser = "stolen"
	wantCode(t, s.UpdateUserConfig(ctx, &hijack), pbx2teams.ENotFound)
	u, err = s.User(ctx, A, a[0].ID)
	must(t, err)
	if u.ContactUser != "iso-a0" || u.AccountID != A {
		t.Errorf("A's user changed through B: %+v", u)
	}
	// A directory upsert for B with A's object ID creates B's own user.
	up := dirUser(B, 0, "B's user renamed")
	must(t, s.UpsertDirectoryUser(ctx, up))
	if up.ID != b[0].ID {
		t.Errorf("upsert for B matched %s, want %s", up.ID, b[0].ID)
	}
	u, err = s.User(ctx, A, a[0].ID)
	must(t, err)
	if u.DisplayName == "B's user renamed" {
		t.Error("A's user renamed by B's sync")
	}

	// Settings, licences, admins and keys of A are not B's.
	must(t, s.PutLicence(ctx, &pbx2teams.Licence{AccountID: A, SKU: pbx2teams.SKUPBXUser, Quantity: 3}))
	must(t, s.PutPBXSettings(ctx, &pbx2teams.PBXSettings{AccountID: A, Domain: "a.example", Transport: pbx2teams.TransportUDP}))
	must(t, s.PutTeamsSettings(ctx, &pbx2teams.TeamsSettings{AccountID: A, TenantID: "tenant-a"}))
	must(t, s.CreateAdmin(ctx, &pbx2teams.Admin{AccountID: A, Email: "a@a.example", Role: pbx2teams.RoleCustomerAdmin}))
	key := &pbx2teams.APIKey{AccountID: A, Name: "a", Prefix: "p", Hash: "hash-a", Role: pbx2teams.RoleCustomerAdmin}
	must(t, s.CreateAPIKey(ctx, key))
	if ls, err := s.Licences(ctx, B); err != nil || len(ls) != 0 {
		t.Errorf("Licences(B) = %v, %v", ls, err)
	}
	_, err = s.PBXSettings(ctx, B)
	wantCode(t, err, pbx2teams.ENotFound)
	_, err = s.TeamsSettings(ctx, B)
	wantCode(t, err, pbx2teams.ENotFound)
	if as, err := s.Admins(ctx, B); err != nil || len(as) != 0 {
		t.Errorf("Admins(B) = %v, %v", as, err)
	}
	if ks, err := s.APIKeys(ctx, B); err != nil || len(ks) != 0 {
		t.Errorf("APIKeys(B) = %v, %v", ks, err)
	}
	wantCode(t, s.RevokeAPIKey(ctx, B, key.ID, T0), pbx2teams.ENotFound)
	k, err := s.APIKeyByHash(ctx, "hash-a")
	must(t, err)
	if k.RevokedAt != nil {
		t.Error("A's key revoked through B")
	}
}

func testAudit(t *testing.T, s pbx2teams.Store) {
	ctx := ctxOf(t)
	tr := mkTree(t, s)
	type in struct {
		acc    *pbx2teams.Account
		action string
	}
	var entries []*pbx2teams.AuditEntry
	for i, x := range []in{{tr.op, "op.1"}, {tr.c1, "c1.1"}, {tr.c3, "c3.1"}, {tr.p1, "p1.1"}, {tr.c2, "c2.1"},
		{tr.c1, "c1.2"}, {nil, "system.1"}, {tr.c3, "c3.2"}} {
		e := &pbx2teams.AuditEntry{ActorID: "adm_x", ActorName: "Alice", Action: x.action, Target: "user:usr_1",
			Detail: "password set", At: T0.Add(time.Duration(i) * time.Second)}
		if x.acc != nil {
			e.AccountID = x.acc.ID
		}
		must(t, s.AppendAudit(ctx, e))
		if e.ID <= 0 || (len(entries) > 0 && e.ID <= entries[len(entries)-1].ID) {
			t.Fatalf("audit IDs not increasing: %d after %v", e.ID, entries)
		}
		entries = append(entries, e)
	}
	actions := func(es []pbx2teams.AuditEntry) []string {
		var out []string
		for _, e := range es {
			out = append(out, e.Action)
		}
		return out
	}
	got, err := s.Audit(ctx, tr.p1.Path, 0, 100)
	must(t, err)
	if want := []string{"c1.2", "c2.1", "p1.1", "c1.1"}; !reflect.DeepEqual(actions(got), want) {
		t.Errorf("Audit(p1) = %v, want %v (newest first)", actions(got), want)
	}
	if got[0].AccountID != tr.c1.ID || got[0].ActorID != "adm_x" || got[0].ActorName != "Alice" ||
		got[0].Target != "user:usr_1" || got[0].Detail != "password set" || got[0].ID != entries[5].ID {
		t.Errorf("entry = %+v", got[0])
	}
	sameTime(t, "At", got[0].At, entries[5].At)

	got, err = s.Audit(ctx, tr.c3.Path, 0, 100)
	must(t, err)
	if want := []string{"c3.2", "c3.1"}; !reflect.DeepEqual(actions(got), want) {
		t.Errorf("Audit(c3) = %v, want %v", actions(got), want)
	}
	got, err = s.Audit(ctx, tr.op.Path, 0, 100)
	must(t, err)
	if len(got) != 7 {
		t.Errorf("Audit(op) = %v, want the 7 entries with an account", actions(got))
	}
	got, err = s.Audit(ctx, "/", 0, 100)
	must(t, err)
	if len(got) != 8 || got[1].Action != "system.1" {
		t.Errorf("Audit(/) = %v, want all 8", actions(got))
	}

	// Paging with beforeID and limit.
	var walked []string
	before := int64(0)
	for {
		page, err := s.Audit(ctx, tr.op.Path, before, 3)
		must(t, err)
		if len(page) > 3 {
			t.Fatalf("Audit page of %d, limit 3", len(page))
		}
		if len(page) == 0 {
			break
		}
		walked = append(walked, actions(page)...)
		before = page[len(page)-1].ID
	}
	if want := []string{"c3.2", "c1.2", "c2.1", "p1.1", "c3.1", "c1.1", "op.1"}; !reflect.DeepEqual(walked, want) {
		t.Errorf("paged Audit(op) = %v, want %v", walked, want)
	}
}

func testAPIKeys(t *testing.T, s pbx2teams.Store) {
	ctx := ctxOf(t)
	tr := mkTree(t, s)
	k1 := &pbx2teams.APIKey{AccountID: tr.c1.ID, Name: "CI", Prefix: "p2t_abcd", Hash: "h1", Role: pbx2teams.RoleCustomerAdmin,
		CreatedBy: "adm_1", CreatedAt: T0}
	k2 := &pbx2teams.APIKey{AccountID: tr.c1.ID, Name: "Reports", Prefix: "p2t_efgh", Hash: "h2", Role: pbx2teams.RoleViewer,
		CreatedBy: "adm_1", CreatedAt: T0.Add(time.Second)}
	must(t, s.CreateAPIKey(ctx, k1))
	must(t, s.CreateAPIKey(ctx, k2))
	if !strings.HasPrefix(k1.ID, "key_") {
		t.Errorf("generated key ID %q: want key_ prefix", k1.ID)
	}
	wantCode(t, s.CreateAPIKey(ctx, &pbx2teams.APIKey{AccountID: tr.c2.ID, Hash: "h1"}), pbx2teams.EConflict)
	wantCode(t, s.CreateAPIKey(ctx, &pbx2teams.APIKey{AccountID: "acc_missing", Hash: "h9"}), pbx2teams.ENotFound)

	got, err := s.APIKeyByHash(ctx, "h1")
	must(t, err)
	if got.ID != k1.ID || got.Name != "CI" || got.Prefix != "p2t_abcd" || got.Role != pbx2teams.RoleCustomerAdmin ||
		got.CreatedBy != "adm_1" || got.LastUsedAt != nil || got.RevokedAt != nil || got.Hash != "h1" {
		t.Errorf("APIKeyByHash = %+v", got)
	}
	sameTime(t, "CreatedAt", got.CreatedAt, T0)
	_, err = s.APIKeyByHash(ctx, "nope")
	wantCode(t, err, pbx2teams.ENotFound)

	list, err := s.APIKeys(ctx, tr.c1.ID)
	must(t, err)
	if len(list) != 2 || list[0].ID != k1.ID || list[1].ID != k2.ID {
		t.Errorf("APIKeys = %v, want k1, k2", list)
	}

	used := T0.Add(time.Hour)
	must(t, s.TouchAPIKey(ctx, k1.ID, used))
	revoked := T0.Add(2 * time.Hour)
	must(t, s.RevokeAPIKey(ctx, tr.c1.ID, k1.ID, revoked))
	must(t, s.RevokeAPIKey(ctx, tr.c1.ID, k1.ID, revoked.Add(time.Hour))) // keeps the first
	got, err = s.APIKeyByHash(ctx, "h1")
	must(t, err)
	sameTimePtr(t, "LastUsedAt", got.LastUsedAt, &used)
	sameTimePtr(t, "RevokedAt", got.RevokedAt, &revoked)
	got, err = s.APIKeyByHash(ctx, "h2")
	must(t, err)
	if got.RevokedAt != nil || got.LastUsedAt != nil {
		t.Errorf("k2 changed by k1's revoke/touch: %+v", got)
	}
	wantCode(t, s.RevokeAPIKey(ctx, tr.c1.ID, "key_missing", revoked), pbx2teams.ENotFound)
	wantCode(t, s.TouchAPIKey(ctx, "key_missing", used), pbx2teams.ENotFound)
}

func testSessions(t *testing.T, s pbx2teams.Store) {
	ctx := ctxOf(t)
	tr := mkTree(t, s)
	adm := &pbx2teams.Admin{AccountID: tr.c1.ID, Email: "s@example.com", Role: pbx2teams.RoleCustomerAdmin}
	must(t, s.CreateAdmin(ctx, adm))
	mk := func(hash string, expires time.Time) {
		t.Helper()
		must(t, s.CreateSession(ctx, &pbx2teams.Session{TokenHash: hash, AdminID: adm.ID, CSRFToken: "csrf-" + hash,
			CreatedAt: T0, ExpiresAt: expires}))
	}
	now := T0.Add(24 * time.Hour)
	mk("old", now.Add(-time.Second))
	mk("edge", now)
	mk("live", now.Add(time.Microsecond))
	mk("bye", now.Add(time.Hour))
	wantCode(t, s.CreateSession(ctx, &pbx2teams.Session{TokenHash: "live", AdminID: adm.ID, ExpiresAt: now}), pbx2teams.EConflict)
	wantCode(t, s.CreateSession(ctx, &pbx2teams.Session{TokenHash: "x", AdminID: "adm_missing", ExpiresAt: now}), pbx2teams.ENotFound)

	got, err := s.SessionByHash(ctx, "live")
	must(t, err)
	if got.AdminID != adm.ID || got.CSRFToken != "csrf-live" || got.TokenHash != "live" {
		t.Errorf("SessionByHash = %+v", got)
	}
	sameTime(t, "CreatedAt", got.CreatedAt, T0)
	sameTime(t, "ExpiresAt", got.ExpiresAt, now.Add(time.Microsecond))

	must(t, s.DeleteSession(ctx, "bye"))
	must(t, s.DeleteSession(ctx, "bye")) // deleting twice is fine
	_, err = s.SessionByHash(ctx, "bye")
	wantCode(t, err, pbx2teams.ENotFound)

	must(t, s.DeleteExpiredSessions(ctx, now))
	for _, h := range []string{"old", "edge"} {
		_, err = s.SessionByHash(ctx, h)
		wantCode(t, err, pbx2teams.ENotFound)
	}
	_, err = s.SessionByHash(ctx, "live")
	must(t, err)
}

func testSettings(t *testing.T, s pbx2teams.Store) {
	ctx := ctxOf(t)
	v, err := s.Setting(ctx, "first_admin_created")
	must(t, err)
	if v != "" {
		t.Errorf("unset setting = %q", v)
	}
	must(t, s.PutSetting(ctx, "first_admin_created", "yes"))
	must(t, s.PutSetting(ctx, "other", "1"))
	must(t, s.PutSetting(ctx, "first_admin_created", "yes, 2025"))
	v, err = s.Setting(ctx, "first_admin_created")
	must(t, err)
	if v != "yes, 2025" {
		t.Errorf("setting = %q, want the last value", v)
	}
	v, err = s.Setting(ctx, "other")
	must(t, err)
	if v != "1" {
		t.Errorf("other setting = %q", v)
	}
}

func testInTxCommit(t *testing.T, s pbx2teams.Store) {
	ctx := ctxOf(t)
	var acc *pbx2teams.Account
	var u *pbx2teams.User
	must(t, s.InTx(ctx, func(q pbx2teams.Queries) error {
		acc = mkAccount(t, q, nil, pbx2teams.KindOperator, "in tx")
		u = dirUser(acc.ID, 1, "Tx User")
		if err := q.UpsertDirectoryUser(ctx, u); err != nil {
			return err
		}
		// The transaction sees its own writes.
		if _, err := q.User(ctx, acc.ID, u.ID); err != nil {
			return err
		}
		page, err := q.Users(ctx, pbx2teams.UserQuery{AccountID: acc.ID})
		if err != nil {
			return err
		}
		if page.Total != 1 {
			return fmt.Errorf("inside the transaction, Total = %d", page.Total)
		}
		return q.PutSetting(ctx, "k", "v")
	}))
	if _, err := s.User(ctx, acc.ID, u.ID); err != nil {
		t.Errorf("committed user: %v", err)
	}
	if v, err := s.Setting(ctx, "k"); err != nil || v != "v" {
		t.Errorf("committed setting = %q, %v", v, err)
	}
}

func testInTxRollback(t *testing.T, s pbx2teams.Store) {
	ctx := ctxOf(t)
	tr := mkTree(t, s)
	boom := errors.New("boom")
	err := s.InTx(ctx, func(q pbx2teams.Queries) error {
		mkAccount(t, q, tr.p1, pbx2teams.KindCustomer, "doomed")
		u := dirUser(tr.c1.ID, 1, "Doomed User")
		if err := q.UpsertDirectoryUser(ctx, u); err != nil {
			return err
		}
		if err := q.PutSetting(ctx, "doomed", "1"); err != nil {
			return err
		}
		if err := q.PutLicence(ctx, &pbx2teams.Licence{AccountID: tr.c1.ID, SKU: pbx2teams.SKUPBXUser, Quantity: 5}); err != nil {
			return err
		}
		if err := q.AppendAudit(ctx, &pbx2teams.AuditEntry{AccountID: tr.c1.ID, Action: "doomed"}); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("InTx returned %v, want fn's error", err)
	}
	assertNothing := func(when string) {
		t.Helper()
		if n, err := s.CountAccounts(ctx); err != nil || n != 6 {
			t.Errorf("%s: CountAccounts = %d, %v; want 6", when, n, err)
		}
		if _, err := s.UserByObjectID(ctx, tr.c1.ID, "obj-00001"); pbx2teams.ErrorCode(err) != pbx2teams.ENotFound {
			t.Errorf("%s: rolled-back user exists (%v)", when, err)
		}
		if v, err := s.Setting(ctx, "doomed"); err != nil || v != "" {
			t.Errorf("%s: rolled-back setting = %q, %v", when, v, err)
		}
		if ls, err := s.Licences(ctx, tr.c1.ID); err != nil || len(ls) != 0 {
			t.Errorf("%s: rolled-back licence = %v, %v", when, ls, err)
		}
		if es, err := s.Audit(ctx, "/", 0, 10); err != nil || len(es) != 0 {
			t.Errorf("%s: rolled-back audit = %v, %v", when, es, err)
		}
	}
	assertNothing("after error")

	// A panic rolls back too, and the store stays usable.
	func() {
		defer func() {
			if recover() == nil {
				t.Error("panic inside InTx was swallowed")
			}
		}()
		_ = s.InTx(ctx, func(q pbx2teams.Queries) error {
			if err := q.PutSetting(ctx, "doomed", "1"); err != nil {
				return err
			}
			panic("boom")
		})
	}()
	assertNothing("after panic")
	must(t, s.PutSetting(ctx, "alive", "1"))
}

// testLockAccountSerialises runs read-modify-write increments of a setting
// from several goroutines, each in a transaction under LockAccount; no
// increment may be lost.
func testLockAccountSerialises(t *testing.T, s pbx2teams.Store) {
	ctx := ctxOf(t)
	tr := mkTree(t, s)
	const workers, each = 4, 25
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				err := s.InTx(ctx, func(q pbx2teams.Queries) error {
					if err := q.LockAccount(ctx, tr.c1.ID); err != nil {
						return err
					}
					v, err := q.Setting(ctx, "counter")
					if err != nil {
						return err
					}
					var n int
					if v != "" {
						if _, err := fmt.Sscan(v, &n); err != nil {
							return err
						}
					}
					return q.PutSetting(ctx, "counter", fmt.Sprint(n+1))
				})
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	v, err := s.Setting(ctx, "counter")
	must(t, err)
	if want := fmt.Sprint(workers * each); v != want {
		t.Errorf("counter = %s, want %s: increments were lost", v, want)
	}
	err = s.InTx(ctx, func(q pbx2teams.Queries) error { return q.LockAccount(ctx, "acc_missing") })
	wantCode(t, err, pbx2teams.ENotFound)
}
