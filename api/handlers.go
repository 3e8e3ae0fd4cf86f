package api

import (
	"net/http"
	"strings"
	"time"

	"github.com/pbx2teams/pbx2teams"
)

// Request and response bodies. Lists are wrapped in an object so that
// fields can be added without breaking clients.

// meResponse describes the caller.
type meResponse struct {
	Name     string             `json:"name"`
	Role     pbx2teams.Role     `json:"role"`
	Auth     string             `json:"auth"` // "api_key" or "session"
	AdminID  string             `json:"admin_id,omitempty"`
	APIKeyID string             `json:"api_key_id,omitempty"`
	Account  *pbx2teams.Account `json:"account"`
	// CSRFToken is the session's token for unsafe requests; only with a
	// session, never with an API key.
	CSRFToken string `json:"csrf_token,omitempty"`
}

type accountList struct {
	Accounts []pbx2teams.Account `json:"accounts"`
}

type createAccountRequest struct {
	ParentID string                `json:"parent_id"`
	Kind     pbx2teams.AccountKind `json:"kind"`
	Name     string                `json:"name"`
}

type adminList struct {
	Admins []pbx2teams.Admin `json:"admins"`
}

type createAdminRequest struct {
	Email    string         `json:"email"`
	Name     string         `json:"name"`
	Role     pbx2teams.Role `json:"role"`
	Password string         `json:"password"`
}

type createAdminResponse struct {
	Admin *pbx2teams.Admin `json:"admin"`
	// InitialPassword is the generated one-time password, present only
	// when the request gave none; it is not stored in clear.
	InitialPassword string `json:"initial_password,omitempty"`
}

type licenceList struct {
	Licences []pbx2teams.Licence `json:"licences"`
}

type licenceRequest struct {
	Quantity  *int       `json:"quantity"`
	ExpiresAt *time.Time `json:"expires_at"`
}

// pbxRequest holds the writable PBX settings.
type pbxRequest struct {
	Domain         string              `json:"domain"`
	OutboundProxy  string              `json:"outbound_proxy"`
	Transport      pbx2teams.Transport `json:"transport"`
	RegisterExpiry int                 `json:"register_expiry"`
	Region         string              `json:"region"`
}

// userView is a user with its live PBX registration state, if the SIP
// engine knows it. The SIP password is never part of it (PasswordEnc is not
// serialised); has_password tells whether one is set.
type userView struct {
	*pbx2teams.User
	Registration *pbx2teams.RegistrationState `json:"registration,omitempty"`
}

type userPage struct {
	Users      []userView `json:"users"`
	NextCursor string     `json:"next_cursor,omitempty"`
	Total      int        `json:"total"`
}

type auditPage struct {
	Entries []pbx2teams.AuditEntry `json:"entries"`
	// NextBefore is the value of ?before= for the next (older) page; absent
	// on the last page.
	NextBefore int64 `json:"next_before,omitempty"`
}

type apiKeyList struct {
	APIKeys []pbx2teams.APIKey `json:"api_keys"`
}

type createAPIKeyRequest struct {
	Name string         `json:"name"`
	Role pbx2teams.Role `json:"role"`
}

type createAPIKeyResponse struct {
	// Key is the secret, shown this once; only its hash is stored.
	Key    string            `json:"key"`
	APIKey *pbx2teams.APIKey `json:"api_key"`
}

func (s *server) openAPI(w http.ResponseWriter, _ *http.Request, _ *pbx2teams.Principal) error {
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Cache-Control", "public, max-age=300")
	_, err := w.Write(s.spec)
	return err
}

func (s *server) me(w http.ResponseWriter, r *http.Request, p *pbx2teams.Principal) error {
	acc, err := s.svc.Account(r.Context(), p, p.AccountID)
	if err != nil {
		return err
	}
	out := meResponse{Name: p.Name, Role: p.Role, AdminID: p.AdminID, APIKeyID: p.APIKeyID, Account: acc, Auth: "session"}
	if p.APIKeyID != "" {
		out.Auth = "api_key"
	} else {
		out.CSRFToken, _ = r.Context().Value(csrfKey).(string)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *server) listAccounts(w http.ResponseWriter, r *http.Request, p *pbx2teams.Principal) error {
	accs, err := s.svc.Accounts(r.Context(), p)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, accountList{Accounts: nonNil(accs)})
	return nil
}

func (s *server) createAccount(w http.ResponseWriter, r *http.Request, p *pbx2teams.Principal) error {
	var in createAccountRequest
	if err := s.decodeJSON(w, r, &in); err != nil {
		return err
	}
	if in.ParentID == "" {
		in.ParentID = p.AccountID
	}
	acc, err := s.svc.CreateAccount(r.Context(), p, in.ParentID, in.Kind, in.Name)
	if err != nil {
		return err
	}
	w.Header().Set("Location", Prefix+"/accounts/"+acc.ID)
	writeJSON(w, http.StatusCreated, acc)
	return nil
}

