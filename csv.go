package pbx2teams

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"
)

// MaxCSVRows is the most user rows one CSV import may hold.
const MaxCSVRows = 10000

// CSVColumns are the columns of the user CSV, in export order.
var CSVColumns = []string{"email", "sip_username", "auth_username", "password", "phone_number", "external_id", "type"}

var csvAliases = map[string]string{
	"email": "email", "upn": "email", "email/upn": "email", "user": "email", "userprincipalname": "email", "user principal name": "email", "mail": "email",
	"sip_username": "sip_username", "sip username": "sip_username", "sipusername": "sip_username", "extension": "sip_username", "username": "sip_username",
	"auth_username": "auth_username", "auth username": "auth_username", "authusername": "auth_username", "authorization username": "auth_username",
	"password": "password", "sip password": "password", "sip_password": "password",
	"phone_number": "phone_number", "phone number": "phone_number", "phone": "phone_number", "number": "phone_number", "did": "phone_number",
	"external_id": "external_id", "external id": "external_id", "externalid": "external_id",
	"type": "type", "service type": "type", "service_type": "type",
}

// ImportResult tells what an import did.
type ImportResult struct {
	Rows    int `json:"rows"`
	Changed int `json:"changed"`
}

type csvRow struct {
	line int
	user *User
	cfg  UserConfig
}

