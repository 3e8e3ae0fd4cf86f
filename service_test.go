package pbx2teams_test

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pbx2teams/pbx2teams"
	"github.com/pbx2teams/pbx2teams/secrets"
	"github.com/pbx2teams/pbx2teams/sqlite"
)

// fixture is an operator with two partners, each with one customer, and
// principals for each level.
type fixture struct {
	svc              *pbx2teams.Service
	op, partA, partB *pbx2teams.Principal
	custA, custB     *pbx2teams.Account
	adminA, adminB   *pbx2teams.Principal
	users            []*pbx2teams.User // of custA
	changed          []string
	mu               sync.Mutex
}

func (f *fixture) CustomerChanged(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.changed = append(f.changed, id)
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "p2t.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	box, _ := secrets.NewBox(bytes.Repeat([]byte{1}, 32))
	svc := pbx2teams.NewService(st, box, nil)
	f := &fixture{svc: svc}
	svc.Listen(f)
	created, pw, err := svc.Bootstrap(ctx, "Operator", "ops@example.com")
	if err != nil || !created || pw == "" {
		t.Fatalf("Bootstrap = %v %q %v", created, pw, err)
	}
	f.op = signIn(t, svc, "ops@example.com", pw)
	pa, err := svc.CreateAccount(ctx, f.op, f.op.AccountID, pbx2teams.KindPartner, "Partner A")
	must(t, err)
	pb, err := svc.CreateAccount(ctx, f.op, f.op.AccountID, pbx2teams.KindPartner, "Partner B")
	must(t, err)
	f.partA = adminOf(t, svc, f.op, pa.ID, "a@partner.example")
	f.partB = adminOf(t, svc, f.op, pb.ID, "b@partner.example")
	f.custA, err = svc.CreateAccount(ctx, f.partA, pa.ID, pbx2teams.KindCustomer, "Contoso")
	must(t, err)
	f.custB, err = svc.CreateAccount(ctx, f.partB, pb.ID, pbx2teams.KindCustomer, "Fabrikam")
	must(t, err)
	f.adminA = adminOf(t, svc, f.partA, f.custA.ID, "admin@contoso.example")
	f.adminB = adminOf(t, svc, f.partB, f.custB.ID, "admin@fabrikam.example")
	for i, name := range []string{"Alice", "Bob", "Carol"} {
		u := &pbx2teams.User{AccountID: f.custA.ID, ObjectID: fmt.Sprintf("obj-%d", i), UPN: strings.ToLower(name) + "@contoso.example",
			DisplayName: name, Enabled: true, Kind: pbx2teams.KindPerson}
		must(t, st.UpsertDirectoryUser(ctx, u))
		f.users = append(f.users, u)
	}
	return f
}

func signIn(t *testing.T, svc *pbx2teams.Service, email, pw string) *pbx2teams.Principal {
	t.Helper()
	tok, _, err := svc.SignIn(context.Background(), email, pw, "127.0.0.1")
	must(t, err)
	p, _, err := svc.Authenticate(context.Background(), tok)
	must(t, err)
	return p
}

func adminOf(t *testing.T, svc *pbx2teams.Service, by *pbx2teams.Principal, accountID, email string) *pbx2teams.Principal {
	t.Helper()
	_, pw, err := svc.CreateAdmin(context.Background(), by, accountID, email, "", "", "")
	must(t, err)
	return signIn(t, svc, email, pw)
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
		t.Fatalf("error code = %q (%v), want %q", got, err, code)
	}
}

func pw(s string) *string { return &s }

func TestBootstrapOnlyOnce(t *testing.T) {
	f := newFixture(t)
	created, pw, err := f.svc.Bootstrap(context.Background(), "Operator", "other@example.com")
	if err != nil || created || pw != "" {
		t.Fatalf("second Bootstrap = %v %q %v; want nothing created", created, pw, err)
	}
}

func TestSignInRateLimited(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	for i := 0; i < 5; i++ {
		_, _, err := f.svc.SignIn(ctx, "admin@contoso.example", "wrong password", "10.0.0.1")
		wantCode(t, err, pbx2teams.EUnauthenticated)
	}
	_, _, err := f.svc.SignIn(ctx, "admin@contoso.example", "wrong password", "10.0.0.1")
	wantCode(t, err, pbx2teams.ERateLimited)
	if !strings.Contains(pbx2teams.ErrorMessage(err), "Try again in") {
		t.Fatalf("rate-limit message %q does not say when to retry", pbx2teams.ErrorMessage(err))
	}
}

