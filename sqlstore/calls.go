package sqlstore

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/pbx2teams/pbx2teams"
)

const callCols = `id, account_id, user_id, direction, route, from_number, from_name, to_number,
	started_at, answered_at, ended_at, result, pbx_status, teams_status, ended_by, advice, media,
	teams_peer, added_delay_ns`

func scanCall(s scanner, c *pbx2teams.CallRecord) error {
	var answered *time.Time
	var media string
	var delay int64
	if err := s.Scan(&c.ID, &c.AccountID, &c.UserID, &c.Direction, &c.Route, &c.From, &c.FromName, &c.To,
		timeDest{&c.StartedAt}, nullTimeDest{&answered}, timeDest{&c.EndedAt}, &c.Result, &c.PBXStatus, &c.TeamsStatus,
		&c.EndedBy, &c.Advice, &media, &c.TeamsPeer, &delay); err != nil {
		return err
	}
	if answered != nil {
		c.AnsweredAt = *answered
	}
	c.AddedDelay = time.Duration(delay)
	if err := json.Unmarshal([]byte(media), &c.Media); err != nil {
		return fmt.Errorf("sqlstore: call media: %w", err)
	}
	return nil
}

// AppendCall stores a finished call and its trace in one transaction.
func (s *Store) AppendCall(ctx context.Context, rec *pbx2teams.CallRecord, tr *pbx2teams.CallTrace) error {
	return s.InTx(ctx, func(q pbx2teams.Queries) error { return q.AppendCall(ctx, rec, tr) })
}

