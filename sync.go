package pbx2teams

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/pbx2teams/pbx2teams/secrets"
)

// SyncStatus is the state of a sync job.
type SyncStatus string

// Sync job states.
const (
	SyncRunning   SyncStatus = "running"
	SyncSucceeded SyncStatus = "succeeded"
	SyncFailed    SyncStatus = "failed"
)

// Sync modes: a full listing, a delta since the last run, or the members of
// the Large Tenant Mode groups.
const (
	SyncModeFull   = "full"
	SyncModeDelta  = "delta"
	SyncModeGroups = "groups"
)

// SyncCounts are the totals of one sync run.
type SyncCounts struct {
	Seen      int `json:"seen"`
	Added     int `json:"added"`
	Updated   int `json:"updated"`
	Removed   int `json:"removed"`
	Conflicts int `json:"conflicts"`
	Excluded  int `json:"excluded"`
	// ExcludedWhy counts excluded users by reason.
	ExcludedWhy map[string]int `json:"excluded_why,omitempty"`
	Suspended   int            `json:"suspended"`
	Resumed     int            `json:"resumed"`
	Installed   int            `json:"installed"`
	Uninstalled int            `json:"uninstalled"`
}

// Exclude counts one excluded user with its reason.
func (c *SyncCounts) Exclude(why string) {
	c.Excluded++
	if c.ExcludedWhy == nil {
		c.ExcludedWhy = map[string]int{}
	}
	c.ExcludedWhy[why]++
}

// ExcludedSummary is "reason: n, ..." sorted by reason.
func (c *SyncCounts) ExcludedSummary() string {
	keys := make([]string, 0, len(c.ExcludedWhy))
	for k := range c.ExcludedWhy {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s: %d", k, c.ExcludedWhy[k])
	}
	return strings.Join(parts, ", ")
}

// SyncJob is one run of the Microsoft 365 directory sync of a customer.
type SyncJob struct {
	ID          string     `json:"id"`
	AccountID   string     `json:"account_id"`
	Status      SyncStatus `json:"status"`
	Mode        string     `json:"mode"`    // full, delta, groups
	Trigger     string     `json:"trigger"` // manual or auto
	Diagnostic  bool       `json:"diagnostic"`
	RequestedBy string     `json:"requested_by"`
	StartedAt   time.Time  `json:"started_at"`
	FinishedAt  *time.Time `json:"finished_at,omitempty"`
	Counts      SyncCounts `json:"counts"`
	Warnings    []string   `json:"warnings,omitempty"`
	// Log holds the support-log lines of the run, newline separated.
	Log string `json:"log,omitempty"`
	// Error says why a failed job failed, for people.
	Error string `json:"error,omitempty"`
}

// SyncState is the sync bookkeeping of a customer.
type SyncState struct {
	AccountID  string     `json:"account_id"`
	DeltaLink  string     `json:"-"`
	LastFullAt *time.Time `json:"last_full_at,omitempty"`
	LastRunAt  *time.Time `json:"last_run_at,omitempty"`
	// PhoneAppCatalogID is the Phone App's id in the tenant's Teams app
	// catalog, once published.
	PhoneAppCatalogID string `json:"phone_app_catalog_id,omitempty"`
	// PhoneAppError says why publishing or installing the Phone App
	// failed, for people ("" when fine).
	PhoneAppError string    `json:"phone_app_error,omitempty"`
	UpdatedAt     time.Time `json:"updated_at"`
}

// AppInstall records the Phone App installed for one directory user.
type AppInstall struct {
	AccountID      string    `json:"account_id"`
	ObjectID       string    `json:"object_id"`
	CatalogAppID   string    `json:"catalog_app_id"`
	InstallationID string    `json:"installation_id,omitempty"`
	InstalledAt    time.Time `json:"installed_at"`
}

// Limits of what one job keeps, so a huge tenant cannot make a huge row.
const (
	MaxSyncLogLines = 5000
	MaxSyncWarnings = 500
)

