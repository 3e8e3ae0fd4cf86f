package m365

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/pbx2teams/pbx2teams"
)

// Graph makes Microsoft Graph v1.0 calls in one tenant, either as the app
// (Client.App: application permissions, cached app tokens) or as a
// signed-in user (Client.Delegated).
type Graph struct {
	c      *Client
	tenant string

	mu        sync.Mutex
	delegated *DelegatedToken // nil for app-only
}

// App returns a Graph that acts as the app in tenantID.
func (c *Client) App(tenantID string) *Graph { return &Graph{c: c, tenant: tenantID} }

// Delegated returns a Graph that acts as the user of t (renewed with its
// refresh token when it expires).
func (c *Client) Delegated(t *DelegatedToken) *Graph {
	return &Graph{c: c, tenant: t.TenantID, delegated: t}
}

// Tenant is the tenant the Graph acts in.
func (g *Graph) Tenant() string { return g.tenant }

func (g *Graph) token(ctx context.Context) (string, error) {
	if g.delegated == nil {
		return g.c.AppToken(ctx, g.tenant)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.c.now().Add(time.Minute).Before(g.delegated.ExpiresAt) || g.delegated.RefreshToken == "" {
		return g.delegated.AccessToken, nil
	}
	nt, err := g.c.RefreshDelegated(ctx, g.delegated)
	if err != nil {
		return "", err
	}
	*g.delegated = *nt
	return nt.AccessToken, nil
}

// call performs one Graph request (absolute URL) and returns the answer.
// On 401 with an app token it drops the cached token and tries once more,
// so a revoked consent surfaces as the token endpoint's clear error.
func (g *Graph) call(ctx context.Context, method, u string, hdr http.Header, body []byte, ctype string) (*response, error) {
	for try := 0; ; try++ {
		tok, err := g.token(ctx)
		if err != nil {
			return nil, err
		}
		r := &request{method: method, url: u, header: hdr, body: body, contentType: ctype, bearer: tok,
			retryAll: method == http.MethodGet || method == http.MethodDelete}
		res, err := g.c.send(ctx, r)
		if err != nil {
			if ge, ok := err.(*GraphError); ok {
				if ge.Status == 401 && g.delegated == nil && try == 0 {
					g.c.ForgetToken(g.tenant)
					continue
				}
				return res, graphErr(ge, g.tenant)
			}
			return res, err
		}
		return res, nil
	}
}

// url builds a Graph v1.0 URL from a path and query pairs. Values are
// percent-encoded (spaces as %20, which every OData parser accepts).
func (g *Graph) url(path string, kv ...string) string {
	u := g.c.cfg.GraphURL + "/v1.0" + path
	if len(kv) == 0 {
		return u
	}
	var b strings.Builder
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == "" {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('&')
		}
		b.WriteString(kv[i])
		b.WriteByte('=')
		b.WriteString(strings.ReplaceAll(url.QueryEscape(kv[i+1]), "+", "%20"))
	}
	if b.Len() == 0 {
		return u
	}
	return u + "?" + b.String()
}

func (g *Graph) getJSON(ctx context.Context, u string, hdr http.Header, v any) error {
	res, err := g.call(ctx, http.MethodGet, u, hdr, nil, "")
	if err != nil {
		return err
	}
	if err := json.Unmarshal(res.body, v); err != nil {
		return malformed(http.MethodGet, u, 1, err)
	}
	return nil
}

func malformed(method, u string, page int, err error) error {
	return &pbx2teams.Error{Code: pbx2teams.EUnavailable,
		Message: fmt.Sprintf("Microsoft Graph returned a malformed answer to %s %s (page %d): %v. Nothing from it was used; try again.", method, logPath(u), page, err),
		Err:     err}
}

// pageOf is one page of a Graph collection.
type pageOf[T any] struct {
	NextLink  string `json:"@odata.nextLink"`
	DeltaLink string `json:"@odata.deltaLink"`
	Count     *int   `json:"@odata.count"`
	Value     []T    `json:"value"`
}

// iterate follows @odata.nextLink from first, calling fn once per page,
// and returns the final @odata.deltaLink (delta queries). hdr is sent on
// every page (ConsistencyLevel is not carried by nextLinks). While fn works
// on one page the next one is already being fetched, so at most two pages
// are held: memory does not grow with the collection.
func iterate[T any](ctx context.Context, g *Graph, first string, hdr http.Header, fn func([]T) error) (string, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type result struct {
		res *response
		err error
	}
	get := func(u string) result {
		res, err := g.call(ctx, http.MethodGet, u, hdr, nil, "")
		return result{res, err}
	}
	var pending chan result // the prefetch in flight, if any
	defer func() {
		if pending != nil {
			cancel()
			<-pending
		}
	}()
	u := first
	cur := get(u)
	for n := 1; ; n++ {
		if cur.err != nil {
			return "", cur.err
		}
		body := cur.res.body
		peek := peekNextLink(body)
		if peek != "" && g.sameOrigin(peek) == nil {
			ch := make(chan result, 1)
			pending = ch
			go func() { ch <- get(peek) }()
		}
		var p pageOf[T]
		if err := json.Unmarshal(body, &p); err != nil {
			return "", malformed(http.MethodGet, u, n, err)
		}
		if p.Value == nil && p.NextLink == "" && p.DeltaLink == "" {
			return "", malformed(http.MethodGet, u, n, fmt.Errorf("no value collection"))
		}
		if err := fn(p.Value); err != nil {
			return "", err
		}
		if p.NextLink == "" {
			return p.DeltaLink, nil
		}
		if err := g.sameOrigin(p.NextLink); err != nil {
			return "", err
		}
		u = p.NextLink
		if pending != nil {
			r := <-pending
			pending = nil
			if peek == p.NextLink {
				cur = r
				continue
			}
		}
		cur = get(u)
	}
}

