package sqlstore

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/pbx2teams/pbx2teams"
)

const userCols = `id, account_id, object_id, upn, display_name, mail, enabled, kind, has_teams_phone,
	has_calling_plan, suggested_type, conflict, deleted, synced_at, type, sip_username, auth_username,
	password_enc, phone_number, external_id, suspended, contact_user, updated_at`

func scanUser(s scanner, u *pbx2teams.User) error {
	var kind, suggested, typ string
	err := s.Scan(&u.ID, &u.AccountID, &u.ObjectID, &u.UPN, &u.DisplayName, &u.Mail, &u.Enabled, &kind,
		&u.HasTeamsPhone, &u.HasCallingPlan, &suggested, &u.Conflict, &u.Deleted, nullTimeDest{&u.SyncedAt},
		&typ, &u.SIPUsername, &u.AuthUsername, &u.PasswordEnc, &u.PhoneNumber, &u.ExternalID, &u.Suspended,
		&u.ContactUser, timeDest{&u.UpdatedAt})
	if err != nil {
		return err
	}
	u.Kind = pbx2teams.UserKind(kind)
	u.SuggestedType = pbx2teams.ServiceType(suggested)
	u.Type = pbx2teams.ServiceType(typ)
	if len(u.PasswordEnc) == 0 {
		u.PasswordEnc = nil
	}
	u.HasPassword = len(u.PasswordEnc) > 0
	return nil
}

// Caps of the two halves of the search text, in bytes; 768 in all.
const (
	maxIdentitySearch = 600
	maxConfigSearch   = 167 // plus the leading newline
)

// identitySearch and configSearch are the two halves of a user's search
// text (search = search_identity || search_config); the sync writes the
// first, the admin's configuration the second. The mail is left out when it
// repeats the UPN, as it mostly does: shorter text is faster to scan.
func identitySearch(u *pbx2teams.User) string {
	mail := u.Mail
	if strings.EqualFold(mail, u.UPN) {
		mail = ""
	}
	return searchText(maxIdentitySearch, u.UPN, u.DisplayName, mail)
}

func configSearch(u *pbx2teams.User) string {
	s := searchText(maxConfigSearch, u.SIPUsername, u.PhoneNumber)
	if s == "" {
		return ""
	}
	return "\n" + s
}

// UpsertDirectoryUser inserts u, or updates the identity fields of the user
// with the same (AccountID, ObjectID) and leaves its configuration alone.
// A new user gets no configuration (Type none) whatever u holds; its ID is
// u.ID or a generated one. u.ID is set to the stored user's ID.
func (q *queries) UpsertDirectoryUser(ctx context.Context, u *pbx2teams.User) error {
	if u.ObjectID == "" {
		return pbx2teams.Errorf(pbx2teams.EInvalid, "A directory user needs an object ID.")
	}
	id := u.ID
	if id == "" {
		id = newID(prefixUser)
	}
	u.SyncedAt = normPtr(u.SyncedAt)
	now := norm(time.Now())
	var stored string
	err := q.queryRowW(ctx, `INSERT INTO users (id, account_id, object_id, upn, upn_key, display_name, mail, enabled,
	kind, has_teams_phone, has_calling_plan, suggested_type, conflict, deleted, synced_at, updated_at, search_identity,
	search)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (account_id, object_id) DO UPDATE SET
	upn = excluded.upn, upn_key = excluded.upn_key, display_name = excluded.display_name, mail = excluded.mail,
	enabled = excluded.enabled, kind = excluded.kind, has_teams_phone = excluded.has_teams_phone,
	has_calling_plan = excluded.has_calling_plan, suggested_type = excluded.suggested_type,
	conflict = excluded.conflict, deleted = excluded.deleted, synced_at = excluded.synced_at,
	search_identity = excluded.search_identity, search = excluded.search_identity || users.search_config
RETURNING id`,
		id, u.AccountID, u.ObjectID, u.UPN, strings.ToLower(u.UPN), u.DisplayName, u.Mail, u.Enabled,
		string(u.Kind), u.HasTeamsPhone, u.HasCallingPlan, string(u.SuggestedType), u.Conflict, u.Deleted,
		q.d.nt(u.SyncedAt), q.d.t(now), identitySearch(u), identitySearch(u)).Scan(&stored)
	if err != nil {
		return q.writeErr(err, "upsert directory user",
			fmt.Sprintf("A user with ID %q already exists.", id), "Account not found.")
	}
	u.ID = stored
	return nil
}