// DirectoryEntry is one directory user as a sync found it: identity,
// licences (already reduced to what matters) and group membership.
type DirectoryEntry struct {
	ObjectID       string
	UPN            string
	DisplayName    string
	Mail           string
	Enabled        bool
	Guest          bool
	Kind           UserKind
	HasTeams       bool
	HasTeamsPhone  bool
	HasCallingPlan bool
	// Group membership, in Large Tenant Mode only.
	InStandardGroup bool
	InPhoneAppGroup bool
}

// Exclusion reasons (SyncCounts.ExcludedWhy keys).
const (
	ExcludeMeetingRoom   = "meeting room"
	ExcludeResource      = "resource account"
	ExcludeBot           = "bot"
	ExcludeGuest         = "guest"
	ExcludeDisabled      = "disabled"
	ExcludeCallingPlan   = "calling plan"
	ExcludeNoTeamsPhone  = "no Teams Phone licence"
	ExcludeHasTeamsPhone = "Teams Phone licence on a Phone App user"
	ExcludePhoneAppOff   = "Phone App not enabled"
	ExcludeNoVoice       = "no Teams Phone licence (not marked Phone App)"
)

// ConflictBothGroups is the conflict of a user in both kinds of group.
const ConflictBothGroups = "In a standard users' group and in the Phone App group: not provisioned as a Phone App user. Remove the user from one of the groups and run Sync Now."

// Classify decides the suggested service type of a directory user, its
// conflict (if any) and why it is excluded (""=not excluded), by the rules:
// standard users hold Teams Phone and no Calling Plan; Phone App users are
// Phone App group members (Large Tenant Mode) holding no Teams Phone; a user
// in both kinds of group is a conflict and never a Phone App user; rooms,
// resource accounts, bots and guests are listed but are not voice users.
// Outside Large Tenant Mode the admin marks Phone App users themselves.
func Classify(e *DirectoryEntry, ltm, phoneAppOn bool) (suggested ServiceType, conflict, excluded string) {
	switch e.Kind {
	case KindMeetingRoom:
		return ServiceNone, "", ExcludeMeetingRoom
	case KindResourceAccount:
		return ServiceNone, "", ExcludeResource
	case KindBot:
		return ServiceNone, "", ExcludeBot
	}
	if e.Guest {
		return ServiceNone, "", ExcludeGuest
	}
	standard := e.HasTeamsPhone && !e.HasCallingPlan
	why := ""
	if ltm {
		switch {
		case e.InStandardGroup && e.InPhoneAppGroup:
			conflict = ConflictBothGroups
			if standard {
				suggested = ServiceStandard
			}
		case e.InStandardGroup && e.HasCallingPlan:
			why = ExcludeCallingPlan
		case e.InStandardGroup && !e.HasTeamsPhone:
			why = ExcludeNoTeamsPhone
		case e.InStandardGroup:
			suggested = ServiceStandard
		case e.InPhoneAppGroup && !phoneAppOn:
			why = ExcludePhoneAppOff
		case e.InPhoneAppGroup && e.HasTeamsPhone:
			why = ExcludeHasTeamsPhone
		case e.InPhoneAppGroup:
			suggested = ServicePhoneApp
		}
	} else {
		switch {
		case e.HasCallingPlan:
			why = ExcludeCallingPlan
		case e.HasTeamsPhone:
			suggested = ServiceStandard
		case !phoneAppOn:
			why = ExcludeNoTeamsPhone
		}
	}
	if !e.Enabled && why == "" {
		why = ExcludeDisabled
	}
	return suggested, conflict, why
}

// ConnectTenant records a granted admin consent: the tenant is connected.
func (s *Service) ConnectTenant(ctx context.Context, p *Principal, accountID, tenantID, tenantName string) (*TeamsSettings, error) {
	return s.updateTeams(ctx, p, accountID, "teams.connect", func(ts *TeamsSettings) (string, error) {
		if ts.TenantID != "" && ts.TenantID != tenantID && ts.ConsentedAt != nil {
			return "", Errorf(EConflict, "This customer is already connected to Microsoft 365 tenant %s (%s). A different tenant (%s) consented; sign in to the right tenant, or ask support to disconnect the old one first.", ts.TenantName, ts.TenantID, tenantID)
		}
		now := s.now()
		ts.TenantID, ts.TenantName, ts.ConsentedAt, ts.ConsentError = tenantID, tenantName, &now, ""
		return fmt.Sprintf("tenant %s (%s) connected", tenantName, tenantID), nil
	})
}

