package pbx2teams

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"regexp"
	"strings"
)

// Users lists a customer's directory users, a page at a time.
func (s *Service) Users(ctx context.Context, p *Principal, q UserQuery) (*UserPage, error) {
	acc, err := s.customerAccount(ctx, s.Store, p, q.AccountID, false)
	if err != nil {
		return nil, err
	}
	q.AccountID = acc.ID
	if q.Limit <= 0 {
		q.Limit = 50
	}
	if q.Limit > 500 {
		q.Limit = 500
	}
	q.Search = strings.TrimSpace(q.Search)
	if len(q.Search) > 200 {
		return nil, Errorf(EInvalid, "Search text is limited to 200 characters.")
	}
	return s.Store.Users(ctx, q)
}

// User returns one user of a customer.
func (s *Service) User(ctx context.Context, p *Principal, accountID, userID string) (*User, error) {
	acc, err := s.customerAccount(ctx, s.Store, p, accountID, false)
	if err != nil {
		return nil, err
	}
	u, err := s.Store.User(ctx, acc.ID, userID)
	if ErrorCode(err) == ENotFound {
		return nil, Errorf(ENotFound, "No such user in %s.", acc.Name)
	}
	return u, err
}

// Registration returns the live PBX registration state of a user, if the SIP
// engine knows it.
func (s *Service) Registration(userID string) (RegistrationState, bool) {
	if s.Registrations == nil {
		return RegistrationState{}, false
	}
	return s.Registrations.RegistrationState(userID)
}

// UserConfig is what a customer admin sets for a user. A nil Password keeps
// the stored one; Type ServiceNone removes the configuration and frees the
// user's licences.
type UserConfig struct {
	Type         ServiceType `json:"type"`
	SIPUsername  string      `json:"sip_username"`
	AuthUsername string      `json:"auth_username"`
	Password     *string     `json:"password,omitempty"`
	PhoneNumber  string      `json:"phone_number"`
	ExternalID   string      `json:"external_id"`
}

var (
	e164RE    = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)
	sipUserRE = regexp.MustCompile(`^[A-Za-z0-9\-_.!~*'()&=+$,;?/]{1,64}$`)
)

// NormalizePhoneNumber checks an E.164 number after removing spaces, dashes,
// dots and brackets, and explains what is wrong otherwise.
func NormalizePhoneNumber(raw string) (string, error) {
	n := strings.Map(func(r rune) rune {
		switch r {
		case ' ', '-', '.', '(', ')', '\u00a0':
			return -1
		}
		return r
	}, strings.TrimSpace(raw))
	if n == "" {
		return "", nil
	}
	if e164RE.MatchString(n) {
		return n, nil
	}
	if regexp.MustCompile(`^[1-9][0-9]{7,14}$`).MatchString(n) {
		return "", Errorf(EInvalid, "Phone number %q has no leading +; a spreadsheet may have removed it. Write it in E.164 form as +%s (format the column as text).", raw, n)
	}
	if strings.HasPrefix(n, "00") || strings.HasPrefix(n, "+0") {
		return "", Errorf(EInvalid, "Phone number %q is not in E.164 form: start with + and the country code instead of 00, e.g. +441632960123.", raw)
	}
	if strings.HasPrefix(n, "0") {
		return "", Errorf(EInvalid, "Phone number %q looks like a national number; write it in E.164 form with + and the country code, e.g. +441632960123.", raw)
	}
	return "", Errorf(EInvalid, "Phone number %q is not in E.164 form: + then the country code and number, 8 to 15 digits in all, e.g. +441632960123.", raw)
}

