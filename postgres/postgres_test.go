package postgres_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/pbx2teams/pbx2teams"
	"github.com/pbx2teams/pbx2teams/postgres"
	"github.com/pbx2teams/pbx2teams/sqlstore"
	"github.com/pbx2teams/pbx2teams/storetest"
)

// envURL names the server the tests use: a postgres:// URL of a role that
// may create databases (scripts/test-postgres.sh prints one).
const envURL = "PBX2TEAMS_TEST_POSTGRES"

// adminURL returns the server URL, skipping the test when it is unset
// (failing under CI, which must never skip silently).
func adminURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv(envURL)
	if u == "" {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is not set; CI must run the PostgreSQL store tests (see scripts/test-postgres.sh)", envURL)
		}
		t.Skipf("%s is not set; run scripts/test-postgres.sh and export its URL to test PostgreSQL", envURL)
	}
	return u
}

var (
	adminOnce sync.Once
	adminDB   *sql.DB
	adminErr  error
)

// admin returns a shared connection to the server's maintenance database,
// used to create and drop the per-test databases.
func admin(t testing.TB, u string) *sql.DB {
	t.Helper()
	adminOnce.Do(func() {
		adminDB, adminErr = sql.Open("pgx", u)
		if adminErr == nil {
			adminDB.SetMaxOpenConns(2)
		}
	})
	if adminErr != nil {
		t.Fatal(adminErr)
	}
	return adminDB
}

// freshURL creates an empty database for the test, dropped at cleanup, and
// returns its URL.
func freshURL(t testing.TB) string {
	t.Helper()
	base := adminURL(t)
	db := admin(t, base)
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "pbx2teams_test_" + hex.EncodeToString(b[:])
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// The name is ours (hex), so it is safe to splice into the statement.
	if _, err := db.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("create test database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		// Plain DROP (not WITH (FORCE), which a non-superuser may not use
		// on an autovacuum worker) waits a few seconds for the backends
		// of the closed store to exit; retry in case they take longer.
		var err error
		for try := 0; try < 3; try++ {
			if _, err = db.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name); err == nil {
				return
			}
		}
		t.Errorf("drop test database %s: %v", name, err)
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("%s: %v", envURL, err)
	}
	u.Path = "/" + name
	return u.String()
}

func openFresh(t *testing.T) pbx2teams.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := postgres.Open(ctx, freshURL(t))
	if err != nil {
		t.Fatal(err)
	}
	// Registered after the drop, so it runs first.
	t.Cleanup(func() { s.Close() })
	return s
}

func TestStore(t *testing.T) {
	storetest.Run(t, openFresh)
}

// TestConcurrentOpen checks that nodes starting together on an empty
// database migrate it once, without failing.
func TestConcurrentOpen(t *testing.T) {
	u := freshURL(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const nodes = 4
	stores := make([]pbx2teams.Store, nodes)
	errs := make([]error, nodes)
	var wg sync.WaitGroup
	for i := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stores[i], errs[i] = postgres.Open(ctx, u)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("node %d: %v", i, err)
		}
		defer stores[i].Close()
	}
	db, err := sql.Open("pgx", u)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// Every migration recorded once, up to this binary's version.
	var n, top int
	if err := db.QueryRowContext(ctx, "SELECT count(*), max(version) FROM schema_migrations").Scan(&n, &top); err != nil {
		t.Fatal(err)
	}
	latest, err := sqlstore.LatestVersion(sqlstore.Postgres)
	if err != nil {
		t.Fatal(err)
	}
	if n != latest || top != latest {
		t.Errorf("schema_migrations has %d rows up to version %d, want %d", n, top, latest)
	}
	a := &pbx2teams.Account{Kind: pbx2teams.KindOperator, Name: "op"}
	if err := stores[0].CreateAccount(ctx, a); err != nil {
		t.Fatal(err)
	}
	if _, err := stores[nodes-1].Account(ctx, a.ID); err != nil {
		t.Errorf("account written by one node not read by another: %v", err)
	}
}

func TestOpenUnreachable(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Port 1 on loopback refuses connections.
	if s, err := postgres.Open(ctx, "postgres://x:y@127.0.0.1:1/db?sslmode=disable&connect_timeout=5"); err == nil {
		s.Close()
		t.Fatal("Open of an unreachable server succeeded")
	}
}