// TenantConsentFailed records why a consent did not work (denied, revoked);
// the Teams services tab shows it with how to re-authorize. With revoked
// set the tenant counts as not connected until consent is given again.
func (s *Service) TenantConsentFailed(ctx context.Context, p *Principal, accountID, msg string, revoked bool) error {
	_, err := s.updateTeams(ctx, p, accountID, "teams.consent_failed", func(ts *TeamsSettings) (string, error) {
		ts.ConsentError = msg
		if revoked {
			ts.ConsentedAt = nil
			ts.PhoneAppAuthorizedAt = nil
		}
		return msg, nil
	})
	return err
}

// SetPhoneAppAuthorized records the Phone App authorization ("Authorize
// Phone App for my Organization"): at=nil clears it.
func (s *Service) SetPhoneAppAuthorized(ctx context.Context, p *Principal, accountID string, at *time.Time) error {
	_, err := s.updateTeams(ctx, p, accountID, "teams.phone_app_authorized", func(ts *TeamsSettings) (string, error) {
		if at != nil && ts.ConsentedAt == nil {
			return "", Errorf(EInvalid, "Connect Microsoft 365 first, then authorize the Phone App.")
		}
		ts.PhoneAppAuthorizedAt = at
		if at == nil {
			return "phone app authorization cleared", nil
		}
		return "phone app authorized", nil
	})
	return err
}

func (s *Service) updateTeams(ctx context.Context, p *Principal, accountID, action string, fn func(ts *TeamsSettings) (string, error)) (*TeamsSettings, error) {
	var out *TeamsSettings
	err := s.Store.InTx(ctx, func(q Queries) error {
		acc, err := s.customerAccount(ctx, q, p, accountID, true)
		if err != nil {
			return err
		}
		ts, err := teamsSettingsOrNew(ctx, q, acc.ID)
		if err != nil {
			return err
		}
		detail, err := fn(ts)
		if err != nil {
			return err
		}
		ts.UpdatedAt = s.now()
		if err := q.PutTeamsSettings(ctx, ts); err != nil {
			return err
		}
		out = ts
		return s.audit(ctx, q, p, acc.ID, action, acc.ID, detail)
	})
	return out, err
}

// StartSyncJob creates the running job of a sync of a customer. Only one
// sync per customer runs at a time: a second request gets EConflict saying
// so. The tenant must be connected.
func (s *Service) StartSyncJob(ctx context.Context, p *Principal, accountID, mode, trigger string, diagnostic bool) (*SyncJob, error) {
	acc, err := s.customerAccount(ctx, s.Store, p, accountID, true)
	if err != nil {
		return nil, err
	}
	ts, err := s.Store.TeamsSettings(ctx, acc.ID)
	if err != nil && ErrorCode(err) != ENotFound {
		return nil, err
	}
	if ts == nil || ts.ConsentedAt == nil || ts.TenantID == "" {
		return nil, Errorf(EInvalid, "Connect Microsoft 365 first (Teams services, Connect Microsoft 365), then run Sync Now.")
	}
	j := &SyncJob{ID: secrets.NewID("job_"), AccountID: acc.ID, Status: SyncRunning, Mode: mode, Trigger: trigger,
		Diagnostic: diagnostic, RequestedBy: p.Name, StartedAt: s.now()}
	if err := s.Store.CreateSyncJob(ctx, j); err != nil {
		if ErrorCode(err) == EConflict {
			if run, rerr := s.Store.RunningSyncJob(ctx, acc.ID); rerr == nil {
				return nil, Errorf(EConflict, "A sync of %s is already running (started %s by %s); wait for it to finish.", acc.Name, run.StartedAt.Format("15:04:05 MST"), run.RequestedBy)
			}
			return nil, Errorf(EConflict, "A sync of %s is already running; wait for it to finish.", acc.Name)
		}
		return nil, err
	}
	return j, nil
}