func TestTenantIsolation(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	// Customer B's admin and partner B see nothing of customer A.
	for _, p := range []*pbx2teams.Principal{f.adminB, f.partB} {
		_, err := f.svc.Users(ctx, p, pbx2teams.UserQuery{AccountID: f.custA.ID})
		wantCode(t, err, pbx2teams.ENotFound)
		_, err = f.svc.User(ctx, p, f.custA.ID, f.users[0].ID)
		wantCode(t, err, pbx2teams.ENotFound)
		_, err = f.svc.ConfigureUser(ctx, p, f.custA.ID, f.users[0].ID, pbx2teams.UserConfig{Type: pbx2teams.ServiceStandard,
			SIPUsername: "100", Password: pw("x"), PhoneNumber: "+441632960100"})
		wantCode(t, err, pbx2teams.ENotFound)
		_, err = f.svc.SetLicence(ctx, p, f.custA.ID, pbx2teams.SKUPBXUser, 100, nil)
		wantCode(t, err, pbx2teams.ENotFound)
		_, err = f.svc.Audit(ctx, p, f.custA.ID, 0, 10)
		wantCode(t, err, pbx2teams.ENotFound)
		accs, err := f.svc.Accounts(ctx, p)
		must(t, err)
		for _, a := range accs {
			if a.ID == f.custA.ID {
				t.Fatalf("%s sees customer A in its account list", p.Name)
			}
		}
	}
	// A customer admin cannot set its own licences.
	_, err := f.svc.SetLicence(ctx, f.adminA, f.custA.ID, pbx2teams.SKUPBXUser, 100, nil)
	wantCode(t, err, pbx2teams.EForbidden)
}

func TestLicenceRules(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	cfg := func(n int, typ pbx2teams.ServiceType) pbx2teams.UserConfig {
		return pbx2teams.UserConfig{Type: typ, SIPUsername: fmt.Sprint(100 + n), Password: pw("sip-secret"), PhoneNumber: fmt.Sprintf("+4416329601%02d", n)}
	}
	// No licence at all.
	_, err := f.svc.ConfigureUser(ctx, f.adminA, f.custA.ID, f.users[0].ID, cfg(0, pbx2teams.ServiceStandard))
	wantCode(t, err, pbx2teams.ELicence)
	if !strings.Contains(pbx2teams.ErrorMessage(err), "pbx-user") {
		t.Fatalf("message %q does not name the missing licence", pbx2teams.ErrorMessage(err))
	}
	_, err = f.svc.SetLicence(ctx, f.partA, f.custA.ID, pbx2teams.SKUPBXUser, 1, nil)
	must(t, err)
	_, err = f.svc.ConfigureUser(ctx, f.adminA, f.custA.ID, f.users[0].ID, cfg(0, pbx2teams.ServiceStandard))
	must(t, err)
	// Over quota: refused and user 2 unchanged.
	_, err = f.svc.ConfigureUser(ctx, f.adminA, f.custA.ID, f.users[1].ID, cfg(1, pbx2teams.ServiceStandard))
	wantCode(t, err, pbx2teams.ELicence)
	u, _ := f.svc.User(ctx, f.adminA, f.custA.ID, f.users[1].ID)
	if u.Configured() {
		t.Fatal("over-quota user was configured")
	}
	// Phone App without a phone-app-user licence names that licence.
	_, err = f.svc.SetLicence(ctx, f.partA, f.custA.ID, pbx2teams.SKUPBXUser, 5, nil)
	must(t, err)
	_, err = f.svc.ConfigureUser(ctx, f.adminA, f.custA.ID, f.users[1].ID, cfg(1, pbx2teams.ServicePhoneApp))
	wantCode(t, err, pbx2teams.ELicence)
	if !strings.Contains(pbx2teams.ErrorMessage(err), "phone-app-user") {
		t.Fatalf("message %q does not name phone-app-user", pbx2teams.ErrorMessage(err))
	}
	on := true
	_, err = f.svc.SetTeamsOptions(ctx, f.adminA, f.custA.ID, pbx2teams.TeamsOptions{PhoneAppEnabled: &on})
	wantCode(t, err, pbx2teams.ELicence)
	// With the licence and Phone App on, a Phone App user consumes both SKUs.
	_, err = f.svc.SetLicence(ctx, f.partA, f.custA.ID, pbx2teams.SKUPhoneAppUser, 1, nil)
	must(t, err)
	_, err = f.svc.SetTeamsOptions(ctx, f.adminA, f.custA.ID, pbx2teams.TeamsOptions{PhoneAppEnabled: &on})
	must(t, err)
	_, err = f.svc.ConfigureUser(ctx, f.adminA, f.custA.ID, f.users[1].ID, cfg(1, pbx2teams.ServicePhoneApp))
	must(t, err)
	ls, err := f.svc.Licences(ctx, f.adminA, f.custA.ID)
	must(t, err)
	if ls[0].Used != 2 || ls[1].Used != 1 {
		t.Fatalf("licence use = pbx-user %d, phone-app-user %d; want 2 and 1", ls[0].Used, ls[1].Used)
	}
	_, err = f.svc.ConfigureUser(ctx, f.adminA, f.custA.ID, f.users[2].ID, cfg(2, pbx2teams.ServicePhoneApp))
	wantCode(t, err, pbx2teams.ELicence)
	// Lowering a quantity below use is refused.
	_, err = f.svc.SetLicence(ctx, f.partA, f.custA.ID, pbx2teams.SKUPBXUser, 1, nil)
	wantCode(t, err, pbx2teams.EConflict)
	// An expired trial is refused with its date.
	past := time.Now().Add(-24 * time.Hour)
	_, err = f.svc.SetLicence(ctx, f.partA, f.custA.ID, pbx2teams.SKUPBXUser, 5, &past)
	must(t, err)
	_, err = f.svc.ConfigureUser(ctx, f.adminA, f.custA.ID, f.users[2].ID, cfg(2, pbx2teams.ServiceStandard))
	wantCode(t, err, pbx2teams.ELicence)
	if !strings.Contains(pbx2teams.ErrorMessage(err), "expired") {
		t.Fatalf("message %q does not say the trial expired", pbx2teams.ErrorMessage(err))
	}
	// Removing a configuration frees its licences.
	_, err = f.svc.SetLicence(ctx, f.partA, f.custA.ID, pbx2teams.SKUPBXUser, 2, nil)
	must(t, err)
	_, err = f.svc.ConfigureUser(ctx, f.adminA, f.custA.ID, f.users[0].ID, pbx2teams.UserConfig{Type: pbx2teams.ServiceNone})
	must(t, err)
	_, err = f.svc.ConfigureUser(ctx, f.adminA, f.custA.ID, f.users[2].ID, cfg(2, pbx2teams.ServiceStandard))
	must(t, err)
}

