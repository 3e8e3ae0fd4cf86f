package phoneapp_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/pbx2teams/pbx2teams"
	"github.com/pbx2teams/pbx2teams/m365"
	"github.com/pbx2teams/pbx2teams/msim"
	"github.com/pbx2teams/pbx2teams/phoneapp"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func TestTenantUsers(t *testing.T) {
	ctx := context.Background()
	users := map[string]pbx2teams.User{ // accountID/objectID
		"a1/o1": {ID: "u1", AccountID: "a1", ObjectID: "o1", Type: pbx2teams.ServiceStandard},
		"a2/o1": {ID: "u2", AccountID: "a2", ObjectID: "o1", Type: pbx2teams.ServicePhoneApp},
		"a1/o3": {ID: "u3", AccountID: "a1", ObjectID: "o3", Type: pbx2teams.ServiceStandard},
		"a9/o4": {ID: "u4", AccountID: "a9", ObjectID: "o4", Type: pbx2teams.ServicePhoneApp},
	}
	tu := phoneapp.TenantUsers{
		Accounts: func(ctx context.Context, tid string) ([]string, error) {
			switch tid {
			case "t1":
				return []string{"a1", "a2"}, nil
			case "down":
				return nil, pbx2teams.Errorf(pbx2teams.EUnavailable, "database down")
			}
			return nil, nil
		},
		ByObjectID: func(ctx context.Context, a, o string) (*pbx2teams.User, error) {
			if u, ok := users[a+"/"+o]; ok {
				return &u, nil
			}
			return nil, pbx2teams.ErrNotFound
		},
	}
	// Two customers share tenant t1: the Phone App one wins.
	if u, err := tu.PhoneAppUser(ctx, "t1", "o1"); err != nil || u.ID != "u2" {
		t.Fatalf("shared tenant: %+v %v", u, err)
	}
	// A standard user is returned (the handler refuses it), not hidden.
	if u, err := tu.PhoneAppUser(ctx, "t1", "o3"); err != nil || u.ID != "u3" {
		t.Fatalf("standard user: %+v %v", u, err)
	}
	// A user of a customer connected to another tenant is not found.
	if u, err := tu.PhoneAppUser(ctx, "t1", "o4"); pbx2teams.ErrorCode(err) != pbx2teams.ENotFound {
		t.Fatalf("other tenant's user: %+v %v", u, err)
	}
	if _, err := tu.PhoneAppUser(ctx, "down", "o1"); pbx2teams.ErrorCode(err) != pbx2teams.EUnavailable {
		t.Fatalf("store down: %v", err)
	}
}

func TestStoreRecent(t *testing.T) {
	var got pbx2teams.CallQuery
	recent := phoneapp.StoreRecent(func(ctx context.Context, q pbx2teams.CallQuery) (*pbx2teams.CallPage, error) {
		got = q
		return &pbx2teams.CallPage{Calls: []pbx2teams.CallRecord{{ID: "r1"}}}, nil
	})
	recs, err := recent(context.Background(), "a1", "u1", 20)
	if err != nil || len(recs) != 1 || got.AccountID != "a1" || got.UserID != "u1" || got.Limit != 20 {
		t.Fatalf("StoreRecent: %+v %v (query %+v)", recs, err, got)
	}
}