// FinishSyncJob stores the outcome of a job (trimming its log and warnings
// to their limits).
func (s *Service) FinishSyncJob(ctx context.Context, j *SyncJob) error {
	if j.Status == SyncRunning {
		j.Status = SyncSucceeded
	}
	now := s.now()
	j.FinishedAt = &now
	if n := strings.Count(j.Log, "\n"); n > MaxSyncLogLines {
		lines := strings.SplitAfter(j.Log, "\n")
		j.Log = strings.Join(lines[:MaxSyncLogLines], "") + fmt.Sprintf("… %d more lines left out\n", n-MaxSyncLogLines)
	}
	if len(j.Warnings) > MaxSyncWarnings {
		extra := len(j.Warnings) - MaxSyncWarnings
		j.Warnings = append(j.Warnings[:MaxSyncWarnings], fmt.Sprintf("… and %d more warnings", extra))
	}
	return s.Store.FinishSyncJob(ctx, j)
}

// SyncJobs lists a customer's recent sync jobs (newest first, no logs).
func (s *Service) SyncJobs(ctx context.Context, p *Principal, accountID string, limit int) ([]SyncJob, error) {
	acc, err := s.customerAccount(ctx, s.Store, p, accountID, false)
	if err != nil {
		return nil, err
	}
	if limit <= 0 || limit > 200 {
		limit = 50
	}
	return s.Store.SyncJobs(ctx, acc.ID, limit)
}

// SyncJob returns one job of a customer with its log.
func (s *Service) SyncJob(ctx context.Context, p *Principal, accountID, jobID string) (*SyncJob, error) {
	acc, err := s.customerAccount(ctx, s.Store, p, accountID, false)
	if err != nil {
		return nil, err
	}
	j, err := s.Store.SyncJob(ctx, acc.ID, jobID)
	if ErrorCode(err) == ENotFound {
		return nil, Errorf(ENotFound, "No such sync job in %s.", acc.Name)
	}
	return j, err
}

// RecoverSyncJobs marks jobs left running by a crash or restart failed.
func (s *Service) RecoverSyncJobs(ctx context.Context) (int, error) {
	return s.Store.FailRunningSyncJobs(ctx, "The service stopped while this sync was running; nothing it had not finished was applied. Run Sync Now again.", s.now())
}

// DirectoryTx applies one sync run to a customer's users inside a single
// transaction (see Service.ApplyDirectory): all of it, or none of it.
type DirectoryTx struct {
	s      *Service
	q      Queries
	acc    *Account
	lic    *licenceCheck
	ltm    bool
	appOn  bool
	stamp  time.Time
	Counts *SyncCounts
	// Logf writes a line to the job's log; Warnf also records a warning.
	Logf  func(format string, args ...any)
	Warnf func(format string, args ...any)
}

// Stamp is the time every user seen by this run is marked with.
func (d *DirectoryTx) Stamp() time.Time { return d.stamp }

// LargeTenantMode and PhoneAppOn are the settings the run applies.
func (d *DirectoryTx) LargeTenantMode() bool { return d.ltm }

// PhoneAppOn reports whether Phone App is enabled for the customer.
func (d *DirectoryTx) PhoneAppOn() bool { return d.appOn }

