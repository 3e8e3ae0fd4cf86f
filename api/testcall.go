package api

import (
	"context"
	"net/http"
	"time"

	"github.com/pbx2teams/pbx2teams"
)

// DefaultTestCallTimeout bounds a test call made through the API: long
// enough for the user to answer in Teams, short enough that no proxy in
// front of the API gives up first.
const DefaultTestCallTimeout = 40 * time.Second

// testCallRequest is the optional body of POST .../test-call; it has no
// fields today (an empty object or no body at all).
type testCallRequest struct{}

func (s *server) testCall(w http.ResponseWriter, r *http.Request, p *pbx2teams.Principal) error {
	if r.ContentLength != 0 {
		var in testCallRequest
		if err := s.decodeJSON(w, r, &in); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.opts.TestCallTimeout)
	defer cancel()
	res, err := s.svc.TestCall(ctx, p, s.opts.TestCaller, r.PathValue("id"), r.PathValue("uid"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}
