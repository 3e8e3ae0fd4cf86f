package portal

import (
	"context"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/pbx2teams/pbx2teams"
)

// page is what every template gets. Handlers set the top part; frame fills
// in the rest (top bar, account path, tabs).
type page struct {
	Title  string
	Flash  string            // a success notice
	Error  string            // what went wrong, for the alert at the top
	Code   string            // the error's code (licence errors look different)
	Fields map[string]string // reasons per form field
	Data   any               // the page's own data

	Product      string
	AssetVersion string
	P            *pbx2teams.Principal
	CSRF         string
	CanWrite     bool
	Home         *pbx2teams.Account // the principal's own account
	Account      *pbx2teams.Account // the account the page is about
	Crumbs       []pbx2teams.Account
	Switch       []switchEntry // accounts to switch to; empty for customers
	SwitchMore   bool          // the list was cut short
	Tabs         []tab
	Tab          string // the active tab's key
}

type tab struct{ Key, Label, Href string }

type switchEntry struct {
	pbx2teams.Account
	Depth   int
	Current bool
}

// maxSwitch bounds the account switcher; larger trees are browsed through
// the accounts tab.
const maxSwitch = 300

// setError puts err on the page: the message at the top, reasons by field.
func (pg *page) setError(err error) {
	pg.Error, pg.Fields = fieldErrors(err)
	pg.Code = pbx2teams.ErrorCode(err)
}

// frame fills in the parts of the page shared by every signed-in page.
func (s *server) frame(ctx context.Context, rq *req, pg *page) {
	pg.Product = s.opts.ProductName
	pg.AssetVersion = s.assetVersion
	if rq == nil || rq.p == nil {
		return
	}
	pg.P = rq.p
	pg.CSRF = rq.sess.CSRFToken
	pg.CanWrite = rq.p.Role.CanWrite()
	pg.Home = rq.home
	names := map[string]pbx2teams.Account{}
	if rq.home != nil && rq.home.Kind != pbx2teams.KindCustomer {
		accs, err := s.svc.Accounts(ctx, rq.p)
		if err != nil {
			s.log.Error("portal: account switcher", "err", err)
		}
		for _, a := range treeOrder(accs, rq.home.ID) {
			names[a.ID] = a.Account
			if len(pg.Switch) >= maxSwitch {
				pg.SwitchMore = true
				continue
			}
			a.Current = rq.acc != nil && a.ID == rq.acc.ID
			pg.Switch = append(pg.Switch, a)
		}
	}
	acc := rq.acc
	if acc == nil {
		return
	}
	pg.Account = acc
	// The path from the principal's own account down to this one.
	if rq.home != nil {
		pg.Crumbs = append(pg.Crumbs, *rq.home)
		rest := strings.Trim(strings.TrimPrefix(acc.Path, rq.home.Path), "/")
		if rest != "" {
			for _, id := range strings.Split(rest, "/") {
				a, ok := names[id]
				if !ok {
					got, err := s.svc.Account(ctx, rq.p, id)
					if err != nil {
						break
					}
					a = *got
				}
				pg.Crumbs = append(pg.Crumbs, a)
			}
		}
	}
	base := "/a/" + acc.ID + "/"
	if acc.Kind == pbx2teams.KindCustomer {
		pg.Tabs = []tab{
			{"teams", "Teams services", base + "teams"},
			{"pbx", "PBX", base + "pbx"},
			{"users", "Users", base + "users"},
			{"calls", "Calls", base + "calls"},
			{"licences", "Licences", base + "licences"},
		}
	} else {
		label := "Customers"
		if acc.Kind == pbx2teams.KindOperator {
			label = "Partners & customers"
		}
		pg.Tabs = []tab{{"accounts", label, base + "accounts"}}
	}
	pg.Tabs = append(pg.Tabs,
		tab{"admins", "Admins", base + "admins"},
		tab{"apikeys", "API keys", base + "apikeys"},
		tab{"audit", "Audit log", base + "audit"},
	)
}

// treeOrder lists accounts depth first from root, siblings by name, with
// their depth below root (capped for indentation).
func treeOrder(accs []pbx2teams.Account, root string) []switchEntry {
	kids := map[string][]pbx2teams.Account{}
	var top *pbx2teams.Account
	for i := range accs {
		if accs[i].ID == root {
			top = &accs[i]
			continue
		}
		kids[accs[i].ParentID] = append(kids[accs[i].ParentID], accs[i])
	}
	if top == nil {
		return nil
	}
	out := make([]switchEntry, 0, len(accs))
	var walk func(a pbx2teams.Account, depth int)
	walk = func(a pbx2teams.Account, depth int) {
		out = append(out, switchEntry{Account: a, Depth: min(depth, 6)})
		ks := kids[a.ID]
		sort.SliceStable(ks, func(i, j int) bool { return strings.ToLower(ks[i].Name) < strings.ToLower(ks[j].Name) })
		for _, k := range ks {
			walk(k, depth+1)
		}
	}
	walk(*top, 0)
	return out
}

