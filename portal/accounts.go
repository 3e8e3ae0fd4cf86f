package portal

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/pbx2teams/pbx2teams"
)

// accountsData is the partners-and-customers tab of an operator or partner.
type accountsData struct {
	Children []pbx2teams.Account
	Form     accountForm
	Created  *createdAccount // after a successful create
}

type accountForm struct {
	Kind, Name              string
	PBXUsers, PhoneAppUsers string
	TrialUntil              string
	AdminEmail, AdminName   string
}

// createdAccount reports a new account and what was set up with it; the
// admin's one-time password is shown on this page only.
type createdAccount struct {
	Account       *pbx2teams.Account
	Licences      []string
	Admin         *pbx2teams.Admin
	AdminPassword string
	Problems      []string
}

func (s *server) accountsPage(w http.ResponseWriter, r *http.Request, rq *req) {
	if rq.acc.Kind == pbx2teams.KindCustomer {
		s.notFound(w, r, rq)
		return
	}
	s.renderAccounts(w, r, rq, http.StatusOK, &page{Flash: notice(r)}, accountForm{Kind: string(pbx2teams.KindCustomer)}, nil)
}

func (s *server) renderAccounts(w http.ResponseWriter, r *http.Request, rq *req, status int, pg *page, f accountForm, created *createdAccount) {
	children, err := s.svc.ChildAccounts(r.Context(), rq.p, rq.acc.ID)
	if err != nil {
		s.fail(w, r, rq, err)
		return
	}
	pg.Title = "Accounts of " + rq.acc.Name
	pg.Tab = "accounts"
	pg.Data = accountsData{Children: children, Form: f, Created: created}
	s.render(w, r, rq, status, "accounts.html", pg)
}

// accountsCreate creates a partner or customer under the account; for a
// customer it also sets the licences asked for and, optionally, its first
// admin, in one go as the licensing provider's "Add account" does.
func (s *server) accountsCreate(w http.ResponseWriter, r *http.Request, rq *req) {
	if rq.acc.Kind == pbx2teams.KindCustomer {
		s.notFound(w, r, rq)
		return
	}
	ctx := r.Context()
	f := accountForm{
		Kind: r.PostFormValue("kind"), Name: r.PostFormValue("name"),
		PBXUsers: strings.TrimSpace(r.PostFormValue("pbx_users")), PhoneAppUsers: strings.TrimSpace(r.PostFormValue("phone_app_users")),
		TrialUntil: strings.TrimSpace(r.PostFormValue("trial_until")),
		AdminEmail: strings.TrimSpace(r.PostFormValue("admin_email")), AdminName: strings.TrimSpace(r.PostFormValue("admin_name")),
	}
	kind := pbx2teams.AccountKind(f.Kind)
	// Read the numbers first so that a typo creates nothing.
	fields := map[string]string{}
	var pbxQty, appQty int
	var trial *time.Time
	if kind == pbx2teams.KindCustomer {
		pbxQty = parseQuantity(f.PBXUsers, "pbx_users", fields)
		appQty = parseQuantity(f.PhoneAppUsers, "phone_app_users", fields)
		trial = parseDay(f.TrialUntil, "trial_until", fields)
	}
	if len(fields) > 0 {
		pg := &page{Error: "The form has errors; nothing was created.", Code: pbx2teams.EInvalid, Fields: fields}
		s.renderAccounts(w, r, rq, http.StatusUnprocessableEntity, pg, f, nil)
		return
	}
	acc, err := s.svc.CreateAccount(ctx, rq.p, rq.acc.ID, kind, f.Name)
	if err != nil {
		pg := &page{}
		pg.setError(err)
		if pg.Fields == nil && pbx2teams.ErrorCode(err) == pbx2teams.EInvalid {
			pg.Fields = map[string]string{"name": pg.Error}
		}
		s.renderAccounts(w, r, rq, s.errStatus(r, err), pg, f, nil)
		return
	}
	created := &createdAccount{Account: acc}
	if kind == pbx2teams.KindCustomer {
		for _, l := range []struct {
			sku pbx2teams.SKU
			qty int
		}{{pbx2teams.SKUPBXUser, pbxQty}, {pbx2teams.SKUPhoneAppUser, appQty}} {
			if l.qty == 0 {
				continue
			}
			if _, err := s.svc.SetLicence(ctx, rq.p, acc.ID, l.sku, l.qty, trial); err != nil {
				s.errStatus(r, err)
				created.Problems = append(created.Problems, "Licence "+string(l.sku)+" was not set: "+pbx2teams.ErrorMessage(err))
				continue
			}
			desc := strconv.Itoa(l.qty) + " × " + string(l.sku)
			if trial != nil {
				desc += " (trial until " + fmtDay(trial) + ")"
			}
			created.Licences = append(created.Licences, desc)
		}
	}
	if f.AdminEmail != "" {
		adm, pw, err := s.svc.CreateAdmin(ctx, rq.p, acc.ID, f.AdminEmail, f.AdminName, "", "")
		if err != nil {
			s.errStatus(r, err)
			created.Problems = append(created.Problems, "The admin was not created: "+pbx2teams.ErrorMessage(err))
		} else {
			created.Admin, created.AdminPassword = adm, pw
		}
	}
	s.renderAccounts(w, r, rq, http.StatusOK, &page{}, accountForm{Kind: string(pbx2teams.KindCustomer)}, created)
}