// TestContactSources reads a user's Outlook contacts from the Graph
// simulator with the Phone App's application permission, as production
// does with Microsoft Graph, and merges them with colleagues.
func TestContactSources(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	sim, err := msim.NewSandbox(msim.Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sim.Handler())
	defer srv.Close()
	if err := sim.GrantConsent(msim.SandboxTenantID, msim.SandboxPhoneAppClientID); err != nil {
		t.Fatal(err)
	}
	graph := m365.New(m365.Config{ClientID: msim.SandboxPhoneAppClientID, ClientSecret: msim.SandboxPhoneAppClientSecret,
		LoginURL: srv.URL, GraphURL: srv.URL, Logger: quiet}).App(msim.SandboxTenantID)

	reads := 0
	adele := &pbx2teams.User{ID: "u-adele", AccountID: "a1", ObjectID: "a0000001-0000-4000-8000-000000000001"}
	colleagues := []pbx2teams.User{
		{ID: "u-adele", AccountID: "a1", DisplayName: "Adele Vance", Enabled: true, Type: pbx2teams.ServicePhoneApp, SIPUsername: "200"},
		{ID: "u-alex", AccountID: "a1", DisplayName: "Alex Wilber", Enabled: true, Type: pbx2teams.ServiceStandard, SIPUsername: "201",
			PhoneNumber: "+442079460102"},
		{ID: "u-priya", AccountID: "a1", DisplayName: "Priya (desk)", Enabled: true, Type: pbx2teams.ServiceStandard, SIPUsername: "+447700900123"},
	}
	var searched []string
	cs := &phoneapp.ContactSources{
		Outlook: func(ctx context.Context, u *pbx2teams.User, fn func([]m365.Contact) error) error {
			reads++
			return graph.Contacts(ctx, u.ObjectID, fn)
		},
		Directory: func(ctx context.Context, q pbx2teams.UserQuery) (*pbx2teams.UserPage, error) {
			searched = append(searched, q.Search)
			if q.AccountID != "a1" || q.Type != "any" {
				t.Errorf("directory query %+v", q)
			}
			return &pbx2teams.UserPage{Users: colleagues}, nil
		},
		Logger: quiet,
	}
	list, err := cs.Contacts(ctx, adele, "", 50)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range list {
		names = append(names, c.Name+"="+c.Number+"/"+c.Source)
	}
	// Outlook first (by name), then colleagues; Adele is not her own
	// contact, and Priya's desk number repeats her mobile so it is dropped.
	want := "Dr Priya Shah=+44 7700 900123/outlook,Fabrikam Reception=+44 20 7946 0999/outlook," +
		"Alex Wilber=201/directory,Alex Wilber=+442079460102/directory"
	if got := strings.Join(names, ","); got != want {
		t.Fatalf("contacts:\n got %s\nwant %s", got, want)
	}
	list, err = cs.Contacts(ctx, adele, "fabrikam 0999", 50)
	if err != nil || len(list) != 1 || list[0].Name != "Fabrikam Reception" || list[0].Company != "Fabrikam" {
		t.Fatalf("search: %+v %v", list, err)
	}
	if searched[len(searched)-1] != "fabrikam" {
		t.Fatalf("the store was searched for %q", searched[len(searched)-1])
	}
	if reads != 1 {
		t.Fatalf("Outlook contacts read %d times within the cache time", reads)
	}
	if list, _ := cs.Contacts(ctx, adele, "", 1); len(list) != 1 {
		t.Fatalf("limit 1 gave %d", len(list))
	}

	// Without the Phone App's consent Graph refuses: colleagues still come.
	if err := sim.RevokeConsent(msim.SandboxTenantID, msim.SandboxPhoneAppClientID); err != nil {
		t.Fatal(err)
	}
	cs2 := &phoneapp.ContactSources{Outlook: cs.Outlook, Directory: cs.Directory, Logger: quiet}
	list, err = cs2.Contacts(ctx, adele, "", 50)
	if err != nil || len(list) != 3 || list[0].Source != phoneapp.SourceDirectory {
		t.Fatalf("without consent: %+v %v", list, err)
	}
	// Both sources down: a plain-words error.
	cs3 := &phoneapp.ContactSources{Outlook: cs.Outlook, Logger: quiet,
		Directory: func(context.Context, pbx2teams.UserQuery) (*pbx2teams.UserPage, error) {
			return nil, errors.New("db down")
		}}
	if _, err := cs3.Contacts(ctx, adele, "", 50); pbx2teams.ErrorCode(err) != pbx2teams.EUnavailable || !strings.Contains(pbx2teams.ErrorMessage(err), "Contacts cannot be read") {
		t.Fatalf("both down: %v", err)
	}
}
