package api

import (
	"net/http"

	"github.com/pbx2teams/pbx2teams"
	"github.com/pbx2teams/pbx2teams/dirsync"
)

// Microsoft 365 endpoints: Sync Now, sync status and history, the Large
// Tenant Mode group search, readiness and the Phone App's Teams package.
// They need the sync engine (Options.Sync); without it they answer 503.
//
// Permissions: every engine and service call below takes the caller's
// principal, so the service decides visibility (an account outside the
// caller's subtree is not found) and write access (starting a sync needs a
// role that can write). Where the engine has no principal (Live,
// AppPackage, ReadinessInput) a service read with the principal comes first.

// syncStartRequest is the optional body of POST /teams/sync.
type syncStartRequest struct {
	// Full forces a full listing even when a delta would do.
	Full bool `json:"full"`
	// Diagnostic logs every Graph request into the job's log.
	Diagnostic bool `json:"diagnostic"`
}

// syncStatusResponse is the live state of a customer's sync.
type syncStatusResponse struct {
	// Running is true while a sync runs.
	Running bool `json:"running"`
	// Phase is what the running sync is doing (only while running in
	// this process).
	Phase string `json:"phase,omitempty"`
	// Job is the running job (with live counts) or the latest one; absent
	// when the customer was never synced.
	Job *pbx2teams.SyncJob `json:"job,omitempty"`
	// Tail is the last lines of the running job's log.
	Tail []string `json:"tail,omitempty"`
}

type syncJobList struct {
	Jobs []pbx2teams.SyncJob `json:"jobs"`
}

type groupList struct {
	Groups []pbx2teams.Group `json:"groups"`
}

// userReadinessResponse is one user's readiness with the user.
type userReadinessResponse struct {
	User   userView          `json:"user"`
	Checks []pbx2teams.Check `json:"checks"`
	Ready  bool              `json:"ready"`
}

// errNoSync is the answer of the Microsoft 365 endpoints on a node without
// the sync engine.
func errNoSync() error {
	return pbx2teams.Errorf(pbx2teams.EUnavailable,
		"Microsoft 365 is not configured on this node (no sync app registration); ask the operator to configure it, or use a node where it is.")
}

// engine returns the sync engine or the 503 error.
func (s *server) engine() (*dirsync.Engine, error) {
	if s.opts.Sync == nil {
		return nil, errNoSync()
	}
	return s.opts.Sync, nil
}

func (s *server) startSync(w http.ResponseWriter, r *http.Request, p *pbx2teams.Principal) error {
	eng, err := s.engine()
	if err != nil {
		return err
	}
	var in syncStartRequest
	// The body is optional: none (or an empty one) starts an ordinary sync.
	if r.ContentLength != 0 {
		if err := s.decodeJSON(w, r, &in); err != nil {
			return err
		}
	}
	j, err := eng.Start(r.Context(), p, r.PathValue("id"), dirsync.StartOptions{Trigger: "manual", Full: in.Full, Diagnostic: in.Diagnostic})
	if err != nil {
		return err
	}
	w.Header().Set("Location", Prefix+"/accounts/"+j.AccountID+"/teams/sync/jobs/"+j.ID)
	writeJSON(w, http.StatusAccepted, j)
	return nil
}

func (s *server) syncStatus(w http.ResponseWriter, r *http.Request, p *pbx2teams.Principal) error {
	eng, err := s.engine()
	if err != nil {
		return err
	}
	// The service call checks the caller may see the customer before the
	// engine's live state (which takes no principal) is consulted.
	jobs, err := s.svc.SyncJobs(r.Context(), p, r.PathValue("id"), 1)
	if err != nil {
		return err
	}
	var out syncStatusResponse
	if len(jobs) > 0 {
		out.Job = &jobs[0]
		out.Running = jobs[0].Status == pbx2teams.SyncRunning
		if l, ok := eng.Live(jobs[0].AccountID); ok {
			l.Job.Counts = l.Counts
			out = syncStatusResponse{Running: true, Phase: l.Phase, Job: &l.Job, Tail: l.Tail}
		}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *server) listSyncJobs(w http.ResponseWriter, r *http.Request, p *pbx2teams.Principal) error {
	if _, err := s.engine(); err != nil {
		return err
	}
	limit, err := queryInt(r, "limit", 50, 1, 200)
	if err != nil {
		return err
	}
	jobs, err := s.svc.SyncJobs(r.Context(), p, r.PathValue("id"), int(limit))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, syncJobList{Jobs: nonNil(jobs)})
	return nil
}

func (s *server) getSyncJob(w http.ResponseWriter, r *http.Request, p *pbx2teams.Principal) error {
	if _, err := s.engine(); err != nil {
		return err
	}
	j, err := s.svc.SyncJob(r.Context(), p, r.PathValue("id"), r.PathValue("job"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, j)
	return nil
}

func (s *server) searchGroups(w http.ResponseWriter, r *http.Request, p *pbx2teams.Principal) error {
	eng, err := s.engine()
	if err != nil {
		return err
	}
	q := r.URL.Query().Get("q")
	if len(q) > 100 {
		return badParam("q", "Query parameter q is at most 100 characters.")
	}
	gs, err := eng.SearchGroups(r.Context(), p, r.PathValue("id"), q)
	if err != nil {
		return err
	}
	out := groupList{Groups: make([]pbx2teams.Group, len(gs))}
	for i, g := range gs {
		out.Groups[i] = pbx2teams.Group{ID: g.ID, DisplayName: g.DisplayName}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *server) tenantReadiness(w http.ResponseWriter, r *http.Request, p *pbx2teams.Principal) error {
	eng, err := s.engine()
	if err != nil {
		return err
	}
	ts, err := s.svc.TeamsSettings(r.Context(), p, r.PathValue("id"))
	if err != nil {
		return err
	}
	in := eng.ReadinessInput()
	in.TenantID = ts.TenantID
	rd := pbx2teams.TenantReadiness(ts, in)
	rd.Checks = nonNil(rd.Checks)
	writeJSON(w, http.StatusOK, rd)
	return nil
}

func (s *server) userReadiness(w http.ResponseWriter, r *http.Request, p *pbx2teams.Principal) error {
	eng, err := s.engine()
	if err != nil {
		return err
	}
	u, rd, err := s.svc.UserReadiness(r.Context(), p, r.PathValue("id"), r.PathValue("uid"), eng.ReadinessInput())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, userReadinessResponse{User: s.view(u), Checks: nonNil(rd.Checks), Ready: rd.Ready})
	return nil
}

func (s *server) phoneAppPackage(w http.ResponseWriter, r *http.Request, p *pbx2teams.Principal) error {
	eng, err := s.engine()
	if err != nil {
		return err
	}
	// The package holds no customer data, but it is served to those who
	// may see the customer only, like the portal's download.
	if _, err := s.svc.TeamsSettings(r.Context(), p, r.PathValue("id")); err != nil {
		return err
	}
	pkg, err := eng.AppPackage()
	if err != nil {
		return err
	}
	h := w.Header()
	h.Set("Content-Type", "application/zip")
	h.Set("Content-Disposition", `attachment; filename="phone-app-teams.zip"`)
	w.WriteHeader(http.StatusOK)
	_, err = w.Write(pkg)
	if err != nil {
		// The status is out; nothing more can be told to the client.
		s.log.Warn("api: phone app package write failed", "request_id", requestID(r), "err", err)
	}
	return nil
}
