package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strings"

	"github.com/pbx2teams/pbx2teams"
)

// The OpenAPI 3.1 document is Go data: one entry per endpoint in
// operations (keyed "METHOD path" below the prefix, independent of the
// route table so that a test can check the two agree) and the schemas of
// every body in schemas(). renderSpec assembles and encodes it once.

type m = map[string]any

// operation documents one endpoint.
type operation struct {
	id          string
	tag         string
	summary     string
	description string
	query       []string // names of query parameters in components/parameters
	body        *reqBody
	status      int    // success status
	result      string // schema name of the success body; "" for none
	resultType  string // media type of the success body (default JSON)
	errors      []int  // error statuses beyond those every authenticated call may get
	public      bool
}

type reqBody struct {
	schema      string
	contentType string // default application/json
	description string
	optional    bool // the body may be left out
}

// Statuses every authenticated endpoint may answer with.
var commonErrors = []int{401, 403, 404, 429, 500, 503}

// Statuses every endpoint with a JSON body may answer with as well.
var bodyErrors = []int{400, 413, 415, 422}

var operations = map[string]operation{
	"GET /openapi.json": {id: "getOpenAPI", tag: "meta", summary: "This OpenAPI document", public: true,
		status: 200, result: "", resultType: "application/json"},
	"GET /me": {id: "getMe", tag: "meta", summary: "Who is calling",
		description: "The caller's name, role and account. With a portal session it also returns the session's CSRF token, which unsafe requests made with the session cookie must send in the X-CSRF-Token header.",
		status:      200, result: "Me"},

	"GET /accounts": {id: "listAccounts", tag: "accounts", summary: "List the accounts the caller can see",
		description: "The caller's own account and every account below it, ordered by their position in the tree.",
		status:      200, result: "AccountList"},
	"POST /accounts": {id: "createAccount", tag: "accounts", summary: "Create a partner or customer account",
		description: "Creates the account under parent_id (default: the caller's account). Operators and partners may create accounts; customers have no children.",
		body:        &reqBody{schema: "CreateAccountRequest"}, status: 201, result: "Account"},
	"GET /accounts/{id}": {id: "getAccount", tag: "accounts", summary: "Get an account", status: 200, result: "Account"},
	"GET /accounts/{id}/children": {id: "listChildAccounts", tag: "accounts", summary: "List an account's direct children",
		status: 200, result: "AccountList"},

	"GET /accounts/{id}/admins": {id: "listAdmins", tag: "admins", summary: "List an account's administrators",
		status: 200, result: "AdminList"},
	"POST /accounts/{id}/admins": {id: "createAdmin", tag: "admins", summary: "Add an administrator to an account",
		description: "Without a password, a one-time password is generated and returned once as initial_password.",
		body:        &reqBody{schema: "CreateAdminRequest"}, status: 201, result: "CreateAdminResponse", errors: []int{409}},

	"GET /accounts/{id}/licences": {id: "listLicences", tag: "licences", summary: "List a customer's licences and their use",
		description: "Every SKU is listed; one not held has quantity 0.", status: 200, result: "LicenceList"},
	"PUT /accounts/{id}/licences/{sku}": {id: "setLicence", tag: "licences", summary: "Set the quantity of one SKU",
		description: "Only an administrator above the customer (its partner or the operator) may provision licences. A quantity below what is in use is refused (409).",
		body:        &reqBody{schema: "LicenceRequest"}, status: 200, result: "Licence", errors: []int{409}},

	"GET /accounts/{id}/pbx": {id: "getPBXSettings", tag: "pbx", summary: "Get a customer's PBX settings",
		description: "Defaults are returned if the settings were never saved.", status: 200, result: "PBXSettings"},
	"PUT /accounts/{id}/pbx": {id: "setPBXSettings", tag: "pbx", summary: "Replace a customer's PBX settings",
		description: "The customer's users re-register with the new settings promptly.",
		body:        &reqBody{schema: "PBXSettingsInput"}, status: 200, result: "PBXSettings"},

	"GET /accounts/{id}/teams": {id: "getTeamsSettings", tag: "teams", summary: "Get a customer's Teams services settings",
		status: 200, result: "TeamsSettings"},
	"PATCH /accounts/{id}/teams": {id: "updateTeamsSettings", tag: "teams", summary: "Change Teams services switches",
		description: "Fields left out are unchanged. Phone App can only be turned on with an active phone-app-user licence (402), and only turned off when no user is configured as a Phone App user (409).",
		body:        &reqBody{schema: "TeamsOptions"}, status: 200, result: "TeamsSettings", errors: []int{402, 409}},

	"GET /accounts/{id}/users": {id: "listUsers", tag: "users", summary: "List a customer's directory users, a page at a time",
		description: "Ordered by display name. Follow next_cursor for the next page; total counts every user matching the search and type. Each user carries its live PBX registration state when the SIP engine knows it.",
		query:       []string{"Cursor", "Limit", "Search", "UserType"}, status: 200, result: "UserPage", errors: []int{400, 422}},
	"GET /accounts/{id}/users/{uid}": {id: "getUser", tag: "users", summary: "Get one user", status: 200, result: "User"},
	"PUT /accounts/{id}/users/{uid}/config": {id: "configureUser", tag: "users", summary: "Set a user's PBX line",
		description: "Sets the service type and SIP settings. The password is write-only: leave it out to keep the stored one; it is never returned (see has_password). A standard user consumes one pbx-user licence, a Phone App user one pbx-user and one phone-app-user; beyond the quantity the request is refused with 402 and nothing changes.",
		body:        &reqBody{schema: "UserConfig"}, status: 200, result: "User", errors: []int{402, 409}},
	"DELETE /accounts/{id}/users/{uid}/config": {id: "removeUserConfig", tag: "users", summary: "Remove a user's PBX line",
		description: "The user unregisters from the PBX and frees its licences.", status: 200, result: "User"},
	"POST /accounts/{id}/users/{uid}/test-call": {id: "testCallUser", tag: "users", summary: "Ring a Phone App user in Teams with a test call",
		description: "Rings the user in Teams through the Phone App's path (Teams external access), keeps the call about 2 seconds once answered, hangs up, and returns what happened and, when something is wrong, what to check. The request blocks until the call ends (at most about 40 seconds). A refusal by Microsoft (e.g. 603 when the tenant's external access blocks the Phone App's domain) is a result, not an error, and also fails the user's matching readiness check. Only for configured, enabled Phone App users (422 otherwise: a standard user is tested by calling their Teams number from the PBX); one test call per user at a time (409). Needs a role that can write. On a node where calls are not enabled this answers 503 (code unavailable). The body is optional and has no fields.",
		body:        &reqBody{schema: "TestCallRequest", optional: true},
		status:      200, result: "TestCallResult", errors: []int{409, 422}},
	"GET /accounts/{id}/users.csv": {id: "exportUsersCSV", tag: "users", summary: "Export configured users as CSV",
		description: "Columns: " + strings.Join(pbx2teams.CSVColumns, ", ") + ". The password column is always empty; an edited export imports again without changing passwords.",
		status:      200, resultType: "text/csv"},
	"POST /accounts/{id}/users.csv": {id: "importUsersCSV", tag: "users", summary: "Import users' SIP settings from CSV",
		description: fmt.Sprintf("Up to %d rows; the first line names the columns (%s). All or nothing: a file with any bad row changes nothing, and the 422 error lists every bad row in details with its line and reason. Phone numbers that lost their leading + in a spreadsheet are recognised and explained. An empty password keeps the stored one.",
			pbx2teams.MaxCSVRows, strings.Join(pbx2teams.CSVColumns, ", ")),
		body:   &reqBody{schema: "CSVFile", contentType: "text/csv"},
		status: 200, result: "ImportResult", errors: []int{402, 409}},

	"GET /accounts/{id}/calls": {id: "listCalls", tag: "calls", summary: "List a customer's call log, a page at a time",
		description: "Newest first. Filter by user (user ID) and result; follow next_cursor for the next page. Records are kept for 90 days by default.",
		query:       []string{"CallUser", "CallResult", "Cursor", "CallLimit"}, status: 200, result: "CallPage", errors: []int{400, 422}},
	"GET /accounts/{id}/calls/{call}": {id: "getCall", tag: "calls", summary: "Get one call of the log",
		description: "The SIP outcome of each leg, who ended the call, the media counters and, for a failed call, advice in plain words.",
		status:      200, result: "CallRecord"},
	"GET /accounts/{id}/calls/{call}/trace": {id: "getCallTrace", tag: "calls", summary: "Get the SIP trace of one call",
		description: "The SIP messages of both legs in order, each with its start line and, when kept, its full text (credentials and media keys removed). Traces are kept for 7 days by default; an expired trace is not found (404).",
		status:      200, result: "CallTrace"},

	"GET /accounts/{id}/audit": {id: "listAudit", tag: "audit", summary: "List the audit log of an account's subtree",
		description: "Newest first. Pass next_before as before to get the next, older page.",
		query:       []string{"Before", "AuditLimit"}, status: 200, result: "AuditPage", errors: []int{400}},

	"GET /accounts/{id}/apikeys": {id: "listAPIKeys", tag: "apikeys", summary: "List an account's API keys",
		status: 200, result: "APIKeyList"},
	"POST /accounts/{id}/apikeys": {id: "createAPIKey", tag: "apikeys", summary: "Create an API key",
		description: "The key is returned once, in key; only its hash is stored. Its role defaults to the account's administrator role.",
		body:        &reqBody{schema: "CreateAPIKeyRequest"}, status: 201, result: "CreateAPIKeyResponse"},
	"DELETE /accounts/{id}/apikeys/{kid}": {id: "revokeAPIKey", tag: "apikeys", summary: "Revoke an API key",
		description: "The key stops working at once (401).", status: 204},

	"POST /accounts/{id}/teams/sync": {id: "startSync", tag: "m365", summary: "Start a Microsoft 365 directory sync (Sync Now)",
		description: "Starts the sync in the background and returns its job at once (202, status running); follow it with GET .../teams/sync/status or the job's URL in Location. The body is optional. One sync per customer runs at a time: another request meanwhile gets 409 naming who started the running one. Microsoft 365 must be connected (422 otherwise). Needs a role that can write." + noSyncNote,
		body:        &reqBody{schema: "SyncStartRequest", optional: true}, status: 202, result: "SyncJob", errors: []int{409}},
	"GET /accounts/{id}/teams/sync/status": {id: "getSyncStatus", tag: "m365", summary: "The running sync or the latest one",
		description: "While a sync runs: its job with live counts, its phase and the last log lines. Otherwise the latest job; no job when never synced." + noSyncNote,
		status:      200, result: "SyncStatus"},
	"GET /accounts/{id}/teams/sync/jobs": {id: "listSyncJobs", tag: "m365", summary: "List a customer's sync jobs",
		description: "Newest first, without logs." + noSyncNote, query: []string{"JobLimit"}, status: 200, result: "SyncJobList", errors: []int{400}},
	"GET /accounts/{id}/teams/sync/jobs/{job}": {id: "getSyncJob", tag: "m365", summary: "Get one sync job with its log",
		description: noSyncNote[1:], status: 200, result: "SyncJob"},
	"GET /accounts/{id}/teams/groups": {id: "searchGroups", tag: "m365", summary: "Search the tenant's Entra ID groups",
		description: "For choosing Large Tenant Mode groups (PATCH .../teams standard_groups and phone_app_group take these objects). Microsoft 365 must be connected (422 otherwise)." + noSyncNote,
		query:       []string{"GroupSearch"}, status: 200, result: "GroupList", errors: []int{400, 422}},
	"GET /accounts/{id}/teams/readiness": {id: "getTenantReadiness", tag: "m365", summary: "Check the tenant is ready for pbx2teams",
		description: "Microsoft 365 connected; with Phone App on, also Phone App authorized, external access allowing the Phone App's domain and, in Large Tenant Mode, a Phone App group chosen. Each failed check says how to fix it." + noSyncNote,
		status:      200, result: "Readiness"},
	"GET /accounts/{id}/users/{uid}/readiness": {id: "getUserReadiness", tag: "m365", summary: "Check one user is ready for its PBX line",
		description: "The tenant's checks plus the user's own (enabled, group conflict, Teams Phone licence, Teams mode, Phone App installed), each failed one with its fix." + noSyncNote,
		status:      200, result: "UserReadiness"},
	"GET /accounts/{id}/teams/phone-app.zip": {id: "getPhoneAppPackage", tag: "m365", summary: "Download the Phone App's Teams app package",
		description: "The zip to upload in the Teams admin center when the app is not published automatically. 503 also when no Phone App app registration is configured." + noSyncNote,
		status:      200, resultType: "application/zip"},
}