// ImportUsersCSV applies SIP settings from a CSV file to a customer's users.
// It is all or nothing: a file with any bad row changes nothing, and the
// error lists every bad row with its line and reason. An empty password
// keeps the stored one.
func (s *Service) ImportUsersCSV(ctx context.Context, p *Principal, accountID string, r io.Reader) (*ImportResult, error) {
	cr := csv.NewReader(io.LimitReader(r, 16<<20))
	cr.FieldsPerRecord = -1
	cr.TrimLeadingSpace = true
	header, err := cr.Read()
	if err != nil {
		return nil, Errorf(EInvalid, "The file is empty or not CSV; the first line must name the columns: %s.", strings.Join(CSVColumns, ", "))
	}
	col := map[string]int{}
	for i, h := range header {
		key := strings.ToLower(strings.TrimSpace(strings.TrimPrefix(h, "\ufeff")))
		name, ok := csvAliases[key]
		if !ok {
			return nil, Errorf(EInvalid, "Line 1: unknown column %q; the columns are %s.", h, strings.Join(CSVColumns, ", "))
		}
		if _, dup := col[name]; dup {
			return nil, Errorf(EInvalid, "Line 1: column %q appears twice.", h)
		}
		col[name] = i
	}
	if _, ok := col["email"]; !ok {
		return nil, Errorf(EInvalid, "Line 1: an email (or UPN) column is required to find each user.")
	}
	field := func(rec []string, name string) (string, bool) {
		i, ok := col[name]
		if !ok || i >= len(rec) {
			return "", false
		}
		return strings.TrimSpace(rec[i]), true
	}

	var res *ImportResult
	err = s.Store.InTx(ctx, func(q Queries) error {
		acc, err := s.customerAccount(ctx, q, p, accountID, true)
		if err != nil {
			return err
		}
		if err := q.LockAccount(ctx, acc.ID); err != nil {
			return err
		}
		var bad []ErrorDetail
		fail := func(line int, format string, args ...any) {
			bad = append(bad, ErrorDetail{Line: line, Reason: fmt.Sprintf(format, args...)})
		}
		var rows []csvRow
		seenUser := map[string]int{}
		seenNumber := map[string]int{}
		seenSIP := map[string]int{}
		for {
			rec, err := cr.Read()
			if errors.Is(err, io.EOF) {
				break
			}
			line, _ := cr.FieldPos(0)
			if err != nil {
				var pe *csv.ParseError
				if errors.As(err, &pe) {
					fail(pe.Line, "not valid CSV: %v", pe.Err)
					if len(bad) > 1000 {
						break
					}
					continue
				}
				return err
			}
			if len(rows)+len(bad) >= MaxCSVRows {
				return Errorf(EInvalid, "The file has more than %d rows; split it into smaller files.", MaxCSVRows)
			}
			if len(rec) == 1 && strings.TrimSpace(rec[0]) == "" {
				continue // blank line
			}
			email, _ := field(rec, "email")
			if email == "" {
				fail(line, "no email/UPN; every row must name the user")
				continue
			}
			if prev, dup := seenUser[strings.ToLower(email)]; dup {
				fail(line, "%s also appears on line %d; each user may appear once", email, prev)
				continue
			}
			seenUser[strings.ToLower(email)] = line
			u, err := q.UserByUPN(ctx, acc.ID, email)
			if ErrorCode(err) == ENotFound {
				fail(line, "no user %s in %s; check the address or run Sync Now first", email, acc.Name)
				continue
			} else if err != nil {
				return err
			}
			c := UserConfig{Type: u.Type}
			if c.Type == ServiceNone {
				c.Type = ServiceStandard
				if u.SuggestedType == ServicePhoneApp {
					c.Type = ServicePhoneApp
				}
			}
			if t, ok := field(rec, "type"); ok && t != "" {
				c.Type = ServiceType(strings.ReplaceAll(strings.ToLower(t), " ", "_"))
				if c.Type == "phoneapp" || c.Type == "phone-app" {
					c.Type = ServicePhoneApp
				}
			}
			c.SIPUsername, _ = field(rec, "sip_username")
			c.AuthUsername, _ = field(rec, "auth_username")
			if pw, _ := field(rec, "password"); pw != "" {
				c.Password = &pw
			}
			c.PhoneNumber, _ = field(rec, "phone_number")
			c.ExternalID, _ = field(rec, "external_id")
			for _, d := range checkConfig(u, &c, u.HasPassword) {
				fail(line, "%s: %s", strings.ReplaceAll(firstNonEmpty(d.Field, "row"), "_", " "), d.Reason)
			}
			if c.PhoneNumber != "" {
				if prev, dup := seenNumber[c.PhoneNumber]; dup {
					fail(line, "phone number %s is also on line %d", c.PhoneNumber, prev)
				}
				seenNumber[c.PhoneNumber] = line
			}
			if c.SIPUsername != "" {
				if prev, dup := seenSIP[strings.ToLower(c.SIPUsername)]; dup {
					fail(line, "SIP username %s is also on line %d", c.SIPUsername, prev)
				}
				seenSIP[strings.ToLower(c.SIPUsername)] = line
			}
			rows = append(rows, csvRow{line: line, user: u, cfg: c})
		}
		// Numbers held by users outside the file (or moving away) conflict.
		inFile := map[string]bool{}
		for _, r := range rows {
			inFile[r.user.ID] = true
		}
		for _, r := range rows {
			if r.cfg.PhoneNumber == "" {
				continue
			}
			other, err := q.UserByPhoneNumber(ctx, acc.ID, r.cfg.PhoneNumber)
			if err == nil && other.ID != r.user.ID && !inFile[other.ID] {
				fail(r.line, "phone number %s is already used by %s", r.cfg.PhoneNumber, other.UPN)
			} else if err != nil && ErrorCode(err) != ENotFound {
				return err
			}
		}
		if len(bad) == 0 {
			lic := newLicenceCheck(s, acc)
			if err := lic.load(ctx, q); err != nil {
				return err
			}
			for _, r := range rows {
				lic.remove(r.user)
			}
			for _, r := range rows {
				// Phone numbers were checked against the file and the store above.
				n := r.cfg.PhoneNumber
				r.cfg.PhoneNumber = ""
				if err := s.applyConfig(ctx, q, acc, r.user, r.cfg); err != nil {
					return err
				}
				r.user.PhoneNumber = n
				_ = lic.add(ctx, q, r.user)
			}
			if err := lic.verify(); err != nil {
				e := err.(*Error)
				return &Error{Code: e.Code, Message: "Nothing was imported. " + e.Message}
			}
		}
		if len(bad) > 0 {
			return &Error{Code: EInvalid, Message: fmt.Sprintf("%d rows have errors; nothing was imported. Fix them and upload the whole file again.", len(bad)), Details: bad}
		}
		for _, r := range rows {
			if err := q.UpdateUserConfig(ctx, r.user); err != nil {
				return err
			}
		}
		res = &ImportResult{Rows: len(rows), Changed: len(rows)}
		return s.audit(ctx, q, p, acc.ID, "user.import", acc.ID, fmt.Sprintf("CSV import applied to %d users", len(rows)))
	})
	if err != nil {
		return nil, err
	}
	s.changed(accountID)
	return res, nil
}

// ExportUsersCSV writes the configured users of a customer as CSV, in the
// import format. Passwords are never exported; the column stays empty so that
// an edited export can be imported again without changing them.
func (s *Service) ExportUsersCSV(ctx context.Context, p *Principal, accountID string, w io.Writer) error {
	acc, err := s.customerAccount(ctx, s.Store, p, accountID, false)
	if err != nil {
		return err
	}
	cw := csv.NewWriter(w)
	if err := cw.Write(CSVColumns); err != nil {
		return err
	}
	q := UserQuery{AccountID: acc.ID, Type: "any", Limit: 500}
	for {
		page, err := s.Store.Users(ctx, q)
		if err != nil {
			return err
		}
		for _, u := range page.Users {
			if !u.Configured() {
				continue
			}
			if err := cw.Write([]string{u.UPN, u.SIPUsername, u.AuthUsername, "", u.PhoneNumber, u.ExternalID, string(u.Type)}); err != nil {
				return err
			}
		}
		if page.NextCursor == "" {
			break
		}
		q.Cursor = page.NextCursor
	}
	cw.Flush()
	return cw.Error()
}
