package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"reflect"
	"strconv"
	"strings"

	"github.com/pbx2teams/pbx2teams"
)

// requireContentType refuses a body whose media type is not one of want
// (415), naming what is expected.
func requireContentType(r *http.Request, want ...string) error {
	ct := r.Header.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	if err == nil {
		for _, w := range want {
			if strings.EqualFold(mt, w) {
				return nil
			}
		}
	}
	if ct == "" {
		ct = "none"
	}
	return &statusError{status: http.StatusUnsupportedMediaType, err: pbx2teams.Errorf(pbx2teams.EInvalid,
		"The request body must be sent as Content-Type %s (got %s).", strings.Join(want, " or "), ct)}
}

// decodeJSON reads the JSON request body into dst (a pointer to a struct).
// The body must be application/json, at most MaxBodyBytes, one JSON object,
// and may only hold fields dst knows: a misspelt field is an error rather
// than silently ignored. Error messages never quote the body's values,
// which may be passwords.
func (s *server) decodeJSON(w http.ResponseWriter, r *http.Request, dst any) error {
	if err := requireContentType(r, "application/json"); err != nil {
		return err
	}
	r.Body = http.MaxBytesReader(w, r.Body, s.opts.MaxBodyBytes)
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return jsonError(err, dst)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return err
		}
		return badRequest("The request body must hold exactly one JSON object; there is more after it.")
	}
	return nil
}

// jsonError explains a decoding failure in terms of the request's fields.
func jsonError(err error, dst any) error {
	var (
		syn *json.SyntaxError
		typ *json.UnmarshalTypeError
		mbe *http.MaxBytesError
	)
	switch {
	case errors.As(err, &mbe):
		return err
	case errors.Is(err, io.EOF):
		return badRequest("The request body is empty; send a JSON object.")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return badRequest("The request body ends in the middle of the JSON object.")
	case errors.As(err, &syn):
		return badRequest("The request body is not valid JSON (error at byte %d).", syn.Offset)
	case errors.As(err, &typ):
		if typ.Field == "" {
			return badRequest("The request body must be a JSON object with the fields: %s.", strings.Join(jsonFields(dst), ", "))
		}
		return badParam(typ.Field, "Field %q must be %s, not a JSON %s.", typ.Field, describeType(typ.Type), typ.Value)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return badParam(name, "Unknown field %q in the request body; the fields are: %s.", name, strings.Join(jsonFields(dst), ", "))
	}
	return badRequest("The request body could not be read as JSON: %v.", err)
}

// jsonFields lists the JSON field names of the struct dst points to.
func jsonFields(dst any) []string {
	t := reflect.TypeOf(dst)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	var out []string
	if t.Kind() != reflect.Struct {
		return out
	}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out = append(out, name)
	}
	return out
}

func describeType(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		if t.String() == "time.Time" {
			return "a date-time string such as 2030-01-31T00:00:00Z"
		}
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int64, reflect.Int32:
		return "a whole number"
	case reflect.Float64, reflect.Float32:
		return "a number"
	case reflect.Slice:
		return "an array"
	case reflect.Struct:
		if t.String() == "time.Time" {
			return "a date-time string such as 2030-01-31T00:00:00Z"
		}
		return "an object"
	}
	return fmt.Sprintf("a %s", t.Kind())
}

// queryInt reads an optional integer query parameter within [min, max].
func queryInt(r *http.Request, name string, def, min, max int64) (int64, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < min || n > max {
		return 0, badParam(name, "Query parameter %s must be a whole number from %d to %d.", name, min, max)
	}
	return n, nil
}