// noSyncNote ends the description of the endpoints that need the sync engine.
const noSyncNote = " On a node where Microsoft 365 is not configured this answers 503 (code unavailable) saying so."

// pathParams documents the wildcards of the route patterns.
var pathParams = map[string]m{
	"id":   {"name": "id", "in": "path", "required": true, "description": "Account ID (acc_…).", "schema": m{"type": "string"}},
	"uid":  {"name": "uid", "in": "path", "required": true, "description": "User ID (usr_…).", "schema": m{"type": "string"}},
	"sku":  {"name": "sku", "in": "path", "required": true, "description": "Licence SKU.", "schema": m{"$ref": "#/components/schemas/SKU"}},
	"job":  {"name": "job", "in": "path", "required": true, "description": "Sync job ID (job_…).", "schema": m{"type": "string"}},
	"call": {"name": "call", "in": "path", "required": true, "description": "Call ID (call_…).", "schema": m{"type": "string"}},
	"kid":  {"name": "kid", "in": "path", "required": true, "description": "API key ID (key_…).", "schema": m{"type": "string"}},
}

var queryParams = m{
	"Cursor": m{"name": "cursor", "in": "query", "description": "Opaque cursor from next_cursor of the previous page; absent for the first page.",
		"schema": m{"type": "string"}},
	"Limit": m{"name": "limit", "in": "query", "description": "Users per page.",
		"schema": m{"type": "integer", "minimum": 1, "maximum": 500, "default": 50}},
	"Search": m{"name": "search", "in": "query", "description": "Text matched against UPN, display name, mail, SIP username and phone number.",
		"schema": m{"type": "string", "maxLength": 200}},
	"UserType": m{"name": "type", "in": "query", "description": "Only users configured as this type; any: configured users of any type; none: users without a PBX line. Absent: all users.",
		"schema": m{"type": "string", "enum": []string{"standard", "phone_app", "any", "none"}}},
	"Before": m{"name": "before", "in": "query", "description": "Only entries older than this entry ID (next_before of the previous page).",
		"schema": m{"type": "integer", "format": "int64", "minimum": 0}},
	"GroupSearch": m{"name": "q", "in": "query", "description": "Text the group names start with; empty lists the first groups.",
		"schema": m{"type": "string", "maxLength": 100}},
	"JobLimit": m{"name": "limit", "in": "query", "description": "Jobs to return, newest first.",
		"schema": m{"type": "integer", "minimum": 1, "maximum": 200, "default": 50}},
	"CallUser": m{"name": "user", "in": "query", "description": "Only this user's calls (user ID, usr_…).",
		"schema": m{"type": "string"}},
	"CallResult": m{"name": "result", "in": "query", "description": "Only calls with this result.",
		"schema": m{"type": "string", "enum": pbx2teams.CallResults}},
	"CallLimit": m{"name": "limit", "in": "query", "description": "Calls per page.",
		"schema": m{"type": "integer", "minimum": 1, "maximum": pbx2teams.MaxCallPageSize, "default": pbx2teams.DefaultCallPageSize}},
	"AuditLimit": m{"name": "limit", "in": "query", "description": "Entries per page.",
		"schema": m{"type": "integer", "minimum": 1, "maximum": 500, "default": 100}},
}

