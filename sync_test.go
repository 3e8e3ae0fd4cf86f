package pbx2teams

import "testing"

func TestClassify(t *testing.T) {
	person := func(f func(e *DirectoryEntry)) *DirectoryEntry {
		e := &DirectoryEntry{Enabled: true, Kind: KindPerson, HasTeams: true}
		f(e)
		return e
	}
	cases := []struct {
		name            string
		e               *DirectoryEntry
		ltm, appOn      bool
		want            ServiceType
		conflict        bool
		excludedBecause string
	}{
		{"teams phone", person(func(e *DirectoryEntry) { e.HasTeamsPhone = true }), false, false, ServiceStandard, false, ""},
		{"calling plan", person(func(e *DirectoryEntry) { e.HasTeamsPhone, e.HasCallingPlan = true, true }), false, false, "", false, ExcludeCallingPlan},
		{"no teams phone, phone app off", person(func(*DirectoryEntry) {}), false, false, "", false, ExcludeNoTeamsPhone},
		{"no teams phone, admin marks phone app users", person(func(*DirectoryEntry) {}), false, true, "", false, ""},
		{"room", &DirectoryEntry{Kind: KindMeetingRoom, Enabled: true, HasTeamsPhone: true}, false, true, "", false, ExcludeMeetingRoom},
		{"resource", &DirectoryEntry{Kind: KindResourceAccount}, true, true, "", false, ExcludeResource},
		{"bot", &DirectoryEntry{Kind: KindBot, Enabled: true}, false, false, "", false, ExcludeBot},
		{"guest", person(func(e *DirectoryEntry) { e.Guest, e.HasTeamsPhone = true, true }), false, false, "", false, ExcludeGuest},
		{"disabled standard", person(func(e *DirectoryEntry) { e.Enabled, e.HasTeamsPhone = false, true }), false, false, ServiceStandard, false, ExcludeDisabled},
		{"ltm standard group", person(func(e *DirectoryEntry) { e.InStandardGroup, e.HasTeamsPhone = true, true }), true, true, ServiceStandard, false, ""},
		{"ltm standard group without teams phone", person(func(e *DirectoryEntry) { e.InStandardGroup = true }), true, true, "", false, ExcludeNoTeamsPhone},
		{"ltm phone app group", person(func(e *DirectoryEntry) { e.InPhoneAppGroup = true }), true, true, ServicePhoneApp, false, ""},
		{"ltm phone app group, phone app off", person(func(e *DirectoryEntry) { e.InPhoneAppGroup = true }), true, false, "", false, ExcludePhoneAppOff},
		{"ltm phone app group with teams phone", person(func(e *DirectoryEntry) { e.InPhoneAppGroup, e.HasTeamsPhone = true, true }), true, true, "", false, ExcludeHasTeamsPhone},
		{"ltm both groups", person(func(e *DirectoryEntry) { e.InPhoneAppGroup, e.InStandardGroup = true, true }), true, true, "", true, ""},
		{"ltm both groups with teams phone", person(func(e *DirectoryEntry) {
			e.InPhoneAppGroup, e.InStandardGroup, e.HasTeamsPhone = true, true, true
		}), true, true, ServiceStandard, true, ""},
	}
	for _, c := range cases {
		got, conflict, why := Classify(c.e, c.ltm, c.appOn)
		if got != c.want || (conflict != "") != c.conflict || why != c.excludedBecause {
			t.Errorf("%s: got %q conflict %q excluded %q; want %q conflict=%v excluded %q", c.name, got, conflict, why, c.want, c.conflict, c.excludedBecause)
		}
	}
}