// parseQuantity reads a licence quantity; empty is 0.
func parseQuantity(v, field string, fields map[string]string) int {
	if v == "" {
		return 0
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		fields[field] = "Enter a whole number of licences, 0 or more."
		return 0
	}
	return n
}

// parseDay reads a date input (YYYY-MM-DD) as midnight UTC of that day;
// empty is no date.
func parseDay(v, field string, fields map[string]string) *time.Time {
	if v == "" {
		return nil
	}
	t, err := time.Parse("2006-01-02", v)
	if err != nil {
		fields[field] = "Enter a date as YYYY-MM-DD, e.g. 2030-01-31, or leave it empty for no expiry."
		return nil
	}
	return &t
}

// adminsData is the admins tab.
type adminsData struct {
	Admins      []pbx2teams.Admin
	Roles       []pbx2teams.Role
	Form        adminForm
	NewAdmin    *pbx2teams.Admin
	NewPassword string
}

type adminForm struct{ Email, Name, Role string }

func (s *server) adminsPage(w http.ResponseWriter, r *http.Request, rq *req) {
	s.renderAdmins(w, r, rq, http.StatusOK, &page{Flash: notice(r)}, adminForm{}, nil, "")
}

func (s *server) renderAdmins(w http.ResponseWriter, r *http.Request, rq *req, status int, pg *page, f adminForm, adm *pbx2teams.Admin, pw string) {
	admins, err := s.svc.Admins(r.Context(), rq.p, rq.acc.ID)
	if err != nil {
		s.fail(w, r, rq, err)
		return
	}
	roles := []pbx2teams.Role{pbx2teams.RoleViewer}
	for _, role := range []pbx2teams.Role{pbx2teams.RoleOperator, pbx2teams.RolePartner, pbx2teams.RoleCustomerAdmin} {
		if role.FitsKind(rq.acc.Kind) {
			roles = append([]pbx2teams.Role{role}, roles...)
		}
	}
	if f.Role == "" {
		f.Role = string(roles[0])
	}
	pg.Title = "Admins of " + rq.acc.Name
	pg.Tab = "admins"
	pg.Data = adminsData{Admins: admins, Roles: roles, Form: f, NewAdmin: adm, NewPassword: pw}
	s.render(w, r, rq, status, "admins.html", pg)
}

func (s *server) adminsCreate(w http.ResponseWriter, r *http.Request, rq *req) {
	f := adminForm{Email: strings.TrimSpace(r.PostFormValue("email")), Name: strings.TrimSpace(r.PostFormValue("name")), Role: r.PostFormValue("role")}
	adm, pw, err := s.svc.CreateAdmin(r.Context(), rq.p, rq.acc.ID, f.Email, f.Name, pbx2teams.Role(f.Role), "")
	if err != nil {
		pg := &page{}
		pg.setError(err)
		s.renderAdmins(w, r, rq, s.errStatus(r, err), pg, f, nil, "")
		return
	}
	// The password is in this response only: no redirect, nothing stored.
	s.renderAdmins(w, r, rq, http.StatusOK, &page{}, adminForm{}, adm, pw)
}