// checkConfig validates c for user u and returns the reasons it is wrong.
func checkConfig(u *User, c *UserConfig, hasPassword bool) []ErrorDetail {
	var bad []ErrorDetail
	add := func(field, format string, args ...any) {
		bad = append(bad, ErrorDetail{Field: field, Reason: fmt.Sprintf(format, args...)})
	}
	if !c.Type.Valid() {
		add("type", "Type must be standard or phone_app (or empty to remove the configuration).")
		return bad
	}
	if c.Type == ServiceNone {
		return nil
	}
	if u.Deleted {
		add("user", "%s was deleted from Microsoft 365 and cannot be configured.", u.UPN)
	} else if !u.Enabled {
		add("user", "%s is disabled in Microsoft 365; enable the account there and run Sync Now.", u.UPN)
	}
	if !u.Kind.VoiceCapable() {
		add("user", "%s is a %s, not a person, and cannot have a PBX line.", u.UPN, strings.ReplaceAll(string(u.Kind), "_", " "))
	}
	c.SIPUsername = strings.TrimSpace(c.SIPUsername)
	c.AuthUsername = strings.TrimSpace(c.AuthUsername)
	if c.SIPUsername == "" {
		add("sip_username", "Enter the SIP username (usually the extension) the PBX knows this user by.")
	} else if !sipUserRE.MatchString(c.SIPUsername) {
		add("sip_username", "SIP username %q has characters a SIP URI cannot carry; use letters, digits and - _ . only.", c.SIPUsername)
	}
	if c.AuthUsername == "" {
		c.AuthUsername = c.SIPUsername
	} else if len(c.AuthUsername) > 128 || strings.ContainsAny(c.AuthUsername, "\"\\\r\n") {
		add("auth_username", "Auth username must be at most 128 characters without quotes, backslashes or line breaks.")
	}
	if c.Password != nil {
		if *c.Password == "" || len(*c.Password) > 128 || strings.ContainsAny(*c.Password, "\r\n") {
			add("password", "The SIP password must be 1 to 128 characters on one line.")
		}
	} else if !hasPassword {
		add("password", "Enter the SIP password the PBX gave this extension.")
	}
	if n, err := NormalizePhoneNumber(c.PhoneNumber); err != nil {
		add("phone_number", "%s", ErrorMessage(err))
	} else {
		c.PhoneNumber = n
	}
	if c.Type == ServiceStandard && c.PhoneNumber == "" {
		add("phone_number", "A standard user needs the phone number Teams routes to them (E.164, e.g. +441632960123).")
	}
	c.ExternalID = strings.TrimSpace(c.ExternalID)
	if len(c.ExternalID) > 200 {
		add("external_id", "External ID is limited to 200 characters.")
	}
	return bad
}

// ConfigureUser sets (or with Type ServiceNone removes) a user's PBX line.
// It enforces the licence rules: a standard user consumes one pbx-user, a
// Phone App user one pbx-user and one phone-app-user.
func (s *Service) ConfigureUser(ctx context.Context, p *Principal, accountID, userID string, c UserConfig) (*User, error) {
	var out *User
	err := s.Store.InTx(ctx, func(q Queries) error {
		acc, err := s.customerAccount(ctx, q, p, accountID, true)
		if err != nil {
			return err
		}
		if err := q.LockAccount(ctx, acc.ID); err != nil {
			return err
		}
		u, err := q.User(ctx, acc.ID, userID)
		if ErrorCode(err) == ENotFound {
			return Errorf(ENotFound, "No such user in %s.", acc.Name)
		}
		if err != nil {
			return err
		}
		if bad := checkConfig(u, &c, u.HasPassword); len(bad) > 0 {
			return &Error{Code: EInvalid, Message: fmt.Sprintf("The settings for %s have errors; nothing was saved.", u.UPN), Details: bad}
		}
		lic := newLicenceCheck(s, acc)
		if err := lic.load(ctx, q); err != nil {
			return err
		}
		lic.remove(u)
		if err := s.applyConfig(ctx, q, acc, u, c); err != nil {
			return err
		}
		if err := lic.add(ctx, q, u); err != nil {
			return err
		}
		if err := lic.verify(); err != nil {
			return err
		}
		if err := q.UpdateUserConfig(ctx, u); err != nil {
			return err
		}
		out = u
		return s.audit(ctx, q, p, acc.ID, "user.configure", u.UPN, describeConfig(u, c.Password != nil))
	})
	if err != nil {
		return nil, err
	}
	s.changed(accountID)
	return out, nil
}

// applyConfig checks uniqueness and copies c into u (sealing the password).
func (s *Service) applyConfig(ctx context.Context, q Queries, acc *Account, u *User, c UserConfig) error {
	if c.Type == ServiceNone {
		u.Type, u.SIPUsername, u.AuthUsername, u.PasswordEnc, u.HasPassword = ServiceNone, "", "", nil, false
		u.PhoneNumber, u.ExternalID = "", ""
		u.UpdatedAt = s.now()
		return nil
	}
	if c.PhoneNumber != "" {
		if other, err := q.UserByPhoneNumber(ctx, acc.ID, c.PhoneNumber); err == nil && other.ID != u.ID {
			return Errorf(EConflict, "Phone number %s is already used by %s.", c.PhoneNumber, other.UPN)
		} else if err != nil && ErrorCode(err) != ENotFound {
			return err
		}
	}
	u.Type, u.SIPUsername, u.AuthUsername = c.Type, c.SIPUsername, c.AuthUsername
	u.PhoneNumber, u.ExternalID = c.PhoneNumber, c.ExternalID
	if c.Password != nil {
		u.PasswordEnc = s.Box.Seal([]byte(*c.Password), []byte(u.ID))
		u.HasPassword = true
	}
	if u.ContactUser == "" {
		u.ContactUser = newContactUser()
	}
	u.UpdatedAt = s.now()
	return nil
}

