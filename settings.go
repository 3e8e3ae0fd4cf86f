package pbx2teams

import (
	"context"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// SetLicence sets the quantity (and trial expiry) of one SKU for a customer.
// Only an admin above the customer (its partner or the operator) may do so. A
// quantity below what is in use is refused: nothing configured changes
// behind the customer's back.
func (s *Service) SetLicence(ctx context.Context, p *Principal, accountID string, sku SKU, quantity int, expiresAt *time.Time) (*Licence, error) {
	if !sku.Valid() {
		return nil, Errorf(EInvalid, "Unknown licence %q; use pbx-user or phone-app-user.", sku)
	}
	if quantity < 0 || quantity > 1000000 {
		return nil, Errorf(EInvalid, "Quantity must be between 0 and 1,000,000.")
	}
	var lic *Licence
	err := s.Store.InTx(ctx, func(q Queries) error {
		acc, err := s.customerAccount(ctx, q, p, accountID, true)
		if err != nil {
			return err
		}
		if p.AccountID == acc.ID {
			return Errorf(EForbidden, "Licences are provisioned by your licensing provider; ask them to change %s.", sku)
		}
		if err := q.LockAccount(ctx, acc.ID); err != nil {
			return err
		}
		std, app, err := q.CountLicenceUse(ctx, acc.ID)
		if err != nil {
			return err
		}
		used := std + app
		if sku == SKUPhoneAppUser {
			used = app
		}
		if quantity < used {
			return Errorf(EConflict, "%d users of %s consume %s; remove the configuration of %d of them first, or keep the quantity at %d or more.",
				used, acc.Name, sku, used-quantity, used)
		}
		if expiresAt != nil {
			t := expiresAt.UTC()
			expiresAt = &t
		}
		lic = &Licence{AccountID: acc.ID, SKU: sku, Quantity: quantity, ExpiresAt: expiresAt, UpdatedAt: s.now(), Used: used}
		if err := q.PutLicence(ctx, lic); err != nil {
			return err
		}
		detail := fmt.Sprintf("%s quantity %d", sku, quantity)
		if expiresAt != nil {
			detail += " trial until " + expiresAt.Format("2006-01-02")
		}
		return s.audit(ctx, q, p, acc.ID, "licence.set", string(sku), detail)
	})
	return lic, err
}

// Licences lists a customer's licences with their use; SKUs not held are
// listed with quantity 0.
func (s *Service) Licences(ctx context.Context, p *Principal, accountID string) ([]Licence, error) {
	acc, err := s.customerAccount(ctx, s.Store, p, accountID, false)
	if err != nil {
		return nil, err
	}
	return s.licences(ctx, s.Store, acc.ID)
}

func (s *Service) licences(ctx context.Context, q Queries, accountID string) ([]Licence, error) {
	held, err := q.Licences(ctx, accountID)
	if err != nil {
		return nil, err
	}
	std, app, err := q.CountLicenceUse(ctx, accountID)
	if err != nil {
		return nil, err
	}
	out := make([]Licence, 0, len(SKUs))
	for _, sku := range SKUs {
		l := Licence{AccountID: accountID, SKU: sku}
		for _, h := range held {
			if h.SKU == sku {
				l = h
			}
		}
		l.Used = std + app
		if sku == SKUPhoneAppUser {
			l.Used = app
		}
		out = append(out, l)
	}
	return out, nil
}

// PhoneAppLicensed reports whether the customer holds an active Phone App
// licence (the portal offers Phone App only then).
func (s *Service) PhoneAppLicensed(ctx context.Context, p *Principal, accountID string) (bool, error) {
	ls, err := s.Licences(ctx, p, accountID)
	if err != nil {
		return false, err
	}
	now := s.now()
	for i := range ls {
		if ls[i].SKU == SKUPhoneAppUser && ls[i].Active(now) {
			return true, nil
		}
	}
	return false, nil
}

// PBXSettings returns a customer's PBX settings (defaults if never saved).
func (s *Service) PBXSettings(ctx context.Context, p *Principal, accountID string) (*PBXSettings, error) {
	acc, err := s.customerAccount(ctx, s.Store, p, accountID, false)
	if err != nil {
		return nil, err
	}
	ps, err := s.Store.PBXSettings(ctx, acc.ID)
	if ErrorCode(err) == ENotFound {
		return &PBXSettings{AccountID: acc.ID, Transport: TransportUDP, RegisterExpiry: 3600, Region: Regions[0]}, nil
	}
	return ps, err
}

var hostRE = regexp.MustCompile(`^(?i)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$`)

// validHost accepts a DNS name or an IP address.
func validHost(h string) bool {
	if net.ParseIP(strings.Trim(h, "[]")) != nil {
		return true
	}
	return len(h) <= 253 && hostRE.MatchString(h)
}

// SetPBXSettings validates and saves a customer's PBX settings; the SIP
// engine re-registers the customer's users promptly.
func (s *Service) SetPBXSettings(ctx context.Context, p *Principal, in PBXSettings) (*PBXSettings, error) {
	in.Domain = strings.ToLower(strings.TrimSpace(in.Domain))
	in.OutboundProxy = strings.TrimSpace(in.OutboundProxy)
	var details []ErrorDetail
	if !validHost(in.Domain) {
		details = append(details, ErrorDetail{Field: "domain", Reason: "Enter the PBX's SIP domain, e.g. pbx.example.com."})
	}
	if in.OutboundProxy != "" {
		host, port, err := net.SplitHostPort(in.OutboundProxy)
		n, perr := strconv.Atoi(port)
		if err != nil || !validHost(host) || perr != nil || n < 1 || n > 65535 {
			details = append(details, ErrorDetail{Field: "outbound_proxy", Reason: "Enter the outbound proxy as host:port, e.g. sbc.example.com:5060, or leave it empty."})
		}
	}
	if in.Transport == "" {
		in.Transport = TransportUDP
	}
	if !in.Transport.Valid() {
		details = append(details, ErrorDetail{Field: "transport", Reason: "Transport must be udp, tcp or tls."})
	}
	if in.RegisterExpiry == 0 {
		in.RegisterExpiry = 3600
	}
	if in.RegisterExpiry < 60 || in.RegisterExpiry > 86400 {
		details = append(details, ErrorDetail{Field: "register_expiry", Reason: "Registration expiry must be between 60 and 86400 seconds."})
	}
	if in.Region == "" {
		in.Region = Regions[0]
	}
	known := false
	for _, r := range Regions {
		known = known || r == in.Region
	}
	if !known {
		details = append(details, ErrorDetail{Field: "region", Reason: "Choose a region from: " + strings.Join(Regions, ", ") + "."})
	}
	if len(details) > 0 {
		return nil, &Error{Code: EInvalid, Message: "The PBX settings have errors; nothing was saved.", Details: details}
	}
	err := s.Store.InTx(ctx, func(q Queries) error {
		acc, err := s.customerAccount(ctx, q, p, in.AccountID, true)
		if err != nil {
			return err
		}
		in.AccountID = acc.ID
		in.UpdatedAt = s.now()
		if err := q.PutPBXSettings(ctx, &in); err != nil {
			return err
		}
		return s.audit(ctx, q, p, acc.ID, "pbx.update", acc.ID, fmt.Sprintf("domain %s proxy %q transport %s expiry %d region %s",
			in.Domain, in.OutboundProxy, in.Transport, in.RegisterExpiry, in.Region))
	})
	if err != nil {
		return nil, err
	}
	s.changed(in.AccountID)
	s.pbxSaved(in.AccountID)
	return &in, nil
}

// TeamsSettings returns a customer's Microsoft 365 and Phone App settings.
func (s *Service) TeamsSettings(ctx context.Context, p *Principal, accountID string) (*TeamsSettings, error) {
	acc, err := s.customerAccount(ctx, s.Store, p, accountID, false)
	if err != nil {
		return nil, err
	}
	ts, err := s.Store.TeamsSettings(ctx, acc.ID)
	if err != nil && ErrorCode(err) != ENotFound {
		return nil, err
	}
	if ts == nil || ts.SBCLabel == "" {
		// Every customer has an SBC label; one created before labels
		// existed gets its default on first read.
		return s.assignDefaultSBCLabel(ctx, acc)
	}
	return ts, nil
}

// TeamsOptions are the customer-editable Teams services switches; nil
// fields are left as they are.
type TeamsOptions struct {
	PhoneAppEnabled     *bool   `json:"phone_app_enabled,omitempty"`
	LargeTenantMode     *bool   `json:"large_tenant_mode,omitempty"`
	StandardGroups      []Group `json:"standard_groups,omitempty"`
	PhoneAppGroup       *Group  `json:"phone_app_group,omitempty"`
	SyncIntervalMinutes *int    `json:"sync_interval_minutes,omitempty"`
	// SBCLabel changes the customer's SBC subdomain label (see SetSBCLabel).
	SBCLabel *string `json:"sbc_label,omitempty"`
}

// SetTeamsOptions changes the Teams services switches. Phone App can only be
// enabled with an active phone-app-user licence.
func (s *Service) SetTeamsOptions(ctx context.Context, p *Principal, accountID string, o TeamsOptions) (*TeamsSettings, error) {
	var label string
	if o.SBCLabel != nil {
		if label = NormalizeSBCLabel(*o.SBCLabel); !ValidSBCLabel(label) {
			return nil, sbcLabelError(label)
		}
	}
	var out *TeamsSettings
	err := s.Store.InTx(ctx, func(q Queries) error {
		acc, err := s.customerAccount(ctx, q, p, accountID, true)
		if err != nil {
			return err
		}
		ts, err := teamsSettingsOrNew(ctx, q, acc.ID)
		if err != nil {
			return err
		}
		var changes []string
		if o.PhoneAppEnabled != nil && *o.PhoneAppEnabled != ts.PhoneAppEnabled {
			if *o.PhoneAppEnabled {
				ls, err := s.licences(ctx, q, acc.ID)
				if err != nil {
					return err
				}
				if !ls[1].Active(s.now()) {
					return Errorf(ELicence, "Phone App needs a phone-app-user licence, which %s does not hold. It needs to be enabled via your licensing provider.", acc.Name)
				}
			} else {
				_, app, err := q.CountLicenceUse(ctx, acc.ID)
				if err != nil {
					return err
				}
				if app > 0 {
					return Errorf(EConflict, "%d users are configured as Phone App users; change them to standard or remove their configuration before turning Phone App off.", app)
				}
			}
			ts.PhoneAppEnabled = *o.PhoneAppEnabled
			changes = append(changes, fmt.Sprintf("phone app enabled=%v", ts.PhoneAppEnabled))
		}
		if o.LargeTenantMode != nil {
			ts.LargeTenantMode = *o.LargeTenantMode
			changes = append(changes, fmt.Sprintf("large tenant mode=%v", ts.LargeTenantMode))
		}
		if o.StandardGroups != nil {
			ts.StandardGroups = o.StandardGroups
			changes = append(changes, fmt.Sprintf("standard groups=%d", len(o.StandardGroups)))
		}
		if o.PhoneAppGroup != nil {
			if o.PhoneAppGroup.ID == "" {
				ts.PhoneAppGroup = nil
			} else {
				for _, g := range ts.StandardGroups {
					if g.ID == o.PhoneAppGroup.ID {
						return Errorf(EInvalid, "Group %s is already a standard users' group; Phone App users need a group of their own.", g.DisplayName)
					}
				}
				ts.PhoneAppGroup = o.PhoneAppGroup
			}
			changes = append(changes, "phone app group set")
		}
		if o.SyncIntervalMinutes != nil {
			if *o.SyncIntervalMinutes < 0 || *o.SyncIntervalMinutes > 7*24*60 {
				return Errorf(EInvalid, "Automatic sync interval must be 0 (off) to 10080 minutes.")
			}
			ts.SyncIntervalMinutes = *o.SyncIntervalMinutes
			changes = append(changes, fmt.Sprintf("sync interval=%dm", ts.SyncIntervalMinutes))
		}
		if o.SBCLabel != nil {
			detail, err := setSBCLabel(ctx, q, acc, ts, label)
			if err != nil {
				return err
			}
			if detail != "" {
				changes = append(changes, detail)
			}
		} else if _, err := ensureSBCLabel(ctx, q, acc, ts); err != nil {
			return err
		}
		ts.UpdatedAt = s.now()
		if err := q.PutTeamsSettings(ctx, ts); err != nil {
			return err
		}
		out = ts
		return s.audit(ctx, q, p, acc.ID, "teams.update", acc.ID, strings.Join(changes, ", "))
	})
	return out, err
}

// teamsSettingsOrNew returns a customer's Teams settings, or new defaults
// when none were stored yet.
func teamsSettingsOrNew(ctx context.Context, q Queries, accountID string) (*TeamsSettings, error) {
	ts, err := q.TeamsSettings(ctx, accountID)
	if ErrorCode(err) == ENotFound {
		return &TeamsSettings{AccountID: accountID, SyncIntervalMinutes: 60}, nil
	}
	return ts, err
}
