package dirsync

import (
	"context"

	"github.com/pbx2teams/pbx2teams"
	"github.com/pbx2teams/pbx2teams/m365"
)

// eligible reports whether the Phone App belongs installed for u: a
// configured Phone App user, active, without a group conflict.
func eligible(u *pbx2teams.User, ts *pbx2teams.TeamsSettings) bool {
	return ts.PhoneAppEnabled && u.Type == pbx2teams.ServicePhoneApp && u.ConsumesLicences() && u.Conflict == "" &&
		!u.HasTeamsPhone
}

// phoneApp makes the Teams app installations match the configured Phone
// App users (application permissions: the Phone App installs itself). A
// failure here is a warning of the job, not a failure of the user sync
// that already committed.
func (e *Engine) phoneApp(ctx context.Context, r *jobRun, ts *pbx2teams.TeamsSettings) {
	c := &r.job.Counts
	st, err := e.state(ctx, ts.AccountID)
	if err != nil {
		r.warnf("Phone App installations not checked: %s", pbx2teams.ErrorMessage(err))
		return
	}
	if e.cfg.PhoneApp == nil {
		return
	}
	if ts.PhoneAppEnabled && (ts.PhoneAppAuthorizedAt == nil || st.PhoneAppCatalogID == "") {
		r.warnf("Phone App is enabled but not authorized: click Authorize Phone App for my Organization in Teams services, then run Sync Now, so the app is installed for Phone App users.")
		return
	}
	if st.PhoneAppCatalogID == "" {
		return
	}
	g := e.cfg.PhoneApp.App(ts.TenantID)
	stop := func(err error) bool {
		if m365.NeedsConsent(err) || m365.IsConsentRevoked(err) {
			r.warnf("Phone App installation stopped: %s Run Authorize Phone App for my Organization again.", pbx2teams.ErrorMessage(err))
			st.PhoneAppError = pbx2teams.ErrorMessage(err)
			_ = e.svc.Store.PutSyncState(ctx, st)
			return true
		}
		return false
	}
	var failed int
	if ts.PhoneAppEnabled {
		r.setPhase("installing the Phone App", nil)
		cursor := ""
		for {
			page, err := e.svc.Store.Users(ctx, pbx2teams.UserQuery{AccountID: ts.AccountID, Type: pbx2teams.ServicePhoneApp, Cursor: cursor, Limit: 500})
			if err != nil {
				r.warnf("Phone App installations not checked: %s", pbx2teams.ErrorMessage(err))
				return
			}
			for i := range page.Users {
				u := &page.Users[i]
				if !eligible(u, ts) {
					continue
				}
				if _, err := e.svc.Store.AppInstall(ctx, ts.AccountID, u.ObjectID); err == nil {
					continue
				}
				if _, err := g.InstallApp(ctx, u.ObjectID, st.PhoneAppCatalogID); err != nil {
					if stop(err) {
						return
					}
					failed++
					r.warnf("Phone App not installed for %s: %s", u.UPN, pbx2teams.ErrorMessage(err))
					continue
				}
				in := &pbx2teams.AppInstall{AccountID: ts.AccountID, ObjectID: u.ObjectID, CatalogAppID: st.PhoneAppCatalogID, InstalledAt: e.now()}
				if found, err := g.FindInstallation(ctx, u.ObjectID, st.PhoneAppCatalogID); err == nil && found != nil {
					in.InstallationID = found.ID
				}
				if err := e.svc.Store.PutAppInstall(ctx, in); err != nil {
					r.warnf("Phone App installed for %s but not recorded: %s", u.UPN, pbx2teams.ErrorMessage(err))
					continue
				}
				c.Installed++
				r.logf("TEAMS> Phone App installed for %s", u.UPN)
			}
			if page.NextCursor == "" {
				break
			}
			cursor = page.NextCursor
		}
	}
	// Remove it from users who are no longer Phone App users.
	after := ""
	for {
		recs, err := e.svc.Store.AppInstalls(ctx, ts.AccountID, after, 500)
		if err != nil {
			r.warnf("Phone App removals not checked: %s", pbx2teams.ErrorMessage(err))
			return
		}
		for _, rec := range recs {
			after = rec.ObjectID
			u, err := e.svc.Store.UserByObjectID(ctx, ts.AccountID, rec.ObjectID)
			if err == nil && eligible(u, ts) {
				continue
			}
			name := rec.ObjectID
			if u != nil {
				name = u.UPN
			}
			gone := u == nil || u.Deleted
			if _, err := g.UninstallCatalogApp(ctx, rec.ObjectID, rec.CatalogAppID); err != nil && !(gone && m365.IsNotFound(err)) {
				if stop(err) {
					return
				}
				failed++
				r.warnf("Phone App not removed from %s: %s", name, pbx2teams.ErrorMessage(err))
				continue
			}
			if err := e.svc.Store.DeleteAppInstall(ctx, ts.AccountID, rec.ObjectID); err != nil {
				r.warnf("Phone App removed from %s but not recorded: %s", name, pbx2teams.ErrorMessage(err))
				continue
			}
			c.Uninstalled++
			r.logf("TEAMS> Phone App removed from %s (no longer a Phone App user)", name)
		}
		if len(recs) < 500 {
			break
		}
	}
	if failed == 0 && st.PhoneAppError != "" {
		st.PhoneAppError = ""
		_ = e.svc.Store.PutSyncState(ctx, st)
	}
}
