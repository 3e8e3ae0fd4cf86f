package dirsync

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/pbx2teams/pbx2teams"
	"github.com/pbx2teams/pbx2teams/m365"
)

// StartOptions choose how a sync runs.
type StartOptions struct {
	// Trigger is "manual" (default) or "auto".
	Trigger string
	// Diagnostic logs every Graph request into the job's log.
	Diagnostic bool
	// Full forces a full listing even when a delta would do.
	Full bool
}

// jobRun is a running job: its log lines and counts, readable while it
// runs (Live).
type jobRun struct {
	mu      sync.Mutex
	job     *pbx2teams.SyncJob
	start   time.Time
	lines   []string
	dropped int
	live    pbx2teams.SyncCounts
	phase   string
}

func (r *jobRun) logf(format string, args ...any) {
	r.line(fmt.Sprintf(format, args...))
}

func (r *jobRun) line(s string) {
	el := time.Since(r.start)
	l := fmt.Sprintf("<%02d:%02d.%03d> %s", int(el.Minutes()), int(el.Seconds())%60, el.Milliseconds()%1000, s)
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.lines) >= pbx2teams.MaxSyncLogLines {
		r.dropped++
		return
	}
	r.lines = append(r.lines, l)
}

func (r *jobRun) warnf(format string, args ...any) {
	s := fmt.Sprintf(format, args...)
	r.line("WARN " + s)
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.job.Warnings) < pbx2teams.MaxSyncWarnings+1 {
		r.job.Warnings = append(r.job.Warnings, s)
	}
}

func (r *jobRun) setPhase(p string, c *pbx2teams.SyncCounts) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if p != "" {
		r.phase = p
	}
	if c != nil {
		r.live = *c
		r.live.ExcludedWhy = nil
	}
}

func (r *jobRun) text() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := strings.Join(r.lines, "\n")
	if s != "" {
		s += "\n"
	}
	if r.dropped > 0 {
		s += fmt.Sprintf("… %d more lines left out\n", r.dropped)
	}
	return s
}

// Live is the state of a customer's running sync.
type Live struct {
	Job    pbx2teams.SyncJob    `json:"job"`
	Phase  string               `json:"phase"`
	Counts pbx2teams.SyncCounts `json:"counts"`
	// Tail is the last lines of the log.
	Tail []string `json:"tail"`
}

// Live returns the running sync of a customer, if one runs in this process.
func (e *Engine) Live(accountID string) (*Live, bool) {
	e.mu.Lock()
	r := e.live[accountID]
	e.mu.Unlock()
	if r == nil {
		return nil, false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	l := &Live{Job: *r.job, Phase: r.phase, Counts: r.live}
	l.Job.Warnings = nil
	from := max(0, len(r.lines)-8)
	l.Tail = append([]string(nil), r.lines[from:]...)
	return l, true
}

// Start begins a sync of a customer in the background and returns its job
// at once (status running). A second request while one runs gets
// EConflict.
func (e *Engine) Start(ctx context.Context, p *pbx2teams.Principal, accountID string, o StartOptions) (*pbx2teams.SyncJob, error) {
	r, ts, err := e.begin(ctx, p, accountID, o)
	if err != nil {
		return nil, err
	}
	job := *r.job
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		// The run outlives the request that started it.
		e.execute(context.WithoutCancel(ctx), r, ts, o)
	}()
	return &job, nil
}

// SyncNow runs a sync of a customer and returns the finished job.
func (e *Engine) SyncNow(ctx context.Context, p *pbx2teams.Principal, accountID string, o StartOptions) (*pbx2teams.SyncJob, error) {
	r, ts, err := e.begin(ctx, p, accountID, o)
	if err != nil {
		return nil, err
	}
	e.execute(ctx, r, ts, o)
	return r.job, nil
}

