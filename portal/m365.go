package portal

import (
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/pbx2teams/pbx2teams"
	"github.com/pbx2teams/pbx2teams/dirsync"
)

// Microsoft 365: connect, authorize the Phone App, Sync Now with live
// status, the group picker, sync history and the Teams app package. All of
// it needs Options.Sync; without it the Teams services tab says the
// connection is not available on this service.

func (s *server) syncEngine(w http.ResponseWriter, r *http.Request, rq *req) *dirsync.Engine {
	if s.opts.Sync == nil {
		s.errorPage(w, r, rq, http.StatusServiceUnavailable, "Not available",
			"Microsoft 365 is not configured on this service. Ask your provider.")
	}
	return s.opts.Sync
}

// m365Connect sends the admin to Microsoft's admin consent page.
func (s *server) m365Connect(w http.ResponseWriter, r *http.Request, rq *req) {
	eng := s.syncEngine(w, r, rq)
	if eng == nil {
		return
	}
	u, err := eng.ConnectURL(r.Context(), rq.p, rq.sess, rq.acc.ID)
	if err != nil {
		s.teamsWithError(w, r, rq, err)
		return
	}
	http.Redirect(w, r, u, http.StatusSeeOther)
}

// phoneAppAuthorize starts "Authorize Phone App for my Organization".
func (s *server) phoneAppAuthorize(w http.ResponseWriter, r *http.Request, rq *req) {
	eng := s.syncEngine(w, r, rq)
	if eng == nil {
		return
	}
	u, err := eng.AuthorizePhoneAppURL(r.Context(), rq.p, rq.sess, rq.acc.ID)
	if err != nil {
		s.teamsWithError(w, r, rq, err)
		return
	}
	http.Redirect(w, r, u, http.StatusSeeOther)
}

// m365Callback is where Microsoft sends the admin back (dirsync.CallbackPath).
func (s *server) m365Callback(w http.ResponseWriter, r *http.Request, rq *req) {
	eng := s.syncEngine(w, r, rq)
	if eng == nil {
		return
	}
	res := eng.HandleCallback(r.Context(), rq.p, rq.sess, r.URL.Query())
	if res.Err != nil {
		if res.AccountID == "" {
			s.errorPage(w, r, rq, s.errStatus(r, res.Err), "Microsoft 365 sign-in not completed", pbx2teams.ErrorMessage(res.Err))
			return
		}
		acc, err := s.svc.Account(r.Context(), rq.p, res.AccountID)
		if err != nil {
			s.fail(w, r, rq, err)
			return
		}
		rq.acc = acc
		s.teamsWithError(w, r, rq, res.Err)
		return
	}
	if res.Notice != "" {
		redirect(w, r, res.Redirect, res.Notice)
		return
	}
	http.Redirect(w, r, res.Redirect, http.StatusSeeOther)
}

// teamsWithError shows the Teams services tab with err at the top.
func (s *server) teamsWithError(w http.ResponseWriter, r *http.Request, rq *req, err error) {
	ts, terr := s.svc.TeamsSettings(r.Context(), rq.p, rq.acc.ID)
	if terr != nil {
		s.fail(w, r, rq, terr)
		return
	}
	pg := &page{}
	pg.setError(err)
	s.renderTeams(w, r, rq, s.errStatus(r, err), pg, ts, nil)
}

// syncNow starts a sync (Alt+Shift in the browser or the diagnostic box
// makes it a diagnostic sync).
func (s *server) syncNow(w http.ResponseWriter, r *http.Request, rq *req) {
	eng := s.syncEngine(w, r, rq)
	if eng == nil {
		return
	}
	o := dirsync.StartOptions{Diagnostic: r.PostFormValue("diagnostic") == "on", Full: r.PostFormValue("full") == "on"}
	if _, err := eng.Start(r.Context(), rq.p, rq.acc.ID, o); err != nil {
		s.teamsWithError(w, r, rq, err)
		return
	}
	back := "/a/" + rq.acc.ID + "/teams"
	if r.PostFormValue("from") == "users" {
		back = "/a/" + rq.acc.ID + "/users"
	}
	redirect(w, r, back, "sync-started")
}

// syncStatusJSON is the live status the Sync Now button polls.
type syncStatusJSON struct {
	Running bool               `json:"running"`
	Phase   string             `json:"phase,omitempty"`
	Job     *pbx2teams.SyncJob `json:"job,omitempty"`
	Tail    []string           `json:"tail,omitempty"`
	Text    string             `json:"text"`
}