func TestConcurrentConfigureRespectsQuota(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	_, err := f.svc.SetLicence(ctx, f.partA, f.custA.ID, pbx2teams.SKUPBXUser, 1, nil)
	must(t, err)
	var wg sync.WaitGroup
	errs := make([]error, len(f.users))
	for i, u := range f.users {
		wg.Add(1)
		go func(i int, id string) {
			defer wg.Done()
			_, errs[i] = f.svc.ConfigureUser(ctx, f.adminA, f.custA.ID, id, pbx2teams.UserConfig{Type: pbx2teams.ServiceStandard,
				SIPUsername: fmt.Sprint(200 + i), Password: pw("p"), PhoneNumber: fmt.Sprintf("+4416329602%02d", i)})
		}(i, u.ID)
	}
	wg.Wait()
	ok := 0
	for _, e := range errs {
		if e == nil {
			ok++
		} else if pbx2teams.ErrorCode(e) != pbx2teams.ELicence {
			t.Fatalf("unexpected error: %v", e)
		}
	}
	if ok != 1 {
		t.Fatalf("%d users configured concurrently with a quantity of 1", ok)
	}
}

func TestPasswordSealedAndNeverInAudit(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	_, err := f.svc.SetLicence(ctx, f.partA, f.custA.ID, pbx2teams.SKUPBXUser, 3, nil)
	must(t, err)
	secret := "Very-Secret-SIP-pw-42"
	_, err = f.svc.ConfigureUser(ctx, f.adminA, f.custA.ID, f.users[0].ID, pbx2teams.UserConfig{Type: pbx2teams.ServiceStandard,
		SIPUsername: "100", Password: &secret, PhoneNumber: "+441632960100"})
	must(t, err)
	raw, err := f.svc.Store.User(ctx, f.custA.ID, f.users[0].ID)
	must(t, err)
	if len(raw.PasswordEnc) == 0 || bytes.Contains(raw.PasswordEnc, []byte(secret)) {
		t.Fatal("stored password is empty or in clear")
	}
	if got, err := f.svc.SIPPassword(raw); err != nil || got != secret {
		t.Fatalf("SIPPassword = %q, %v", got, err)
	}
	// A nil password keeps the stored one.
	u, err := f.svc.ConfigureUser(ctx, f.adminA, f.custA.ID, f.users[0].ID, pbx2teams.UserConfig{Type: pbx2teams.ServiceStandard,
		SIPUsername: "100", PhoneNumber: "+441632960100"})
	must(t, err)
	if got, _ := f.svc.SIPPassword(u); got != secret {
		t.Fatal("saving without a password lost the stored one")
	}
	if !u.HasPassword || u.ContactUser == "" {
		t.Fatalf("HasPassword=%v ContactUser=%q", u.HasPassword, u.ContactUser)
	}
	entries, err := f.svc.Audit(ctx, f.op, f.op.AccountID, 0, 100)
	must(t, err)
	found := false
	for _, e := range entries {
		if strings.Contains(e.Detail, secret) {
			t.Fatalf("audit entry holds the password: %+v", e)
		}
		found = found || (e.Action == "user.configure" && strings.Contains(e.Detail, "password set"))
	}
	if !found {
		t.Fatal("no audit entry for the configuration")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.changed) == 0 || f.changed[len(f.changed)-1] != f.custA.ID {
		t.Fatalf("config listener not told: %v", f.changed)
	}
}

