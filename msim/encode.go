package msim

import (
	"strings"
	"time"
	"unicode/utf8"
)

// Hand-written JSON appenders for the hot paths (user pages): a 999-user
// page encodes in about a millisecond without reflection.

const hexDigits = "0123456789abcdef"

func appendStr(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// appendNullStr writes s, or null when empty (Graph's nullable strings).
func appendNullStr(b []byte, s string) []byte {
	if s == "" {
		return append(b, "null"...)
	}
	return appendStr(b, s)
}

func appendTime(b []byte, unix int64) []byte {
	b = append(b, '"')
	b = time.Unix(unix, 0).UTC().AppendFormat(b, "2006-01-02T15:04:05Z")
	return append(b, '"')
}

func appendKey(b []byte, first *bool, k string) []byte {
	if !*first {
		b = append(b, ',')
	}
	*first = false
	b = append(b, '"')
	b = append(b, k...)
	return append(b, '"', ':')
}

// appendUser writes u with the properties in sel.
func appendUser(b []byte, u *user, sel uint32, typed bool) []byte {
	b = append(b, '{')
	first := true
	if typed {
		b = appendKey(b, &first, "@odata.type")
		b = append(b, `"#microsoft.graph.user"`...)
	}
	for _, p := range userProps {
		if sel&p.bit == 0 {
			continue
		}
		b = appendKey(b, &first, p.name)
		switch p.bit {
		case fID:
			b = append(b, '"')
			b = u.id.append(b)
			b = append(b, '"')
		case fAccountEnabled:
			if u.enabled() {
				b = append(b, "true"...)
			} else {
				b = append(b, "false"...)
			}
		case fAssignedLicenses:
			b = appendLicenses(b, u)
		case fAssignedPlans:
			b = appendPlans(b, u)
		case fBusinessPhones:
			if u.phone == "" {
				b = append(b, "[]"...)
			} else {
				b = append(b, '[')
				b = appendStr(b, u.phone)
				b = append(b, ']')
			}
		case fCompanyName, fOfficeLocation, fPreferredLanguage:
			b = append(b, "null"...)
		case fCreatedDateTime:
			b = appendTime(b, u.created)
		case fDepartment:
			b = appendNullStr(b, u.department)
		case fDisplayName:
			b = appendNullStr(b, u.displayName)
		case fGivenName:
			b = appendNullStr(b, u.givenName)
		case fJobTitle:
			b = appendNullStr(b, u.jobTitle)
		case fMail:
			b = appendNullStr(b, u.mail)
		case fMobilePhone:
			b = appendNullStr(b, u.mobile)
		case fOnPremisesSyncEnabled:
			b = append(b, "null"...)
		case fSurname:
			b = appendNullStr(b, u.surname)
		case fUsageLocation:
			b = appendNullStr(b, u.usage)
		case fUPN:
			b = appendStr(b, u.upn)
		case fUserType:
			if u.flags&uGuest != 0 {
				b = append(b, `"Guest"`...)
			} else {
				b = append(b, `"Member"`...)
			}
		}
	}
	return append(b, '}')
}

func appendLicenses(b []byte, u *user) []byte {
	b = append(b, '[')
	n := 0
	for i := range Catalogue {
		if u.skus&(1<<uint(i)) == 0 {
			continue
		}
		if n > 0 {
			b = append(b, ',')
		}
		n++
		b = append(b, `{"disabledPlans":[`...)
		m := 0
		for _, p := range Catalogue[i].Plans {
			if u.disabled&(1<<uint(planIdx[p.ID])) != 0 {
				if m > 0 {
					b = append(b, ',')
				}
				m++
				b = appendStr(b, p.ID)
			}
		}
		b = append(b, `],"skuId":`...)
		b = appendStr(b, Catalogue[i].ID)
		b = append(b, '}')
	}
	return append(b, ']')
}

// userPlans returns the plan-table bits of u's enabled plans and of plans
// it lost with a removed licence.
func userPlans(u *user) (current, removed uint32) {
	for i := range Catalogue {
		bit := uint32(1) << uint(i)
		if u.skus&bit == 0 && u.removedSkus&bit == 0 {
			continue
		}
		for _, p := range Catalogue[i].Plans {
			pb := uint32(1) << uint(planIdx[p.ID])
			if u.skus&bit != 0 {
				if u.disabled&pb == 0 {
					current |= pb
				}
			} else {
				removed |= pb
			}
		}
	}
	return current, removed &^ current
}

func appendPlans(b []byte, u *user) []byte {
	cur, rem := userPlans(u)
	b = append(b, '[')
	n := 0
	for i, p := range planTable {
		pb := uint32(1) << uint(i)
		if (cur|rem)&pb == 0 {
			continue
		}
		if n > 0 {
			b = append(b, ',')
		}
		n++
		b = append(b, `{"assignedDateTime":`...)
		b = appendTime(b, u.licensedAt)
		b = append(b, `,"capabilityStatus":"`...)
		if cur&pb != 0 {
			b = append(b, planStatuses[u.status]...)
		} else {
			b = append(b, "Deleted"...)
		}
		b = append(b, `","service":`...)
		b = appendStr(b, p.Service)
		b = append(b, `,"servicePlanId":`...)
		b = appendStr(b, p.ID)
		b = append(b, '}')
	}
	return append(b, ']')
}

// Group properties, for $select.
const (
	gID uint32 = 1 << iota
	gCreated
	gDescription
	gDisplayName
	gGroupTypes
	gMail
	gMailEnabled
	gMailNickname
	gSecurityEnabled
)

var groupProps = []struct {
	name string
	bit  uint32
}{
	{"id", gID}, {"createdDateTime", gCreated}, {"description", gDescription}, {"displayName", gDisplayName},
	{"groupTypes", gGroupTypes}, {"mail", gMail}, {"mailEnabled", gMailEnabled},
	{"mailNickname", gMailNickname}, {"securityEnabled", gSecurityEnabled},
}

const allGroupProps = gID | gCreated | gDescription | gDisplayName | gGroupTypes | gMail | gMailEnabled | gMailNickname | gSecurityEnabled

func appendGroup(b []byte, g *group, sel uint32, typed bool, dom string) []byte {
	b = append(b, '{')
	first := true
	if typed {
		b = appendKey(b, &first, "@odata.type")
		b = append(b, `"#microsoft.graph.group"`...)
	}
	for _, p := range groupProps {
		if sel&p.bit == 0 {
			continue
		}
		b = appendKey(b, &first, p.name)
		switch p.bit {
		case gID:
			b = append(b, '"')
			b = g.id.append(b)
			b = append(b, '"')
		case gCreated:
			b = appendTime(b, g.created)
		case gDescription:
			b = appendNullStr(b, g.description)
		case gDisplayName:
			b = appendStr(b, g.displayName)
		case gGroupTypes:
			if g.unified {
				b = append(b, `["Unified"]`...)
			} else {
				b = append(b, "[]"...)
			}
		case gMail:
			if g.mailEnabled {
				b = appendStr(b, g.mailNick+"@"+dom)
			} else {
				b = append(b, "null"...)
			}
		case gMailEnabled:
			b = appendBool(b, g.mailEnabled)
		case gMailNickname:
			b = appendStr(b, g.mailNick)
		case gSecurityEnabled:
			b = appendBool(b, g.security)
		}
	}
	return append(b, '}')
}

func appendBool(b []byte, v bool) []byte {
	if v {
		return append(b, "true"...)
	}
	return append(b, "false"...)
}

// userObj adapts a user to the filter engine.
type userObj struct{ u *user }

func (o userObj) prop(name string) (any, bool) {
	u := o.u
	switch name {
	case "id":
		return u.id.String(), true
	case "userPrincipalName":
		return u.upn, true
	case "displayName":
		return nullable(u.displayName), true
	case "givenName":
		return nullable(u.givenName), true
	case "surname":
		return nullable(u.surname), true
	case "mail":
		return nullable(u.mail), true
	case "jobTitle":
		return nullable(u.jobTitle), true
	case "department":
		return nullable(u.department), true
	case "mobilePhone":
		return nullable(u.mobile), true
	case "usageLocation":
		return nullable(u.usage), true
	case "accountEnabled":
		return u.enabled(), true
	case "userType":
		if u.flags&uGuest != 0 {
			return "Guest", true
		}
		return "Member", true
	case "businessPhones":
		if u.phone == "" {
			return []any{}, true
		}
		return []any{u.phone}, true
	case "assignedLicenses":
		var out []any
		for i := range Catalogue {
			if u.skus&(1<<uint(i)) != 0 {
				out = append(out, mapObj{"skuId": Catalogue[i].ID})
			}
		}
		return out, true
	case "assignedPlans":
		cur, rem := userPlans(u)
		var out []any
		for i, p := range planTable {
			pb := uint32(1) << uint(i)
			st := ""
			if cur&pb != 0 {
				st = planStatuses[u.status]
			} else if rem&pb != 0 {
				st = "Deleted"
			} else {
				continue
			}
			out = append(out, mapObj{"servicePlanId": p.ID, "capabilityStatus": st, "service": p.Service})
		}
		return out, true
	}
	return nil, false
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

type mapObj map[string]any

func (m mapObj) prop(name string) (any, bool) {
	for k, v := range m {
		if strings.EqualFold(k, name) {
			return v, true
		}
	}
	return nil, false
}

type groupObj struct {
	g   *group
	dom string
}

func (o groupObj) prop(name string) (any, bool) {
	g := o.g
	switch name {
	case "id":
		return g.id.String(), true
	case "displayName":
		return g.displayName, true
	case "description":
		return nullable(g.description), true
	case "mailNickname":
		return g.mailNick, true
	case "mail":
		if g.mailEnabled {
			return g.mailNick + "@" + o.dom, true
		}
		return nil, true
	case "securityEnabled":
		return g.security, true
	case "mailEnabled":
		return g.mailEnabled, true
	case "groupTypes":
		if g.unified {
			return []any{"Unified"}, true
		}
		return []any{}, true
	}
	return nil, false
}
