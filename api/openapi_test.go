package api

import (
	"encoding/json"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/pbx2teams/pbx2teams"
)

// fetchSpec gets the served document without credentials.
func fetchSpec(t *testing.T, e *env) map[string]any {
	t.Helper()
	anon := &client{e: e, name: "anonymous"}
	r := anon.raw("GET", Prefix+"/openapi.json", "", nil)
	if r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
		t.Fatalf("openapi.json: %s", r)
	}
	var doc map[string]any
	if err := json.Unmarshal(r.body, &doc); err != nil {
		t.Fatal(err)
	}
	if doc["openapi"] != "3.1.0" {
		t.Fatalf("openapi = %v", doc["openapi"])
	}
	return doc
}

// TestOpenAPICoversRoutes: every route of the mux is in the served document
// and every operation of the document is routed by the mux.
func TestOpenAPICoversRoutes(t *testing.T) {
	e := newEnv(t, Options{})
	doc := fetchSpec(t, e)
	paths := doc["paths"].(map[string]any)
	inDoc := map[string]map[string]any{}
	for p, item := range paths {
		for method, op := range item.(map[string]any) {
			inDoc[strings.ToUpper(method)+" "+p] = op.(map[string]any)
		}
	}
	inMux := map[string]route{}
	for _, rt := range (&server{}).routes() {
		inMux[rt.method+" "+rt.path] = rt
	}
	for k := range inMux {
		if _, ok := inDoc[k]; !ok {
			t.Errorf("route %s is not in the OpenAPI document", k)
		}
	}
	for k, op := range inDoc {
		rt, ok := inMux[k]
		if !ok {
			t.Errorf("OpenAPI operation %s has no route", k)
			continue
		}
		// The operation is really served: without credentials it is
		// refused by authentication (401), not by routing (404/405).
		method, path, _ := strings.Cut(k, " ")
		path = strings.NewReplacer("{id}", "acc_x", "{uid}", "usr_x", "{sku}", "pbx-user", "{kid}", "key_x", "{job}", "job_x").Replace(path)
		r := (&client{e: e, name: "anonymous"}).raw(method, path, "", nil)
		want := 401
		if rt.public {
			want = 200
		}
		if r.status != want {
			t.Errorf("%s %s without credentials: got %s, want %d", method, path, r, want)
		}
		// Path parameters are declared; error responses are documented.
		declared := map[string]bool{}
		params, _ := op["parameters"].([]any)
		for _, p := range params {
			pm := p.(map[string]any)
			if pm["in"] == "path" {
				declared[pm["name"].(string)] = true
			}
		}
		for _, w := range wildcardRE.FindAllStringSubmatch(k, -1) {
			if !declared[w[1]] {
				t.Errorf("%s: path parameter %s not declared", k, w[1])
			}
		}
		resps := op["responses"].(map[string]any)
		if !rt.public {
			for _, st := range []string{"401", "403", "404", "500"} {
				if _, ok := resps[st]; !ok {
					t.Errorf("%s: response %s not documented", k, st)
				}
			}
		}
		if op["operationId"] == "" || op["summary"] == "" {
			t.Errorf("%s: no operationId or summary", k)
		}
	}
}

// TestOpenAPIRefsResolve: every $ref of the document points at something.
func TestOpenAPIRefsResolve(t *testing.T) {
	e := newEnv(t, Options{})
	doc := fetchSpec(t, e)
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			if ref, ok := x["$ref"].(string); ok {
				var cur any = doc
				for _, part := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
					mm, _ := cur.(map[string]any)
					cur = mm[part]
				}
				if cur == nil {
					t.Errorf("unresolved $ref %s", ref)
				}
			}
			for _, c := range x {
				walk(c)
			}
		case []any:
			for _, c := range x {
				walk(c)
			}
		}
	}
	walk(doc)
}

