package m365

import (
	"context"
	"net/url"
	"strconv"
	"strings"
)

// Group is an Entra ID group.
type Group struct {
	ID              string   `json:"id"`
	DisplayName     string   `json:"displayName"`
	Description     string   `json:"description,omitempty"`
	MailNickname    string   `json:"mailNickname,omitempty"`
	Mail            string   `json:"mail,omitempty"`
	SecurityEnabled bool     `json:"securityEnabled"`
	MailEnabled     bool     `json:"mailEnabled"`
	GroupTypes      []string `json:"groupTypes,omitempty"`
}

// IsMicrosoft365 reports whether g is a Microsoft 365 (Unified) group.
func (g *Group) IsMicrosoft365() bool {
	for _, t := range g.GroupTypes {
		if strings.EqualFold(t, "Unified") {
			return true
		}
	}
	return false
}

const groupSelect = "id,displayName,description,mailNickname,mail,securityEnabled,mailEnabled,groupTypes"

// SearchGroups finds groups whose display name has a word starting with
// text (Graph $search, ConsistencyLevel: eventual), at most max of them
// (default 50). An empty text lists groups.
func (g *Graph) SearchGroups(ctx context.Context, text string, max int) ([]Group, error) {
	if max <= 0 {
		max = 50
	}
	top := max
	if top > 999 {
		top = 999
	}
	search := ""
	if t := strings.TrimSpace(text); t != "" {
		// quotes and backslashes would end the clause early
		t = strings.NewReplacer(`"`, ``, `\`, ``).Replace(t)
		search = `"displayName:` + t + `"`
	}
	u := g.url("/groups", "$select", groupSelect, "$search", search, "$top", strconv.Itoa(top))
	var out []Group
	_, err := iterate(ctx, g, u, eventual(), func(p []Group) error {
		out = append(out, p...)
		if len(out) >= max {
			out = out[:max]
			return errStop
		}
		return nil
	})
	if err == errStop {
		err = nil
	}
	return out, err
}

type stopErr struct{}

func (stopErr) Error() string { return "stop" }

var errStop error = stopErr{}

// ListGroups pages through groups matching an OData filter ("" for all).
func (g *Graph) ListGroups(ctx context.Context, filter string, fn func([]Group) error) error {
	_, err := iterate(ctx, g, g.url("/groups", "$select", groupSelect, "$filter", filter, "$top", "999"), nil, fn)
	return err
}

// GetGroup reads one group.
func (g *Graph) GetGroup(ctx context.Context, id string) (*Group, error) {
	var gr Group
	if err := g.getJSON(ctx, g.url("/groups/"+url.PathEscape(id), "$select", groupSelect), nil, &gr); err != nil {
		return nil, err
	}
	return &gr, nil
}

// DirectoryObject is a group member: a user (User fields filled) or a
// nested group, told apart by ODataType.
type DirectoryObject struct {
	ODataType string `json:"@odata.type"`
	User
	Description     string   `json:"description,omitempty"`
	SecurityEnabled *bool    `json:"securityEnabled,omitempty"`
	GroupTypes      []string `json:"groupTypes,omitempty"`
}

// IsUser reports whether the member is a user.
func (o *DirectoryObject) IsUser() bool { return o.ODataType == "#microsoft.graph.user" }

// IsGroup reports whether the member is a group.
func (o *DirectoryObject) IsGroup() bool { return o.ODataType == "#microsoft.graph.group" }

// TransitiveMembers pages through every member of a group, nested groups
// flattened (the nested groups themselves are included too), with the
// user properties sel (default SyncSelect).
func (g *Graph) TransitiveMembers(ctx context.Context, groupID string, sel []string, fn func([]DirectoryObject) error) error {
	if len(sel) == 0 {
		sel = SyncSelect
	}
	u := g.url("/groups/"+url.PathEscape(groupID)+"/transitiveMembers", "$select", strings.Join(sel, ","), "$top", "999")
	_, err := iterate(ctx, g, u, nil, fn)
	return err
}

// TransitiveMemberUsers pages through the users among a group's transitive
// members (an OData cast: ConsistencyLevel: eventual and $count=true are
// sent).
func (g *Graph) TransitiveMemberUsers(ctx context.Context, groupID string, sel []string, fn func([]User) error) error {
	if len(sel) == 0 {
		sel = SyncSelect
	}
	u := g.url("/groups/"+url.PathEscape(groupID)+"/transitiveMembers/microsoft.graph.user",
		"$select", strings.Join(sel, ","), "$top", "999", "$count", "true")
	_, err := iterate(ctx, g, u, eventual(), fn)
	return err
}
