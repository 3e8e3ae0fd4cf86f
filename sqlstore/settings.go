package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/pbx2teams/pbx2teams"
)

// PutLicence inserts or replaces the licence of (l.AccountID, l.SKU). A zero
// UpdatedAt is now.
func (q *queries) PutLicence(ctx context.Context, l *pbx2teams.Licence) error {
	if l.UpdatedAt.IsZero() {
		l.UpdatedAt = time.Now()
	}
	l.UpdatedAt = norm(l.UpdatedAt)
	l.ExpiresAt = normPtr(l.ExpiresAt)
	_, err := q.exec(ctx, `INSERT INTO licences (account_id, sku, quantity, expires_at, updated_at)
VALUES (?, ?, ?, ?, ?)
ON CONFLICT (account_id, sku) DO UPDATE SET
	quantity = excluded.quantity, expires_at = excluded.expires_at, updated_at = excluded.updated_at`,
		l.AccountID, string(l.SKU), l.Quantity, q.d.nt(l.ExpiresAt), q.d.t(l.UpdatedAt))
	return q.writeErr(err, "put licence", "", "Account not found.")
}

// Licences lists the licences of the account by SKU.
func (q *queries) Licences(ctx context.Context, accountID string) ([]pbx2teams.Licence, error) {
	rows, err := q.query(ctx, `SELECT account_id, sku, quantity, expires_at, updated_at
FROM licences WHERE account_id = ? ORDER BY sku`, accountID)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: licences: %w", err)
	}
	defer rows.Close()
	out := []pbx2teams.Licence{}
	for rows.Next() {
		var l pbx2teams.Licence
		var sku string
		if err := rows.Scan(&l.AccountID, &sku, &l.Quantity, nullTimeDest{&l.ExpiresAt}, timeDest{&l.UpdatedAt}); err != nil {
			return nil, fmt.Errorf("sqlstore: licences: %w", err)
		}
		l.SKU = pbx2teams.SKU(sku)
		out = append(out, l)
	}
	return out, rows.Err()
}

// PBXSettings returns the PBX settings of the account.
func (q *queries) PBXSettings(ctx context.Context, accountID string) (*pbx2teams.PBXSettings, error) {
	var s pbx2teams.PBXSettings
	var transport string
	err := q.queryRow(ctx, `SELECT account_id, domain, outbound_proxy, transport, register_expiry, region, updated_at
FROM pbx_settings WHERE account_id = ?`, accountID).Scan(
		&s.AccountID, &s.Domain, &s.OutboundProxy, &transport, &s.RegisterExpiry, &s.Region, timeDest{&s.UpdatedAt})
	if err != nil {
		return nil, rowErr(err, "PBX settings", "pbx settings")
	}
	s.Transport = pbx2teams.Transport(transport)
	return &s, nil
}

// PutPBXSettings inserts or replaces the PBX settings of s.AccountID.
func (q *queries) PutPBXSettings(ctx context.Context, s *pbx2teams.PBXSettings) error {
	if s.UpdatedAt.IsZero() {
		s.UpdatedAt = time.Now()
	}
	s.UpdatedAt = norm(s.UpdatedAt)
	_, err := q.exec(ctx, `INSERT INTO pbx_settings (account_id, domain, outbound_proxy, transport, register_expiry, region, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (account_id) DO UPDATE SET
	domain = excluded.domain, outbound_proxy = excluded.outbound_proxy, transport = excluded.transport,
	register_expiry = excluded.register_expiry, region = excluded.region, updated_at = excluded.updated_at`,
		s.AccountID, s.Domain, s.OutboundProxy, string(s.Transport), s.RegisterExpiry, s.Region, q.d.t(s.UpdatedAt))
	return q.writeErr(err, "put pbx settings", "", "Account not found.")
}

