package m365

import (
	"strings"

	"github.com/pbx2teams/pbx2teams"
)

// Service plan ids that decide how a user can be served. MCOEV and TEAMS1
// are cross-checked; the rest follow Microsoft's licensing service plan
// reference.
const (
	PlanTeams       = "57ff2da0-773e-42df-b2af-ffb7a2317929" // TEAMS1
	PlanTeamsPhone  = "4828c8ec-dc2e-4779-b502-87ac9ce28ab7" // MCOEV (Teams Phone / Phone System)
	PlanVirtualUser = "f47330e9-c134-43b3-9993-e7f004506889" // MCOEV_VIRTUALUSER (resource accounts)
)

// CallingPlanPlans are the Microsoft Calling Plan service plans: a user
// with one gets PSTN from Microsoft and is not given a PBX line.
// Communications Credits (MCOPSTNC) alone is not a calling plan.
var CallingPlanPlans = map[string]string{
	"4ed3ff63-69d7-4fb7-b984-5aec7f605ca8": "MCOPSTN1",
	"5a10155d-f5c1-411a-a8ec-e99aae125390": "MCOPSTN2",
	"54a152dc-90de-4996-93d2-bc47e670fc06": "MCOPSTN5",
}

// MeetingRoomSKUs are the Teams Rooms licences: their accounts are rooms
// even though they hold Teams Phone.
var MeetingRoomSKUs = map[string]string{
	"6070a4c8-34c6-4937-8dfb-39bbc6397a60": "MEETING_ROOM",
	"4cde982a-ede4-4409-9ae6-b003453c8ea6": "Microsoft_Teams_Rooms_Pro",
	"6af4b3d6-14bb-4a2a-960c-6c902aad34f3": "Microsoft_Teams_Rooms_Basic",
}

// ResourceAccountSKUs are the Teams Phone Resource Account licences (auto
// attendants and call queues).
var ResourceAccountSKUs = map[string]string{
	"440eaaa8-b3e0-484b-a8be-62870b9ba70a": "PHONESYSTEM_VIRTUALUSER",
}

// Classification is what a user's licences say about serving them.
type Classification struct {
	Kind           pbx2teams.UserKind
	HasTeams       bool // TEAMS1 usable
	HasTeamsPhone  bool // MCOEV usable
	HasCallingPlan bool // a Microsoft Calling Plan usable
}

// usable: Enabled, or Warning (grace period: still works).
func usable(status string) bool {
	return strings.EqualFold(status, "Enabled") || strings.EqualFold(status, "Warning")
}

// Classify decides a user's kind and voice licences from assignedPlans
// and assignedLicenses (both must be selected). Rules, in order:
//   - a Teams Rooms licence makes a meeting_room (rooms hold Teams Phone too);
//   - a Teams Phone Resource Account licence (or its MCOEV_VIRTUALUSER
//     plan) makes a resource_account (auto attendant, call queue);
//   - an enabled member account holding no licence at all whose name reads
//     as a bot ("bot" as a word of the display name or UPN) is a bot;
//   - everyone else is a person.
func Classify(u *User) Classification {
	var c Classification
	for _, p := range u.AssignedPlans {
		if !usable(p.CapabilityStatus) {
			continue
		}
		id := strings.ToLower(p.ServicePlanID)
		switch {
		case id == PlanTeams:
			c.HasTeams = true
		case id == PlanTeamsPhone:
			c.HasTeamsPhone = true
		case id == PlanVirtualUser:
			c.Kind = pbx2teams.KindResourceAccount
		}
		if _, ok := CallingPlanPlans[id]; ok {
			c.HasCallingPlan = true
		}
	}
	for _, l := range u.AssignedLicenses {
		id := strings.ToLower(l.SkuID)
		if _, ok := MeetingRoomSKUs[id]; ok {
			c.Kind = pbx2teams.KindMeetingRoom
			return c
		}
		if _, ok := ResourceAccountSKUs[id]; ok {
			c.Kind = pbx2teams.KindResourceAccount
		}
	}
	if c.Kind != "" {
		return c
	}
	if len(u.AssignedLicenses) == 0 && len(u.AssignedPlans) == 0 && !strings.EqualFold(u.UserType, "Guest") && looksLikeBot(u) {
		c.Kind = pbx2teams.KindBot
		return c
	}
	c.Kind = pbx2teams.KindPerson
	return c
}

func looksLikeBot(u *User) bool {
	local, _, _ := strings.Cut(u.UserPrincipalName, "@")
	for _, s := range []string{u.DisplayName, local} {
		for _, w := range strings.FieldsFunc(strings.ToLower(s), func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9')
		}) {
			if w == "bot" {
				return true
			}
		}
	}
	return false
}