func (q *queries) user(ctx context.Context, op, where string, args ...any) (*pbx2teams.User, error) {
	var u pbx2teams.User
	if err := scanUser(q.queryRow(ctx, "SELECT "+userCols+" FROM users WHERE "+where, args...), &u); err != nil {
		return nil, rowErr(err, "User", op)
	}
	return &u, nil
}

// User returns the user id of the account.
func (q *queries) User(ctx context.Context, accountID, id string) (*pbx2teams.User, error) {
	return q.user(ctx, "user", "id = ? AND account_id = ?", id, accountID)
}

// UserByUPN returns the user of the account with the UPN, matched
// regardless of case; the newest if a deleted user left the same UPN.
func (q *queries) UserByUPN(ctx context.Context, accountID, upn string) (*pbx2teams.User, error) {
	return q.user(ctx, "user by upn", "account_id = ? AND upn_key = ? ORDER BY deleted, updated_at DESC, id LIMIT 1",
		accountID, strings.ToLower(upn))
}

// UserByObjectID returns the user of the account with the directory object ID.
func (q *queries) UserByObjectID(ctx context.Context, accountID, objectID string) (*pbx2teams.User, error) {
	return q.user(ctx, "user by object id", "account_id = ? AND object_id = ?", accountID, objectID)
}

// UserByContact returns the configured user whose registration Contact user
// part is contactUser, in any account.
func (q *queries) UserByContact(ctx context.Context, contactUser string) (*pbx2teams.User, error) {
	if contactUser == "" {
		return nil, notFound("User")
	}
	// contact_user <> '' lets SQLite use the partial unique index.
	return q.user(ctx, "user by contact", "contact_user = ? AND contact_user <> '' AND type <> ''", contactUser)
}

// UserByPhoneNumber returns the configured user of the account with the
// E.164 number.
func (q *queries) UserByPhoneNumber(ctx context.Context, accountID, number string) (*pbx2teams.User, error) {
	if number == "" {
		return nil, notFound("User")
	}
	return q.user(ctx, "user by phone number",
		"account_id = ? AND phone_number = ? AND phone_number <> '' AND type <> '' ORDER BY id LIMIT 1", accountID, number)
}

// searchCap is how many matching keys a search reads in one scan. A search
// matching at most this many users is answered by that scan alone: its keys
// give the total and the page. A broader search counts separately, and its
// page is found quickly because matches are dense.
const searchCap = 2000

// Users lists one page of the account's users ordered by display name and
// ID. q.Type filters: "" all users, "any" configured users, "none"
// unconfigured users, else that type. q.Search matches, regardless of case,
// part of the UPN, display name, mail, SIP username or phone number.
func (q *queries) Users(ctx context.Context, uq pbx2teams.UserQuery) (*pbx2teams.UserPage, error) {
	limit := uq.Limit
	if limit <= 0 {
		limit = 50
	}
	if limit > 500 {
		limit = 500
	}
	var after *userCursor
	if uq.Cursor != "" {
		c, err := decodeCursor(uq.Cursor)
		if err != nil {
			return nil, err
		}
		after = &c
	}
	where := []string{"account_id = ?"}
	args := []any{uq.AccountID}
	switch uq.Type {
	case "":
	case "any":
		where = append(where, "type <> ''")
	case "none":
		where = append(where, "type = ''")
	default:
		where = append(where, "type = ?")
		args = append(args, string(uq.Type))
	}
	search := strings.ToLower(strings.TrimSpace(uq.Search))
	if search != "" {
		where = append(where, `search LIKE ? ESCAPE '\'`)
		args = append(args, likeContains(search))
	}
	filter := strings.Join(where, " AND ")
	if search != "" {
		return q.searchUsers(ctx, uq.AccountID, filter, args, after, limit)
	}
	page := &pbx2teams.UserPage{Users: []pbx2teams.User{}}
	if err := q.queryRow(ctx, "SELECT count(*) FROM users WHERE "+filter, args...).Scan(&page.Total); err != nil {
		return nil, fmt.Errorf("sqlstore: count users: %w", err)
	}
	return page, q.listPage(ctx, page, filter, args, after, limit)
}