// TeamsSettings returns the Teams settings of the account.
func (q *queries) TeamsSettings(ctx context.Context, accountID string) (*pbx2teams.TeamsSettings, error) {
	var s pbx2teams.TeamsSettings
	var groups, phoneAppGroup string
	err := q.queryRow(ctx, `SELECT account_id, tenant_id, tenant_name, consented_at, consent_error,
	phone_app_enabled, phone_app_authorized_at, large_tenant_mode, standard_groups, phone_app_group,
	sync_interval_minutes, sbc_label, updated_at
FROM teams_settings WHERE account_id = ?`, accountID).Scan(
		&s.AccountID, &s.TenantID, &s.TenantName, nullTimeDest{&s.ConsentedAt}, &s.ConsentError,
		&s.PhoneAppEnabled, nullTimeDest{&s.PhoneAppAuthorizedAt}, &s.LargeTenantMode, &groups, &phoneAppGroup,
		&s.SyncIntervalMinutes, &s.SBCLabel, timeDest{&s.UpdatedAt})
	if err != nil {
		return nil, rowErr(err, "Teams settings", "teams settings")
	}
	if groups != "" && groups != "null" {
		if err := json.Unmarshal([]byte(groups), &s.StandardGroups); err != nil {
			return nil, fmt.Errorf("sqlstore: teams settings: standard groups: %w", err)
		}
	}
	if phoneAppGroup != "" {
		s.PhoneAppGroup = new(pbx2teams.Group)
		if err := json.Unmarshal([]byte(phoneAppGroup), s.PhoneAppGroup); err != nil {
			return nil, fmt.Errorf("sqlstore: teams settings: phone app group: %w", err)
		}
	}
	return &s, nil
}

// PutTeamsSettings inserts or replaces the Teams settings of s.AccountID.
// The groups are stored as JSON text. An empty SBCLabel keeps the stored
// label (s gets it back); a label another account has is EConflict.
func (q *queries) PutTeamsSettings(ctx context.Context, s *pbx2teams.TeamsSettings) error {
	if s.UpdatedAt.IsZero() {
		s.UpdatedAt = time.Now()
	}
	s.UpdatedAt = norm(s.UpdatedAt)
	s.ConsentedAt = normPtr(s.ConsentedAt)
	s.PhoneAppAuthorizedAt = normPtr(s.PhoneAppAuthorizedAt)
	groups := "[]"
	if len(s.StandardGroups) > 0 {
		b, err := json.Marshal(s.StandardGroups)
		if err != nil {
			return err
		}
		groups = string(b)
	}
	phoneAppGroup := ""
	if s.PhoneAppGroup != nil {
		b, err := json.Marshal(s.PhoneAppGroup)
		if err != nil {
			return err
		}
		phoneAppGroup = string(b)
	}
	var label string
	err := q.queryRowW(ctx, `INSERT INTO teams_settings (account_id, tenant_id, tenant_name, consented_at, consent_error,
	phone_app_enabled, phone_app_authorized_at, large_tenant_mode, standard_groups, phone_app_group,
	sync_interval_minutes, sbc_label, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (account_id) DO UPDATE SET
	tenant_id = excluded.tenant_id, tenant_name = excluded.tenant_name, consented_at = excluded.consented_at,
	consent_error = excluded.consent_error, phone_app_enabled = excluded.phone_app_enabled,
	phone_app_authorized_at = excluded.phone_app_authorized_at, large_tenant_mode = excluded.large_tenant_mode,
	standard_groups = excluded.standard_groups, phone_app_group = excluded.phone_app_group,
	sync_interval_minutes = excluded.sync_interval_minutes,
	sbc_label = CASE WHEN excluded.sbc_label <> '' THEN excluded.sbc_label ELSE teams_settings.sbc_label END,
	updated_at = excluded.updated_at
RETURNING sbc_label`,
		s.AccountID, s.TenantID, s.TenantName, q.d.nt(s.ConsentedAt), s.ConsentError,
		s.PhoneAppEnabled, q.d.nt(s.PhoneAppAuthorizedAt), s.LargeTenantMode, groups, phoneAppGroup,
		s.SyncIntervalMinutes, s.SBCLabel, q.d.t(s.UpdatedAt)).Scan(&label)
	if err := q.writeErr(err, "put teams settings",
		fmt.Sprintf("The SBC label %s is already used by another customer; choose another one.", s.SBCLabel), "Account not found."); err != nil {
		return err
	}
	s.SBCLabel = label
	return nil
}

// Setting returns the value of the node-wide setting, "" when unset.
func (q *queries) Setting(ctx context.Context, key string) (string, error) {
	var v string
	err := q.queryRow(ctx, "SELECT value FROM settings WHERE key = ?", key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return v, rowErr(err, "", "setting")
}

// PutSetting sets the node-wide setting.
func (q *queries) PutSetting(ctx context.Context, key, value string) error {
	_, err := q.exec(ctx, `INSERT INTO settings (key, value) VALUES (?, ?)
ON CONFLICT (key) DO UPDATE SET value = excluded.value`, key, value)
	return q.writeErr(err, "put setting", "", "")
}
