package portal

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/pbx2teams/pbx2teams"
)

// teamsData is the Teams services tab. The Microsoft 365 section shows the
// connection state kept in TeamsSettings; connecting, authorizing the Phone
// App and Sync Now attach to it when the Microsoft 365 integration lands.
type teamsData struct {
	Settings        *pbx2teams.TeamsSettings
	PhoneAppLicence bool
	Groups          []pbx2teams.Group // standard groups plus one empty row
	PhoneAppGroup   pbx2teams.Group
	SyncInterval    string
	// Microsoft 365 engine state (M365 false: not configured here).
	M365          bool
	PhoneAppReady bool // a Phone App registration is configured
	SyncText      string
	Running       bool
	LastJob       *pbx2teams.SyncJob
	Readiness     *pbx2teams.Readiness
	PhoneAppError string
	// The customer's SBC subdomain: the label (as in the form), the
	// provider's base FQDN and the full name.
	SBCLabelForm string
	SBCBase      string
	SBCFQDN      string
	// sbcOnly: form is the SBC label form; the other fields come from ts.
	sbcOnly bool
}

func (s *server) teamsPage(w http.ResponseWriter, r *http.Request, rq *req) {
	ts, err := s.svc.TeamsSettings(r.Context(), rq.p, rq.acc.ID)
	if err != nil {
		s.fail(w, r, rq, err)
		return
	}
	s.renderTeams(w, r, rq, http.StatusOK, &page{Flash: notice(r)}, ts, nil)
}

// renderTeams shows settings ts; form, if not nil, holds the values posted
// (shown again after an error).
func (s *server) renderTeams(w http.ResponseWriter, r *http.Request, rq *req, status int, pg *page, ts *pbx2teams.TeamsSettings, form *teamsData) {
	licensed, err := s.svc.PhoneAppLicensed(r.Context(), rq.p, rq.acc.ID)
	if err != nil {
		s.fail(w, r, rq, err)
		return
	}
	d := teamsData{Settings: ts, PhoneAppLicence: licensed, Groups: ts.StandardGroups, SyncInterval: strconv.Itoa(ts.SyncIntervalMinutes)}
	if ts.PhoneAppGroup != nil {
		d.PhoneAppGroup = *ts.PhoneAppGroup
	}
	d.SBCBase = strings.Trim(strings.TrimSpace(s.opts.SBCBaseFQDN), ".")
	d.SBCFQDN = pbx2teams.SBCFQDN(ts.SBCLabel, d.SBCBase)
	d.SBCLabelForm = ts.SBCLabel
	switch {
	case form != nil && form.sbcOnly:
		d.SBCLabelForm = form.SBCLabelForm
	case form != nil:
		d.Groups, d.PhoneAppGroup, d.SyncInterval = form.Groups, form.PhoneAppGroup, form.SyncInterval
	}
	d.Groups = append(append([]pbx2teams.Group(nil), d.Groups...), pbx2teams.Group{})
	if eng := s.opts.Sync; eng != nil {
		d.M365, d.PhoneAppReady, d.SyncText = true, eng.PhoneAppAvailable(), "Never synced"
		if jobs, err := s.svc.SyncJobs(r.Context(), rq.p, rq.acc.ID, 1); err == nil && len(jobs) > 0 {
			d.LastJob = &jobs[0]
			d.SyncText = syncSummary(&jobs[0])
			d.Running = jobs[0].Status == pbx2teams.SyncRunning
		}
		in := eng.ReadinessInput()
		in.TenantID = ts.TenantID
		rd := pbx2teams.TenantReadiness(ts, in)
		d.Readiness = &rd
		if st, err := s.svc.Store.SyncState(r.Context(), rq.acc.ID); err == nil {
			d.PhoneAppError = st.PhoneAppError
		}
	}
	pg.Title = "Teams services"
	pg.Tab = "teams"
	pg.Data = d
	s.render(w, r, rq, status, "teams.html", pg)
}