// BenchmarkUsers100k measures the users list at 100,000 users of one
// customer on PostgreSQL (needs PBX2TEAMS_TEST_POSTGRES):
// go test -run '^$' -bench Users100k ./postgres/
func BenchmarkUsers100k(b *testing.B) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := postgres.Open(ctx, freshURL(b))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	storetest.BenchmarkUsers(b, s, 100000, func(ctx context.Context) error {
		// Autovacuum does this soon after a bulk load; doing it now measures
		// the steady state (statistics, and the visibility map that
		// index-only scans need).
		_, err := s.DB().ExecContext(ctx, "VACUUM ANALYZE users")
		return err
	})
}

// TestLockAccountLetsSyncWrite checks that a transaction holding an
// account's lock does not block another writer inserting users of that
// account (foreign-key checks only take a key-share lock).
func TestLockAccountLetsSyncWrite(t *testing.T) {
	s := openFresh(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	acc := &pbx2teams.Account{Kind: pbx2teams.KindCustomer, Name: "c"}
	if err := s.CreateAccount(ctx, acc); err != nil {
		t.Fatal(err)
	}
	err := s.InTx(ctx, func(q pbx2teams.Queries) error {
		if err := q.LockAccount(ctx, acc.ID); err != nil {
			return err
		}
		// While the lock is held, another connection writes a user of
		// the account; were it blocked, it would fail at its deadline.
		wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
		defer wcancel()
		u := &pbx2teams.User{AccountID: acc.ID, ObjectID: "o1", UPN: "a@b.example", DisplayName: "A", Enabled: true}
		return s.UpsertDirectoryUser(wctx, u)
	})
	if err != nil {
		t.Fatalf("writing a user while the account is locked: %v", err)
	}
	if _, err := s.UserByObjectID(ctx, acc.ID, "o1"); err != nil {
		t.Fatal(err)
	}
}

// TestSearchIndex checks that the migration created the trigram index for
// user search (pg_trgm ships with Debian's postgresql and a database owner
// may create it).
func TestSearchIndex(t *testing.T) {
	s := openFresh(t).(*sqlstore.Store)
	var n int
	err := s.DB().QueryRowContext(t.Context(),
		"SELECT count(*) FROM pg_indexes WHERE tablename = 'users' AND indexname = 'users_search'").Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Error("the users_search trigram index is missing: searches will scan")
	}
}

// TestSearchIndexOptional checks that a database where the store's role may
// not create extensions still opens and searches, without the index.
func TestSearchIndexOptional(t *testing.T) {
	u := freshURL(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := sql.Open("pgx", u)
	if err != nil {
		t.Fatal(err)
	}
	pu, _ := url.Parse(u)
	db.SetMaxOpenConns(1)
	// The role owns the database; taking CREATE away from it (and from
	// PUBLIC) forbids CREATE EXTENSION there.
	for _, stmt := range []string{
		"REVOKE CREATE ON DATABASE " + pu.Path[1:] + " FROM PUBLIC",
		"REVOKE CREATE ON DATABASE " + pu.Path[1:] + " FROM CURRENT_USER",
	} {
		if _, err := db.ExecContext(ctx, stmt); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	st, err := postgres.Open(ctx, u)
	if err != nil {
		t.Fatalf("open without pg_trgm rights: %v", err)
	}
	defer st.Close()
	var n int
	if err := st.DB().QueryRowContext(ctx, "SELECT count(*) FROM pg_indexes WHERE indexname = 'users_search'").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatal("fixture: the trigram index was created despite the revoked right")
	}
	acc := &pbx2teams.Account{Kind: pbx2teams.KindCustomer, Name: "c"}
	if err := st.CreateAccount(ctx, acc); err != nil {
		t.Fatal(err)
	}
	if err := st.UpsertDirectoryUser(ctx, &pbx2teams.User{AccountID: acc.ID, ObjectID: "o", UPN: "grace@x.example", DisplayName: "Grace"}); err != nil {
		t.Fatal(err)
	}
	p, err := st.Users(ctx, pbx2teams.UserQuery{AccountID: acc.ID, Search: "RACE@"})
	if err != nil || p.Total != 1 {
		t.Fatalf("search without the index: %+v, %v", p, err)
	}
}