// AppendCall stores a finished call and its trace (tr may be nil). Times
// of rec are normalised to what a read returns; an empty ID gets one.
func (q *queries) AppendCall(ctx context.Context, rec *pbx2teams.CallRecord, tr *pbx2teams.CallTrace) error {
	if rec.ID == "" {
		rec.ID = newID("call_")
	}
	rec.StartedAt = norm(rec.StartedAt)
	rec.EndedAt = norm(rec.EndedAt)
	var answered *time.Time
	if !rec.AnsweredAt.IsZero() {
		rec.AnsweredAt = norm(rec.AnsweredAt)
		answered = &rec.AnsweredAt
	}
	media, err := json.Marshal(rec.Media)
	if err != nil {
		return err
	}
	_, err = q.exec(ctx, `INSERT INTO calls (`+callCols+`)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		rec.ID, rec.AccountID, rec.UserID, rec.Direction, rec.Route, rec.From, rec.FromName, rec.To,
		q.d.t(rec.StartedAt), q.d.nt(answered), q.d.t(rec.EndedAt), rec.Result, rec.PBXStatus, rec.TeamsStatus,
		rec.EndedBy, rec.Advice, string(media), rec.TeamsPeer, int64(rec.AddedDelay))
	if err := q.writeErr(err, "append call", "A call with this ID is already recorded.", "Account not found."); err != nil {
		return err
	}
	if tr == nil {
		return nil
	}
	tr.CallRecordID = rec.ID
	msgs := tr.Messages
	if msgs == nil {
		msgs = []pbx2teams.TraceMessage{}
	}
	for i := range msgs {
		msgs[i].At = norm(msgs[i].At)
	}
	mj, err := json.Marshal(msgs)
	if err != nil {
		return err
	}
	_, err = q.exec(ctx, `INSERT INTO call_traces (call_id, account_id, sip_call_id, ended_at, messages, dropped)
VALUES (?, ?, ?, ?, ?, ?)`, rec.ID, rec.AccountID, tr.CallID, q.d.t(rec.EndedAt), string(mj), tr.Dropped)
	return q.writeErr(err, "append call trace", "This call already has a trace.", "")
}

// callCursor is the key of the last call of a page.
type callCursor struct {
	StartedAt time.Time
	ID        string
}

func encodeCallCursor(c callCursor) string {
	b, _ := json.Marshal([]string{c.StartedAt.UTC().Format(time.RFC3339Nano), c.ID})
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeCallCursor(s string) (callCursor, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return callCursor{}, errBadCursor
	}
	var a []string
	if err := json.Unmarshal(b, &a); err != nil || len(a) != 2 || a[1] == "" {
		return callCursor{}, errBadCursor
	}
	t, err := time.Parse(time.RFC3339Nano, a[0])
	if err != nil {
		return callCursor{}, errBadCursor
	}
	return callCursor{StartedAt: norm(t), ID: a[1]}, nil
}

// Calls returns a page of the account's calls, newest first; calls that
// started at the same time are ordered by ID, so pages never skip or
// repeat one.
func (q *queries) Calls(ctx context.Context, cq pbx2teams.CallQuery) (*pbx2teams.CallPage, error) {
	limit := cq.Limit
	if limit <= 0 {
		limit = pbx2teams.DefaultCallPageSize
	}
	if limit > pbx2teams.MaxCallPageSize {
		limit = pbx2teams.MaxCallPageSize
	}
	where := []string{"account_id = ?"}
	args := []any{cq.AccountID}
	if cq.UserID != "" {
		where = append(where, "user_id = ?")
		args = append(args, cq.UserID)
	}
	if cq.Result != "" {
		where = append(where, "result = ?")
		args = append(args, cq.Result)
	}
	if cq.Cursor != "" {
		c, err := decodeCallCursor(cq.Cursor)
		if err != nil {
			return nil, err
		}
		where = append(where, "(started_at, id) < (?, ?)")
		args = append(args, q.d.t(c.StartedAt), c.ID)
	}
	args = append(args, limit+1)
	rows, err := q.query(ctx, "SELECT "+callCols+" FROM calls WHERE "+strings.Join(where, " AND ")+
		" ORDER BY started_at DESC, id DESC LIMIT ?", args...)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: calls: %w", err)
	}
	defer rows.Close()
	page := &pbx2teams.CallPage{Calls: []pbx2teams.CallRecord{}}
	for rows.Next() {
		var c pbx2teams.CallRecord
		if err := scanCall(rows, &c); err != nil {
			return nil, fmt.Errorf("sqlstore: calls: %w", err)
		}
		page.Calls = append(page.Calls, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlstore: calls: %w", err)
	}
	if len(page.Calls) > limit {
		page.Calls = page.Calls[:limit]
		last := page.Calls[limit-1]
		page.NextCursor = encodeCallCursor(callCursor{StartedAt: last.StartedAt, ID: last.ID})
	}
	return page, nil
}

// Call returns one call of the account.
func (q *queries) Call(ctx context.Context, accountID, id string) (*pbx2teams.CallRecord, error) {
	var c pbx2teams.CallRecord
	err := scanCall(q.queryRow(ctx, "SELECT "+callCols+" FROM calls WHERE account_id = ? AND id = ?", accountID, id), &c)
	if err != nil {
		return nil, rowErr(err, "Call", "call")
	}
	return &c, nil
}

// CallTrace returns the trace of one call of the account.
func (q *queries) CallTrace(ctx context.Context, accountID, id string) (*pbx2teams.CallTrace, error) {
	var tr pbx2teams.CallTrace
	var msgs string
	err := q.queryRow(ctx, `SELECT call_id, sip_call_id, messages, dropped FROM call_traces
WHERE account_id = ? AND call_id = ?`, accountID, id).Scan(&tr.CallRecordID, &tr.CallID, &msgs, &tr.Dropped)
	if err != nil {
		return nil, rowErr(err, "Call trace", "call trace")
	}
	if err := json.Unmarshal([]byte(msgs), &tr.Messages); err != nil {
		return nil, fmt.Errorf("sqlstore: call trace messages: %w", err)
	}
	return &tr, nil
}

// DeleteCallTracesBefore drops the traces of calls that ended before t.
func (q *queries) DeleteCallTracesBefore(ctx context.Context, t time.Time) (int, error) {
	res, err := q.exec(ctx, "DELETE FROM call_traces WHERE ended_at < ?", q.d.t(t))
	if err != nil {
		return 0, fmt.Errorf("sqlstore: delete call traces: %w", err)
	}
	n, err := res.RowsAffected()
	return int(n), err
}

// DeleteCallsBefore drops the records and traces of calls that ended
// before t.
func (s *Store) DeleteCallsBefore(ctx context.Context, t time.Time) (int, error) {
	var n int
	err := s.InTx(ctx, func(q pbx2teams.Queries) error {
		var err error
		n, err = q.DeleteCallsBefore(ctx, t)
		return err
	})
	return n, err
}

// DeleteCallsBefore drops the records and traces of calls that ended
// before t (the traces first: they refer to the records).
func (q *queries) DeleteCallsBefore(ctx context.Context, t time.Time) (int, error) {
	if _, err := q.exec(ctx, "DELETE FROM call_traces WHERE call_id IN (SELECT id FROM calls WHERE ended_at < ?)", q.d.t(t)); err != nil {
		return 0, fmt.Errorf("sqlstore: delete calls: %w", err)
	}
	res, err := q.exec(ctx, "DELETE FROM calls WHERE ended_at < ?", q.d.t(t))
	if err != nil {
		return 0, fmt.Errorf("sqlstore: delete calls: %w", err)
	}
	n, err := res.RowsAffected()
	return int(n), err
}

// AccountBySBCLabel returns the account whose Teams settings have label.
func (q *queries) AccountBySBCLabel(ctx context.Context, label string) (string, error) {
	if label == "" {
		return "", notFound("SBC label")
	}
	var id string
	err := q.queryRow(ctx, "SELECT account_id FROM teams_settings WHERE sbc_label = ?", label).Scan(&id)
	if err != nil {
		return "", rowErr(err, "SBC label", "account by sbc label")
	}
	return id, nil
}
