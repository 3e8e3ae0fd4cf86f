package pbx2teams

import (
	"context"
	"time"
)

// Store persists the domain. sqlstore implements it over SQLite and
// PostgreSQL. Lookups of a missing row return an error whose ErrorCode is
// ENotFound. Methods taking an accountID never return rows of another
// account: tenant isolation is enforced here as well as in the service.
type Store interface {
	Queries
	// InTx runs fn in one transaction: committed if fn returns nil, rolled
	// back otherwise. The Queries passed to fn must not escape it.
	InTx(ctx context.Context, fn func(q Queries) error) error
	// Ping checks the database is reachable (for /readyz).
	Ping(ctx context.Context) error
	Close() error
}

// Queries is the data access of the store, usable inside or outside a
// transaction.
type Queries interface {
	// LockAccount serialises writers that check-then-act on one account
	// (licence quotas): it blocks until no other transaction holds it.
	LockAccount(ctx context.Context, accountID string) error

	CreateAccount(ctx context.Context, a *Account) error
	Account(ctx context.Context, id string) (*Account, error)
	// ChildAccounts lists the direct children of parentID, by name.
	ChildAccounts(ctx context.Context, parentID string) ([]Account, error)
	// SubtreeAccounts lists every account whose Path starts with path, by path.
	SubtreeAccounts(ctx context.Context, path string) ([]Account, error)
	RenameAccount(ctx context.Context, id, name string) error
	CountAccounts(ctx context.Context) (int, error)

	CreateAdmin(ctx context.Context, a *Admin) error
	Admin(ctx context.Context, id string) (*Admin, error)
	// AdminByEmail matches the email case-insensitively.
	AdminByEmail(ctx context.Context, email string) (*Admin, error)
	Admins(ctx context.Context, accountID string) ([]Admin, error)
	UpdateAdmin(ctx context.Context, a *Admin) error

	// PutLicence inserts or replaces the licence for (AccountID, SKU).
	PutLicence(ctx context.Context, l *Licence) error
	Licences(ctx context.Context, accountID string) ([]Licence, error)

	PBXSettings(ctx context.Context, accountID string) (*PBXSettings, error)
	PutPBXSettings(ctx context.Context, s *PBXSettings) error
	TeamsSettings(ctx context.Context, accountID string) (*TeamsSettings, error)
	// PutTeamsSettings inserts or replaces the settings; an empty SBCLabel
	// keeps the stored one, and a label another account has is refused
	// with EConflict.
	PutTeamsSettings(ctx context.Context, s *TeamsSettings) error
	// AccountBySBCLabel returns the account whose Teams settings have the
	// SBC label (ENotFound if none).
	AccountBySBCLabel(ctx context.Context, label string) (accountID string, err error)
	// AccountsByTenant returns the ids of the customers connected to a
	// Microsoft 365 tenant (consented), oldest connection first.
	AccountsByTenant(ctx context.Context, tenantID string) ([]string, error)

	// UpsertDirectoryUser inserts the user or updates the identity fields
	// (ObjectID, UPN, DisplayName, Mail, Enabled, Kind, HasTeamsPhone,
	// HasCallingPlan, SuggestedType, Conflict, Deleted, SyncedAt) of the
	// existing user with the same (AccountID, ObjectID), leaving the service
	// configuration alone. It sets u.ID.
	UpsertDirectoryUser(ctx context.Context, u *User) error
	User(ctx context.Context, accountID, id string) (*User, error)
	UserByUPN(ctx context.Context, accountID, upn string) (*User, error)
	UserByObjectID(ctx context.Context, accountID, objectID string) (*User, error)
	// UserByContact finds the configured user whose ContactUser is given,
	// in any account (for incoming INVITEs).
	UserByContact(ctx context.Context, contactUser string) (*User, error)
	// UserByPhoneNumber finds the configured user of accountID with the
	// E.164 number.
	UserByPhoneNumber(ctx context.Context, accountID, number string) (*User, error)
	// Users lists users of q.AccountID ordered by display name then ID,
	// with keyset pagination through q.Cursor.
	Users(ctx context.Context, q UserQuery) (*UserPage, error)
	// UpdateUserConfig writes the service configuration fields (Type,
	// SIPUsername, AuthUsername, PasswordEnc, PhoneNumber, ExternalID,
	// Suspended, ContactUser, UpdatedAt) of the user.
	UpdateUserConfig(ctx context.Context, u *User) error
	// CountLicenceUse counts the users of accountID that consume licences,
	// by type (see User.ConsumesLicences).
	CountLicenceUse(ctx context.Context, accountID string) (standard, phoneApp int, err error)
	// ConfiguredUsers lists configured users across all accounts in ID
	// order after afterID, at most limit (for the SIP engine).
	ConfiguredUsers(ctx context.Context, afterID string, limit int) ([]User, error)

	AppendAudit(ctx context.Context, e *AuditEntry) error
	// Audit lists entries of accounts under path, newest first, before the
	// entry ID beforeID (0 for the newest), at most limit.
	Audit(ctx context.Context, path string, beforeID int64, limit int) ([]AuditEntry, error)

	CreateAPIKey(ctx context.Context, k *APIKey) error
	APIKeyByHash(ctx context.Context, hash string) (*APIKey, error)
	APIKeys(ctx context.Context, accountID string) ([]APIKey, error)
	RevokeAPIKey(ctx context.Context, accountID, id string, at time.Time) error
	TouchAPIKey(ctx context.Context, id string, at time.Time) error

	CreateSession(ctx context.Context, s *Session) error
	SessionByHash(ctx context.Context, hash string) (*Session, error)
	DeleteSession(ctx context.Context, hash string) error
	DeleteExpiredSessions(ctx context.Context, now time.Time) error

	// Setting and PutSetting keep small node-wide values (e.g. whether the
	// first operator admin was created). Setting returns "" when unset.
	Setting(ctx context.Context, key string) (string, error)
	PutSetting(ctx context.Context, key, value string) error

	SyncQueries
	CallStore
}

