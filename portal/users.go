package portal

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"github.com/pbx2teams/pbx2teams"
)

// usersPageSize is the number of users per page of the Users tab.
const usersPageSize = 50

// maxTrail bounds how many pages back "Previous" can go (the cursors of the
// pages before are carried in the link); "First page" always works.
const maxTrail = 40

type usersData struct {
	Rows   []userRow
	Search string
	Total  int
	From   int
	To     int
	Prev   string // links; empty when there is no such page
	Next   string
	First  string
	// ImportError and ImportRows explain a refused CSV file.
	ImportError string
	ImportRows  []pbx2teams.ErrorDetail
}

type userRow struct {
	pbx2teams.User
	Icon icon
	Reg  *pbx2teams.RegistrationState
	Href string
	// CallsHref lists the user's calls.
	CallsHref string
	// Readiness of the user for Teams (nil without Microsoft 365).
	Readiness *pbx2teams.Readiness
	Failed    []pbx2teams.Check
}

func (s *server) usersPage(w http.ResponseWriter, r *http.Request, rq *req) {
	s.renderUsers(w, r, rq, http.StatusOK, &page{Flash: notice(r)}, nil)
}

// renderUsers shows a page of users; importErr, if set, is a refused CSV
// file whose bad rows are listed.
func (s *server) renderUsers(w http.ResponseWriter, r *http.Request, rq *req, status int, pg *page, importErr error) {
	q := r.URL.Query()
	search := strings.TrimSpace(q.Get("q"))
	cursor := q.Get("cursor")
	var trail []string
	if q.Has("back") {
		trail = strings.Split(q.Get("back"), ".")
	}
	pageNo, _ := strconv.Atoi(q.Get("page"))
	if pageNo < 1 || cursor == "" {
		pageNo = 1
	}
	res, err := s.svc.Users(r.Context(), rq.p, pbx2teams.UserQuery{AccountID: rq.acc.ID, Search: search, Cursor: cursor, Limit: usersPageSize})
	if err != nil {
		if pbx2teams.ErrorCode(err) == pbx2teams.EInvalid && cursor != "" {
			// A stale or edited cursor: start again from the first page.
			redirect(w, r, s.usersLink(rq.acc.ID, search, "", nil, 1), "")
			return
		}
		s.fail(w, r, rq, err)
		return
	}
	d := usersData{Search: search, Total: res.Total, First: s.usersLink(rq.acc.ID, search, "", nil, 1)}
	var ts *pbx2teams.TeamsSettings
	if s.opts.Sync != nil {
		if ts, err = s.svc.TeamsSettings(r.Context(), rq.p, rq.acc.ID); err != nil {
			s.fail(w, r, rq, err)
			return
		}
	}
	for _, u := range res.Users {
		row := userRow{User: u, Icon: userIcon(u), Href: "/a/" + rq.acc.ID + "/users/" + u.ID,
			CallsHref: s.callsLink(rq.acc.ID, u.ID, "", "")}
		if u.Kind.VoiceCapable() && (u.Configured() || u.SuggestedType != "" || u.Conflict != "") {
			if row.Readiness = s.readinessFor(r, &u, ts); row.Readiness != nil {
				row.Failed = row.Readiness.Failed()
			}
		}
		if u.Configured() {
			if st, ok := s.svc.Registration(u.ID); ok {
				row.Reg = &st
			}
		}
		d.Rows = append(d.Rows, row)
	}
	if len(d.Rows) > 0 {
		d.From = (pageNo-1)*usersPageSize + 1
		d.To = d.From + len(d.Rows) - 1
	}
	if res.NextCursor != "" {
		next := append(append([]string(nil), trail...), cursor)
		if len(next) > maxTrail {
			next = next[len(next)-maxTrail:]
		}
		d.Next = s.usersLink(rq.acc.ID, search, res.NextCursor, next, pageNo+1)
	}
	if cursor != "" && len(trail) > 0 {
		d.Prev = s.usersLink(rq.acc.ID, search, trail[len(trail)-1], trail[:len(trail)-1], pageNo-1)
	}
	if importErr != nil {
		d.ImportError = pbx2teams.ErrorMessage(importErr)
		var e *pbx2teams.Error
		if errors.As(importErr, &e) {
			d.ImportRows = e.Details
		}
	}
	pg.Title = "Users"
	pg.Tab = "users"
	pg.Data = d
	s.render(w, r, rq, status, "users.html", pg)
}

