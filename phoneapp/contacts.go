package phoneapp

import (
	"strings"

	"github.com/pbx2teams/pbx2teams"
	"github.com/pbx2teams/pbx2teams/m365"
)

// FromGraphContact turns one Outlook contact into the tab's entries, one per
// phone number (mobile first); contacts without a number give none.
func FromGraphContact(c m365.Contact) []Contact {
	company := c.CompanyName
	if company == "" {
		company = c.JobTitle
	}
	name := c.DisplayName
	if name == "" {
		name = strings.TrimSpace(c.GivenName + " " + c.Surname)
	}
	var out []Contact
	add := func(number, label string) {
		if n := strings.TrimSpace(number); n != "" {
			out = append(out, Contact{Name: name, Number: n, Label: label, Company: company, Source: SourceOutlook})
		}
	}
	add(c.MobilePhone, "mobile")
	for _, p := range c.BusinessPhones {
		add(p, "business")
	}
	for _, p := range c.HomePhones {
		add(p, "home")
	}
	return out
}

// FromDirectoryUser turns a user of the same customer into entries: the
// PBX extension (SIP username) when the user has a line, and the E.164
// number when set. Deleted, disabled and unconfigured users give none.
func FromDirectoryUser(u pbx2teams.User) []Contact {
	if u.Deleted || !u.Enabled || u.Suspended || !u.Configured() {
		return nil
	}
	var out []Contact
	if u.SIPUsername != "" {
		out = append(out, Contact{Name: u.DisplayName, Number: u.SIPUsername, Label: "extension", Source: SourceDirectory})
	}
	if u.PhoneNumber != "" && u.PhoneNumber != u.SIPUsername {
		out = append(out, Contact{Name: u.DisplayName, Number: u.PhoneNumber, Label: "business", Source: SourceDirectory})
	}
	return out
}

// MatchContact reports whether c matches a search query: every word of
// query appears in its name, company or number (case-insensitive; the
// number also matches without separators).
func MatchContact(c Contact, query string) bool {
	hay := strings.ToLower(c.Name + " " + c.Company + " " + c.Number + " " + separators.Replace(c.Number))
	for _, w := range strings.Fields(strings.ToLower(query)) {
		if !strings.Contains(hay, w) {
			return false
		}
	}
	return true
}