func (s *server) teamsSave(w http.ResponseWriter, r *http.Request, rq *req) {
	ctx := r.Context()
	if err := r.ParseForm(); err != nil {
		s.fail(w, r, rq, pbx2teams.Errorf(pbx2teams.EInvalid, "The form could not be read; reload the page and try again."))
		return
	}
	f := r.PostForm
	var o pbx2teams.TeamsOptions
	// The Phone App switch is only on the form when the customer is
	// licensed for it; without it the setting is left alone.
	if f.Get("phone_app_shown") != "" {
		on := f.Get("phone_app") == "on"
		o.PhoneAppEnabled = &on
	}
	ltm := f.Get("large_tenant_mode") == "on"
	o.LargeTenantMode = &ltm
	form := &teamsData{SyncInterval: strings.TrimSpace(f.Get("sync_interval"))}
	ids, names := f["group_id"], f["group_name"]
	o.StandardGroups = []pbx2teams.Group{}
	fields := map[string]string{}
	for i := range ids {
		g := pbx2teams.Group{ID: strings.TrimSpace(ids[i])}
		if i < len(names) {
			g.DisplayName = strings.TrimSpace(names[i])
		}
		if g.ID == "" && g.DisplayName == "" {
			continue
		}
		if g.ID == "" {
			fields["groups"] = "Each group needs its Entra ID object ID (the name alone cannot be synced)."
		}
		if g.DisplayName == "" {
			g.DisplayName = g.ID
		}
		o.StandardGroups = append(o.StandardGroups, g)
	}
	form.Groups = o.StandardGroups
	if f.Has("phone_app_group_id") {
		g := pbx2teams.Group{ID: strings.TrimSpace(f.Get("phone_app_group_id")), DisplayName: strings.TrimSpace(f.Get("phone_app_group_name"))}
		if g.ID == "" && g.DisplayName != "" {
			fields["phone_app_group"] = "Enter the group's Entra ID object ID as well as its name."
		}
		if g.DisplayName == "" {
			g.DisplayName = g.ID
		}
		o.PhoneAppGroup = &g
		form.PhoneAppGroup = g
	}
	if n, err := strconv.Atoi(form.SyncInterval); err != nil {
		fields["sync_interval"] = "Enter the automatic sync interval in minutes (0 turns it off)."
	} else {
		o.SyncIntervalMinutes = &n
	}
	current, err := s.svc.TeamsSettings(ctx, rq.p, rq.acc.ID)
	if err != nil {
		s.fail(w, r, rq, err)
		return
	}
	if len(fields) > 0 {
		pg := &page{Error: "The settings have errors; nothing was saved.", Code: pbx2teams.EInvalid, Fields: fields}
		s.renderTeams(w, r, rq, http.StatusUnprocessableEntity, pg, current, form)
		return
	}
	if _, err := s.svc.SetTeamsOptions(ctx, rq.p, rq.acc.ID, o); err != nil {
		pg := &page{}
		pg.setError(err)
		s.renderTeams(w, r, rq, s.errStatus(r, err), pg, current, form)
		return
	}
	redirect(w, r, "/a/"+rq.acc.ID+"/teams", "teams-saved")
}

// pbxData is the PBX tab.
type pbxData struct {
	Settings   pbx2teams.PBXSettings
	Transports []pbx2teams.Transport
	Regions    []string
	Expiry     string
}

func (s *server) pbxPage(w http.ResponseWriter, r *http.Request, rq *req) {
	ps, err := s.svc.PBXSettings(r.Context(), rq.p, rq.acc.ID)
	if err != nil {
		s.fail(w, r, rq, err)
		return
	}
	s.renderPBX(w, r, rq, http.StatusOK, &page{Flash: notice(r)}, *ps, strconv.Itoa(ps.RegisterExpiry))
}

func (s *server) renderPBX(w http.ResponseWriter, r *http.Request, rq *req, status int, pg *page, ps pbx2teams.PBXSettings, expiry string) {
	pg.Title = "PBX connection"
	pg.Tab = "pbx"
	pg.Data = pbxData{Settings: ps, Transports: []pbx2teams.Transport{pbx2teams.TransportUDP, pbx2teams.TransportTCP, pbx2teams.TransportTLS},
		Regions: pbx2teams.Regions, Expiry: expiry}
	s.render(w, r, rq, status, "pbx.html", pg)
}

