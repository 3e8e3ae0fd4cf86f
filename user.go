package pbx2teams

import "time"

// UserKind is what a directory object is, as far as voice goes.
type UserKind string

// Kinds of directory users. Only KindPerson can be a voice user.
const (
	KindPerson          UserKind = "person"
	KindMeetingRoom     UserKind = "meeting_room"
	KindResourceAccount UserKind = "resource_account"
	KindBot             UserKind = "bot"
)

// VoiceCapable reports whether users of kind k can be given a PBX line.
func (k UserKind) VoiceCapable() bool { return k == KindPerson || k == "" }

// ServiceType is how a user's PBX line reaches Teams.
type ServiceType string

// Service types. None means the user has no PBX line configured.
const (
	ServiceNone     ServiceType = ""
	ServiceStandard ServiceType = "standard"  // Direct Routing; needs Teams Phone
	ServicePhoneApp ServiceType = "phone_app" // external access; no Teams Phone
)

// Valid reports whether t is a known service type.
func (t ServiceType) Valid() bool {
	return t == ServiceNone || t == ServiceStandard || t == ServicePhoneApp
}

// User is a directory user of a customer (identity fields as Microsoft Graph
// gives them) together with its pbx2teams service configuration.
type User struct {
	ID        string `json:"id"`
	AccountID string `json:"account_id"`

	// Identity, from the directory sync.
	ObjectID       string   `json:"object_id"`
	UPN            string   `json:"upn"`
	DisplayName    string   `json:"display_name"`
	Mail           string   `json:"mail,omitempty"`
	Enabled        bool     `json:"enabled"`
	Kind           UserKind `json:"kind"`
	HasTeamsPhone  bool     `json:"has_teams_phone"`
	HasCallingPlan bool     `json:"has_calling_plan"`
	// SuggestedType is what the sync classified the user as (from groups
	// and licences); the admin's configuration decides.
	SuggestedType ServiceType `json:"suggested_type,omitempty"`
	// Conflict explains why a sync could not classify the user, if so.
	Conflict string     `json:"conflict,omitempty"`
	Deleted  bool       `json:"deleted"`
	SyncedAt *time.Time `json:"synced_at,omitempty"`

	// Service configuration, set by the customer admin.
	Type         ServiceType `json:"type"`
	SIPUsername  string      `json:"sip_username,omitempty"`
	AuthUsername string      `json:"auth_username,omitempty"`
	// PasswordEnc is the AES-GCM sealed SIP password; never serialised.
	PasswordEnc []byte `json:"-"`
	HasPassword bool   `json:"has_password"`
	PhoneNumber string `json:"phone_number,omitempty"` // E.164
	ExternalID  string `json:"external_id,omitempty"`
	// Suspended is set when the directory user is disabled or deleted: the
	// configuration is kept but consumes no licence and is not registered.
	Suspended bool `json:"suspended"`
	// ContactUser is the unguessable SIP Contact user part of this user's
	// registration, so an incoming INVITE maps to exactly one user.
	ContactUser string    `json:"-"`
	UpdatedAt   time.Time `json:"updated_at"`
}

// Configured reports whether u has a PBX line configured.
func (u *User) Configured() bool { return u.Type != ServiceNone }

// ConsumesLicences reports whether u currently consumes licences.
func (u *User) ConsumesLicences() bool {
	return u.Configured() && !u.Suspended && !u.Deleted && u.Enabled
}

// UserQuery selects users of one customer for listing.
type UserQuery struct {
	AccountID string
	Search    string      // matches UPN, display name, mail, SIP username, phone number
	Type      ServiceType // filter; "any" for configured users of any type
	Cursor    string      // opaque; from the previous page
	Limit     int         // default 50, at most 500
}

// UserPage is one page of users.
type UserPage struct {
	Users      []User `json:"users"`
	NextCursor string `json:"next_cursor,omitempty"`
	Total      int    `json:"total"`
}

// RegistrationState is the live state of one user's PBX registration, as
// reported by the SIP engine.
type RegistrationState struct {
	UserID      string     `json:"-"`
	State       string     `json:"state"` // registered, registering, failed, stopped
	StatusCode  int        `json:"status_code,omitempty"`
	Reason      string     `json:"reason,omitempty"`
	LastSuccess *time.Time `json:"last_success,omitempty"`
	NextRefresh *time.Time `json:"next_refresh,omitempty"`
	PBXAddress  string     `json:"pbx_address,omitempty"`
}

// Registration states.
const (
	RegRegistered  = "registered"
	RegRegistering = "registering"
	RegFailed      = "failed"
	RegStopped     = "stopped"
)

// RegistrationStates answers the live registration state of users. The SIP
// engine implements it; without one, users show no live state.
type RegistrationStates interface {
	RegistrationState(userID string) (RegistrationState, bool)
}

// ConfigListener is told when a customer's users or PBX settings change, so
// the SIP engine can (re)register or unregister them promptly.
type ConfigListener interface {
	CustomerChanged(accountID string)
}

// PBXListener is an optional extension of ConfigListener: it is told when an
// admin saves a customer's PBX settings, even unchanged, which is the admin's
// way of asking for failed registrations to be retried now.
type PBXListener interface {
	PBXSettingsSaved(accountID string)
}
