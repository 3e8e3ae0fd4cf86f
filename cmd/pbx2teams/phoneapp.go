package main

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/pbx2teams/pbx2teams"
	"github.com/pbx2teams/pbx2teams/m365"
	"github.com/pbx2teams/pbx2teams/msim"
	"github.com/pbx2teams/pbx2teams/msim/teamsclient"
	"github.com/pbx2teams/pbx2teams/phoneapp"
)

// phoneAppPath is where the dialler tab is served (the Teams app's
// contentUrl).
const phoneAppPath = "/phone/"

// wirePhoneApp mounts the dialler tab when call control and a Phone App
// registration exist.
func (a *app) wirePhoneApp(mux *http.ServeMux, c config) error {
	if a.calls == nil || c.phoneAppClientID == "" {
		return nil
	}
	host := c.publicURL
	if u, err := url.Parse(c.publicURL); err == nil {
		host = u.Host
	}
	clientID := strings.ToLower(c.phoneAppClientID)
	validator := &m365.SSOValidator{
		LoginURL:  c.m365LoginURL,
		Audiences: []string{clientID, "api://" + host + "/" + clientID},
		Tenants: func(tenantID string) bool {
			ids, err := a.store.AccountsByTenant(context.Background(), tenantID)
			return err == nil && len(ids) > 0
		},
	}
	var outlook func(ctx context.Context, u *pbx2teams.User, fn func([]m365.Contact) error) error
	if a.phoneAppGraph != nil {
		outlook = func(ctx context.Context, u *pbx2teams.User, fn func([]m365.Contact) error) error {
			ts, err := a.store.TeamsSettings(ctx, u.AccountID)
			if err != nil {
				return err
			}
			return a.phoneAppGraph.App(ts.TenantID).Contacts(ctx, u.ObjectID, fn)
		}
	}
	cfg := phoneapp.Config{
		BasePath:      phoneAppPath,
		Validator:     validator,
		Users:         phoneapp.TenantUsers{Accounts: a.store.AccountsByTenant, ByObjectID: a.store.UserByObjectID},
		Dialler:       a.calls.b2b.Dialler(),
		Registrations: a.svc.Registrations,
		Recent:        phoneapp.StoreRecent(a.store.Calls),
		Contacts:      &phoneapp.ContactSources{Outlook: outlook, Directory: a.store.Users, Logger: a.log},
		Logger:        a.log,
	}
	if c.sandbox {
		// The sandbox's Teams client frames the tab from the same origin.
		cfg.FrameAncestors = []string{"'self'"}
	}
	h, err := phoneapp.New(cfg)
	if err != nil {
		return err
	}
	mux.Handle(phoneAppPath, h)
	return nil
}

// mountSandboxClient serves the simulated Teams client, where a person
// trying the sandbox answers calls as a Teams user and opens the tab.
func (a *app) mountSandboxClient(mux *http.ServeMux, c config, graph *msim.Sim, st *sandboxTeams) error {
	if st == nil {
		return nil
	}
	host := c.publicURL
	if u, err := url.Parse(c.publicURL); err == nil {
		host = u.Host
	}
	clientID := strings.ToLower(c.phoneAppClientID)
	h, err := teamsclient.New(teamsclient.Config{
		BasePath: sandboxPrefix + "/teams/",
		Identity: graph,
		Audience: "api://" + host + "/" + clientID,
		TabURL:   phoneAppPath,
		Phones:   teamsclient.SimPhones(st.sim, true),
		Users:    a.sandboxPeople,
		Logger:   a.log,
	})
	if err != nil {
		return err
	}
	mux.Handle(sandboxPrefix+"/teams/", h)
	return nil
}

// sandboxPeople lists the configured users (standard and Phone App) for the
// sandbox Teams client's picker.
func (a *app) sandboxPeople() []teamsclient.User {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	us, err := a.store.ConfiguredUsers(ctx, "", 200)
	if err != nil {
		return nil
	}
	out := make([]teamsclient.User, 0, len(us))
	for _, u := range us {
		out = append(out, teamsclient.User{UPN: u.UPN, Name: u.DisplayName})
	}
	return out
}
