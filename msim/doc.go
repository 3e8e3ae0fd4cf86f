// Package msim simulates the parts of Microsoft 365 that pbx2teams talks
// to: the Microsoft identity platform (admin consent, authorization code and
// client-credentials tokens, OpenID metadata and signing keys) and a subset
// of Microsoft Graph v1.0, with Microsoft's URL shapes, JSON shapes, paging,
// delta and error behaviour. It also keeps the Teams facts Graph does not
// expose (coexistence mode, external access) so tests and the sandbox can
// exercise readiness checks. Production code points the same client at
// Microsoft; tests and `serve --sandbox` point it here.
//
// # Using it
//
//	sim, _ := msim.NewSandbox(msim.Options{})  // "Contoso" + two app registrations
//	srv := httptest.NewServer(sim.Handler())   // login and Graph share one base URL
//
// or msim.New(opts) with sim.LoadFile / sim.Load / sim.Generate /
// sim.RegisterApp. Set Options.BaseURL when the simulator sits behind a
// proxy, so links in responses point at the right place. Standalone:
// msim.Serve(ctx, msim.ServeOptions{Addr: "127.0.0.1:8765"}).
//
// # Login endpoints ({tenant} = tenant id, a domain, "organizations" or "common")
//
//	GET  /{tenant}/adminconsent?client_id&redirect_uri&state           (v1 style)
//	GET  /{tenant}/v2.0/adminconsent?client_id&redirect_uri&state&scope (v2)
//	     A small HTML page with Accept (#accept) and Cancel (#cancel); the
//	     POST redirects to redirect_uri with admin_consent=True&tenant=&state=
//	     or error=access_denied&error_description=AADSTS65004...&state=.
//	GET  /{tenant}/oauth2/v2.0/authorize?response_type=code&client_id&redirect_uri&scope&state
//	     [&code_challenge&code_challenge_method=S256&login_hint&nonce]
//	     A sign-in page (#user select, #accept, #cancel); redirects with code=&state=.
//	POST /{tenant}/oauth2/v2.0/token   grant_type=client_credentials | authorization_code | refresh_token
//	GET  /{tenant}/v2.0/.well-known/openid-configuration
//	GET  /{tenant}/discovery/v2.0/keys  (also /common/discovery/v2.0/keys)
//
// Token errors use the identity platform's JSON (error, error_description
// starting "AADSTSnnn:", error_codes, trace_id, correlation_id, timestamp):
// 7000229 when the app has no service principal in the tenant (never
// consented), 65001 when consent was revoked, 700016 unknown client,
// 7000215 wrong secret, 90002 unknown tenant, 1002012 a client-credentials
// scope without /.default, 54005/70008/501481 for bad codes.
//
// Access tokens are RS256 JWTs: app tokens (v1 format like Graph's) carry
// roles (granted by admin consent), delegated tokens carry scp, upn and oid.
// MintUserToken makes Teams-SSO-style tokens for a tab (aud = the app, scp
// access_as_user, tid, oid, preferred_username).
//
// # Graph v1.0 subset (Authorization: Bearer required)
//
//	GET /v1.0/organization, /v1.0/domains, /v1.0/subscribedSkus
//	GET /v1.0/users             $select $filter $top(1..999, default 100) $count $search; @odata.nextLink
//	GET /v1.0/users/$count      (ConsistencyLevel: eventual)
//	GET /v1.0/users/delta       $select; pages of Options.DeltaPageSize; @odata.deltaLink;
//	                            later rounds return changed users and {"id","@removed":{"reason"}};
//	                            $deltatoken=latest; 410 syncStateNotFound after ResetDelta
//	GET /v1.0/users/{id|upn}, /v1.0/me
//	GET /v1.0/groups            $filter $search="displayName:x" (needs ConsistencyLevel: eventual) $top $count
//	GET /v1.0/groups/{id}, /members, /transitiveMembers[/microsoft.graph.user] (paged; nested groups)
//	GET|POST /v1.0/appCatalogs/teamsApps   GET: $filter (externalId, distributionMethod...), $expand=appDefinitions
//	                                       POST application/zip: delegated tokens only (app-only gets 403)
//	GET|DELETE /v1.0/appCatalogs/teamsApps/{id}; POST .../{id}/appDefinitions (update)
//	GET|POST /v1.0/users/{id}/teamwork/installedApps  (teamsApp@odata.bind; 409 if installed)
//	GET|DELETE /v1.0/users/{id}/teamwork/installedApps/{installationId}
//	GET /v1.0/me/contacts, /v1.0/users/{id}/contacts  $top $skip
//
// $filter supports eq, ne, in, gt/ge/lt/le, startswith, endswith, and, or,
// not, parentheses and any() lambdas, e.g.
// assignedPlans/any(p:p/servicePlanId eq 4828c8ec-... and p/capabilityStatus eq 'Enabled').
// ne/not/endswith need $count=true and ConsistencyLevel: eventual, as on
// Graph. Errors use Graph's envelope {"error":{"code","message","innerError":
// {"date","request-id","client-request-id"}}} with Graph's codes
// (Request_UnsupportedQuery, Request_ResourceNotFound, Authorization_RequestDenied,
// InvalidAuthenticationToken, ...). Permissions are checked per API against
// the token's roles or scp. Unlike Microsoft, a revoked consent also makes
// Graph reject tokens already issued (401), so clients see it at once.
//
// # Admin API of the simulator (JSON, no auth: sandbox and tests only)
//
//	GET    /_sim/tenants                        list (id, domains, counts, federation, consents)
//	POST   /_sim/tenants                        body TenantSpec (may hold "generate": GenerateSpec)
//	GET    /_sim/tenants/{t}
//	POST   /_sim/tenants/{t}/users              body UserSpec            -> {"id"}
//	GET    /_sim/tenants/{t}/users/{u}          UserState (licences, coexistenceMode, installedApps)
//	PATCH  /_sim/tenants/{t}/users/{u}          body UserPatch (also coexistenceMode, licences)
//	DELETE /_sim/tenants/{t}/users/{u}[?hard=true]
//	POST   /_sim/tenants/{t}/groups             body GroupSpec           -> {"id"}
//	POST   /_sim/tenants/{t}/groups/{g}/members body {"add":[...],"remove":[...]}
//	GET|PUT /_sim/tenants/{t}/federation        body Federation
//	GET|PUT /_sim/tenants/{t}/consent/{clientId} body {"state":"granted"|"revoked"|"none"}
//	POST   /_sim/tenants/{t}/changes            body {"count":N,"seed":S} -> ChangeSummary
//	POST   /_sim/tenants/{t}/delta/reset        expire delta tokens
//	GET|POST|DELETE /_sim/faults                body Fault (429+Retry-After, 5xx, delay, malformed, drop)
//	GET|DELETE /_sim/stats                      request and token counters
//	GET|POST /_sim/apps                         app registrations (secrets not listed)
//	POST   /_sim/tokens/user                    body UserTokenOptions    -> {"token"}
//
// {t} is a tenant id or domain; {u} a user id or UPN; {g} a group id or
// display name. Every one of these has a Go method on *Sim as well.
//
// # Scale
//
// Users are compact (ids as 16 bytes, licences as bit sets over Catalogue)
// and pages are encoded without reflection: a generated tenant of 100,000
// users pages at $top=999 in well under a second on loopback.
package msim
