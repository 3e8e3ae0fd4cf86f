package api

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/pbx2teams/pbx2teams"
)

// statusError is an error raised by the API layer itself (a malformed
// request, a wrong content type, a rate limit) with the HTTP status it needs
// when the code alone does not decide it.
type statusError struct {
	status     int
	retryAfter time.Duration
	err        *pbx2teams.Error
}

func (e *statusError) Error() string { return e.err.Error() }
func (e *statusError) Unwrap() error { return e.err }

// badRequest is a request the API cannot read (bad JSON, bad query value):
// 400, as opposed to a readable request the service refuses (422).
func badRequest(format string, args ...any) error {
	return &statusError{status: http.StatusBadRequest, err: pbx2teams.Errorf(pbx2teams.EInvalid, format, args...)}
}

func badParam(name, format string, args ...any) error {
	e := pbx2teams.Errorf(pbx2teams.EInvalid, format, args...)
	e.Details = []pbx2teams.ErrorDetail{{Field: name, Reason: e.Message}}
	return &statusError{status: http.StatusBadRequest, err: e}
}

// statusFor maps a service error code to its HTTP status.
func statusFor(code string) int { return pbx2teams.HTTPStatus(code) }

// errorBody is the JSON form of every error.
type errorBody struct {
	Code    string                  `json:"code"`
	Message string                  `json:"message"`
	Details []pbx2teams.ErrorDetail `json:"details"`
}

// writeError writes err as the JSON error body with its status. Internal
// errors get a generic message; their cause goes to the log only.
func (s *server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	status, retry := 0, time.Duration(0)
	var se *statusError
	if errors.As(err, &se) {
		status, retry = se.status, se.retryAfter
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		status = http.StatusRequestEntityTooLarge
		err = pbx2teams.Errorf(pbx2teams.EInvalid, "The request body is larger than %d bytes.", mbe.Limit)
	}
	code := pbx2teams.ErrorCode(err)
	if status == 0 {
		status = statusFor(code)
	}
	body := errorBody{Code: code, Message: pbx2teams.ErrorMessage(err), Details: []pbx2teams.ErrorDetail{}}
	var de *pbx2teams.Error
	if errors.As(err, &de) && de.Details != nil {
		body.Details = de.Details
	}
	switch {
	case status >= 500 && code != pbx2teams.EUnavailable:
		code = pbx2teams.EInternal
		body = errorBody{Code: code, Message: pbx2teams.ErrorMessage(errors.New("hidden")) + " Request ID: " + requestID(r) + ".",
			Details: []pbx2teams.ErrorDetail{}}
		s.log.Error("api: internal error", "request_id", requestID(r), "method", r.Method, "path", r.URL.Path, "err", err)
	case code == pbx2teams.EUnavailable:
		s.log.Warn("api: dependency unavailable", "request_id", requestID(r), "path", r.URL.Path, "err", err)
		if retry == 0 {
			retry = 5 * time.Second
		}
	case code == pbx2teams.ERateLimited && retry == 0:
		retry = time.Minute
	case code == pbx2teams.EUnauthenticated:
		w.Header().Set("WWW-Authenticate", `Bearer realm="pbx2teams"`)
	}
	if retry > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(retrySeconds(retry)))
	}
	writeJSON(w, status, body)
}

func retrySeconds(d time.Duration) int {
	s := int((d + time.Second - 1) / time.Second)
	if s < 1 {
		s = 1
	}
	return s
}

// writeJSON writes v as the JSON response with the status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		// Only a programming error gets here; keep the response well formed.
		status = http.StatusInternalServerError
		b = []byte(`{"code":"internal","message":"The response could not be encoded.","details":[]}`)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