// notices are the success messages a redirect after a POST can ask for; only
// these fixed texts can be shown, so a link cannot put words on the page.
var notices = map[string]string{
	"pbx-saved":            "PBX settings saved. Configured users re-register with the new settings.",
	"teams-saved":          "Teams services settings saved.",
	"user-saved":           "User settings saved. The user registers to the PBX with them.",
	"user-removed":         "Configuration removed. The user's licences are free again.",
	"imported":             "CSV imported: %d users updated.",
	"licence-saved":        "Licence updated.",
	"key-revoked":          "API key revoked. Requests with it are refused from now on.",
	"signed-out":           "You have signed out.",
	"m365-connected":       "Microsoft 365 connected. Run Sync Now to bring in your users.",
	"phone-app-authorized": "Phone App authorized and published to your organization's Teams app catalog. Run Sync Now before and after configuring Phone App users.",
	"sync-started":         "Sync started.",
	"sbc-label-saved":      "SBC label saved. Add the new SBC domain in Microsoft 365 and update the PSTN gateway in Teams to use it.",
}

// notice returns the notice asked for by the query string, if any.
func notice(r *http.Request) string {
	q := r.URL.Query()
	msg, ok := notices[q.Get("done")]
	if !ok {
		return ""
	}
	if strings.Contains(msg, "%d") {
		n, _ := strconv.Atoi(q.Get("n"))
		msg = fmt.Sprintf(msg, n)
	}
	return msg
}

// icon describes a type icon: the id of its SVG symbol and its label.
type icon struct{ ID, Label string }

// userIcon chooses the icon of a directory user: its service type for
// people, its kind for objects that cannot be voice users.
func userIcon(u pbx2teams.User) icon {
	switch u.Kind {
	case pbx2teams.KindMeetingRoom:
		return icon{"room", "Meeting room"}
	case pbx2teams.KindResourceAccount:
		return icon{"resource", "Resource account"}
	case pbx2teams.KindBot:
		return icon{"bot", "Bot"}
	}
	switch u.Type {
	case pbx2teams.ServiceStandard:
		return icon{"standard", "Standard user"}
	case pbx2teams.ServicePhoneApp:
		return icon{"phoneapp", "Phone App user"}
	}
	// Not configured yet: what the sync found the user to be.
	switch u.SuggestedType {
	case pbx2teams.ServiceStandard:
		return icon{"standard", "Standard user (from sync; not configured)"}
	case pbx2teams.ServicePhoneApp:
		return icon{"phoneapp", "Phone App user (from sync; not configured)"}
	}
	return icon{"person", "Not configured"}
}

func kindLabel(k pbx2teams.UserKind) string {
	switch k {
	case pbx2teams.KindMeetingRoom:
		return "Meeting room"
	case pbx2teams.KindResourceAccount:
		return "Resource account"
	case pbx2teams.KindBot:
		return "Bot"
	}
	return "Person"
}

func typeLabel(t pbx2teams.ServiceType) string {
	switch t {
	case pbx2teams.ServiceStandard:
		return "Standard"
	case pbx2teams.ServicePhoneApp:
		return "Phone App"
	}
	return "Not configured"
}

func roleLabel(r pbx2teams.Role) string {
	switch r {
	case pbx2teams.RoleOperator:
		return "Operator"
	case pbx2teams.RolePartner:
		return "Partner admin"
	case pbx2teams.RoleCustomerAdmin:
		return "Customer admin"
	case pbx2teams.RoleViewer:
		return "Viewer (read-only)"
	}
	return string(r)
}

func accountKindLabel(k pbx2teams.AccountKind) string {
	switch k {
	case pbx2teams.KindOperator:
		return "Operator"
	case pbx2teams.KindPartner:
		return "Partner"
	case pbx2teams.KindCustomer:
		return "Customer"
	}
	return string(k)
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2 Jan 2006 15:04 UTC")
}

func fmtTimeP(t *time.Time) string {
	if t == nil {
		return "—"
	}
	return fmtTime(*t)
}

func fmtDay(t *time.Time) string {
	if t == nil {
		return ""
	}
	return t.UTC().Format("2 Jan 2006")
}

// isoDay is the value of a date input.
func isoDay(t *time.Time) string {
	if t == nil {
		return ""
	}
	return t.UTC().Format("2006-01-02")
}

var funcs = template.FuncMap{
	"userIcon":         userIcon,
	"kindLabel":        kindLabel,
	"typeLabel":        typeLabel,
	"roleLabel":        roleLabel,
	"accountKindLabel": accountKindLabel,
	"time":             fmtTime,
	"timep":            fmtTimeP,
	"day":              fmtDay,
	"isoDay":           isoDay,
	"add":              func(a, b int) int { return a + b },
	"syncSummary":      syncSummary,
	"resultLabel":      resultLabel,
	"resultClass":      resultClass,
	"directionLabel":   directionLabel,
	"routeLabel":       routeLabel,
	"endedByLabel":     endedByLabel,
	"sipStatus":        sipStatus,
	"callDuration":     callDuration,
	"secs":             fmtSeconds,
	"clock":            fmtClock,
	"millis":           millis,
	"initial": func(s string) string {
		for _, r := range s {
			return strings.ToUpper(string(r))
		}
		return "?"
	},
	"field": func(fields map[string]string, name string) string {
		return fields[name]
	},
}

// parseTemplates parses each page with the shared layout and partials.
func (s *server) parseTemplates() {
	s.pages = map[string]*template.Template{}
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		panic(err)
	}
	for _, n := range names {
		base := path.Base(n)
		if base == "layout.html" || base == "partials.html" {
			continue
		}
		t := template.Must(template.New(base).Funcs(funcs).ParseFS(templateFS,
			"templates/layout.html", "templates/partials.html", n))
		s.pages[base] = t
	}
}
