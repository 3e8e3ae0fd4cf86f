// Command portal-bench measures the Users page of the portal and the users
// list of the REST API at 100,000 directory users in one customer.
//
// It creates a fresh SQLite store in a temporary directory, seeds the users
// in one transaction through the Store (a realistic fraction of them
// configured), starts the real HTTP stack in-process on 127.0.0.1, signs in
// and times, over loopback HTTP, three cases for both the page and the API:
// the first page, a search, and a deep page (reached by following cursors
// ~1000 pages deep, then fetched repeatedly). Each case runs many times per
// run over several runs; it prints each case's p50/p95 (medians over the
// runs) and ends with the line
//
//	portal users=100000 page_p95_ms=X api_p95_ms=Y
//
// where X and Y are the worst p95 over the three cases.
package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/pbx2teams/pbx2teams"
	"github.com/pbx2teams/pbx2teams/api"
	"github.com/pbx2teams/pbx2teams/secrets"
	"github.com/pbx2teams/pbx2teams/sqlite"
)

var (
	users      = flag.Int("users", 100000, "directory users in the customer")
	configured = flag.Float64("configured", 0.3, "fraction of users with a PBX line configured")
	runs       = flag.Int("runs", 5, "measurement runs; figures are medians over the runs")
	reps       = flag.Int("reps", 100, "requests per case per run")
	deep       = flag.Int("deep", 1000, "pages to follow for the deep-page case")
	limit      = flag.Int("limit", 50, "users per page")
	search     = flag.String("search", "garcia", "search text for the search case")
	keep       = flag.Bool("keep", false, "keep the temporary directory with the database")
)

// newPortal returns the portal handler; set in portal.go when the portal
// package is built in, nil otherwise.
var newPortal func(svc *pbx2teams.Service, log *slog.Logger) http.Handler

// portalCases describes the portal's Users page URLs; set with newPortal.
var portalCases func(accountID, search string) (first, searched string, next func(body []byte) (string, error))

func main() {
	flag.Parse()
	log.SetFlags(0)
	ctx := context.Background()

	dir, err := os.MkdirTemp("", "pbx2teams-bench-portal-")
	check(err)
	if !*keep {
		defer os.RemoveAll(dir)
	}
	store, err := sqlite.Open(filepath.Join(dir, "pbx2teams.db"))
	check(err)
	defer store.Close()
	key, err := secrets.LoadOrCreateKey("", filepath.Join(dir, "secret.key"))
	check(err)
	box, err := secrets.NewBox(key)
	check(err)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc := pbx2teams.NewService(store, box, quiet)

	// Accounts, an admin session and an API key.
	_, pw, err := svc.Bootstrap(ctx, "Bench Operator", "ops@bench.example")
	check(err)
	tok, _, err := svc.SignIn(ctx, "ops@bench.example", pw, "127.0.0.1")
	check(err)
	op, _, err := svc.Authenticate(ctx, tok)
	check(err)
	partner, err := svc.CreateAccount(ctx, op, op.AccountID, pbx2teams.KindPartner, "Bench Partner")
	check(err)
	cust, err := svc.CreateAccount(ctx, op, partner.ID, pbx2teams.KindCustomer, "Contoso")
	check(err)
	_, err = svc.SetLicence(ctx, op, cust.ID, pbx2teams.SKUPBXUser, *users, nil)
	check(err)
	_, err = svc.SetLicence(ctx, op, cust.ID, pbx2teams.SKUPhoneAppUser, *users, nil)
	check(err)
	on := true
	_, err = svc.SetTeamsOptions(ctx, op, cust.ID, pbx2teams.TeamsOptions{PhoneAppEnabled: &on})
	check(err)
	const adminPW = "bench admin password"
	_, _, err = svc.CreateAdmin(ctx, op, cust.ID, "admin@contoso.example", "Contoso Admin", "", adminPW)
	check(err)
	session, _, err := svc.SignIn(ctx, "admin@contoso.example", adminPW, "127.0.0.1")
	check(err)
	apiKey, _, err := svc.CreateAPIKey(ctx, op, cust.ID, "bench", "")
	check(err)

	start := time.Now()
	nconf := seed(ctx, store, box, cust.ID)
	fmt.Printf("seeded %d users (%d configured) in %.1f s\n", *users, nconf, time.Since(start).Seconds())
	checkpoint(ctx, filepath.Join(dir, "pbx2teams.db"))

	mux := http.NewServeMux()
	mux.Handle(api.Prefix+"/", api.New(svc, api.Options{Log: quiet, RateLimit: -1}))
	if newPortal != nil {
		mux.Handle("/", newPortal(svc, quiet))
	}
	srv := httptest.NewServer(mux) // 127.0.0.1, a free port
	defer srv.Close()
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}, Timeout: 30 * time.Second,
		// A redirect (e.g. to the sign-in page) is a failure, not a page to time.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	apiClient := &getter{hc: hc, base: srv.URL, header: http.Header{"Authorization": {"Bearer " + apiKey}}}
	usersURL := api.Prefix + "/accounts/" + cust.ID + "/users?limit=" + fmt.Sprint(*limit)
	apiDeep := follow(apiClient, usersURL, *deep, func(body []byte) (string, error) {
		var page struct {
			NextCursor string `json:"next_cursor"`
			Total      int    `json:"total"`
		}
		if err := json.Unmarshal(body, &page); err != nil {
			return "", err
		}
		if page.NextCursor == "" {
			return "", nil
		}
		return usersURL + "&cursor=" + url.QueryEscape(page.NextCursor), nil
	})
	apiCases := []benchCase{
		{"first page", usersURL},
		{"search", usersURL + "&search=" + url.QueryEscape(*search)},
		{fmt.Sprintf("deep page (%d)", *deep), apiDeep},
	}

	var pageCases []benchCase
	var pageClient *getter
	if newPortal != nil {
		pageClient = &getter{hc: hc, base: srv.URL, header: http.Header{"Cookie": {pbx2teams.SessionCookieName + "=" + session}}}
		first, searched, next := portalCases(cust.ID, *search)
		pageCases = []benchCase{
			{"first page", first},
			{"search", searched},
			{fmt.Sprintf("deep page (%d)", *deep), follow(pageClient, first, *deep, next)},
		}
	} else {
		fmt.Println("TODO: the portal package is not built in (bench/portal/portal.go); only the API is measured")
	}

	// The same three queries straight through the service (no HTTP, no
	// JSON), to tell the store's share of the time from the handlers'.
	deepURL, err := url.Parse(apiDeep)
	check(err)
	svcQuery := func(search, cursor string) func() error {
		return func() error {
			_, err := svc.Users(ctx, op, pbx2teams.UserQuery{AccountID: cust.ID, Search: search, Cursor: cursor, Limit: *limit})
			return err
		}
	}
	measureFuncs("svc", []string{apiCases[0].name, apiCases[1].name, apiCases[2].name},
		[]func() error{svcQuery("", ""), svcQuery(*search, ""), svcQuery("", deepURL.Query().Get("cursor"))})

	apiP95 := measure("api", apiClient, apiCases)
	pageP95 := -1.0
	if pageClient != nil {
		pageP95 = measure("page", pageClient, pageCases)
	}
	pageFigure := "n/a"
	if pageP95 >= 0 {
		pageFigure = fmt.Sprintf("%.1f", pageP95)
	}
	fmt.Printf("portal users=%d page_p95_ms=%s api_p95_ms=%.1f\n", *users, pageFigure, apiP95)
}