// usersLink builds a Users tab link for a page: its cursor and the cursors
// of the pages before it (for "Previous").
func (s *server) usersLink(accID, search, cursor string, trail []string, pageNo int) string {
	v := url.Values{}
	if search != "" {
		v.Set("q", search)
	}
	if cursor != "" {
		v.Set("cursor", cursor)
		v.Set("page", strconv.Itoa(pageNo))
		if trail != nil {
			v.Set("back", strings.Join(trail, "."))
		}
	}
	link := "/a/" + accID + "/users"
	if len(v) > 0 {
		link += "?" + v.Encode()
	}
	return link
}

// userData is one user's page.
type userData struct {
	User            *pbx2teams.User
	Icon            icon
	Reg             *pbx2teams.RegistrationState
	PhoneAppLicence bool
	PhoneAppEnabled bool
	VoiceCapable    bool
	Form            userForm
	Back            string
	Readiness       *pbx2teams.Readiness
	// TestCallable shows the "Test call" button (a configured, enabled
	// Phone App user on a node with calls); TestCall is the outcome of
	// the test call just made, if any.
	TestCallable bool
	TestCall     *pbx2teams.TestCallResult
}

// userForm holds the editable fields. There is no password field: a
// password is never sent back to the browser.
type userForm struct {
	Type, SIPUsername, AuthUsername, PhoneNumber, ExternalID string
}

func (s *server) userPage(w http.ResponseWriter, r *http.Request, rq *req) {
	s.renderUser(w, r, rq, http.StatusOK, &page{Flash: notice(r)}, nil, nil)
}

// renderUser shows a user's page: form, if set, is a refused form to show
// again; tc, if set, the outcome of the test call just made.
func (s *server) renderUser(w http.ResponseWriter, r *http.Request, rq *req, status int, pg *page, form *userForm, tc *pbx2teams.TestCallResult) {
	ctx := r.Context()
	u, err := s.svc.User(ctx, rq.p, rq.acc.ID, r.PathValue("user"))
	if err != nil {
		s.fail(w, r, rq, err)
		return
	}
	licensed, err := s.svc.PhoneAppLicensed(ctx, rq.p, rq.acc.ID)
	if err != nil {
		s.fail(w, r, rq, err)
		return
	}
	ts, err := s.svc.TeamsSettings(ctx, rq.p, rq.acc.ID)
	if err != nil {
		s.fail(w, r, rq, err)
		return
	}
	d := userData{User: u, Icon: userIcon(*u), PhoneAppLicence: licensed, PhoneAppEnabled: ts.PhoneAppEnabled,
		VoiceCapable: u.Kind.VoiceCapable() && u.Enabled && !u.Deleted, Back: "/a/" + rq.acc.ID + "/users"}
	d.Readiness = s.readinessFor(r, u, ts)
	d.TestCallable = s.opts.TestCaller != nil && u.Type == pbx2teams.ServicePhoneApp && u.ConsumesLicences()
	d.TestCall = tc
	if u.Configured() {
		if st, ok := s.svc.Registration(u.ID); ok {
			d.Reg = &st
		}
	}
	if form != nil {
		d.Form = *form
	} else {
		d.Form = userForm{Type: string(u.Type), SIPUsername: u.SIPUsername, AuthUsername: u.AuthUsername,
			PhoneNumber: u.PhoneNumber, ExternalID: u.ExternalID}
		if u.Type == pbx2teams.ServiceNone {
			d.Form.Type = string(pbx2teams.ServiceStandard)
			if u.SuggestedType == pbx2teams.ServicePhoneApp && licensed {
				d.Form.Type = string(pbx2teams.ServicePhoneApp)
			}
		}
	}
	pg.Title = firstNonEmpty(u.DisplayName, u.UPN)
	pg.Tab = "users"
	pg.Data = d
	s.render(w, r, rq, status, "user.html", pg)
}