func (e *Engine) begin(ctx context.Context, p *pbx2teams.Principal, accountID string, o StartOptions) (*jobRun, *pbx2teams.TeamsSettings, error) {
	if o.Trigger == "" {
		o.Trigger = "manual"
	}
	ts, err := e.svc.TeamsSettings(ctx, p, accountID)
	if err != nil {
		return nil, nil, err
	}
	st, err := e.state(ctx, ts.AccountID)
	if err != nil {
		return nil, nil, err
	}
	mode := e.mode(ts, st, o)
	j, err := e.svc.StartSyncJob(ctx, p, ts.AccountID, mode, o.Trigger, o.Diagnostic)
	if err != nil {
		return nil, nil, err
	}
	r := &jobRun{job: j, start: time.Now(), phase: "starting"}
	e.mu.Lock()
	e.live[ts.AccountID] = r
	e.mu.Unlock()
	return r, ts, nil
}

// mode chooses the kind of run: groups in Large Tenant Mode; a delta when
// a delta link is stored, the last full run is recent and the settings did
// not change since (changed settings may reclassify unchanged users); else
// a full listing.
func (e *Engine) mode(ts *pbx2teams.TeamsSettings, st *pbx2teams.SyncState, o StartOptions) string {
	switch {
	case ts.LargeTenantMode:
		return pbx2teams.SyncModeGroups
	case o.Full || st.DeltaLink == "" || st.LastFullAt == nil:
		return pbx2teams.SyncModeFull
	case ts.UpdatedAt.After(*st.LastFullAt) || e.now().Sub(*st.LastFullAt) > e.cfg.FullEvery:
		return pbx2teams.SyncModeFull
	}
	return pbx2teams.SyncModeDelta
}

// logWriter turns diagnostic slog records into job log lines.
type logHandler struct {
	r     *jobRun
	attrs []slog.Attr
}

func (h *logHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *logHandler) Handle(_ context.Context, rec slog.Record) error {
	var b strings.Builder
	b.WriteString("GRAPH> ")
	b.WriteString(rec.Message)
	rec.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	})
	h.r.line(b.String())
	return nil
}
func (h *logHandler) WithAttrs(as []slog.Attr) slog.Handler { return &logHandler{r: h.r, attrs: as} }
func (h *logHandler) WithGroup(string) slog.Handler         { return h }

func (e *Engine) execute(ctx context.Context, r *jobRun, ts *pbx2teams.TeamsSettings, o StartOptions) {
	defer func() {
		e.mu.Lock()
		if e.live[ts.AccountID] == r {
			delete(e.live, ts.AccountID)
		}
		e.mu.Unlock()
	}()
	j := r.job
	if j.Diagnostic {
		ctx = m365.WithDiagnostics(ctx, slog.New(&logHandler{r: r}))
	}
	r.logf("SYNC> %s sync of %s (tenant %s) requested by %s (%s)", j.Mode, ts.TenantName, ts.TenantID, j.RequestedBy, j.Trigger)
	r.logf("SYNC> settings: large tenant mode=%v, phone app enabled=%v, authorized=%v", ts.LargeTenantMode, ts.PhoneAppEnabled, ts.PhoneAppAuthorizedAt != nil)
	err := e.syncUsers(ctx, r, ts)
	if err == nil {
		r.setPhase("phone app", &j.Counts)
		e.phoneApp(ctx, r, ts)
	}
	c := &j.Counts
	if err != nil {
		j.Status = pbx2teams.SyncFailed
		j.Error = pbx2teams.ErrorMessage(err)
		if pbx2teams.ErrorCode(err) == pbx2teams.EInternal {
			e.log.Error("dirsync: sync failed", "account", ts.AccountID, "job", j.ID, "err", err)
		}
		r.logf("FAILED> %s", j.Error)
		r.logf("FAILED> nothing of this run was applied; the users are as after the previous sync")
		if m365.IsConsentRevoked(err) || m365.NeedsConsent(err) {
			_ = e.svc.TenantConsentFailed(ctx, pbx2teams.System, ts.AccountID,
				"Microsoft 365 refused the service's access ("+j.Error+"). A global administrator must run Connect Microsoft 365 again and accept the permissions.", true)
		}
	} else {
		j.Status = pbx2teams.SyncSucceeded
		r.logf("DONE> seen=%d added=%d updated=%d removed=%d conflicts=%d excluded=%d suspended=%d resumed=%d installed=%d uninstalled=%d",
			c.Seen, c.Added, c.Updated, c.Removed, c.Conflicts, c.Excluded, c.Suspended, c.Resumed, c.Installed, c.Uninstalled)
		if c.Excluded > 0 {
			r.logf("DONE> excluded by reason: %s", c.ExcludedSummary())
		}
	}
	j.Log = r.text()
	r.mu.Lock()
	j.Warnings = append([]string(nil), j.Warnings...)
	r.mu.Unlock()
	// The outcome is written even if the caller's context ended.
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if ferr := e.svc.FinishSyncJob(fctx, j); ferr != nil {
		e.log.Error("dirsync: store sync job outcome", "job", j.ID, "err", ferr)
	}
	if err == nil {
		e.svc.CustomerChangedAfterSync(ts.AccountID)
	}
}