// SyncQueries is the data access of the Microsoft 365 directory sync (see
// sync.go). It is part of Queries.
type SyncQueries interface {
	// CreateSyncJob inserts a running job. A second running job of the same
	// account is refused with EConflict (enforced by the database, so two
	// nodes cannot both start one).
	CreateSyncJob(ctx context.Context, j *SyncJob) error
	// FinishSyncJob writes the outcome (status, counts, warnings, log,
	// error, finish time) of a job.
	FinishSyncJob(ctx context.Context, j *SyncJob) error
	SyncJob(ctx context.Context, accountID, id string) (*SyncJob, error)
	// SyncJobs lists the account's jobs newest first, without their logs.
	SyncJobs(ctx context.Context, accountID string, limit int) ([]SyncJob, error)
	// RunningSyncJob returns the account's running job (ENotFound if none).
	RunningSyncJob(ctx context.Context, accountID string) (*SyncJob, error)
	// FailRunningSyncJobs marks every running job failed with msg (after a
	// crash or restart) and returns how many there were.
	FailRunningSyncJobs(ctx context.Context, msg string, at time.Time) (int, error)

	// SyncState is the sync bookkeeping of an account (ENotFound if none).
	SyncState(ctx context.Context, accountID string) (*SyncState, error)
	PutSyncState(ctx context.Context, s *SyncState) error
	// SyncStates lists the bookkeeping of every account that has any.
	SyncStates(ctx context.Context) ([]SyncState, error)

	// UpsertDirectoryUsers is UpsertDirectoryUser for many users (distinct
	// object IDs) in few statements; it sets each user's ID.
	UpsertDirectoryUsers(ctx context.Context, us []*User) error
	// UsersByObjectIDs returns the account's users with these object IDs
	// (any order; missing ones are left out).
	UsersByObjectIDs(ctx context.Context, accountID string, objectIDs []string) ([]User, error)
	// MarkUnseenUsersRemoved marks deleted every user of the account not
	// deleted yet whose SyncedAt is before seenAt (not seen by a full
	// sync), suspending the configured ones. It returns how many, and up to
	// sample of their UPNs.
	MarkUnseenUsersRemoved(ctx context.Context, accountID string, seenAt time.Time, sample int) (int, []string, error)

	// PutAppInstall records that the Phone App is installed for a user.
	PutAppInstall(ctx context.Context, in *AppInstall) error
	DeleteAppInstall(ctx context.Context, accountID, objectID string) error
	// AppInstall returns one user's record (ENotFound if none).
	AppInstall(ctx context.Context, accountID, objectID string) (*AppInstall, error)
	// AppInstalls lists the account's records by object ID after afterObjectID.
	AppInstalls(ctx context.Context, accountID, afterObjectID string, limit int) ([]AppInstall, error)
}