// listPage fills the users and next cursor of page with the keyset query:
// the users matching filter after the cursor, in list order.
func (q *queries) listPage(ctx context.Context, page *pbx2teams.UserPage, filter string, args []any,
	after *userCursor, limit int) error {
	args = args[:len(args):len(args)] // appends below must not touch the caller's array
	if after != nil {
		filter += " AND (display_name, id) > (?, ?)"
		args = append(args, after.DisplayName, after.ID)
	}
	args = append(args, limit+1)
	rows, err := q.query(ctx, "SELECT "+userCols+" FROM users WHERE "+filter+" ORDER BY display_name, id LIMIT ?", args...)
	if err != nil {
		return fmt.Errorf("sqlstore: users: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var u pbx2teams.User
		if err := scanUser(rows, &u); err != nil {
			return fmt.Errorf("sqlstore: users: %w", err)
		}
		page.Users = append(page.Users, u)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("sqlstore: users: %w", err)
	}
	if len(page.Users) > limit {
		page.Users = page.Users[:limit]
		last := page.Users[limit-1]
		page.NextCursor = encodeCursor(userCursor{DisplayName: last.DisplayName, ID: last.ID})
	}
	return nil
}

// searchUsers answers a search. Matching a substring cannot use an index,
// so it scans the account's users once, reading only the keys (display name
// and ID) of the first searchCap+1 matches; on SQLite that scan reads the
// list index alone. With no more matches than that, the keys give the
// total and the page. A broader search is counted by a second scan; its
// page still comes from the keys when it lies among them (the first pages,
// the ones people look at), else from the keyset query.
func (q *queries) searchUsers(ctx context.Context, account, filter string, args []any,
	after *userCursor, limit int) (*pbx2teams.UserPage, error) {
	page := &pbx2teams.UserPage{Users: []pbx2teams.User{}}
	keys, err := q.userKeys(ctx, filter, append(args[:len(args):len(args)], searchCap+1))
	if err != nil {
		return nil, err
	}
	complete := len(keys) <= searchCap
	if complete {
		page.Total = len(keys)
	} else if err := q.queryRow(ctx, "SELECT count(*) FROM users WHERE "+filter, args...).Scan(&page.Total); err != nil {
		return nil, fmt.Errorf("sqlstore: count users: %w", err)
	}
	// Both databases order the keys byte-wise (SQLite's BINARY, COLLATE
	// "C" on PostgreSQL), as Go compares strings.
	start := 0
	if after != nil {
		for start < len(keys) && !keyAfter(keys[start], *after) {
			start++
		}
	}
	more := start+limit < len(keys) // keys[start+limit] begins the next page
	if !complete && !more {
		return page, q.listPage(ctx, page, filter, args, after, limit)
	}
	keys = keys[start:min(start+limit, len(keys))]
	if more {
		page.NextCursor = encodeCursor(keys[len(keys)-1])
	}
	page.Users, err = q.usersByID(ctx, account, keys)
	return page, err
}

// userKeys returns the keys of the users matching filter, in list order;
// the last argument is the limit.
func (q *queries) userKeys(ctx context.Context, filter string, args []any) ([]userCursor, error) {
	rows, err := q.query(ctx, "SELECT display_name, id FROM users WHERE "+filter+" ORDER BY display_name, id LIMIT ?", args...)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: search users: %w", err)
	}
	defer rows.Close()
	var keys []userCursor
	for rows.Next() {
		var k userCursor
		if err := rows.Scan(&k.DisplayName, &k.ID); err != nil {
			return nil, fmt.Errorf("sqlstore: search users: %w", err)
		}
		keys = append(keys, k)
	}
	return keys, rows.Err()
}

