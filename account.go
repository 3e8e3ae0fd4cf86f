package pbx2teams

import (
	"strings"
	"time"
)

// AccountKind is the level of an account in the tree.
type AccountKind string

// Account kinds: one operator at the root, partners (resellers, possibly
// nested) below it, customers at the leaves.
const (
	KindOperator AccountKind = "operator"
	KindPartner  AccountKind = "partner"
	KindCustomer AccountKind = "customer"
)

// Valid reports whether k is a known kind.
func (k AccountKind) Valid() bool {
	return k == KindOperator || k == KindPartner || k == KindCustomer
}

// Account is a node of the account tree. Path lists the IDs from the root to
// the account itself, as "/id1/id2/id3/", so that "is in the subtree of" is a
// prefix test both in Go and in SQL.
type Account struct {
	ID        string      `json:"id"`
	ParentID  string      `json:"parent_id,omitempty"`
	Kind      AccountKind `json:"kind"`
	Name      string      `json:"name"`
	Path      string      `json:"-"`
	CreatedAt time.Time   `json:"created_at"`
}

// Contains reports whether other is a or lies below a in the tree.
func (a *Account) Contains(other *Account) bool {
	return strings.HasPrefix(other.Path, a.Path)
}

// Role is what an administrator may do within their account's subtree.
type Role string

// Roles. Operator, partner and customer admins may change anything in their
// subtree that their level allows; viewers may only read.
const (
	RoleOperator      Role = "operator"
	RolePartner       Role = "partner"
	RoleCustomerAdmin Role = "customer_admin"
	RoleViewer        Role = "viewer"
)

// FitsKind reports whether the role can be held on an account of kind k.
func (r Role) FitsKind(k AccountKind) bool {
	switch r {
	case RoleOperator:
		return k == KindOperator
	case RolePartner:
		return k == KindPartner
	case RoleCustomerAdmin:
		return k == KindCustomer
	case RoleViewer:
		return k.Valid()
	}
	return false
}

// CanWrite reports whether the role may change things.
func (r Role) CanWrite() bool { return r != RoleViewer && r != "" }

// Admin is a person who signs in to the portal.
type Admin struct {
	ID           string    `json:"id"`
	AccountID    string    `json:"account_id"`
	Email        string    `json:"email"`
	Name         string    `json:"name"`
	Role         Role      `json:"role"`
	PasswordHash string    `json:"-"`
	CreatedAt    time.Time `json:"created_at"`
	Disabled     bool      `json:"disabled"`
}

// Principal is who is acting: a signed-in admin or an API key, scoped to an
// account's subtree with a role.
type Principal struct {
	AdminID   string // empty for API keys
	APIKeyID  string // empty for portal sessions
	Name      string // for the audit log
	AccountID string
	Path      string // the account's Path; the subtree the principal may see
	Role      Role
}

// System is the principal used by the service's own background work (sync,
// SIP engine state); it is never handed to a caller.
var System = &Principal{Name: "system", Path: "/", Role: RoleOperator}

// Session is a signed-in portal session. Only the hash of its token is stored.
type Session struct {
	TokenHash string
	AdminID   string
	CSRFToken string
	CreatedAt time.Time
	ExpiresAt time.Time
}

// APIKey grants API access to one account's subtree. Only a hash of the key
// is stored; Prefix (the first characters) identifies it in lists.
type APIKey struct {
	ID         string     `json:"id"`
	AccountID  string     `json:"account_id"`
	Name       string     `json:"name"`
	Prefix     string     `json:"prefix"`
	Hash       string     `json:"-"`
	Role       Role       `json:"role"`
	CreatedBy  string     `json:"created_by"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at,omitempty"`
	RevokedAt  *time.Time `json:"revoked_at,omitempty"`
}

// AuditEntry records one change: who, when, what. Detail never holds a
// secret value; password changes are recorded as "password set".
type AuditEntry struct {
	ID        int64     `json:"id"`
	AccountID string    `json:"account_id"`
	ActorID   string    `json:"actor_id"`
	ActorName string    `json:"actor"`
	Action    string    `json:"action"`
	Target    string    `json:"target"`
	Detail    string    `json:"detail"`
	At        time.Time `json:"at"`
}