func (s *server) syncStatus(w http.ResponseWriter, r *http.Request, rq *req) {
	out := syncStatusJSON{Text: "Never synced"}
	if s.opts.Sync != nil {
		if l, ok := s.opts.Sync.Live(rq.acc.ID); ok {
			out = syncStatusJSON{Running: true, Phase: l.Phase, Job: &l.Job, Tail: l.Tail,
				Text: "Syncing… " + l.Phase + " · " + strconv.Itoa(l.Counts.Seen) + " users seen"}
			l.Job.Counts = l.Counts
		}
	}
	if !out.Running {
		jobs, err := s.svc.SyncJobs(r.Context(), rq.p, rq.acc.ID, 1)
		if err != nil {
			writeJSONError(w, s.errStatus(r, err), err)
			return
		}
		if len(jobs) > 0 {
			out.Job = &jobs[0]
			out.Running = jobs[0].Status == pbx2teams.SyncRunning
			out.Text = syncSummary(&jobs[0])
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(out)
}

func writeJSONError(w http.ResponseWriter, status int, err error) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": pbx2teams.ErrorMessage(err)})
}

// syncSummary is one line about a job.
func syncSummary(j *pbx2teams.SyncJob) string {
	c := j.Counts
	switch j.Status {
	case pbx2teams.SyncRunning:
		return "Syncing…"
	case pbx2teams.SyncFailed:
		return "Last sync failed: " + j.Error
	}
	s := "Up to date · " + strconv.Itoa(c.Seen) + " seen, " + strconv.Itoa(c.Added) + " added, " +
		strconv.Itoa(c.Updated) + " updated, " + strconv.Itoa(c.Removed) + " removed, " +
		strconv.Itoa(c.Conflicts) + " conflicts, " + strconv.Itoa(c.Excluded) + " excluded"
	if len(j.Warnings) > 0 {
		s += " · " + strconv.Itoa(len(j.Warnings)) + " warnings"
	}
	return s
}

// groupSearch answers the group picker (JSON).
func (s *server) groupSearch(w http.ResponseWriter, r *http.Request, rq *req) {
	if s.opts.Sync == nil {
		writeJSONError(w, http.StatusServiceUnavailable, pbx2teams.Errorf(pbx2teams.EUnavailable, "Microsoft 365 is not configured on this service."))
		return
	}
	gs, err := s.opts.Sync.SearchGroups(r.Context(), rq.p, rq.acc.ID, r.URL.Query().Get("q"))
	if err != nil {
		writeJSONError(w, s.errStatus(r, err), err)
		return
	}
	type g struct {
		ID          string `json:"id"`
		DisplayName string `json:"display_name"`
		Description string `json:"description,omitempty"`
		Kind        string `json:"kind"`
	}
	out := []g{}
	for _, x := range gs {
		kind := "Security group"
		if x.IsMicrosoft365() {
			kind = "Microsoft 365 group"
		}
		out = append(out, g{ID: x.ID, DisplayName: x.DisplayName, Description: x.Description, Kind: kind})
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(map[string]any{"groups": out})
}

type syncHistoryData struct {
	Jobs []pbx2teams.SyncJob
	Job  *pbx2teams.SyncJob
}

func (s *server) syncHistory(w http.ResponseWriter, r *http.Request, rq *req) {
	jobs, err := s.svc.SyncJobs(r.Context(), rq.p, rq.acc.ID, 100)
	if err != nil {
		s.fail(w, r, rq, err)
		return
	}
	s.render(w, r, rq, http.StatusOK, "sync.html", &page{Title: "Sync history", Tab: "teams", Data: syncHistoryData{Jobs: jobs}})
}

func (s *server) syncJobPage(w http.ResponseWriter, r *http.Request, rq *req) {
	j, err := s.svc.SyncJob(r.Context(), rq.p, rq.acc.ID, r.PathValue("job"))
	if err != nil {
		s.fail(w, r, rq, err)
		return
	}
	s.render(w, r, rq, http.StatusOK, "sync.html", &page{Title: "Sync job", Tab: "teams", Data: syncHistoryData{Job: j}})
}

// appPackage downloads the Phone App's Teams app package.
func (s *server) appPackage(w http.ResponseWriter, r *http.Request, rq *req) {
	eng := s.syncEngine(w, r, rq)
	if eng == nil {
		return
	}
	if _, err := s.svc.TeamsSettings(r.Context(), rq.p, rq.acc.ID); err != nil {
		s.fail(w, r, rq, err)
		return
	}
	pkg, err := eng.AppPackage()
	if err != nil {
		s.fail(w, r, rq, err)
		return
	}
	w.Header().Set("Content-Type", "application/zip")
	w.Header().Set("Content-Disposition", `attachment; filename="phone-app-teams.zip"`)
	_, _ = w.Write(pkg)
}

// readinessFor returns a user's readiness (nil without an engine).
func (s *server) readinessFor(r *http.Request, u *pbx2teams.User, ts *pbx2teams.TeamsSettings) *pbx2teams.Readiness {
	if s.opts.Sync == nil || ts == nil {
		return nil
	}
	in := s.opts.Sync.ReadinessInput()
	in.TenantID = ts.TenantID
	if _, err := s.svc.Store.AppInstall(r.Context(), u.AccountID, u.ObjectID); err == nil {
		in.Installed = true
	}
	in.Rejection = s.svc.PhoneAppRejection(r.Context(), u)
	rd := pbx2teams.UserReadiness(u, ts, in)
	return &rd
}