// apiKeysData is the API keys tab.
type apiKeysData struct {
	Keys   []pbx2teams.APIKey
	Roles  []pbx2teams.Role
	Name   string
	NewKey string
	New    *pbx2teams.APIKey
}

func (s *server) apiKeysPage(w http.ResponseWriter, r *http.Request, rq *req) {
	s.renderAPIKeys(w, r, rq, http.StatusOK, &page{Flash: notice(r)}, "", "", nil)
}

func (s *server) renderAPIKeys(w http.ResponseWriter, r *http.Request, rq *req, status int, pg *page, name, key string, k *pbx2teams.APIKey) {
	keys, err := s.svc.APIKeys(r.Context(), rq.p, rq.acc.ID)
	if err != nil {
		s.fail(w, r, rq, err)
		return
	}
	roles := []pbx2teams.Role{pbx2teams.RoleViewer}
	for _, role := range []pbx2teams.Role{pbx2teams.RoleOperator, pbx2teams.RolePartner, pbx2teams.RoleCustomerAdmin} {
		if role.FitsKind(rq.acc.Kind) {
			roles = append([]pbx2teams.Role{role}, roles...)
		}
	}
	pg.Title = "API keys of " + rq.acc.Name
	pg.Tab = "apikeys"
	pg.Data = apiKeysData{Keys: keys, Roles: roles, Name: name, NewKey: key, New: k}
	s.render(w, r, rq, status, "apikeys.html", pg)
}

func (s *server) apiKeysCreate(w http.ResponseWriter, r *http.Request, rq *req) {
	name := strings.TrimSpace(r.PostFormValue("name"))
	key, k, err := s.svc.CreateAPIKey(r.Context(), rq.p, rq.acc.ID, name, pbx2teams.Role(r.PostFormValue("role")))
	if err != nil {
		pg := &page{}
		pg.setError(err)
		if pg.Fields == nil {
			pg.Fields = map[string]string{"name": pg.Error}
		}
		s.renderAPIKeys(w, r, rq, s.errStatus(r, err), pg, name, "", nil)
		return
	}
	// The key is in this response only; only its hash is stored.
	s.renderAPIKeys(w, r, rq, http.StatusOK, &page{}, "", key, k)
}

func (s *server) apiKeysRevoke(w http.ResponseWriter, r *http.Request, rq *req) {
	if err := s.svc.RevokeAPIKey(r.Context(), rq.p, rq.acc.ID, r.PathValue("key")); err != nil {
		pg := &page{}
		pg.setError(err)
		s.renderAPIKeys(w, r, rq, s.errStatus(r, err), pg, "", "", nil)
		return
	}
	redirect(w, r, "/a/"+rq.acc.ID+"/apikeys", "key-revoked")
}

// auditPageSize is the number of audit entries per page.
const auditPageSize = 50

type auditData struct {
	Entries []pbx2teams.AuditEntry
	Before  int64 // this page starts before this entry (0: newest)
	Older   int64 // the "older" link's cursor, 0 when there is none
	// Names of the accounts in the subtree, for the Account column of a
	// partner's or operator's log.
	Names map[string]string
}

func (s *server) auditPage(w http.ResponseWriter, r *http.Request, rq *req) {
	before, _ := strconv.ParseInt(r.URL.Query().Get("before"), 10, 64)
	if before < 0 {
		before = 0
	}
	entries, err := s.svc.Audit(r.Context(), rq.p, rq.acc.ID, before, auditPageSize+1)
	if err != nil {
		s.fail(w, r, rq, err)
		return
	}
	d := auditData{Before: before}
	if len(entries) > auditPageSize {
		entries = entries[:auditPageSize]
		d.Older = entries[len(entries)-1].ID
	}
	d.Entries = entries
	if rq.acc.Kind != pbx2teams.KindCustomer {
		accs, err := s.svc.Accounts(r.Context(), rq.p)
		if err != nil {
			s.fail(w, r, rq, err)
			return
		}
		d.Names = map[string]string{}
		for _, a := range accs {
			d.Names[a.ID] = a.Name
		}
	}
	s.render(w, r, rq, http.StatusOK, "audit.html", &page{Title: "Audit log of " + rq.acc.Name, Tab: "audit", Data: d})
}