// newContactUser returns an unguessable SIP Contact user part (128 bits).
func newContactUser() string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return "p2t" + hex.EncodeToString(b)
}

func describeConfig(u *User, passwordSet bool) string {
	if u.Type == ServiceNone {
		return "configuration removed"
	}
	pw := "password unchanged"
	if passwordSet {
		pw = "password set"
	}
	return fmt.Sprintf("type %s, sip user %s, auth user %s, number %s, %s", u.Type, u.SIPUsername, u.AuthUsername, u.PhoneNumber, pw)
}

// SIPPassword opens a user's sealed SIP password for the SIP engine. It is
// not reachable from the API or the portal.
func (s *Service) SIPPassword(u *User) (string, error) {
	if len(u.PasswordEnc) == 0 {
		return "", Errorf(EInvalid, "No SIP password is set for %s.", u.UPN)
	}
	pt, err := s.Box.Open(u.PasswordEnc, []byte(u.ID))
	if err != nil {
		return "", &Error{Code: EInternal, Message: "The stored SIP password cannot be decrypted; check the encryption key.", Err: err}
	}
	return string(pt), nil
}

// licenceCheck tracks licence use of one customer while a change is applied,
// then verifies it fits the licences held.
type licenceCheck struct {
	s             *Service
	acc           *Account
	std, app      int
	licences      []Licence
	needsPhoneApp bool
	phoneAppOn    bool
}

func newLicenceCheck(s *Service, acc *Account) *licenceCheck { return &licenceCheck{s: s, acc: acc} }

func (l *licenceCheck) load(ctx context.Context, q Queries) error {
	var err error
	if l.std, l.app, err = q.CountLicenceUse(ctx, l.acc.ID); err != nil {
		return err
	}
	if l.licences, err = l.s.licences(ctx, q, l.acc.ID); err != nil {
		return err
	}
	ts, err := q.TeamsSettings(ctx, l.acc.ID)
	if err != nil && ErrorCode(err) != ENotFound {
		return err
	}
	l.phoneAppOn = ts != nil && ts.PhoneAppEnabled
	return nil
}

func (l *licenceCheck) remove(u *User) {
	if u.ConsumesLicences() {
		if u.Type == ServicePhoneApp {
			l.app--
		} else {
			l.std--
		}
	}
}

func (l *licenceCheck) add(_ context.Context, _ Queries, u *User) error {
	if u.ConsumesLicences() {
		if u.Type == ServicePhoneApp {
			l.app++
			l.needsPhoneApp = true
		} else {
			l.std++
		}
	}
	return nil
}

func (l *licenceCheck) verify() error {
	now := l.s.now()
	pbx, app := l.licences[0], l.licences[1]
	if l.needsPhoneApp && !l.phoneAppOn {
		if !app.Active(now) {
			return Errorf(ELicence, "Phone App needs a phone-app-user licence, which %s does not hold. It needs to be enabled via your licensing provider.", l.acc.Name)
		}
		return Errorf(EInvalid, "Phone App is not turned on for %s: enable it in Teams services, authorize it, then run Sync Now.", l.acc.Name)
	}
	need := l.std + l.app
	if need > 0 && !pbx.Active(now) {
		if pbx.ExpiresAt != nil && pbx.Quantity > 0 {
			return Errorf(ELicence, "The pbx-user trial licence of %s expired on %s; ask your licensing provider for a full licence.", l.acc.Name, pbx.ExpiresAt.Format("2 Jan 2006"))
		}
		return Errorf(ELicence, "%s holds no pbx-user licence; ask your licensing provider to provision pbx-user licences.", l.acc.Name)
	}
	if need > pbx.Quantity {
		return Errorf(ELicence, "This needs %d pbx-user licences but %s holds %d; all are in use. Ask your licensing provider for more, or remove the configuration of another user.", need, l.acc.Name, pbx.Quantity)
	}
	if l.app > 0 {
		if !app.Active(now) {
			if app.ExpiresAt != nil && app.Quantity > 0 {
				return Errorf(ELicence, "The phone-app-user trial licence of %s expired on %s; ask your licensing provider for a full licence.", l.acc.Name, app.ExpiresAt.Format("2 Jan 2006"))
			}
			return Errorf(ELicence, "Phone App needs a phone-app-user licence, which %s does not hold. It needs to be enabled via your licensing provider.", l.acc.Name)
		}
		if l.app > app.Quantity {
			return Errorf(ELicence, "This needs %d phone-app-user licences but %s holds %d; all are in use. Ask your licensing provider for more, or make another Phone App user a standard user.", l.app, l.acc.Name, app.Quantity)
		}
	}
	return nil
}