func (s *server) getAccount(w http.ResponseWriter, r *http.Request, p *pbx2teams.Principal) error {
	acc, err := s.svc.Account(r.Context(), p, r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, acc)
	return nil
}

func (s *server) listChildren(w http.ResponseWriter, r *http.Request, p *pbx2teams.Principal) error {
	accs, err := s.svc.ChildAccounts(r.Context(), p, r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, accountList{Accounts: nonNil(accs)})
	return nil
}

func (s *server) listAdmins(w http.ResponseWriter, r *http.Request, p *pbx2teams.Principal) error {
	admins, err := s.svc.Admins(r.Context(), p, r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, adminList{Admins: nonNil(admins)})
	return nil
}

func (s *server) createAdmin(w http.ResponseWriter, r *http.Request, p *pbx2teams.Principal) error {
	var in createAdminRequest
	if err := s.decodeJSON(w, r, &in); err != nil {
		return err
	}
	adm, pw, err := s.svc.CreateAdmin(r.Context(), p, r.PathValue("id"), in.Email, in.Name, in.Role, in.Password)
	if err != nil {
		return err
	}
	out := createAdminResponse{Admin: adm}
	if in.Password == "" {
		out.InitialPassword = pw
	}
	writeJSON(w, http.StatusCreated, out)
	return nil
}

func (s *server) listLicences(w http.ResponseWriter, r *http.Request, p *pbx2teams.Principal) error {
	ls, err := s.svc.Licences(r.Context(), p, r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, licenceList{Licences: nonNil(ls)})
	return nil
}

func (s *server) putLicence(w http.ResponseWriter, r *http.Request, p *pbx2teams.Principal) error {
	var in licenceRequest
	if err := s.decodeJSON(w, r, &in); err != nil {
		return err
	}
	if in.Quantity == nil {
		return &pbx2teams.Error{Code: pbx2teams.EInvalid, Message: "Give the licence quantity, e.g. {\"quantity\": 25}.",
			Details: []pbx2teams.ErrorDetail{{Field: "quantity", Reason: "required"}}}
	}
	lic, err := s.svc.SetLicence(r.Context(), p, r.PathValue("id"), pbx2teams.SKU(r.PathValue("sku")), *in.Quantity, in.ExpiresAt)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, lic)
	return nil
}

func (s *server) getPBX(w http.ResponseWriter, r *http.Request, p *pbx2teams.Principal) error {
	ps, err := s.svc.PBXSettings(r.Context(), p, r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, ps)
	return nil
}

func (s *server) putPBX(w http.ResponseWriter, r *http.Request, p *pbx2teams.Principal) error {
	var in pbxRequest
	if err := s.decodeJSON(w, r, &in); err != nil {
		return err
	}
	ps, err := s.svc.SetPBXSettings(r.Context(), p, pbx2teams.PBXSettings{
		AccountID: r.PathValue("id"), Domain: in.Domain, OutboundProxy: in.OutboundProxy,
		Transport: in.Transport, RegisterExpiry: in.RegisterExpiry, Region: in.Region,
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, ps)
	return nil
}

func (s *server) getTeams(w http.ResponseWriter, r *http.Request, p *pbx2teams.Principal) error {
	ts, err := s.svc.TeamsSettings(r.Context(), p, r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, s.teamsView(ts))
	return nil
}

func (s *server) patchTeams(w http.ResponseWriter, r *http.Request, p *pbx2teams.Principal) error {
	var in pbx2teams.TeamsOptions
	if err := s.decodeJSON(w, r, &in); err != nil {
		return err
	}
	ts, err := s.svc.SetTeamsOptions(r.Context(), p, r.PathValue("id"), in)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, s.teamsView(ts))
	return nil
}

// userTypeFilters are the accepted values of ?type= on the users list.
var userTypeFilters = []string{"", "any", "none", string(pbx2teams.ServiceStandard), string(pbx2teams.ServicePhoneApp)}