// errorResponses are the documented error statuses, each with the Error body.
var errorResponses = map[int]struct{ name, description string }{
	400: {"BadRequest", "The request could not be read: malformed JSON, an unknown field, a wrong type or a bad query parameter. Code invalid."},
	401: {"Unauthenticated", "No valid credential: a missing, unknown or revoked API key, or an ended session. Code unauthenticated."},
	402: {"LicenceRequired", "A licence is missing, exhausted or expired; the message names the SKU. The licensing provider must provision it. Code licence_required."},
	403: {"Forbidden", "Authenticated but not allowed: a read-only role, an action reserved to another level, or a session request without its CSRF token. Code forbidden."},
	404: {"NotFound", "No such resource, or not visible to the caller (accounts outside the caller's subtree are reported as not found). Code not_found."},
	409: {"Conflict", "The change clashes with existing state (e.g. a phone number already in use, a quantity below use). Code conflict."},
	413: {"TooLarge", "The request body is larger than allowed. Code invalid."},
	415: {"UnsupportedMediaType", "The body has the wrong Content-Type. Code invalid."},
	422: {"Invalid", "The request was read but its values are not acceptable; details lists each field or CSV line with its reason. Nothing changed. Code invalid."},
	429: {"RateLimited", "Too many requests with this credential; retry after the Retry-After header's seconds. Code rate_limited."},
	500: {"Internal", "An unexpected failure; the message is generic and carries a request ID, the cause is logged. Code internal."},
	503: {"Unavailable", "A dependency (e.g. the database) is unavailable; retry after the Retry-After header's seconds. Code unavailable."},
}

var wildcardRE = regexp.MustCompile(`\{([a-z]+)\}`)