// syncUsers reads the directory and applies it in one transaction.
func (e *Engine) syncUsers(ctx context.Context, r *jobRun, ts *pbx2teams.TeamsSettings) error {
	j := r.job
	st, err := e.state(ctx, ts.AccountID)
	if err != nil {
		return err
	}
	g := e.cfg.Sync.App(ts.TenantID)
	counts := &j.Counts
	var link string
	apply := func(fn func(d *pbx2teams.DirectoryTx) error) error {
		return e.svc.ApplyDirectory(ctx, ts.AccountID, counts, r.logf, r.warnf, fn)
	}
	progress := func() { r.setPhase("", counts) }
	switch j.Mode {
	case pbx2teams.SyncModeDelta:
		r.setPhase("reading changes", nil)
		err = apply(func(d *pbx2teams.DirectoryTx) error {
			var err error
			link, err = g.UsersDelta(ctx, st.DeltaLink, nil, func(p []m365.User) error {
				var page []pbx2teams.DirectoryEntry
				for i := range p {
					if p[i].Removed != nil {
						if err := d.Remove(ctx, p[i].ID); err != nil {
							return err
						}
						continue
					}
					page = append(page, entry(&p[i], false, false))
				}
				err := d.PutPage(ctx, page)
				progress()
				return err
			})
			return err
		})
		if m365.IsDeltaExpired(err) {
			r.logf("SYNC> the stored delta link has expired; running a full sync instead")
			*counts = pbx2teams.SyncCounts{}
			j.Mode = pbx2teams.SyncModeFull
			return e.syncUsers(ctx, r, ts)
		}
	case pbx2teams.SyncModeFull:
		r.setPhase("reading users", nil)
		// Taken first, so the next delta cannot miss a change made while
		// the listing runs.
		if link, err = g.LatestDeltaLink(ctx, nil); err != nil {
			return err
		}
		err = apply(func(d *pbx2teams.DirectoryTx) error {
			pages := 0
			err := g.ListUsers(ctx, m365.UserQuery{}, func(p []m365.User) error {
				page := make([]pbx2teams.DirectoryEntry, len(p))
				for i := range p {
					page[i] = entry(&p[i], false, false)
				}
				pages++
				if err := d.PutPage(ctx, page); err != nil {
					return err
				}
				progress()
				return nil
			})
			if err != nil {
				return err
			}
			r.logf("GRAPH> users: %d in %d pages", counts.Seen, pages)
			return d.RemoveUnseen(ctx, "no longer in the tenant")
		})
	case pbx2teams.SyncModeGroups:
		err = e.syncGroups(ctx, r, ts, g, apply, progress)
	}
	if err != nil {
		return err
	}
	now := e.now()
	st, err = e.state(ctx, ts.AccountID)
	if err != nil {
		return err
	}
	if link != "" {
		st.DeltaLink = link
	}
	if j.Mode != pbx2teams.SyncModeDelta {
		st.LastFullAt = &now
	}
	st.LastRunAt, st.UpdatedAt = &now, now
	return e.svc.Store.PutSyncState(ctx, st)
}