func TestPhoneNumberMessages(t *testing.T) {
	for in, want := range map[string]string{
		"441632960100":    "spreadsheet",
		"01632 960100":    "national",
		"00441632960100":  "instead of 00",
		"+44 abc":         "E.164",
		"+44 1632 960100": "",
	} {
		_, err := pbx2teams.NormalizePhoneNumber(in)
		if want == "" {
			if err != nil {
				t.Errorf("%q refused: %v", in, err)
			}
			continue
		}
		if err == nil || !strings.Contains(pbx2teams.ErrorMessage(err), want) {
			t.Errorf("%q: error %v, want one mentioning %q", in, err, want)
		}
	}
}

func TestCSVImportAllOrNothing(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	_, err := f.svc.SetLicence(ctx, f.partA, f.custA.ID, pbx2teams.SKUPBXUser, 10, nil)
	must(t, err)
	bad := "email,sip_username,auth_username,password,phone_number,external_id\n" +
		"alice@contoso.example,100,,pw1,+441632960100,\n" +
		"nobody@contoso.example,101,,pw2,+441632960101,\n" +
		"bob@contoso.example,102,,pw3,441632960102,\n" +
		"carol@contoso.example,103,,pw4,+441632960100,\n"
	_, err = f.svc.ImportUsersCSV(ctx, f.adminA, f.custA.ID, strings.NewReader(bad))
	wantCode(t, err, pbx2teams.EInvalid)
	var e *pbx2teams.Error
	if !asError(err, &e) || len(e.Details) != 3 {
		t.Fatalf("want 3 bad rows, got %+v", err)
	}
	lines := map[int]string{}
	for _, d := range e.Details {
		lines[d.Line] = d.Reason
	}
	if !strings.Contains(lines[3], "no user") || !strings.Contains(lines[4], "spreadsheet") || !strings.Contains(lines[5], "line 2") {
		t.Fatalf("row reasons: %v", lines)
	}
	page, err := f.svc.Users(ctx, f.adminA, pbx2teams.UserQuery{AccountID: f.custA.ID, Type: "any"})
	must(t, err)
	if len(page.Users) != 0 {
		t.Fatalf("a rejected file configured %d users", len(page.Users))
	}
	good := "Email,SIP Username,Password,Phone Number\n" +
		"alice@contoso.example,100,pw1,+441632960100\n" +
		"bob@contoso.example,102,pw3,+441632960102\n"
	res, err := f.svc.ImportUsersCSV(ctx, f.adminA, f.custA.ID, strings.NewReader(good))
	must(t, err)
	if res.Changed != 2 {
		t.Fatalf("changed %d", res.Changed)
	}
	var out bytes.Buffer
	must(t, f.svc.ExportUsersCSV(ctx, f.adminA, f.custA.ID, &out))
	if strings.Contains(out.String(), "pw1") || !strings.Contains(out.String(), "bob@contoso.example,102,102,,+441632960102") {
		t.Fatalf("export:\n%s", out.String())
	}
}

func asError(err error, target **pbx2teams.Error) bool {
	e, ok := err.(*pbx2teams.Error)
	if ok {
		*target = e
	}
	return ok
}
