// Package m365 is pbx2teams' client for Microsoft 365: the identity
// platform (admin consent, authorization code sign-in, client-credentials
// tokens) and Microsoft Graph v1.0 (users, delta, groups, Teams app
// catalog and per-user installs, contacts). The same code talks to
// Microsoft in production (Config defaults) and to the msim simulator in
// tests and the sandbox (Config.LoginURL and GraphURL).
//
// One Client serves one app registration in every customer tenant:
//
//	c := m365.New(m365.Config{ClientID: id, ClientSecret: secret})
//	url := c.AdminConsentURL("", callbackURL, state)       // send the admin there
//	res, err := m365.ParseConsentCallback(r.URL.Query())   // check res.State first
//	org, err := c.VerifyConsent(ctx, res.Tenant)           // proves consent, names the tenant
//	g := c.App(res.Tenant)                                 // app-only Graph, cached tokens
//	link, err := g.UsersDelta(ctx, "", nil, func(p []m365.User) error { ...; return nil })
//
// Requests are retried on 429 (honouring Retry-After), 5xx and timeouts
// with exponential backoff and jitter, within Config.Retry's bounds.
// Errors reaching callers are *pbx2teams.Error with a message for people;
// the Graph or token detail is in the chain (AsGraphError, AsTokenError)
// and predicates say what to do (NeedsConsent, IsConsentRevoked,
// IsDeltaExpired, IsThrottled, IsNotFound). Collections are streamed a
// page at a time to callbacks; nothing holds a whole tenant in memory.
// WithDiagnostics (or Config.Diagnostic) logs every request.
package m365