func (s *server) pbxSave(w http.ResponseWriter, r *http.Request, rq *req) {
	in := pbx2teams.PBXSettings{
		AccountID:     rq.acc.ID,
		Domain:        strings.TrimSpace(r.PostFormValue("domain")),
		OutboundProxy: strings.TrimSpace(r.PostFormValue("outbound_proxy")),
		Transport:     pbx2teams.Transport(r.PostFormValue("transport")),
		Region:        r.PostFormValue("region"),
	}
	expiry := strings.TrimSpace(r.PostFormValue("register_expiry"))
	if n, err := strconv.Atoi(expiry); err == nil {
		in.RegisterExpiry = n
	} else {
		in.RegisterExpiry = -1 // not a number: the service explains the range
	}
	if _, err := s.svc.SetPBXSettings(r.Context(), rq.p, in); err != nil {
		pg := &page{}
		pg.setError(err)
		s.renderPBX(w, r, rq, s.errStatus(r, err), pg, in, expiry)
		return
	}
	redirect(w, r, "/a/"+rq.acc.ID+"/pbx", "pbx-saved")
}

// licencesData is the Licences tab.
type licencesData struct {
	Licences []licenceRow
	// Editable: the viewer is the licensing provider (an admin above the
	// customer) and may change quantities.
	Editable bool
	ErrSKU   string // the SKU whose form the field errors belong to
}

type licenceRow struct {
	pbx2teams.Licence
	Label   string
	Status  string // active, expired, not held
	Expired bool
	Form    licenceForm
}

type licenceForm struct{ Quantity, Expires string }

func (s *server) licencesPage(w http.ResponseWriter, r *http.Request, rq *req) {
	s.renderLicences(w, r, rq, http.StatusOK, &page{Flash: notice(r)}, "", licenceForm{})
}

func (s *server) renderLicences(w http.ResponseWriter, r *http.Request, rq *req, status int, pg *page, sku pbx2teams.SKU, f licenceForm) {
	ls, err := s.svc.Licences(r.Context(), rq.p, rq.acc.ID)
	if err != nil {
		s.fail(w, r, rq, err)
		return
	}
	now := s.now()
	d := licencesData{Editable: rq.p.AccountID != rq.acc.ID && rq.p.Role.CanWrite(), ErrSKU: string(sku)}
	for _, l := range ls {
		row := licenceRow{Licence: l, Form: licenceForm{Quantity: strconv.Itoa(l.Quantity), Expires: isoDay(l.ExpiresAt)}}
		switch l.SKU {
		case pbx2teams.SKUPBXUser:
			row.Label = "PBX user"
		case pbx2teams.SKUPhoneAppUser:
			row.Label = "Phone App user (add-on)"
		}
		switch {
		case l.Active(now):
			row.Status = "Active"
		case l.Quantity > 0 && l.ExpiresAt != nil:
			row.Status, row.Expired = "Expired", true
		default:
			row.Status = "Not held"
		}
		if l.SKU == sku {
			row.Form = f
		}
		d.Licences = append(d.Licences, row)
	}
	pg.Title = "Licences"
	pg.Tab = "licences"
	pg.Data = d
	s.render(w, r, rq, status, "licences.html", pg)
}

func (s *server) licencesSave(w http.ResponseWriter, r *http.Request, rq *req) {
	sku := pbx2teams.SKU(r.PostFormValue("sku"))
	f := licenceForm{Quantity: strings.TrimSpace(r.PostFormValue("quantity")), Expires: strings.TrimSpace(r.PostFormValue("expires"))}
	fields := map[string]string{}
	qty := parseQuantity(f.Quantity, "quantity", fields)
	exp := parseDay(f.Expires, "expires", fields)
	if len(fields) > 0 {
		pg := &page{Error: "The licence has errors; nothing was changed.", Code: pbx2teams.EInvalid, Fields: fields}
		s.renderLicences(w, r, rq, http.StatusUnprocessableEntity, pg, sku, f)
		return
	}
	if _, err := s.svc.SetLicence(r.Context(), rq.p, rq.acc.ID, sku, qty, exp); err != nil {
		pg := &page{}
		pg.setError(err)
		s.renderLicences(w, r, rq, s.errStatus(r, err), pg, sku, f)
		return
	}
	redirect(w, r, "/a/"+rq.acc.ID+"/licences", "licence-saved")
}
