package m365

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// User is a directory user as Graph returns it. Only $select-ed fields are
// filled; strings that Graph sends as null are "".
type User struct {
	ID                string            `json:"id"`
	UserPrincipalName string            `json:"userPrincipalName,omitempty"`
	DisplayName       string            `json:"displayName,omitempty"`
	GivenName         string            `json:"givenName,omitempty"`
	Surname           string            `json:"surname,omitempty"`
	Mail              string            `json:"mail,omitempty"`
	JobTitle          string            `json:"jobTitle,omitempty"`
	Department        string            `json:"department,omitempty"`
	MobilePhone       string            `json:"mobilePhone,omitempty"`
	BusinessPhones    []string          `json:"businessPhones,omitempty"`
	UsageLocation     string            `json:"usageLocation,omitempty"`
	UserType          string            `json:"userType,omitempty"` // Member or Guest
	AccountEnabled    *bool             `json:"accountEnabled,omitempty"`
	AssignedLicenses  []AssignedLicense `json:"assignedLicenses,omitempty"`
	AssignedPlans     []AssignedPlan    `json:"assignedPlans,omitempty"`
	// Removed is set on delta pages for users deleted since the last round.
	Removed *Removed `json:"@removed,omitempty"`
}

// AssignedLicense is one licence (SKU) of a user.
type AssignedLicense struct {
	SkuID         string   `json:"skuId"`
	DisabledPlans []string `json:"disabledPlans"`
}

// AssignedPlan is one service plan a user holds through a licence.
type AssignedPlan struct {
	ServicePlanID    string `json:"servicePlanId"`
	Service          string `json:"service"`
	CapabilityStatus string `json:"capabilityStatus"` // Enabled, Warning, Suspended, Deleted, LockedOut
	AssignedDateTime string `json:"assignedDateTime"`
}

// Removed says why a delta page reports a user as gone: "changed" (soft
// deleted, restorable) or "deleted" (permanently).
type Removed struct {
	Reason string `json:"reason"`
}

// Enabled reports whether the account is enabled (true when accountEnabled
// was not selected).
func (u *User) Enabled() bool { return u.AccountEnabled == nil || *u.AccountEnabled }

// Phone is the user's business phone, or mobile phone, or "".
func (u *User) Phone() string {
	if len(u.BusinessPhones) > 0 && u.BusinessPhones[0] != "" {
		return u.BusinessPhones[0]
	}
	return u.MobilePhone
}

// SyncSelect is the $select of a user sync: identity, state, licences.
var SyncSelect = []string{"id", "userPrincipalName", "displayName", "givenName", "surname", "mail",
	"businessPhones", "mobilePhone", "jobTitle", "department", "usageLocation", "accountEnabled",
	"userType", "assignedLicenses", "assignedPlans"}

// UserQuery selects users for ListUsers.
type UserQuery struct {
	Select []string // default SyncSelect
	Filter string   // OData $filter, e.g. "accountEnabled eq true"
	// Search is a $search value such as `"displayName:ann"`; it needs
	// ConsistencyLevel: eventual, which is sent.
	Search string
	Top    int // page size, 1..999; default 999
	// Advanced sends ConsistencyLevel: eventual and $count=true, needed by
	// ne/not/endsWith filters.
	Advanced bool
}

// ListUsers pages through /users, calling fn once per page. fn must not
// keep the slice after returning if memory matters: pages are not retained.
func (g *Graph) ListUsers(ctx context.Context, q UserQuery, fn func([]User) error) error {
	sel := q.Select
	if len(sel) == 0 {
		sel = SyncSelect
	}
	top := q.Top
	if top <= 0 {
		top = 999
	}
	var hdr http.Header
	count := ""
	if q.Advanced || q.Search != "" {
		hdr = eventual()
	}
	if q.Advanced {
		count = "true"
	}
	u := g.url("/users", "$select", strings.Join(sel, ","), "$filter", q.Filter, "$search", q.Search,
		"$top", strconv.Itoa(top), "$count", count)
	_, err := iterate(ctx, g, u, hdr, fn)
	return err
}

// GetUser reads one user by id or userPrincipalName.
func (g *Graph) GetUser(ctx context.Context, idOrUPN string, sel []string) (*User, error) {
	if len(sel) == 0 {
		sel = SyncSelect
	}
	var u User
	err := g.getJSON(ctx, g.url("/users/"+url.PathEscape(idOrUPN), "$select", strings.Join(sel, ",")), nil, &u)
	if err != nil {
		return nil, err
	}
	return &u, nil
}

// Me reads the signed-in user (delegated Graph only).
func (g *Graph) Me(ctx context.Context) (*User, error) {
	var u User
	if err := g.getJSON(ctx, g.url("/me", "$select", "id,userPrincipalName,displayName,mail"), nil, &u); err != nil {
		return nil, err
	}
	return &u, nil
}

// UsersDelta runs a users delta query and returns the new deltaLink to
// store for the next round. With deltaLink "" it starts an initial round
// (every user, selected properties sel, default SyncSelect); with a stored
// deltaLink it returns only users changed since, and removed users with
// User.Removed set. Pages are handed to fn one at a time; the same user may
// appear more than once, so apply pages idempotently. When the stored link
// has expired the error satisfies IsDeltaExpired: start again with "".
func (g *Graph) UsersDelta(ctx context.Context, deltaLink string, sel []string, fn func([]User) error) (string, error) {
	u := deltaLink
	if u == "" {
		if len(sel) == 0 {
			sel = SyncSelect
		}
		u = g.url("/users/delta", "$select", strings.Join(sel, ","))
	} else if err := g.sameOrigin(u); err != nil {
		return "", err
	}
	return iterate(ctx, g, u, nil, fn)
}

// LatestDeltaLink returns a deltaLink for "changes from now on" without
// reading any user ($deltatoken=latest): take it before a full /users
// listing, and later deltas will not miss changes made during it.
func (g *Graph) LatestDeltaLink(ctx context.Context, sel []string) (string, error) {
	if len(sel) == 0 {
		sel = SyncSelect
	}
	u := g.url("/users/delta", "$select", strings.Join(sel, ","), "$deltatoken", "latest")
	return iterate(ctx, g, u, nil, func([]User) error { return nil })
}
