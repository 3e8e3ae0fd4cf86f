package api

import (
	"net/http"
	"strings"

	"github.com/pbx2teams/pbx2teams"
)

// teamsView is a customer's Teams settings with its SBC FQDN, when this
// node knows the provider's SBC base FQDN.
type teamsView struct {
	*pbx2teams.TeamsSettings
	SBCFQDN string `json:"sbc_fqdn,omitempty"`
}

func (s *server) teamsView(ts *pbx2teams.TeamsSettings) teamsView {
	return teamsView{TeamsSettings: ts, SBCFQDN: pbx2teams.SBCFQDN(ts.SBCLabel, s.opts.SBCBaseFQDN)}
}

func (s *server) listCalls(w http.ResponseWriter, r *http.Request, p *pbx2teams.Principal) error {
	q := r.URL.Query()
	limit, err := queryInt(r, "limit", pbx2teams.DefaultCallPageSize, 1, pbx2teams.MaxCallPageSize)
	if err != nil {
		return err
	}
	result := q.Get("result")
	if result != "" && !pbx2teams.ValidCallResult(result) {
		return badParam("result", "Query parameter result must be one of %s, or absent for every call.", strings.Join(pbx2teams.CallResults, ", "))
	}
	page, err := s.svc.Calls(r.Context(), p, pbx2teams.CallQuery{
		AccountID: r.PathValue("id"), UserID: q.Get("user"), Result: result, Cursor: q.Get("cursor"), Limit: int(limit),
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, page)
	return nil
}

func (s *server) getCall(w http.ResponseWriter, r *http.Request, p *pbx2teams.Principal) error {
	c, err := s.svc.Call(r.Context(), p, r.PathValue("id"), r.PathValue("call"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, c)
	return nil
}

func (s *server) getCallTrace(w http.ResponseWriter, r *http.Request, p *pbx2teams.Principal) error {
	tr, err := s.svc.CallTrace(r.Context(), p, r.PathValue("id"), r.PathValue("call"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, tr)
	return nil
}
