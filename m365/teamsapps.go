package m365

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
)

// TeamsApp is an app of the tenant's Teams app catalog.
type TeamsApp struct {
	ID                 string               `json:"id"`         // catalog id
	ExternalID         string               `json:"externalId"` // the manifest id
	DisplayName        string               `json:"displayName"`
	DistributionMethod string               `json:"distributionMethod"` // organization, store, sideloaded
	AppDefinitions     []TeamsAppDefinition `json:"appDefinitions,omitempty"`
}

// TeamsAppDefinition is one version of a catalog app.
type TeamsAppDefinition struct {
	ID              string `json:"id"`
	TeamsAppID      string `json:"teamsAppId"`
	AzureADAppID    string `json:"azureADAppId"`
	DisplayName     string `json:"displayName"`
	Version         string `json:"version"`
	PublishingState string `json:"publishingState"` // published, submitted, rejected
}

// Latest is the newest definition, if any.
func (a *TeamsApp) Latest() *TeamsAppDefinition {
	if len(a.AppDefinitions) == 0 {
		return nil
	}
	return &a.AppDefinitions[len(a.AppDefinitions)-1]
}

func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// TeamsApps lists catalog apps matching an OData filter ("" for all), with
// their definitions.
func (g *Graph) TeamsApps(ctx context.Context, filter string) ([]TeamsApp, error) {
	var out []TeamsApp
	u := g.url("/appCatalogs/teamsApps", "$filter", filter, "$expand", "appDefinitions")
	_, err := iterate(ctx, g, u, nil, func(p []TeamsApp) error { out = append(out, p...); return nil })
	return out, err
}

// FindTeamsApp finds the catalog app with a manifest id (nil if none).
func (g *Graph) FindTeamsApp(ctx context.Context, externalID string) (*TeamsApp, error) {
	apps, err := g.TeamsApps(ctx, "externalId eq "+quote(externalID))
	if err != nil || len(apps) == 0 {
		return nil, err
	}
	return &apps[0], nil
}

// PublishTeamsApp uploads an app package (zip) to the organization's
// catalog. Graph accepts this only with a delegated token (Client.Delegated
// of an admin); an app-only Graph gets a forbidden error.
func (g *Graph) PublishTeamsApp(ctx context.Context, pkg []byte) (*TeamsApp, error) {
	res, err := g.call(ctx, http.MethodPost, g.url("/appCatalogs/teamsApps"), nil, pkg, "application/zip")
	if err != nil {
		return nil, err
	}
	var a TeamsApp
	if err := json.Unmarshal(res.body, &a); err != nil || a.ID == "" {
		// Graph has been seen answering manifest errors with 200 and an
		// error body: treat any error envelope as a failure.
		if code, msg, inner, ok := graphEnvelope(res.body); ok {
			return nil, graphErr(&GraphError{Method: http.MethodPost, Path: "/v1.0/appCatalogs/teamsApps", Status: 400,
				Code: code, Message: msg, InnerCode: inner, Attempts: 1}, g.tenant)
		}
		return nil, malformed(http.MethodPost, g.url("/appCatalogs/teamsApps"), 1, err)
	}
	return &a, nil
}

// UpdateTeamsApp uploads a new version of a catalog app (delegated).
func (g *Graph) UpdateTeamsApp(ctx context.Context, appID string, pkg []byte) (*TeamsAppDefinition, error) {
	u := g.url("/appCatalogs/teamsApps/" + url.PathEscape(appID) + "/appDefinitions")
	res, err := g.call(ctx, http.MethodPost, u, nil, pkg, "application/zip")
	if err != nil {
		return nil, err
	}
	var d TeamsAppDefinition
	if err := json.Unmarshal(res.body, &d); err != nil {
		return nil, malformed(http.MethodPost, u, 1, err)
	}
	return &d, nil
}

// DeleteTeamsApp removes an app from the org catalog (delegated).
func (g *Graph) DeleteTeamsApp(ctx context.Context, appID string) error {
	_, err := g.call(ctx, http.MethodDelete, g.url("/appCatalogs/teamsApps/"+url.PathEscape(appID)), nil, nil, "")
	return err
}

// Installation is an app installed in a user's personal scope.
type Installation struct {
	ID                 string              `json:"id"`
	TeamsApp           *TeamsApp           `json:"teamsApp,omitempty"`
	TeamsAppDefinition *TeamsAppDefinition `json:"teamsAppDefinition,omitempty"`
}

func installedPath(userID string) string {
	return "/users/" + url.PathEscape(userID) + "/teamwork/installedApps"
}

// InstalledApps lists the apps installed for a user.
func (g *Graph) InstalledApps(ctx context.Context, userID string) ([]Installation, error) {
	var out []Installation
	u := g.url(installedPath(userID), "$expand", "teamsApp,teamsAppDefinition")
	_, err := iterate(ctx, g, u, nil, func(p []Installation) error { out = append(out, p...); return nil })
	return out, err
}

// FindInstallation returns the user's installation of a catalog app, or
// nil when it is not installed.
func (g *Graph) FindInstallation(ctx context.Context, userID, catalogAppID string) (*Installation, error) {
	var out []Installation
	u := g.url(installedPath(userID), "$expand", "teamsApp", "$filter", "teamsApp/id eq "+quote(catalogAppID))
	_, err := iterate(ctx, g, u, nil, func(p []Installation) error { out = append(out, p...); return nil })
	if err != nil || len(out) == 0 {
		return nil, err
	}
	return &out[0], nil
}

// InstallApp installs a catalog app for a user (application permission
// TeamsAppInstallation.ReadWrite[Self]ForUser.All). It reports false, and
// no error, when the app was already installed.
func (g *Graph) InstallApp(ctx context.Context, userID, catalogAppID string) (bool, error) {
	body, _ := json.Marshal(map[string]string{
		"teamsApp@odata.bind": g.c.cfg.GraphURL + "/v1.0/appCatalogs/teamsApps/" + catalogAppID,
	})
	_, err := g.call(ctx, http.MethodPost, g.url(installedPath(userID)), nil, body, "application/json")
	if ge, ok := AsGraphError(err); ok && ge.Status == http.StatusConflict {
		return false, nil
	}
	return err == nil, err
}

// UninstallApp removes an installation; an installation already gone is
// not an error.
func (g *Graph) UninstallApp(ctx context.Context, userID, installationID string) error {
	_, err := g.call(ctx, http.MethodDelete, g.url(installedPath(userID)+"/"+url.PathEscape(installationID)), nil, nil, "")
	if IsNotFound(err) {
		return nil
	}
	return err
}

// UninstallCatalogApp removes a catalog app from a user, if installed. It
// reports whether something was removed.
func (g *Graph) UninstallCatalogApp(ctx context.Context, userID, catalogAppID string) (bool, error) {
	in, err := g.FindInstallation(ctx, userID, catalogAppID)
	if err != nil || in == nil {
		return false, err
	}
	return true, g.UninstallApp(ctx, userID, in.ID)
}
