package storetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/pbx2teams/pbx2teams"
)

var (
	firstNames = []string{"Ada", "Alan", "Barbara", "Claude", "Donald", "Edsger", "Frances", "Grace", "Hedy", "Ivan",
		"John", "Ken", "Leslie", "Margaret", "Niklaus", "Ole", "Peter", "Radia", "Sophie", "Tim"}
	lastNames = []string{"Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Johnson", "Davies", "Patel", "Wright",
		"Robinson", "Thompson", "Evans", "Walker", "White", "Roberts", "Green", "Hall", "Wood", "Jackson",
		"Clarke", "Lewis", "Harris", "Martin", "Cooper", "King", "Lee", "Baker", "Moore", "Allen"}
)

// SeedUsers creates n directory users in accountID, in transactions of
// 5,000, and configures every third one (standard or Phone App, with a SIP
// username, a phone number and a contact). Display names repeat, as real
// ones do. It returns how long seeding took.
func SeedUsers(ctx context.Context, s pbx2teams.Store, accountID string, n int) (time.Duration, error) {
	start := time.Now()
	const batch = 5000
	for lo := 0; lo < n; lo += batch {
		hi := min(lo+batch, n)
		err := s.InTx(ctx, func(q pbx2teams.Queries) error {
			for i := lo; i < hi; i++ {
				synced := start
				u := &pbx2teams.User{
					AccountID:   accountID,
					ObjectID:    fmt.Sprintf("%s-obj-%07d", accountID, i),
					UPN:         fmt.Sprintf("user%07d@contoso.example", i),
					DisplayName: fmt.Sprintf("%s %s", firstNames[i%len(firstNames)], lastNames[(i/len(firstNames))%len(lastNames)]),
					Mail:        fmt.Sprintf("user%07d@contoso.example", i),
					Enabled:     true,
					Kind:        pbx2teams.KindPerson,
					SyncedAt:    &synced,
				}
				if err := q.UpsertDirectoryUser(ctx, u); err != nil {
					return err
				}
				if i%3 != 0 {
					continue
				}
				u.Type = pbx2teams.ServiceStandard
				if i%2 == 0 {
					u.Type = pbx2teams.ServicePhoneApp
				}
				u.SIPUsername = fmt.Sprintf("%d", 100000+i)
				u.AuthUsername = u.SIPUsername
				u.PasswordEnc = []byte("sealed-password-bytes-of-typical-size")
				u.PhoneNumber = fmt.Sprintf("+4420%08d", i)
				u.ContactUser = fmt.Sprintf("c%s%07d", accountID, i)
				if err := q.UpdateUserConfig(ctx, u); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return 0, err
		}
	}
	return time.Since(start), nil
}

// BenchmarkUsers measures the user list of one customer holding n users
// (another customer holds n/10): the first page, a deep page, searches
// that match one user, many users and none, a type filter, and the lookups
// the SIP engine and the licence check make. s must be empty. settle, if
// not nil, runs after seeding (e.g. a VACUUM ANALYZE on PostgreSQL, which
// autovacuum would do soon after a bulk load in production).
func BenchmarkUsers(b *testing.B, s pbx2teams.Store, n int, settle func(context.Context) error) {
	ctx := context.Background()
	big := &pbx2teams.Account{Kind: pbx2teams.KindCustomer, Name: "Big Customer"}
	small := &pbx2teams.Account{Kind: pbx2teams.KindCustomer, Name: "Small Customer"}
	for _, a := range []*pbx2teams.Account{big, small} {
		if err := s.CreateAccount(ctx, a); err != nil {
			b.Fatal(err)
		}
	}
	took, err := SeedUsers(ctx, s, big.ID, n)
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("seeded %d users in %v (%.0f users/s)", n, took.Round(time.Millisecond), float64(n)/took.Seconds())
	if _, err := SeedUsers(ctx, s, small.ID, n/10); err != nil {
		b.Fatal(err)
	}
	if settle != nil {
		if err := settle(ctx); err != nil {
			b.Fatal(err)
		}
	}

	// A cursor near the end of the list, found by walking it.
	deep := ""
	for seen := 0; seen < n-n/100; {
		p, err := s.Users(ctx, pbx2teams.UserQuery{AccountID: big.ID, Cursor: deep, Limit: 500})
		if err != nil {
			b.Fatal(err)
		}
		seen += len(p.Users)
		deep = p.NextCursor
	}

	list := func(q pbx2teams.UserQuery, wantMin int) func(b *testing.B) {
		return func(b *testing.B) {
			q.AccountID = big.ID
			measured(b, func() {
				p, err := s.Users(ctx, q)
				if err != nil {
					b.Fatal(err)
				}
				if len(p.Users) < wantMin {
					b.Fatalf("%+v: %d users, want at least %d", q, len(p.Users), wantMin)
				}
			})
		}
	}
	b.Run("FirstPage", list(pbx2teams.UserQuery{Limit: 50}, 50))
	b.Run("DeepPage", list(pbx2teams.UserQuery{Cursor: deep, Limit: 50}, 50))
	b.Run("SearchOne", list(pbx2teams.UserQuery{Search: fmt.Sprintf("user%07d", n/2), Limit: 50}, 1))
	b.Run("SearchName", list(pbx2teams.UserQuery{Search: "grace hall", Limit: 50}, 50))
	b.Run("SearchPhone", list(pbx2teams.UserQuery{Search: fmt.Sprintf("+4420%08d", 3*(n/6)), Limit: 50}, 1))
	b.Run("SearchAll", list(pbx2teams.UserQuery{Search: "contoso", Limit: 50}, 50))
	b.Run("SearchNone", list(pbx2teams.UserQuery{Search: "no such person", Limit: 50}, 0))
	b.Run("TypeAny", list(pbx2teams.UserQuery{Type: "any", Limit: 50}, 50))
	b.Run("UserByContact", func(b *testing.B) {
		contact := fmt.Sprintf("c%s%07d", big.ID, 3*(n/6))
		measured(b, func() {
			if _, err := s.UserByContact(ctx, contact); err != nil {
				b.Fatal(err)
			}
		})
	})
	b.Run("CountLicenceUse", func(b *testing.B) {
		measured(b, func() {
			if st, pa, err := s.CountLicenceUse(ctx, big.ID); err != nil || st+pa == 0 {
				b.Fatal(st, pa, err)
			}
		})
	})
}

// measured runs op in the benchmark loop and reports, besides the wall
// time, the milliseconds per op in wall time and in CPU time of the whole
// process (which includes a local database server's work only for SQLite).
// On a busy machine the CPU figure is the steadier estimate of the cost.
func measured(b *testing.B, op func()) {
	cpu0, ok := cpuTime()
	start := time.Now()
	n := 0
	for b.Loop() {
		op()
		n++
	}
	wall := time.Since(start)
	b.ReportMetric(float64(wall.Microseconds())/1000/float64(n), "ms/op")
	if cpu1, ok2 := cpuTime(); ok && ok2 {
		b.ReportMetric(float64((cpu1-cpu0).Microseconds())/1000/float64(n), "cpu-ms/op")
	}
}
