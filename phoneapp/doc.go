// Package phoneapp serves the Phone App: the dialler tab a Phone App user
// opens inside Microsoft Teams (the personal static tab of the Teams app
// package built by package teamsapp). It is one http.Handler holding the
// page, its script and style (embedded, no CDN, no inline script), and a
// small JSON API the page calls:
//
//	GET  {base}                      the tab (HTML)
//	GET  {base}app.js, teams.js, app.css
//	GET  {base}api/me                who is signed in and the line's registration state
//	GET  {base}api/calls             the user's calls in progress (Dialler.Calls)
//	POST {base}api/calls             {"number"} → place a callback-first call (201, LiveCall)
//	POST {base}api/calls/{id}/hangup
//	POST {base}api/calls/{id}/hold   {"on": true|false}
//	POST {base}api/calls/{id}/transfer {"target"} blind, or {"call_id"} attended
//	POST {base}api/calls/{id}/dtmf   {"digits"}
//	GET  {base}api/recent            the user's recent calls (call log)
//	GET  {base}api/contacts?q=       Outlook contacts and directory users with numbers
//	GET  {base}api/events            live call and line state as server-sent events
//
// # Sign-in
//
// Every API request carries the Teams SSO token in Authorization: Bearer.
// The handler validates it (Config.Validator, normally *m365.SSOValidator:
// signature from the JWKS, expiry, audience, issuer, scope, tenant), maps
// (tid, oid) to the synced user (Config.Users), and refuses, with a message
// the page shows as it is, anyone who is not an active Phone App user of a
// customer connected to that tenant. There are no cookies and no server
// sessions.
//
// # Wiring
//
//	h, err := phoneapp.New(phoneapp.Config{
//		BasePath:  "/phone/",
//		Validator: &m365.SSOValidator{Audiences: []string{clientID, "api://" + host + "/" + clientID}, Tenants: connected},
//		Users:     phoneapp.TenantUsers{Accounts: accountsOfTenant, ByObjectID: store.UserByObjectID},
//		Dialler:   b2bua.Dialler(),
//		Registrations: sipEngine,
//		Recent:    phoneapp.StoreRecent(store.Calls),
//		Contacts:  &phoneapp.ContactSources{Outlook: outlook, Directory: store.Users},
//	})
//	mux.Handle("/phone/", h)
//
// In the sandbox, FrameAncestors: []string{"'self'"} lets the simulated
// Teams client (package msim/teamsclient) on the same origin frame the tab.
//
// # Live state: server-sent events over fetch
//
// The page reads api/events with fetch() and a ReadableStream rather than
// EventSource, because EventSource cannot send an Authorization header:
// with fetch the SSO token travels the same way as on every other call, it
// never appears in a URL (logs, history, Referer), no ticket store is needed
// on the server, and nothing depends on third-party cookies, which browsers
// block inside the Teams iframe. The stream starts with a snapshot (the
// calls in progress and the line state), then sends each change; it ends
// when the token expires and the page reconnects with a fresh one. A reload
// therefore shows a call in progress again: the page fetches api/calls and
// the stream's snapshot on load.
//
// # TeamsJS without the library
//
// teams.js is our own client side of the TeamsJS v2 postMessage protocol,
// limited to the three calls the tab needs: "initialize", "getContext" and
// "authentication.getAuthToken". Requests are {id, uuid, func, timestamp,
// args} posted to window.parent (initialize to any origin, as TeamsJS does,
// since it carries nothing secret; later requests only to the origin that
// answered); responses are {id, args} from window.parent, accepted only from
// Teams' origins or Config.HostOrigins. initialize answers [frameContext,
// hostClientType, runtimeConfig, sdkVersion]; getContext answers [context]
// in the legacy flat shape (tid, userObjectId, userPrincipalName, loginHint,
// theme); getAuthToken answers [ok, tokenOrError]. A host message without
// id, {func: "themeChange", args: [theme]}, switches the page's theme.
//
// Verified only against our own host (package msim/teamsclient), not against
// the Teams client: the message shapes above as read from the TeamsJS
// source, that Teams answers initialize before any other request, the legacy
// context field names, that Teams sends themeChange without the tab first
// registering a handler, and the set of Teams origins the page accepts
// (TeamsFrameAncestors, from TeamsJS's list of valid origins). If
// the real client differs, the tab shows "Teams did not answer" and the fix
// belongs in static/teams.js.
package phoneapp