// ApplyDirectory opens one transaction over a customer's users and runs fn
// with it; fn streams directory pages into it. If fn (or anything) fails,
// nothing of the run is kept: the previous state stays intact.
func (s *Service) ApplyDirectory(ctx context.Context, accountID string, counts *SyncCounts, logf, warnf func(string, ...any), fn func(d *DirectoryTx) error) error {
	return s.Store.InTx(ctx, func(q Queries) error {
		acc, err := q.Account(ctx, accountID)
		if err != nil {
			return err
		}
		if err := q.LockAccount(ctx, acc.ID); err != nil {
			return err
		}
		ts, err := q.TeamsSettings(ctx, acc.ID)
		if err != nil {
			return err
		}
		lic := newLicenceCheck(s, acc)
		if err := lic.load(ctx, q); err != nil {
			return err
		}
		d := &DirectoryTx{s: s, q: q, acc: acc, lic: lic, ltm: ts.LargeTenantMode, appOn: ts.PhoneAppEnabled,
			stamp: s.now().Truncate(time.Millisecond), Counts: counts, Logf: logf, Warnf: warnf}
		return fn(d)
	})
}

// PutPage applies a page of directory users in a few statements. A user
// already seen in this run (e.g. in two groups) is skipped.
func (d *DirectoryTx) PutPage(ctx context.Context, page []DirectoryEntry) error {
	if len(page) == 0 {
		return nil
	}
	ids := make([]string, len(page))
	for i := range page {
		if page[i].ObjectID == "" {
			return Errorf(EInvalid, "Microsoft Graph returned a user without an id (%q); the page is malformed. Nothing was changed.", page[i].UPN)
		}
		if page[i].UPN == "" {
			return Errorf(EInvalid, "Microsoft Graph returned user %s without a userPrincipalName; the page is malformed. Nothing was changed.", page[i].ObjectID)
		}
		ids[i] = page[i].ObjectID
	}
	existing, err := d.q.UsersByObjectIDs(ctx, d.acc.ID, ids)
	if err != nil {
		return err
	}
	byID := make(map[string]*User, len(existing))
	for i := range existing {
		byID[existing[i].ObjectID] = &existing[i]
	}
	seen := make(map[string]bool, len(page))
	batch := make([]*User, 0, len(page))
	type follow struct {
		e    *DirectoryEntry
		prev *User
	}
	var configured []follow
	for i := range page {
		e := &page[i]
		prev := byID[e.ObjectID]
		if seen[e.ObjectID] || prev != nil && prev.SyncedAt != nil && prev.SyncedAt.Equal(d.stamp) {
			continue // seen earlier in this run
		}
		seen[e.ObjectID] = true
		u := d.classify(e, prev)
		batch = append(batch, u)
		if prev != nil && prev.Configured() {
			configured = append(configured, follow{e, prev})
		}
	}
	if err := d.q.UpsertDirectoryUsers(ctx, batch); err != nil {
		return err
	}
	for _, f := range configured {
		if err := d.followConfig(ctx, f.e, f.prev); err != nil {
			return err
		}
	}
	return nil
}

// classify counts and logs one entry and returns the user row to upsert.
func (d *DirectoryTx) classify(e *DirectoryEntry, prev *User) *User {
	c := d.Counts
	c.Seen++
	suggested, conflict, why := Classify(e, d.ltm, d.appOn)
	if conflict != "" {
		c.Conflicts++
		d.Warnf("CONFLICT %s: %s", e.UPN, conflict)
	}
	if why != "" {
		c.Exclude(why)
	}
	stamp := d.stamp
	u := &User{AccountID: d.acc.ID, ObjectID: e.ObjectID, UPN: e.UPN, DisplayName: e.DisplayName, Mail: e.Mail,
		Enabled: e.Enabled, Kind: e.Kind, HasTeamsPhone: e.HasTeamsPhone, HasCallingPlan: e.HasCallingPlan,
		SuggestedType: suggested, Conflict: conflict, SyncedAt: &stamp}
	if prev == nil {
		c.Added++
		d.Logf("ADD %s kind=%s suggested=%s%s", e.UPN, e.Kind, orDash(string(suggested)), whyText(why))
		return u
	}
	u.ID = prev.ID
	if identityChanged(prev, u) {
		c.Updated++
		d.Logf("UPDATE %s kind=%s suggested=%s enabled=%v%s", e.UPN, e.Kind, orDash(string(suggested)), e.Enabled, whyText(why))
	}
	return u
}