// checkpoint moves the seeding transaction out of the write-ahead log into
// the database file, as SQLite's automatic checkpoints do in a running
// service, so that the timed reads see the steady state rather than a WAL
// of a hundred thousand fresh rows.
func checkpoint(ctx context.Context, path string) {
	if fi, err := os.Stat(path + "-wal"); err == nil {
		fmt.Printf("WAL after seeding: %.0f MB; checkpointing\n", float64(fi.Size())/1e6)
	}
	db, err := sql.Open("sqlite", path)
	check(err)
	defer db.Close()
	var busy, logPages, done int
	check(db.QueryRowContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)").Scan(&busy, &logPages, &done))
	if busy != 0 {
		log.Printf("checkpoint: the database was busy; %d of %d pages moved", done, logPages)
	}
}

type benchCase struct {
	name string
	path string
}

// getter fetches paths of the server with fixed headers.
type getter struct {
	hc     *http.Client
	base   string
	header http.Header
}

func (g *getter) get(path string) ([]byte, error) {
	req, err := http.NewRequest("GET", g.base+path, nil)
	if err != nil {
		return nil, err
	}
	for k, v := range g.header {
		req.Header[k] = v
	}
	res, err := g.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		return nil, err
	}
	if res.StatusCode != 200 {
		return nil, fmt.Errorf("GET %s: %d %s", path, res.StatusCode, strings.TrimSpace(string(body[:min(len(body), 300)])))
	}
	return body, nil
}

// follow walks pages pages deep from first through next and returns the
// path of the last page reached.
func follow(g *getter, first string, pages int, next func([]byte) (string, error)) string {
	path := first
	for i := 0; i < pages; i++ {
		body, err := g.get(path)
		check(err)
		p, err := next(body)
		check(err)
		if p == "" {
			log.Printf("only %d pages; using the last", i+1)
			break
		}
		path = p
	}
	return path
}

// measure times every case reps times per run and prints p50/p95 (medians
// over the runs); it returns the worst case's p95 in milliseconds.
func measure(kind string, g *getter, cases []benchCase) float64 {
	names := make([]string, len(cases))
	fns := make([]func() error, len(cases))
	for i, c := range cases {
		names[i] = c.name
		fns[i] = func() error { _, err := g.get(c.path); return err }
	}
	return measureFuncs(kind, names, fns)
}

// measureFuncs times each function reps times per run, as measure.
func measureFuncs(kind string, names []string, fns []func() error) float64 {
	worst := 0.0
	for ci, fn := range fns {
		// Warm up: connections, page cache, statement cache.
		for i := 0; i < 10; i++ {
			check(fn())
		}
		var p50s, p95s []float64
		for r := 0; r < *runs; r++ {
			d := make([]float64, *reps)
			for i := range d {
				t0 := time.Now()
				check(fn())
				d[i] = float64(time.Since(t0).Microseconds()) / 1000
			}
			sort.Float64s(d)
			p50s = append(p50s, quantile(d, 0.50))
			p95s = append(p95s, quantile(d, 0.95))
		}
		p50, p95 := median(p50s), median(p95s)
		fmt.Printf("%-4s %-18s p50_ms=%6.1f p95_ms=%6.1f  (p95 per run: %s)\n", kind, names[ci], p50, p95, list(p95s))
		worst = max(worst, p95)
	}
	return worst
}

func quantile(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted)) + 0.5)
	if i >= len(sorted) {
		i = len(sorted) - 1
	}
	if i > 0 {
		i--
	}
	return sorted[i]
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func list(v []float64) string {
	parts := make([]string, len(v))
	for i, x := range v {
		parts[i] = fmt.Sprintf("%.1f", x)
	}
	return strings.Join(parts, " ")
}

func check(err error) {
	if err != nil {
		log.Fatal(err)
	}
}