var (
	nextKey   = []byte(`"@odata.nextLink":"`)
	valueKey  = []byte(`"value":`)
	tailNext  = []byte(`],"@odata.nextLink":"`)
	peekBytes = 8192
)

// peekNextLink finds the top-level @odata.nextLink of a page without
// decoding it: before "value" near the start (where Graph puts it) or
// right after the value array at the end. "" if not found; the decoded
// page decides in any case.
func peekNextLink(b []byte) string {
	head := b[:min(len(b), peekBytes)]
	at := -1
	if i := bytes.Index(head, nextKey); i >= 0 {
		if v := bytes.Index(head, valueKey); v < 0 || i < v {
			at = i + len(nextKey)
		}
	}
	if at < 0 {
		off := max(0, len(b)-peekBytes)
		if i := bytes.LastIndex(b[off:], tailNext); i >= 0 {
			at = off + i + len(tailNext)
		}
	}
	if at < 0 {
		return ""
	}
	end := at
	for end < len(b) && b[end] != '"' {
		if b[end] == '\\' {
			end++
		}
		end++
	}
	if end >= len(b) {
		return ""
	}
	var s string
	if json.Unmarshal(b[at-1:end+1], &s) != nil {
		return ""
	}
	return s
}

// sameOrigin refuses links that would send the token to another host.
func (g *Graph) sameOrigin(link string) error {
	if strings.HasPrefix(link, g.c.cfg.GraphURL+"/") {
		return nil
	}
	return &pbx2teams.Error{Code: pbx2teams.EUnavailable,
		Message: fmt.Sprintf("Microsoft Graph returned a paging link to another host (%s); it was not followed.", logPath(link))}
}

func eventual() http.Header { return http.Header{"Consistencylevel": {"eventual"}} }

// Organization is the tenant's /organization entry.
type Organization struct {
	ID                string           `json:"id"`
	DisplayName       string           `json:"displayName"`
	CountryLetterCode string           `json:"countryLetterCode"`
	VerifiedDomains   []VerifiedDomain `json:"verifiedDomains"`
}

// VerifiedDomain is one of the tenant's domains.
type VerifiedDomain struct {
	Name      string `json:"name"`
	IsDefault bool   `json:"isDefault"`
	IsInitial bool   `json:"isInitial"`
}

// DefaultDomain is the tenant's default domain name.
func (o *Organization) DefaultDomain() string {
	for _, d := range o.VerifiedDomains {
		if d.IsDefault {
			return d.Name
		}
	}
	if len(o.VerifiedDomains) > 0 {
		return o.VerifiedDomains[0].Name
	}
	return ""
}

// Organization reads /organization (needs Organization.Read.All).
func (g *Graph) Organization(ctx context.Context) (*Organization, error) {
	var p pageOf[Organization]
	if err := g.getJSON(ctx, g.url("/organization"), nil, &p); err != nil {
		return nil, err
	}
	if len(p.Value) == 0 {
		return nil, pbx2teams.Errorf(pbx2teams.EUnavailable, "Microsoft Graph returned no organization for tenant %s.", g.tenant)
	}
	return &p.Value[0], nil
}

// Domain is one of /domains.
type Domain struct {
	ID                string   `json:"id"`
	IsDefault         bool     `json:"isDefault"`
	IsInitial         bool     `json:"isInitial"`
	IsVerified        bool     `json:"isVerified"`
	SupportedServices []string `json:"supportedServices"`
}

// Domains lists the tenant's domains (Domain.Read.All).
func (g *Graph) Domains(ctx context.Context) ([]Domain, error) {
	var out []Domain
	_, err := iterate(ctx, g, g.url("/domains"), nil, func(p []Domain) error { out = append(out, p...); return nil })
	return out, err
}

// SubscribedSku is a licence product the tenant holds.
type SubscribedSku struct {
	SkuID         string `json:"skuId"`
	SkuPartNumber string `json:"skuPartNumber"`
	ConsumedUnits int    `json:"consumedUnits"`
	PrepaidUnits  struct {
		Enabled int `json:"enabled"`
	} `json:"prepaidUnits"`
	ServicePlans []struct {
		ServicePlanID   string `json:"servicePlanId"`
		ServicePlanName string `json:"servicePlanName"`
	} `json:"servicePlans"`
}

// SubscribedSkus lists the tenant's licence products.
func (g *Graph) SubscribedSkus(ctx context.Context) ([]SubscribedSku, error) {
	var out []SubscribedSku
	_, err := iterate(ctx, g, g.url("/subscribedSkus"), nil, func(p []SubscribedSku) error { out = append(out, p...); return nil })
	return out, err
}
