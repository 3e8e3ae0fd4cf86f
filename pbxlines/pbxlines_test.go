package pbxlines_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pbx2teams/pbx2teams"
	"github.com/pbx2teams/pbx2teams/internal/testpeer/kamailio"
	"github.com/pbx2teams/pbx2teams/pbxlines"
	"github.com/pbx2teams/pbx2teams/secrets"
	"github.com/pbx2teams/pbx2teams/sip/registration"
	"github.com/pbx2teams/pbx2teams/sip/sipx"
	"github.com/pbx2teams/pbx2teams/sqlite"
)

// A customer admin configures users through the service and sees them
// register at a real PBX (Kamailio); a wrong password shows the PBX's
// refusal; removing a configuration removes the binding at the PBX.
func TestUsersRegisterAtKamailio(t *testing.T) {
	k := kamailio.StartT(t, kamailio.Options{Transports: []string{"udp"}, Subscribers: []kamailio.Subscriber{
		{Username: "100", Password: "alice-pw"}, {Username: "101", Password: "bob-pw"},
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))

	st, err := sqlite.Open(filepath.Join(t.TempDir(), "p2t.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	box, _ := secrets.NewBox(bytes.Repeat([]byte{3}, 32))
	svc := pbx2teams.NewService(st, box, log)

	stack, err := sipx.NewStack(sipx.StackConfig{Listen: []sipx.Listen{{Transport: "udp", Addr: "127.0.0.1:0"}}, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	stack.Start()
	defer stack.Close()
	eng, err := registration.New(registration.Config{Stack: stack, Logger: log, Timeout: 2 * time.Second,
		BackoffMin: time.Second, BackoffMax: 4 * time.Second, StartJitter: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	go eng.Run(ctx)
	defer eng.Close()
	svc.Registrations = eng
	feed := pbxlines.New(svc, eng, log)
	svc.Listen(feed)
	go feed.Run(ctx)

	_, pw, err := svc.Bootstrap(ctx, "Operator", "ops@example.com")
	if err != nil {
		t.Fatal(err)
	}
	tok, _, err := svc.SignIn(ctx, "ops@example.com", pw, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	op, _, _ := svc.Authenticate(ctx, tok)
	cust, err := svc.CreateAccount(ctx, op, op.AccountID, pbx2teams.KindCustomer, "Contoso")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.SetLicence(ctx, op, cust.ID, pbx2teams.SKUPBXUser, 5, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.SetPBXSettings(ctx, op, pbx2teams.PBXSettings{AccountID: cust.ID, Domain: k.Domain(),
		OutboundProxy: k.Addr(), Transport: pbx2teams.TransportUDP, RegisterExpiry: 120}); err != nil {
		t.Fatal(err)
	}
	var users []*pbx2teams.User
	for i, upn := range []string{"alice@contoso.example", "bob@contoso.example"} {
		u := &pbx2teams.User{AccountID: cust.ID, ObjectID: upn, UPN: upn, DisplayName: upn, Enabled: true, Kind: pbx2teams.KindPerson}
		if err := st.UpsertDirectoryUser(ctx, u); err != nil {
			t.Fatal(err)
		}
		_ = i
		users = append(users, u)
	}
	configure := func(u *pbx2teams.User, ext, number, password string) {
		t.Helper()
		if _, err := svc.ConfigureUser(ctx, op, cust.ID, u.ID, pbx2teams.UserConfig{Type: pbx2teams.ServiceStandard,
			SIPUsername: ext, Password: &password, PhoneNumber: number}); err != nil {
			t.Fatal(err)
		}
	}
	waitState := func(u *pbx2teams.User, want string) pbx2teams.RegistrationState {
		t.Helper()
		var s pbx2teams.RegistrationState
		for ctx.Err() == nil {
			s, _ = svc.Registration(u.ID)
			if s.State == want {
				return s
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatalf("%s: state %+v, want %s", u.UPN, s, want)
		return s
	}
	binding := func(ext string) *kamailio.Binding {
		t.Helper()
		bs, err := k.Bindings(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for i := range bs {
			if strings.SplitN(bs[i].AoR, "@", 2)[0] == ext {
				return &bs[i]
			}
		}
		return nil
	}

	configure(users[0], "100", "+441632960100", "alice-pw")
	waitState(users[0], pbx2teams.RegRegistered)
	stored, _ := st.User(ctx, cust.ID, users[0].ID)
	b := binding("100")
	if b == nil || !strings.Contains(b.Contact, stored.ContactUser) {
		t.Fatalf("Kamailio binding of 100 = %+v, want our Contact user %s", b, stored.ContactUser)
	}

	configure(users[1], "101", "+441632960101", "not-bobs-password")
	s := waitState(users[1], pbx2teams.RegFailed)
	if s.StatusCode != 401 && s.StatusCode != 403 {
		t.Fatalf("wrong password: state %+v, want the PBX's 401/403", s)
	}
	if binding("101") != nil {
		t.Fatal("a refused user has a binding")
	}
	configure(users[1], "101", "+441632960101", "bob-pw")
	waitState(users[1], pbx2teams.RegRegistered)

	if _, err := svc.ConfigureUser(ctx, op, cust.ID, users[0].ID, pbx2teams.UserConfig{Type: pbx2teams.ServiceNone}); err != nil {
		t.Fatal(err)
	}
	for ctx.Err() == nil && binding("100") != nil {
		time.Sleep(50 * time.Millisecond)
	}
	if binding("100") != nil {
		t.Fatal("binding of a removed user stayed at the PBX")
	}
	if binding("101") == nil {
		t.Fatal("removing one user removed another's binding")
	}
}
