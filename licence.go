package pbx2teams

import "time"

// SKU names a licence product.
type SKU string

// The SKUs. A standard user consumes one SKUPBXUser; a Phone App user one
// SKUPBXUser and one SKUPhoneAppUser.
const (
	SKUPBXUser      SKU = "pbx-user"
	SKUPhoneAppUser SKU = "phone-app-user"
)

// SKUs lists every SKU in display order.
var SKUs = []SKU{SKUPBXUser, SKUPhoneAppUser}

// Valid reports whether s is a known SKU.
func (s SKU) Valid() bool { return s == SKUPBXUser || s == SKUPhoneAppUser }

// Licence is a quantity of one SKU held by a customer. A trial licence has an
// expiry; after it, the SKU counts as not held.
type Licence struct {
	AccountID string     `json:"account_id"`
	SKU       SKU        `json:"sku"`
	Quantity  int        `json:"quantity"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	UpdatedAt time.Time  `json:"updated_at"`
	// Used is filled in by the service when listing: users consuming it.
	Used int `json:"used"`
}

// Active reports whether the licence can be consumed at time now.
func (l *Licence) Active(now time.Time) bool {
	return l != nil && l.Quantity > 0 && (l.ExpiresAt == nil || now.Before(*l.ExpiresAt))
}

// Transport is a SIP transport toward a PBX.
type Transport string

// Transports.
const (
	TransportUDP Transport = "udp"
	TransportTCP Transport = "tcp"
	TransportTLS Transport = "tls"
)

// Valid reports whether t is a known transport.
func (t Transport) Valid() bool { return t == TransportUDP || t == TransportTCP || t == TransportTLS }

// PBXSettings is how a customer's users register to its PBX.
type PBXSettings struct {
	AccountID      string    `json:"account_id"`
	Domain         string    `json:"domain"`                   // SIP domain, e.g. pbx.example.com
	OutboundProxy  string    `json:"outbound_proxy,omitempty"` // host:port, optional
	Transport      Transport `json:"transport"`
	RegisterExpiry int       `json:"register_expiry"` // seconds requested in REGISTER
	Region         string    `json:"region"`          // chooses primary and secondary node
	UpdatedAt      time.Time `json:"updated_at"`
}

// Regions offered for PBX settings, each with a primary and secondary node.
var Regions = []string{"eu-west", "eu-central", "uk", "us-east", "us-west", "apac"}

// TeamsSettings is a customer's Microsoft 365 connection and Phone App state.
type TeamsSettings struct {
	AccountID            string     `json:"account_id"`
	TenantID             string     `json:"tenant_id,omitempty"`
	TenantName           string     `json:"tenant_name,omitempty"`
	ConsentedAt          *time.Time `json:"consented_at,omitempty"`
	ConsentError         string     `json:"consent_error,omitempty"`
	PhoneAppEnabled      bool       `json:"phone_app_enabled"`
	PhoneAppAuthorizedAt *time.Time `json:"phone_app_authorized_at,omitempty"`
	LargeTenantMode      bool       `json:"large_tenant_mode"`
	StandardGroups       []Group    `json:"standard_groups,omitempty"`
	PhoneAppGroup        *Group     `json:"phone_app_group,omitempty"`
	SyncIntervalMinutes  int        `json:"sync_interval_minutes"`
	// SBCLabel is the customer's subdomain label under the provider's SBC
	// base FQDN (label.sbc.example.com), unique across customers; Microsoft
	// finds the customer's tenant from it.
	SBCLabel  string    `json:"sbc_label,omitempty"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Group is an Entra ID group chosen for Large Tenant Mode.
type Group struct {
	ID          string `json:"id"`
	DisplayName string `json:"display_name"`
}