// TestOpenAPISchemasMatchTypes: each schema lists exactly the JSON fields
// of the Go type the API encodes or decodes, so the document cannot drift.
func TestOpenAPISchemasMatchTypes(t *testing.T) {
	types := map[string]any{
		"Error":                errorBody{},
		"ErrorDetail":          pbx2teams.ErrorDetail{},
		"Me":                   meResponse{},
		"Account":              pbx2teams.Account{},
		"AccountList":          accountList{},
		"CreateAccountRequest": createAccountRequest{},
		"Admin":                pbx2teams.Admin{},
		"AdminList":            adminList{},
		"CreateAdminRequest":   createAdminRequest{},
		"CreateAdminResponse":  createAdminResponse{},
		"Licence":              pbx2teams.Licence{},
		"LicenceList":          licenceList{},
		"LicenceRequest":       licenceRequest{},
		"PBXSettings":          pbx2teams.PBXSettings{},
		"PBXSettingsInput":     pbxRequest{},
		"Group":                pbx2teams.Group{},
		"TeamsSettings":        teamsView{},
		"CallMedia":            pbx2teams.CallMedia{},
		"CallRecord":           pbx2teams.CallRecord{},
		"CallPage":             pbx2teams.CallPage{},
		"TraceMessage":         pbx2teams.TraceMessage{},
		"CallTrace":            pbx2teams.CallTrace{},
		"TeamsOptions":         pbx2teams.TeamsOptions{},
		"RegistrationState":    pbx2teams.RegistrationState{},
		"User":                 userView{},
		"UserPage":             userPage{},
		"UserConfig":           pbx2teams.UserConfig{},
		"ImportResult":         pbx2teams.ImportResult{},
		"AuditEntry":           pbx2teams.AuditEntry{},
		"AuditPage":            auditPage{},
		"APIKey":               pbx2teams.APIKey{},
		"APIKeyList":           apiKeyList{},
		"CreateAPIKeyRequest":  createAPIKeyRequest{},
		"CreateAPIKeyResponse": createAPIKeyResponse{},
		"SyncCounts":           pbx2teams.SyncCounts{},
		"SyncJob":              pbx2teams.SyncJob{},
		"SyncJobList":          syncJobList{},
		"SyncStatus":           syncStatusResponse{},
		"SyncStartRequest":     syncStartRequest{},
		"GroupList":            groupList{},
		"Check":                pbx2teams.Check{},
		"Readiness":            pbx2teams.Readiness{},
		"UserReadiness":        userReadinessResponse{},
		"TestCallRequest":      testCallRequest{},
		"TestCallResult":       pbx2teams.TestCallResult{},
	}
	sch := schemas()
	for name, s := range sch {
		props, isObject := s.(m)["properties"].(m)
		v, ok := types[name]
		if !isObject {
			continue
		}
		if !ok {
			t.Errorf("schema %s has no Go type in this test", name)
			continue
		}
		var inSchema []string
		for p := range props {
			inSchema = append(inSchema, p)
		}
		sort.Strings(inSchema)
		inGo := goJSONFields(reflect.TypeOf(v))
		sort.Strings(inGo)
		if strings.Join(inSchema, ",") != strings.Join(inGo, ",") {
			t.Errorf("schema %s has %v; the Go type has %v", name, inSchema, inGo)
		}
		if req, ok := s.(m)["required"].([]string); ok {
			for _, r := range req {
				if _, ok := props[r]; !ok {
					t.Errorf("schema %s requires unknown %s", name, r)
				}
			}
		}
	}
	for name := range types {
		if _, ok := sch[name]; !ok {
			t.Errorf("no schema %s", name)
		}
	}
}

// goJSONFields lists the JSON names encoding/json uses for t, following
// embedded structs.
func goJSONFields(t reflect.Type) []string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	var out []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		name, _, _ := strings.Cut(tag, ",")
		if name == "-" {
			continue
		}
		if f.Anonymous && name == "" {
			out = append(out, goJSONFields(f.Type)...)
			continue
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out = append(out, name)
	}
	return out
}
