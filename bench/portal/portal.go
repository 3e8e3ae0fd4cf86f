package main

import (
	"html"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"

	"github.com/pbx2teams/pbx2teams"
	"github.com/pbx2teams/pbx2teams/portal"
)

// nextLinkRE finds the Users page's "Next →" link.
var nextLinkRE = regexp.MustCompile(`href="([^"]+)" id="users-next"`)

func init() {
	newPortal = func(svc *pbx2teams.Service, log *slog.Logger) http.Handler {
		return portal.New(svc, portal.Options{Log: log})
	}
	portalCases = func(accountID, search string) (string, string, func([]byte) (string, error)) {
		first := "/a/" + accountID + "/users"
		next := func(body []byte) (string, error) {
			m := nextLinkRE.FindSubmatch(body)
			if m == nil {
				return "", nil
			}
			return html.UnescapeString(string(m[1])), nil
		}
		return first, first + "?q=" + url.QueryEscape(search), next
	}
}