// usersByID reads the users of the keys, of the account, in the keys' order.
func (q *queries) usersByID(ctx context.Context, account string, keys []userCursor) ([]pbx2teams.User, error) {
	users := make([]pbx2teams.User, len(keys))
	if len(keys) == 0 {
		return users, nil
	}
	ids := make([]any, len(keys))
	pos := make(map[string]int, len(keys))
	for i, k := range keys {
		ids[i] = k.ID
		pos[k.ID] = i
	}
	marks := strings.TrimSuffix(strings.Repeat("?, ", len(keys)), ", ")
	// By primary key alone: with account_id in the condition SQLite would
	// rather scan the account's index. The account is checked below.
	rows, err := q.query(ctx, "SELECT "+userCols+" FROM users WHERE id IN ("+marks+")", ids...)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: users by id: %w", err)
	}
	defer rows.Close()
	found := 0
	for rows.Next() {
		var u pbx2teams.User
		if err := scanUser(rows, &u); err != nil {
			return nil, fmt.Errorf("sqlstore: users by id: %w", err)
		}
		if i, ok := pos[u.ID]; ok && u.AccountID == account {
			users[i] = u
			found++
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlstore: users by id: %w", err)
	}
	if found < len(keys) {
		// Outside a transaction a concurrent write may have changed a user
		// between the two reads; list what is there, in order.
		kept := users[:0]
		for _, u := range users {
			if u.ID != "" {
				kept = append(kept, u)
			}
		}
		users = kept
	}
	return users, nil
}

// keyAfter reports whether k comes after c in list order.
func keyAfter(k, c userCursor) bool {
	if k.DisplayName != c.DisplayName {
		return k.DisplayName > c.DisplayName
	}
	return k.ID > c.ID
}

// UpdateUserConfig writes the service configuration of the user u.ID of
// u.AccountID. A zero UpdatedAt is now.
func (q *queries) UpdateUserConfig(ctx context.Context, u *pbx2teams.User) error {
	if u.UpdatedAt.IsZero() {
		u.UpdatedAt = time.Now()
	}
	u.UpdatedAt = norm(u.UpdatedAt)
	var password any
	if len(u.PasswordEnc) > 0 {
		password = u.PasswordEnc
	}
	err := q.execOne(ctx, notFound("User"), `UPDATE users SET type = ?, sip_username = ?, auth_username = ?,
	password_enc = ?, phone_number = ?, external_id = ?, suspended = ?, contact_user = ?, updated_at = ?,
	search_config = ?, search = search_identity || ?
WHERE id = ? AND account_id = ?`,
		string(u.Type), u.SIPUsername, u.AuthUsername, password, u.PhoneNumber, u.ExternalID, u.Suspended,
		u.ContactUser, q.d.t(u.UpdatedAt), configSearch(u), configSearch(u), u.ID, u.AccountID)
	if err != nil {
		return q.writeErr(err, "update user config", "Another user already has this SIP Contact user part.", "")
	}
	u.HasPassword = len(u.PasswordEnc) > 0
	return nil
}

// CountLicenceUse counts the account's users that consume licences (see
// pbx2teams.User.ConsumesLicences), standard and Phone App apart.
func (q *queries) CountLicenceUse(ctx context.Context, accountID string) (standard, phoneApp int, err error) {
	rows, err := q.query(ctx, `SELECT type, count(*) FROM users
WHERE account_id = ? AND type <> '' AND enabled AND NOT suspended AND NOT deleted
GROUP BY type`, accountID)
	if err != nil {
		return 0, 0, fmt.Errorf("sqlstore: count licence use: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var typ string
		var n int
		if err := rows.Scan(&typ, &n); err != nil {
			return 0, 0, fmt.Errorf("sqlstore: count licence use: %w", err)
		}
		switch pbx2teams.ServiceType(typ) {
		case pbx2teams.ServiceStandard:
			standard = n
		case pbx2teams.ServicePhoneApp:
			phoneApp = n
		}
	}
	return standard, phoneApp, rows.Err()
}

// ConfiguredUsers lists configured users of every account in ID order after
// afterID, at most limit (1000 when limit <= 0).
func (q *queries) ConfiguredUsers(ctx context.Context, afterID string, limit int) ([]pbx2teams.User, error) {
	if limit <= 0 {
		limit = 1000
	}
	rows, err := q.query(ctx, "SELECT "+userCols+" FROM users WHERE type <> '' AND id > ? ORDER BY id LIMIT ?", afterID, limit)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: configured users: %w", err)
	}
	defer rows.Close()
	out := []pbx2teams.User{}
	for rows.Next() {
		var u pbx2teams.User
		if err := scanUser(rows, &u); err != nil {
			return nil, fmt.Errorf("sqlstore: configured users: %w", err)
		}
		out = append(out, u)
	}
	return out, rows.Err()
}
