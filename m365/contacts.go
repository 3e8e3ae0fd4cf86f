package m365

import (
	"context"
	"net/url"
)

// Contact is one of a user's personal (Outlook) contacts.
type Contact struct {
	ID             string   `json:"id"`
	DisplayName    string   `json:"displayName"`
	GivenName      string   `json:"givenName,omitempty"`
	Surname        string   `json:"surname,omitempty"`
	CompanyName    string   `json:"companyName,omitempty"`
	JobTitle       string   `json:"jobTitle,omitempty"`
	BusinessPhones []string `json:"businessPhones,omitempty"`
	HomePhones     []string `json:"homePhones,omitempty"`
	MobilePhone    string   `json:"mobilePhone,omitempty"`
	EmailAddresses []struct {
		Name    string `json:"name"`
		Address string `json:"address"`
	} `json:"emailAddresses,omitempty"`
}

// Contacts pages through a user's contacts: the signed-in user's when
// userID is "" (delegated Contacts.Read), else /users/{id}/contacts.
func (g *Graph) Contacts(ctx context.Context, userID string, fn func([]Contact) error) error {
	p := "/me/contacts"
	if userID != "" {
		p = "/users/" + url.PathEscape(userID) + "/contacts"
	}
	_, err := iterate(ctx, g, g.url(p, "$top", "100"), nil, fn)
	return err
}
