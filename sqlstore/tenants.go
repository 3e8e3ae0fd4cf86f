package sqlstore

import "context"

// AccountsByTenant implements pbx2teams.Queries.
func (q *queries) AccountsByTenant(ctx context.Context, tenantID string) ([]string, error) {
	rows, err := q.query(ctx, "SELECT account_id FROM teams_settings WHERE tenant_id = ? AND tenant_id <> '' AND consented_at IS NOT NULL ORDER BY consented_at, account_id", tenantID)
	if err != nil {
		return nil, rowErr(err, "accounts", "accounts by tenant")
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, rowErr(err, "accounts", "accounts by tenant")
		}
		ids = append(ids, id)
	}
	return ids, rowErr(rows.Err(), "accounts", "accounts by tenant")
}