// syncGroups syncs the transitive members of the Large Tenant Mode groups.
// The Phone App group's member ids are read first (held as a set: one
// group, not the tenant), so a standard group member also in it is a
// conflict; then standard groups, then the Phone App group's own members.
func (e *Engine) syncGroups(ctx context.Context, r *jobRun, ts *pbx2teams.TeamsSettings, g *m365.Graph,
	apply func(func(d *pbx2teams.DirectoryTx) error) error, progress func()) error {
	if len(ts.StandardGroups) == 0 && ts.PhoneAppGroup == nil {
		return pbx2teams.Errorf(pbx2teams.EInvalid, "Large Tenant Mode is on but no groups are chosen; choose the groups in Teams services and save.")
	}
	groupErr := func(gr pbx2teams.Group, err error) error {
		if m365.IsNotFound(err) {
			return pbx2teams.Errorf(pbx2teams.EInvalid, "Group %s (%s) does not exist in Microsoft 365 any more; choose the groups again in Teams services.", gr.DisplayName, gr.ID)
		}
		return err
	}
	pa := map[string]bool{}
	usePA := ts.PhoneAppGroup != nil && ts.PhoneAppGroup.ID != ""
	if usePA {
		r.setPhase("reading the Phone App group", nil)
		err := g.TransitiveMemberUsers(ctx, ts.PhoneAppGroup.ID, []string{"id"}, func(p []m365.User) error {
			for i := range p {
				pa[p[i].ID] = true
			}
			return nil
		})
		if err != nil {
			return groupErr(*ts.PhoneAppGroup, err)
		}
		r.logf("GRAPH> group %q (Phone App users): %d members", ts.PhoneAppGroup.DisplayName, len(pa))
	}
	return apply(func(d *pbx2teams.DirectoryTx) error {
		for _, gr := range ts.StandardGroups {
			r.setPhase("reading group "+gr.DisplayName, nil)
			before := d.Counts.Seen
			err := g.TransitiveMemberUsers(ctx, gr.ID, nil, func(p []m365.User) error {
				page := make([]pbx2teams.DirectoryEntry, len(p))
				for i := range p {
					page[i] = entry(&p[i], true, pa[p[i].ID])
				}
				err := d.PutPage(ctx, page)
				progress()
				return err
			})
			if err != nil {
				return groupErr(gr, err)
			}
			r.logf("GRAPH> group %q (standard users): %d new members synced", gr.DisplayName, d.Counts.Seen-before)
		}
		if usePA {
			r.setPhase("reading group "+ts.PhoneAppGroup.DisplayName, nil)
			before := d.Counts.Seen
			err := g.TransitiveMemberUsers(ctx, ts.PhoneAppGroup.ID, nil, func(p []m365.User) error {
				page := make([]pbx2teams.DirectoryEntry, len(p))
				for i := range p {
					page[i] = entry(&p[i], false, true)
				}
				err := d.PutPage(ctx, page)
				progress()
				return err
			})
			if err != nil {
				return groupErr(*ts.PhoneAppGroup, err)
			}
			r.logf("GRAPH> group %q (Phone App users): %d members synced (others were in standard groups too)", ts.PhoneAppGroup.DisplayName, d.Counts.Seen-before)
		}
		return d.RemoveUnseen(ctx, "no longer in the synced groups")
	})
}

// entry reduces a Graph user to what the sync keeps.
func entry(u *m365.User, inStd, inPA bool) pbx2teams.DirectoryEntry {
	c := m365.Classify(u)
	return pbx2teams.DirectoryEntry{ObjectID: u.ID, UPN: u.UserPrincipalName, DisplayName: u.DisplayName, Mail: u.Mail,
		Enabled: u.Enabled(), Guest: strings.EqualFold(u.UserType, "Guest"), Kind: c.Kind, HasTeams: c.HasTeams,
		HasTeamsPhone: c.HasTeamsPhone, HasCallingPlan: c.HasCallingPlan, InStandardGroup: inStd, InPhoneAppGroup: inPA}
}