func (s *server) listUsers(w http.ResponseWriter, r *http.Request, p *pbx2teams.Principal) error {
	q := r.URL.Query()
	limit, err := queryInt(r, "limit", 50, 1, 500)
	if err != nil {
		return err
	}
	typ := q.Get("type")
	if !contains(userTypeFilters, typ) {
		return badParam("type", "Query parameter type must be standard, phone_app, any (configured users of any type) or none (users without a PBX line), or absent for all users.")
	}
	page, err := s.svc.Users(r.Context(), p, pbx2teams.UserQuery{
		AccountID: r.PathValue("id"), Search: q.Get("search"), Type: pbx2teams.ServiceType(typ),
		Cursor: q.Get("cursor"), Limit: int(limit),
	})
	if err != nil {
		return err
	}
	out := userPage{Users: make([]userView, len(page.Users)), NextCursor: page.NextCursor, Total: page.Total}
	for i := range page.Users {
		out.Users[i] = s.view(&page.Users[i])
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *server) view(u *pbx2teams.User) userView {
	v := userView{User: u}
	if st, ok := s.svc.Registration(u.ID); ok {
		v.Registration = &st
	}
	return v
}

func (s *server) getUser(w http.ResponseWriter, r *http.Request, p *pbx2teams.Principal) error {
	u, err := s.svc.User(r.Context(), p, r.PathValue("id"), r.PathValue("uid"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, s.view(u))
	return nil
}

func (s *server) putUserConfig(w http.ResponseWriter, r *http.Request, p *pbx2teams.Principal) error {
	var in pbx2teams.UserConfig
	if err := s.decodeJSON(w, r, &in); err != nil {
		return err
	}
	// An absent type would mean "remove the configuration" to the service;
	// over PUT that is too easy to do by accident, so removal is DELETE.
	if in.Type == pbx2teams.ServiceNone {
		return &pbx2teams.Error{Code: pbx2teams.EInvalid,
			Message: "Give the service type: standard or phone_app. To remove a user's configuration, use DELETE on this resource.",
			Details: []pbx2teams.ErrorDetail{{Field: "type", Reason: "required: standard or phone_app"}}}
	}
	u, err := s.svc.ConfigureUser(r.Context(), p, r.PathValue("id"), r.PathValue("uid"), in)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, s.view(u))
	return nil
}

func (s *server) deleteUserConfig(w http.ResponseWriter, r *http.Request, p *pbx2teams.Principal) error {
	u, err := s.svc.ConfigureUser(r.Context(), p, r.PathValue("id"), r.PathValue("uid"), pbx2teams.UserConfig{Type: pbx2teams.ServiceNone})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, s.view(u))
	return nil
}

// lazyCSV sets the CSV headers at the first write, so that an error found
// before any output (permission, unknown account) still gets a JSON error.
type lazyCSV struct {
	w        http.ResponseWriter
	filename string
	started  bool
}

func (l *lazyCSV) Write(b []byte) (int, error) {
	if !l.started {
		l.started = true
		h := l.w.Header()
		h.Set("Content-Type", "text/csv; charset=utf-8")
		h.Set("Content-Disposition", `attachment; filename="`+l.filename+`"`)
		l.w.WriteHeader(http.StatusOK)
	}
	return l.w.Write(b)
}

func (s *server) exportCSV(w http.ResponseWriter, r *http.Request, p *pbx2teams.Principal) error {
	id := r.PathValue("id")
	out := &lazyCSV{w: w, filename: "users-" + safeFilename(id) + ".csv"}
	if err := s.svc.ExportUsersCSV(r.Context(), p, id, out); err != nil {
		if !out.started {
			return err
		}
		// Half a file has gone out: cut the connection so the client sees a
		// failed download rather than a truncated file that looks whole.
		s.log.Error("api: CSV export failed mid-stream", "request_id", requestID(r), "err", err)
		panic(http.ErrAbortHandler)
	}
	if !out.started { // cannot happen (the header row), but answer anyway
		_, _ = out.Write(nil)
	}
	return nil
}

func safeFilename(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' {
			return r
		}
		return '_'
	}, s)
}

func (s *server) importCSV(w http.ResponseWriter, r *http.Request, p *pbx2teams.Principal) error {
	if err := requireContentType(r, "text/csv", "application/csv"); err != nil {
		return err
	}
	body := http.MaxBytesReader(w, r.Body, s.opts.MaxCSVBytes)
	res, err := s.svc.ImportUsersCSV(r.Context(), p, r.PathValue("id"), body)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}

func (s *server) listAudit(w http.ResponseWriter, r *http.Request, p *pbx2teams.Principal) error {
	before, err := queryInt(r, "before", 0, 0, 1<<62)
	if err != nil {
		return err
	}
	limit, err := queryInt(r, "limit", 100, 1, 500)
	if err != nil {
		return err
	}
	es, err := s.svc.Audit(r.Context(), p, r.PathValue("id"), before, int(limit))
	if err != nil {
		return err
	}
	out := auditPage{Entries: nonNil(es)}
	if len(es) == int(limit) {
		out.NextBefore = es[len(es)-1].ID
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *server) listAPIKeys(w http.ResponseWriter, r *http.Request, p *pbx2teams.Principal) error {
	ks, err := s.svc.APIKeys(r.Context(), p, r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, apiKeyList{APIKeys: nonNil(ks)})
	return nil
}

func (s *server) createAPIKey(w http.ResponseWriter, r *http.Request, p *pbx2teams.Principal) error {
	var in createAPIKeyRequest
	if err := s.decodeJSON(w, r, &in); err != nil {
		return err
	}
	key, k, err := s.svc.CreateAPIKey(r.Context(), p, r.PathValue("id"), in.Name, in.Role)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, createAPIKeyResponse{Key: key, APIKey: k})
	return nil
}

func (s *server) revokeAPIKey(w http.ResponseWriter, r *http.Request, p *pbx2teams.Principal) error {
	if err := s.svc.RevokeAPIKey(r.Context(), p, r.PathValue("id"), r.PathValue("kid")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func nonNil[T any](v []T) []T {
	if v == nil {
		return []T{}
	}
	return v
}
