package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/pbx2teams/pbx2teams"
	"github.com/pbx2teams/pbx2teams/secrets"
	"github.com/pbx2teams/pbx2teams/sqlstore"
)

var firstNames = strings.Fields(`Aaliyah Adam Aisha Alex Alice Amara Amir Ana Andrea Ben Bianca Carlos Chen Chloe
Daniel David Diego Elena Emma Fatima Felix Grace Hannah Hugo Ines Isaac Jack James Jin Julia Kai Karim Laura
Leo Lucia Maria Mateo Maya Mohammed Nadia Noah Olivia Omar Priya Rafael Sara Sofia Tom Yuki Zoe`)

var lastNames = strings.Fields(`Adams Ahmed Almeida Bauer Brown Chen Clarke Costa Davies Dubois Evans Fischer
Garcia Gomez Green Hall Hansen Hughes Ivanova Jones Kaur Khan Kim Kowalski Lee Lopez Martin Meyer Moreau Murphy
Nguyen Novak Okafor Patel Perez Rossi Santos Schmidt Silva Singh Smith Tanaka Taylor Thomas Walker Wang White
Williams Wilson Young`)

// seed inserts *users directory users into the customer in one
// transaction, as the Microsoft 365 sync would (UpsertDirectoryUser), and
// configures a fraction of them (UpdateUserConfig) with sealed passwords.
// A few are meeting rooms or disabled, as in a real tenant. It returns how
// many it configured.
func seed(ctx context.Context, store *sqlstore.Store, box *secrets.Box, accountID string) int {
	n := 0
	now := time.Now()
	every := 0
	if *configured > 0 {
		every = int(1 / *configured)
	}
	err := store.InTx(ctx, func(q pbx2teams.Queries) error {
		for i := 0; i < *users; i++ {
			first := firstNames[(i*7)%len(firstNames)]
			last := lastNames[(i/len(firstNames)+i*13)%len(lastNames)]
			u := &pbx2teams.User{
				AccountID:     accountID,
				ObjectID:      fmt.Sprintf("%08x-0000-4000-8000-%012x", i, i),
				UPN:           fmt.Sprintf("%s.%s.%d@contoso.example", strings.ToLower(first), strings.ToLower(last), i),
				DisplayName:   first + " " + last,
				Enabled:       i%50 != 7, // 2% disabled
				Kind:          pbx2teams.KindPerson,
				HasTeamsPhone: i%3 != 0,
				SyncedAt:      &now,
			}
			u.Mail = u.UPN
			if i%100 == 42 { // 1% meeting rooms
				u.Kind, u.DisplayName = pbx2teams.KindMeetingRoom, fmt.Sprintf("Room %d %s", i, last)
				u.HasTeamsPhone = false
			}
			if err := q.UpsertDirectoryUser(ctx, u); err != nil {
				return err
			}
			if every == 0 || i%every != 0 || u.Kind != pbx2teams.KindPerson || !u.Enabled {
				continue
			}
			u.Type = pbx2teams.ServiceStandard
			if i%(every*6) == 0 {
				u.Type = pbx2teams.ServicePhoneApp
			}
			u.SIPUsername = fmt.Sprint(100000 + i)
			u.AuthUsername = u.SIPUsername
			u.PasswordEnc = box.Seal([]byte(fmt.Sprintf("pw-%d-%x", i, i*7919)), []byte(u.ID))
			u.PhoneNumber = fmt.Sprintf("+44203%07d", i)
			u.ContactUser = "p2t" + secrets.NewToken("")
			u.UpdatedAt = now
			if err := q.UpdateUserConfig(ctx, u); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	check(err)
	return n
}