func (s *server) userSave(w http.ResponseWriter, r *http.Request, rq *req) {
	f := userForm{
		Type:         r.PostFormValue("type"),
		SIPUsername:  strings.TrimSpace(r.PostFormValue("sip_username")),
		AuthUsername: strings.TrimSpace(r.PostFormValue("auth_username")),
		PhoneNumber:  strings.TrimSpace(r.PostFormValue("phone_number")),
		ExternalID:   strings.TrimSpace(r.PostFormValue("external_id")),
	}
	t := pbx2teams.ServiceType(f.Type)
	if t != pbx2teams.ServiceStandard && t != pbx2teams.ServicePhoneApp {
		// An empty type would mean "remove"; that has its own button.
		pg := &page{Error: "Choose the user's type: Standard or Phone App. Nothing was saved.", Code: pbx2teams.EInvalid,
			Fields: map[string]string{"type": "Choose Standard or Phone App."}}
		s.renderUser(w, r, rq, http.StatusUnprocessableEntity, pg, &f, nil)
		return
	}
	c := pbx2teams.UserConfig{Type: t, SIPUsername: f.SIPUsername, AuthUsername: f.AuthUsername, PhoneNumber: f.PhoneNumber, ExternalID: f.ExternalID}
	// An empty password field keeps the stored password.
	if pw := r.PostFormValue("password"); pw != "" {
		c.Password = &pw
	}
	uid := r.PathValue("user")
	if _, err := s.svc.ConfigureUser(r.Context(), rq.p, rq.acc.ID, uid, c); err != nil {
		pg := &page{}
		pg.setError(err)
		s.renderUser(w, r, rq, s.errStatus(r, err), pg, &f, nil)
		return
	}
	redirect(w, r, "/a/"+rq.acc.ID+"/users/"+uid, "user-saved")
}

func (s *server) userRemove(w http.ResponseWriter, r *http.Request, rq *req) {
	uid := r.PathValue("user")
	if _, err := s.svc.ConfigureUser(r.Context(), rq.p, rq.acc.ID, uid, pbx2teams.UserConfig{Type: pbx2teams.ServiceNone}); err != nil {
		pg := &page{}
		pg.setError(err)
		s.renderUser(w, r, rq, s.errStatus(r, err), pg, nil, nil)
		return
	}
	redirect(w, r, "/a/"+rq.acc.ID+"/users/"+uid, "user-removed")
}

// userTestCall rings a Phone App user in Teams and shows the outcome on
// their page, with their readiness as it stands after the call (a 603 from
// external access fails that check). The request waits for the call to
// end, within Options.TestCallTimeout.
func (s *server) userTestCall(w http.ResponseWriter, r *http.Request, rq *req) {
	ctx, cancel := context.WithTimeout(r.Context(), s.opts.TestCallTimeout)
	defer cancel()
	res, err := s.svc.TestCall(ctx, rq.p, s.opts.TestCaller, rq.acc.ID, r.PathValue("user"))
	if err != nil {
		pg := &page{}
		pg.setError(err)
		s.renderUser(w, r, rq, s.errStatus(r, err), pg, nil, nil)
		return
	}
	s.renderUser(w, r, rq, http.StatusOK, &page{}, nil, res)
}

// lazyCSV sets the download headers on the first write, so that an error
// found before any row (e.g. not allowed) can still be shown as a page.
type lazyCSV struct {
	w       http.ResponseWriter
	name    string
	started bool
}

func (l *lazyCSV) Write(p []byte) (int, error) {
	if !l.started {
		l.started = true
		h := l.w.Header()
		h.Set("Content-Type", "text/csv; charset=utf-8")
		h.Set("Content-Disposition", `attachment; filename="`+l.name+`"`)
		h.Set("Cache-Control", "no-store")
	}
	return l.w.Write(p)
}

var unsafeFileChars = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

func (s *server) usersExport(w http.ResponseWriter, r *http.Request, rq *req) {
	name := strings.Trim(unsafeFileChars.ReplaceAllString(strings.ToLower(rq.acc.Name), "-"), "-")
	out := &lazyCSV{w: w, name: "users-" + firstNonEmpty(name, "customer") + ".csv"}
	if err := s.svc.ExportUsersCSV(r.Context(), rq.p, rq.acc.ID, out); err != nil {
		if !out.started {
			s.fail(w, r, rq, err)
			return
		}
		// Headers are gone; the download is cut short, and logged.
		s.log.Error("portal: CSV export", "account", rq.acc.ID, "err", err)
	}
}

func (s *server) usersImport(w http.ResponseWriter, r *http.Request, rq *req) {
	file, _, err := r.FormFile("file")
	if err != nil {
		msg := "Choose a CSV file to upload."
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			msg = "The file is too large; split it into files of at most 10,000 rows."
		}
		s.renderUsers(w, r, rq, http.StatusUnprocessableEntity, &page{}, pbx2teams.Errorf(pbx2teams.EInvalid, "%s", msg))
		return
	}
	defer file.Close()
	res, err := s.svc.ImportUsersCSV(r.Context(), rq.p, rq.acc.ID, file)
	if err != nil {
		s.renderUsers(w, r, rq, s.errStatus(r, err), &page{}, err)
		return
	}
	redirect(w, r, "/a/"+rq.acc.ID+"/users", "imported", "n", strconv.Itoa(res.Changed))
}

func firstNonEmpty(v ...string) string {
	for _, s := range v {
		if s != "" {
			return s
		}
	}
	return ""
}