// renderSpec builds the OpenAPI document.
func renderSpec(version string) ([]byte, error) {
	paths := m{}
	keys := make([]string, 0, len(operations))
	for k := range operations {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, key := range keys {
		op := operations[key]
		method, path, ok := strings.Cut(key, " ")
		if !ok {
			return nil, fmt.Errorf("operation key %q is not \"METHOD path\"", key)
		}
		o := m{"operationId": op.id, "summary": op.summary, "tags": []string{op.tag}}
		if op.description != "" {
			o["description"] = op.description
		}
		var params []any
		for _, w := range wildcardRE.FindAllStringSubmatch(path, -1) {
			p, ok := pathParams[w[1]]
			if !ok {
				return nil, fmt.Errorf("%s: undocumented path parameter %s", key, w[1])
			}
			params = append(params, p)
		}
		for _, q := range op.query {
			if _, ok := queryParams[q]; !ok {
				return nil, fmt.Errorf("%s: unknown query parameter %s", key, q)
			}
			params = append(params, m{"$ref": "#/components/parameters/" + q})
		}
		if len(params) > 0 {
			o["parameters"] = params
		}
		errs := append([]int(nil), op.errors...)
		if op.body != nil {
			ct := op.body.contentType
			if ct == "" {
				ct = "application/json"
			}
			o["requestBody"] = m{"required": !op.body.optional, "content": m{ct: m{"schema": schemaRef(op.body.schema)}}}
			errs = append(errs, bodyErrors...)
		}
		if op.public {
			o["security"] = []any{}
		} else {
			errs = append(errs, commonErrors...)
		}
		responses := m{}
		ok200 := m{"description": http.StatusText(op.status)}
		switch {
		case op.resultType == "application/zip":
			ok200["content"] = m{"application/zip": m{"schema": m{"type": "string", "contentMediaType": "application/zip"}}}
			ok200["headers"] = m{"Content-Disposition": m{"schema": m{"type": "string"}, "description": "attachment; filename=\"phone-app-teams.zip\""}}
		case op.resultType == "text/csv":
			ok200["content"] = m{"text/csv": m{"schema": schemaRef("CSVFile")}}
			ok200["headers"] = m{"Content-Disposition": m{"schema": m{"type": "string"}, "description": "attachment; filename=\"users-<account>.csv\""}}
		case op.result != "":
			ok200["content"] = m{"application/json": m{"schema": schemaRef(op.result)}}
		case op.resultType != "":
			ok200["content"] = m{op.resultType: m{"schema": m{"type": "object"}}}
		}
		if op.status == 201 && path == "/accounts" {
			ok200["headers"] = m{"Location": m{"schema": m{"type": "string"}, "description": "The new account's URL."}}
		}
		if op.status == 202 && path == "/accounts/{id}/teams/sync" {
			ok200["headers"] = m{"Location": m{"schema": m{"type": "string"}, "description": "The new job's URL."}}
		}
		responses[fmt.Sprint(op.status)] = ok200
		for _, st := range errs {
			er, ok := errorResponses[st]
			if !ok {
				return nil, fmt.Errorf("%s: undocumented error status %d", key, st)
			}
			responses[fmt.Sprint(st)] = m{"$ref": "#/components/responses/" + er.name}
		}
		o["responses"] = responses
		full := Prefix + path
		item, _ := paths[full].(m)
		if item == nil {
			item = m{}
			paths[full] = item
		}
		item[strings.ToLower(method)] = o
	}

	responses := m{}
	for st, er := range errorResponses {
		r := m{"description": er.description, "content": m{"application/json": m{"schema": schemaRef("Error")}}}
		switch st {
		case 429, 503:
			r["headers"] = m{"Retry-After": m{"description": "Seconds to wait before retrying.", "schema": m{"type": "integer"}}}
		case 401:
			r["headers"] = m{"WWW-Authenticate": m{"schema": m{"type": "string"}}}
		}
		responses[er.name] = r
	}

	doc := m{
		"openapi": "3.1.0",
		"info": m{
			"title":   "pbx2teams API",
			"version": version,
			"description": "Manage pbx2teams accounts, licences, PBX and Teams settings, users' PBX lines, CSV import/export, API keys and the audit log, and read the call log. " +
				"Every error is {\"code\", \"message\", \"details\"}: codes invalid (400/413/415/422), unauthenticated (401), licence_required (402), forbidden (403), " +
				"not_found (404), conflict (409), rate_limited (429, Retry-After), internal (500), unavailable (503, Retry-After). " +
				"Authenticate with an API key (Authorization: Bearer p2t_…) or the portal session cookie; with the cookie, POST, PUT, PATCH and DELETE need the session's CSRF token in X-CSRF-Token. " +
				"JSON bodies must be application/json and may only hold documented fields.",
		},
		"servers": []any{m{"url": "/"}},
		"security": []any{
			m{"apiKey": []string{}},
			m{"session": []string{}},
		},
		"tags": []any{
			m{"name": "meta"}, m{"name": "accounts"}, m{"name": "admins"}, m{"name": "licences"}, m{"name": "pbx"},
			m{"name": "teams"}, m{"name": "users"}, m{"name": "calls", "description": "The call log: each call's SIP outcome, failure advice, media counters and SIP trace."}, m{"name": "audit"}, m{"name": "apikeys"}, m{"name": "m365", "description": "Microsoft 365 directory sync, readiness and the Phone App package."},
		},
		"paths": paths,
		"components": m{
			"securitySchemes": m{
				"apiKey": m{"type": "http", "scheme": "bearer", "bearerFormat": "p2t_…",
					"description": "An API key created in the portal (or POST /accounts/{id}/apikeys), scoped to one account's subtree with a role."},
				"session": m{"type": "apiKey", "in": "cookie", "name": pbx2teams.SessionCookieName,
					"description": "The portal session. Unsafe methods also need the session's CSRF token in the " + pbx2teams.CSRFHeaderName + " header."},
			},
			"parameters": queryParams,
			"responses":  responses,
			"schemas":    schemas(),
		},
	}
	return json.MarshalIndent(doc, "", "  ")
}

func schemaRef(name string) m { return m{"$ref": "#/components/schemas/" + name} }

func str(desc string) m { return m{"type": "string", "description": desc} }

func strEnum(desc string, values ...string) m {
	return m{"type": "string", "description": desc, "enum": values}
}

func dateTime(desc string) m {
	return m{"type": "string", "format": "date-time", "description": desc}
}

func integer(desc string) m { return m{"type": "integer", "description": desc} }

func boolean(desc string) m { return m{"type": "boolean", "description": desc} }

func array(items m, desc string) m { return m{"type": "array", "items": items, "description": desc} }

// object is a response schema; input is a request schema, which rejects
// unknown fields.
func object(desc string, required []string, props m) m {
	o := m{"type": "object", "description": desc, "properties": props}
	if len(required) > 0 {
		o["required"] = required
	}
	return o
}

func input(desc string, required []string, props m) m {
	o := object(desc, required, props)
	o["additionalProperties"] = false
	return o
}

func roleSchema() m {
	return strEnum("What the holder may do within the account's subtree: operator, partner and customer_admin fit their account kind; viewer only reads.",
		string(pbx2teams.RoleOperator), string(pbx2teams.RolePartner), string(pbx2teams.RoleCustomerAdmin), string(pbx2teams.RoleViewer))
}

// schemas returns the component schemas. Their property names are checked
// against the Go types' JSON fields by the tests.
func schemas() m {
	return m{
		"Error": object("Every error response.", []string{"code", "message", "details"}, m{
			"code": strEnum("Machine-readable error code.", pbx2teams.EInvalid, pbx2teams.EUnauthenticated, pbx2teams.EForbidden,
				pbx2teams.ENotFound, pbx2teams.EConflict, pbx2teams.ELicence, pbx2teams.ERateLimited, pbx2teams.EUnavailable, pbx2teams.EInternal),
			"message": str("What was wrong and what to do, for a person."),
			"details": array(schemaRef("ErrorDetail"), "The offending fields or CSV lines, each with its reason; may be empty."),
		}),
		"ErrorDetail": object("One offending item of the input.", []string{"reason"}, m{
			"line":   integer("Line of the CSV file (1 is the header)."),
			"field":  str("The field or query parameter."),
			"reason": str("What is wrong with it."),
		}),
		"SyncCounts": object("Totals of one sync run.", []string{"seen", "added", "updated", "removed", "conflicts", "excluded", "suspended", "resumed", "installed", "uninstalled"}, m{
			"seen":         integer("Directory users read."),
			"added":        integer("Users new to pbx2teams."),
			"updated":      integer("Users whose directory data changed."),
			"removed":      integer("Users deleted from Microsoft 365 (or out of the chosen groups)."),
			"conflicts":    integer("Users the sync could not classify; see each user's conflict."),
			"excluded":     integer("Directory objects that cannot have a PBX line (rooms, resource accounts, bots...)."),
			"excluded_why": m{"type": "object", "additionalProperties": m{"type": "integer"}, "description": "Excluded objects by reason."},
			"suspended":    integer("Configured users suspended (disabled or deleted in Microsoft 365)."),
			"resumed":      integer("Suspended users back in service."),
			"installed":    integer("Phone App installations made."),
			"uninstalled":  integer("Phone App installations removed."),
		}),
		"SyncJob": object("One run of a customer's Microsoft 365 directory sync.", []string{"id", "account_id", "status", "mode", "trigger", "diagnostic", "requested_by", "started_at", "counts"}, m{
			"id":           str("Job ID."),
			"account_id":   str("The customer."),
			"status":       strEnum("running, succeeded or failed. A failed run changed nothing.", string(pbx2teams.SyncRunning), string(pbx2teams.SyncSucceeded), string(pbx2teams.SyncFailed)),
			"mode":         strEnum("full listing, delta since the last run, or the Large Tenant Mode groups.", pbx2teams.SyncModeFull, pbx2teams.SyncModeDelta, pbx2teams.SyncModeGroups),
			"trigger":      strEnum("Who started it: manual (Sync Now, this API) or auto (the schedule).", "manual", "auto"),
			"diagnostic":   boolean("Every Graph request was logged into the job's log."),
			"requested_by": str("Who started it."),
			"started_at":   dateTime("Start."),
			"finished_at":  dateTime("End; absent while running."),
			"counts":       schemaRef("SyncCounts"),
			"warnings":     array(m{"type": "string"}, "Things an administrator should look at (e.g. suspended users)."),
			"log":          str("The run's support log, newline separated; only on GET of one job."),
			"error":        str("Why a failed job failed and what to do."),
		}),
		"SyncJobList": object("Sync jobs, newest first, without their logs.", []string{"jobs"}, m{"jobs": array(schemaRef("SyncJob"), "")}),
		"SyncStatus": object("The state of a customer's sync.", []string{"running"}, m{
			"running": boolean("A sync is running."),
			"phase":   str("What the running sync is doing, when it runs on this node."),
			"job":     schemaRef("SyncJob"),
			"tail":    array(m{"type": "string"}, "Last lines of the running job's log."),
		}),
		"SyncStartRequest": input("How to run the sync; the body may be left out.", nil, m{
			"full":       m{"type": "boolean", "default": false, "description": "Force a full listing even when a delta would do."},
			"diagnostic": m{"type": "boolean", "default": false, "description": "Log every Graph request into the job's log (for support)."},
		}),
		"TestCallRequest": input("No fields; the body may be left out.", nil, m{}),
		"TestCallResult": object("The outcome of a test call, in plain words.", []string{"result", "at"}, m{
			"result": str("What happened, e.g. \"The test call rang alice@contoso.com in Teams and was answered.\" or \"The test call was refused: 603 Declined.\""),
			"advice": str("When something is wrong: what it means and what to check or change."),
			"at":     dateTime("When the test call was placed."),
		}),
		"GroupList": object("Entra ID groups matching the search (at most 25).", []string{"groups"}, m{"groups": array(schemaRef("Group"), "")}),
		"Check": object("One readiness check.", []string{"key", "name", "state"}, m{
			"key":    str("Stable identifier, e.g. connected, external_access."),
			"name":   str("What is checked, for people."),
			"state":  strEnum("Outcome.", string(pbx2teams.CheckPass), string(pbx2teams.CheckFail), string(pbx2teams.CheckNotVerifiable), string(pbx2teams.CheckNotApplicable)),
			"detail": str("What was found."),
			"fix":    str("What to do, when failed or not verifiable."),
		}),
		"Readiness": object("Readiness checks; ready when none failed.", []string{"checks", "ready"}, m{
			"checks": array(schemaRef("Check"), ""),
			"ready":  boolean("No check failed."),
		}),
		"UserReadiness": object("A user and its readiness checks.", []string{"user", "checks", "ready"}, m{
			"user":   schemaRef("User"),
			"checks": array(schemaRef("Check"), ""),
			"ready":  boolean("No check failed."),
		}),
		"Me": object("The caller.", []string{"name", "role", "auth", "account"}, m{
			"name":       str("Admin email, or \"api key <name>\"."),
			"role":       roleSchema(),
			"auth":       strEnum("How the caller authenticated.", "api_key", "session"),
			"admin_id":   str("The admin, with a session."),
			"api_key_id": str("The API key, with an API key."),
			"account":    schemaRef("Account"),
			"csrf_token": str("The session's CSRF token for unsafe requests with the session cookie; absent with an API key."),
		}),
		"AccountKind": strEnum("Level in the account tree.", string(pbx2teams.KindOperator), string(pbx2teams.KindPartner), string(pbx2teams.KindCustomer)),
		"Account": object("A node of the account tree: the operator, partners (resellers) and customers.", []string{"id", "kind", "name", "created_at"}, m{
			"id":         str("Account ID."),
			"parent_id":  str("Parent account; absent for the operator."),
			"kind":       schemaRef("AccountKind"),
			"name":       str("Display name."),
			"created_at": dateTime("When it was created."),
		}),
		"AccountList": object("Accounts.", []string{"accounts"}, m{"accounts": array(schemaRef("Account"), "")}),
		"CreateAccountRequest": input("A new partner or customer account.", []string{"kind", "name"}, m{
			"parent_id": str("The parent account; default the caller's account."),
			"kind":      strEnum("partner or customer.", string(pbx2teams.KindPartner), string(pbx2teams.KindCustomer)),
			"name":      m{"type": "string", "minLength": 1, "maxLength": 200, "description": "Display name."},
		}),
		"Admin": object("A person who signs in to the portal.", []string{"id", "account_id", "email", "role", "created_at", "disabled"}, m{
			"id":         str("Admin ID."),
			"account_id": str("The account whose subtree the admin manages."),
			"email":      m{"type": "string", "format": "email", "description": "Sign-in email."},
			"name":       str("Display name."),
			"role":       roleSchema(),
			"created_at": dateTime("When the admin was added."),
			"disabled":   boolean("Whether sign-in is disabled."),
		}),
		"AdminList": object("Administrators.", []string{"admins"}, m{"admins": array(schemaRef("Admin"), "")}),
		"CreateAdminRequest": input("A new administrator.", []string{"email"}, m{
			"email":    m{"type": "string", "format": "email", "description": "Sign-in email."},
			"name":     str("Display name."),
			"role":     roleSchema(),
			"password": m{"type": "string", "minLength": 12, "writeOnly": true, "description": "Initial password; leave out to have one generated."},
		}),
		"CreateAdminResponse": object("The new administrator.", []string{"admin"}, m{
			"admin":            schemaRef("Admin"),
			"initial_password": str("The generated one-time password, present only when the request gave none. Shown this once."),
		}),
		"SKU": strEnum("Licence product: a standard user consumes one pbx-user; a Phone App user one pbx-user and one phone-app-user.",
			string(pbx2teams.SKUPBXUser), string(pbx2teams.SKUPhoneAppUser)),
		"Licence": object("A quantity of one SKU held by a customer.", []string{"account_id", "sku", "quantity", "used"}, m{
			"account_id": str("The customer."),
			"sku":        schemaRef("SKU"),
			"quantity":   integer("How many users it covers."),
			"expires_at": dateTime("End of a trial; absent for a full licence."),
			"updated_at": dateTime("Last change."),
			"used":       integer("Users consuming it now."),
		}),
		"LicenceList": object("A customer's licences, one per SKU.", []string{"licences"}, m{"licences": array(schemaRef("Licence"), "")}),
		"LicenceRequest": input("The quantity of one SKU.", []string{"quantity"}, m{
			"quantity":   m{"type": "integer", "minimum": 0, "maximum": 1000000, "description": "How many users it covers."},
			"expires_at": m{"type": []string{"string", "null"}, "format": "date-time", "description": "End of a trial licence; null or absent for a full licence."},
		}),
		"PBXSettings": object("How a customer's users register to its PBX.", []string{"account_id", "domain", "transport", "register_expiry", "region"}, m{
			"account_id":      str("The customer."),
			"domain":          str("SIP domain, e.g. pbx.example.com."),
			"outbound_proxy":  str("host:port of an outbound proxy, if any."),
			"transport":       strEnum("SIP transport toward the PBX.", "udp", "tcp", "tls"),
			"register_expiry": integer("Seconds requested in REGISTER."),
			"region":          strEnum("Chooses the primary and secondary node.", pbx2teams.Regions...),
			"updated_at":      dateTime("Last change; absent if never saved."),
		}),
		"PBXSettingsInput": input("The PBX settings; every field is replaced.", []string{"domain"}, m{
			"domain":          str("SIP domain, e.g. pbx.example.com."),
			"outbound_proxy":  str("host:port of an outbound proxy, or empty."),
			"transport":       m{"type": "string", "enum": []string{"udp", "tcp", "tls"}, "default": "udp", "description": "SIP transport toward the PBX."},
			"register_expiry": m{"type": "integer", "minimum": 60, "maximum": 86400, "default": 3600, "description": "Seconds requested in REGISTER."},
			"region":          m{"type": "string", "enum": pbx2teams.Regions, "default": pbx2teams.Regions[0], "description": "Chooses the primary and secondary node."},
		}),
		"Group": object("An Entra ID group.", []string{"id"}, m{
			"id":           str("Group object ID; empty in phone_app_group to clear it."),
			"display_name": str("Group name."),
		}),
		"TeamsSettings": object("A customer's Microsoft 365 connection and Teams services switches.", []string{"account_id", "phone_app_enabled", "large_tenant_mode", "sync_interval_minutes"}, m{
			"account_id":              str("The customer."),
			"tenant_id":               str("Microsoft 365 tenant ID, once connected."),
			"tenant_name":             str("Tenant name."),
			"consented_at":            dateTime("When admin consent was given."),
			"consent_error":           str("Why the last consent failed, if it did."),
			"phone_app_enabled":       boolean("Whether Phone App is on."),
			"phone_app_authorized_at": dateTime("When Phone App was authorized for the organization."),
			"large_tenant_mode":       boolean("Sync only the chosen groups."),
			"standard_groups":         array(schemaRef("Group"), "Groups of standard users (Large Tenant Mode)."),
			"phone_app_group":         schemaRef("Group"),
			"sync_interval_minutes":   integer("Automatic sync interval; 0 is off."),
			"sbc_fqdn":                str("The customer's SBC FQDN (sbc_label under the provider's SBC domain), when the node knows the domain."),
			"sbc_label":               str("The customer's label under the provider's SBC base FQDN (label.sbc.example.com): the SBC name the customer adds to Microsoft 365 and Teams Direct Routing. Unique across customers; a default from the customer's name is assigned."),
			"updated_at":              dateTime("Last change."),
		}),
		"TeamsOptions": input("Teams services switches to change; fields left out stay as they are.", nil, m{
			"phone_app_enabled":     boolean("Turn Phone App on (needs a phone-app-user licence) or off."),
			"large_tenant_mode":     boolean("Sync only the chosen groups."),
			"standard_groups":       array(schemaRef("Group"), "Groups of standard users; [] clears them."),
			"phone_app_group":       schemaRef("Group"),
			"sync_interval_minutes": m{"type": "integer", "minimum": 0, "maximum": 10080, "description": "Automatic sync interval; 0 is off."},
			"sbc_label": m{"type": "string", "pattern": "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$", "maxLength": 63,
				"description": "A new SBC label: one DNS label of lowercase letters, digits and '-' (upper case is lowered). Another customer's label is refused (409). Changing it changes the customer's SBC FQDN: update the domain in Microsoft 365 and the PSTN gateway in Teams."},
		}),
		"ServiceType": strEnum("How the user's PBX line reaches Teams: standard (Direct Routing, needs Teams Phone) or phone_app (the Phone App); empty when not configured.",
			"", string(pbx2teams.ServiceStandard), string(pbx2teams.ServicePhoneApp)),
		"RegistrationState": object("Live state of the user's registration to the PBX.", []string{"state"}, m{
			"state":        strEnum("Registration state.", pbx2teams.RegRegistered, pbx2teams.RegRegistering, pbx2teams.RegFailed, pbx2teams.RegStopped),
			"status_code":  integer("Last SIP status from the PBX."),
			"reason":       str("The PBX's reason, when failing."),
			"last_success": dateTime("Last successful registration."),
			"next_refresh": dateTime("Next refresh."),
			"pbx_address":  str("The PBX address registered to."),
		}),
		"User": object("A directory user of a customer, its PBX line and its live registration. The SIP password is never returned; has_password tells whether one is set.",
			[]string{"id", "account_id", "object_id", "upn", "display_name", "enabled", "kind", "type", "has_password", "deleted", "suspended"}, m{
				"id":               str("User ID."),
				"account_id":       str("The customer."),
				"object_id":        str("Entra ID object ID."),
				"upn":              str("User principal name."),
				"display_name":     str("Display name."),
				"mail":             str("Mail address."),
				"enabled":          boolean("Enabled in Microsoft 365."),
				"kind":             strEnum("Directory object kind; only person can have a PBX line.", string(pbx2teams.KindPerson), string(pbx2teams.KindMeetingRoom), string(pbx2teams.KindResourceAccount), string(pbx2teams.KindBot)),
				"has_teams_phone":  boolean("Holds a Teams Phone licence."),
				"has_calling_plan": boolean("Holds a Microsoft Calling Plan."),
				"suggested_type":   schemaRef("ServiceType"),
				"conflict":         str("Why the sync could not classify the user, if so."),
				"deleted":          boolean("Deleted from Microsoft 365."),
				"synced_at":        dateTime("Last sync that saw the user."),
				"type":             schemaRef("ServiceType"),
				"sip_username":     str("SIP username (usually the extension)."),
				"auth_username":    str("Digest authentication username."),
				"has_password":     boolean("Whether a SIP password is stored (the password itself is write-only)."),
				"phone_number":     str("E.164 number, e.g. +441632960123."),
				"external_id":      str("The provider's own reference."),
				"suspended":        boolean("Configured but disabled or deleted in Microsoft 365: consumes no licence, not registered."),
				"updated_at":       dateTime("Last change."),
				"registration":     schemaRef("RegistrationState"),
			}),
		"UserPage": object("One page of users.", []string{"users", "total"}, m{
			"users":       array(schemaRef("User"), ""),
			"next_cursor": str("Cursor of the next page; absent on the last page."),
			"total":       integer("Users matching the search and type."),
		}),
		"UserConfig": input("A user's PBX line.", []string{"type", "sip_username"}, m{
			"type":          strEnum("standard or phone_app; to remove the line use DELETE.", string(pbx2teams.ServiceStandard), string(pbx2teams.ServicePhoneApp)),
			"sip_username":  m{"type": "string", "maxLength": 64, "description": "SIP username the PBX knows the user by."},
			"auth_username": m{"type": "string", "maxLength": 128, "description": "Digest username; default the SIP username."},
			"password":      m{"type": "string", "minLength": 1, "maxLength": 128, "writeOnly": true, "description": "SIP password; required the first time, leave out to keep the stored one. Never returned."},
			"phone_number":  m{"type": "string", "description": "E.164: + then country code and number, e.g. +441632960123. Required for standard users."},
			"external_id":   m{"type": "string", "maxLength": 200, "description": "The provider's own reference."},
		}),
		"CSVFile": m{"type": "string", "description": "CSV text; the first line names the columns: " + strings.Join(pbx2teams.CSVColumns, ", ") + "."},
		"ImportResult": object("What a CSV import did.", []string{"rows", "changed"}, m{
			"rows":    integer("User rows in the file."),
			"changed": integer("Users changed."),
		}),
		"CallMedia": object("The media relay's counters of a call.", []string{"packets_from_pbx", "packets_to_pbx", "packets_from_teams", "packets_to_teams"}, m{
			"codec":              str("Audio codec, e.g. PCMU."),
			"packets_from_pbx":   integer("RTP packets received from the PBX side."),
			"packets_to_pbx":     integer("RTP packets sent to the PBX side."),
			"packets_from_teams": integer("RTP packets received from Teams."),
			"packets_to_teams":   integer("RTP packets sent to Teams."),
			"lost_from_pbx":      integer("Packets lost on the way from the PBX (from sequence numbers; negative with duplicates)."),
			"lost_from_teams":    integer("Packets lost on the way from Teams."),
			"jitter_pbx_ns":      integer("Interarrival jitter of the PBX's stream, in nanoseconds."),
			"jitter_teams_ns":    integer("Interarrival jitter of Teams' stream, in nanoseconds."),
			"srtp_failures":      integer("Packets that failed SRTP authentication or decryption."),
			"srtp_pbx":           boolean("The PBX leg used SRTP."),
		}),
		"CallRecord": object("One finished call of the call log. Never holds credentials or media keys.",
			[]string{"id", "account_id", "direction", "route", "from", "to", "started_at", "ended_at", "result", "pbx_status", "teams_status", "media"}, m{
				"id":             str("Call ID."),
				"account_id":     str("The customer."),
				"user_id":        str("The user of the call; absent when refused before a user was known."),
				"direction":      strEnum("Seen from the Teams user: inbound (PBX to Teams) or outbound (Teams to PBX).", pbx2teams.DirectionInbound, pbx2teams.DirectionOutbound),
				"route":          strEnum("How Teams was reached: Direct Routing or the Phone App.", pbx2teams.RouteDirectRouting, pbx2teams.RoutePhoneApp),
				"from":           str("Caller's number as signalled."),
				"from_name":      str("Caller's name, when signalled."),
				"to":             str("Called number as signalled."),
				"started_at":     dateTime("The first INVITE."),
				"answered_at":    dateTime("Answer; absent if never answered."),
				"ended_at":       dateTime("End."),
				"result":         strEnum("Outcome.", pbx2teams.CallResults...),
				"pbx_status":     integer("Final SIP status of the PBX leg's INVITE; 0 if that leg was never tried."),
				"teams_status":   integer("Final SIP status of the Teams leg's INVITE; 0 if that leg was never tried."),
				"ended_by":       strEnum("Who or what ended the call.", "pbx", "teams", "user", "timeout", "media_timeout", "session_timer", "error", "shutdown"),
				"advice":         str("For a failed call: what went wrong, in plain words, and what to check."),
				"media":          schemaRef("CallMedia"),
				"teams_peer":     str("The Microsoft proxy or federation edge that took the call."),
				"added_delay_ns": integer("Set-up delay added by pbx2teams itself for an answered call, in nanoseconds."),
			}),
		"CallPage": object("One page of the call log, newest first.", []string{"calls"}, m{
			"calls":       array(schemaRef("CallRecord"), ""),
			"next_cursor": str("Cursor of the next (older) page; absent on the last page."),
		}),
		"TraceMessage": object("One SIP message of a call's trace.", []string{"at", "leg", "direction", "summary"}, m{
			"at":        dateTime("When pbx2teams sent or received it."),
			"leg":       strEnum("The leg: toward the PBX or toward Teams.", "pbx", "teams"),
			"direction": strEnum("in: received by pbx2teams; out: sent by it.", "in", "out"),
			"summary":   str("The start line, e.g. INVITE sip:… SIP/2.0 or SIP/2.0 486 Busy Here."),
			"message":   str("The full message, when kept, with credentials and media keys removed."),
		}),
		"CallTrace": object("The SIP ladder of a call.", []string{"call_record_id", "call_id", "messages"}, m{
			"call_record_id": str("The call (ID of the record)."),
			"call_id":        str("SIP Call-ID of the first leg."),
			"messages":       array(schemaRef("TraceMessage"), "In the order pbx2teams saw them."),
			"dropped":        integer("Messages past the trace's limit, not kept."),
		}),
		"AuditEntry": object("One change: who, when, what. Never holds secret values.", []string{"id", "account_id", "actor", "action", "at"}, m{
			"id":         m{"type": "integer", "format": "int64", "description": "Entry ID; increases with time."},
			"account_id": str("The account changed."),
			"actor_id":   str("The admin or API key that made it."),
			"actor":      str("Its name."),
			"action":     str("What was done, e.g. user.configure."),
			"target":     str("What it was done to."),
			"detail":     str("Details, without secrets."),
			"at":         dateTime("When."),
		}),
		"AuditPage": object("One page of the audit log, newest first.", []string{"entries"}, m{
			"entries":     array(schemaRef("AuditEntry"), ""),
			"next_before": m{"type": "integer", "format": "int64", "description": "Pass as before for the next page; absent on the last page."},
		}),
		"APIKey": object("An API key (without its secret).", []string{"id", "account_id", "name", "prefix", "role", "created_at"}, m{
			"id":           str("Key ID."),
			"account_id":   str("The account whose subtree it may reach."),
			"name":         str("What it is for."),
			"prefix":       str("First characters of the key, to recognise it."),
			"role":         roleSchema(),
			"created_by":   str("Who created it."),
			"created_at":   dateTime("When."),
			"last_used_at": dateTime("Last use (to the minute)."),
			"revoked_at":   dateTime("When it was revoked; a revoked key gets 401."),
		}),
		"APIKeyList": object("API keys.", []string{"api_keys"}, m{"api_keys": array(schemaRef("APIKey"), "")}),
		"CreateAPIKeyRequest": input("A new API key.", []string{"name"}, m{
			"name": m{"type": "string", "minLength": 1, "maxLength": 100, "description": "What the key is for, e.g. billing export."},
			"role": roleSchema(),
		}),
		"CreateAPIKeyResponse": object("The new key.", []string{"key", "api_key"}, m{
			"key":     str("The secret key (p2t_…), shown this once."),
			"api_key": schemaRef("APIKey"),
		}),
	}
}