// followConfig makes a configured user's state follow the directory: a
// disabled user is suspended (licences freed); an enabled, suspended one
// resumes if the licences allow, else stays suspended with a warning.
func (d *DirectoryTx) followConfig(ctx context.Context, e *DirectoryEntry, prev *User) error {
	c := d.Counts
	now := *prev
	now.Enabled, now.Deleted = e.Enabled, false
	switch {
	case !e.Enabled && !prev.Suspended:
		d.lic.remove(prev) // as counted before this run
		now.Suspended = true
		now.UpdatedAt = d.s.now()
		c.Suspended++
		d.Warnf("SUSPEND %s: disabled in Microsoft 365; its PBX line is suspended and its licences are free.", e.UPN)
		return d.q.UpdateUserConfig(ctx, &now)
	case e.Enabled && prev.Suspended:
		now.Suspended = false
		if err := d.lic.add(ctx, d.q, &now); err != nil {
			return err
		}
		if err := d.lic.verify(); err != nil {
			d.lic.remove(&now)
			d.Warnf("STILL SUSPENDED %s: enabled again in Microsoft 365, but %s", e.UPN, ErrorMessage(err))
			return nil
		}
		now.UpdatedAt = d.s.now()
		c.Resumed++
		d.Logf("RESUME %s: enabled again; its PBX line is active.", e.UPN)
		return d.q.UpdateUserConfig(ctx, &now)
	}
	return nil
}

// Remove marks a user deleted in the directory (a delta's @removed): its
// configuration is suspended and its licences freed.
func (d *DirectoryTx) Remove(ctx context.Context, objectID string) error {
	prev, err := d.q.UserByObjectID(ctx, d.acc.ID, objectID)
	if ErrorCode(err) == ENotFound {
		return nil
	}
	if err != nil {
		return err
	}
	if prev.Deleted {
		return nil
	}
	d.Counts.Removed++
	stamp := d.stamp
	prev.Deleted = true
	prev.SyncedAt = &stamp
	if err := d.q.UpsertDirectoryUser(ctx, prev); err != nil {
		return err
	}
	if prev.Configured() && !prev.Suspended {
		prev.Suspended = true
		prev.UpdatedAt = d.s.now()
		d.Counts.Suspended++
		d.Warnf("SUSPEND %s: deleted from Microsoft 365; its PBX line is suspended and its licences are free.", prev.UPN)
		return d.q.UpdateUserConfig(ctx, prev)
	}
	d.Logf("REMOVE %s: deleted from Microsoft 365", prev.UPN)
	return nil
}

// RemoveUnseen ends a full (or groups) run: every user not seen by it is
// marked removed and configured ones suspended.
func (d *DirectoryTx) RemoveUnseen(ctx context.Context, why string) error {
	n, sample, err := d.q.MarkUnseenUsersRemoved(ctx, d.acc.ID, d.stamp, 20)
	if err != nil {
		return err
	}
	d.Counts.Removed += n
	if n > 0 {
		more := ""
		if n > len(sample) {
			more = fmt.Sprintf(" and %d more", n-len(sample))
		}
		d.Logf("REMOVE %d users %s: %s%s; configured ones are suspended and their licences free", n, why, strings.Join(sample, ", "), more)
	}
	return nil
}

func identityChanged(a, b *User) bool {
	return a.UPN != b.UPN || a.DisplayName != b.DisplayName || a.Mail != b.Mail || a.Enabled != b.Enabled ||
		a.Kind != b.Kind || a.HasTeamsPhone != b.HasTeamsPhone || a.HasCallingPlan != b.HasCallingPlan ||
		a.SuggestedType != b.SuggestedType || a.Conflict != b.Conflict || a.Deleted != b.Deleted
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func whyText(why string) string {
	if why == "" {
		return ""
	}
	return " excluded=" + strings.ReplaceAll(why, " ", "_")
}

// CustomerChangedAfterSync tells the SIP engine a customer's users changed.
func (s *Service) CustomerChangedAfterSync(accountID string) { s.changed(accountID) }
