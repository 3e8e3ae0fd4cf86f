// Package teamsapp builds the Phone App's Teams app package: a zip holding
// manifest.json (Teams manifest schema v1.17: one personal static tab,
// validDomains, webApplicationInfo for the tab's SSO) and the two icons the
// schema requires, drawn here (color.png 192×192, outline.png 32×32 white
// on transparent), so the package is generated, never hand-edited.
package teamsapp

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// SchemaVersion is the manifest schema the package follows.
const SchemaVersion = "1.17"

// Options describe the app. AppID, ClientID and TabURL are required.
type Options struct {
	// AppID is the manifest id (a GUID); it becomes externalId in the
	// tenant's catalog, so it must stay the same across versions.
	AppID string
	// Version is the app's semantic version (default 1.0.0).
	Version string
	// ClientID is the Entra ID app registration of the tab (SSO).
	ClientID string
	// TabURL is the HTTPS address of the dialler tab.
	TabURL string
	// ExtraDomains are more domains the tab navigates to.
	ExtraDomains []string
	// ShortName (≤30) and FullName (≤100); defaults "Phone" and
	// "Phone for Microsoft Teams".
	ShortName, FullName string
	// Developer name (≤32) and website; default from TabURL.
	DeveloperName, WebsiteURL, PrivacyURL, TermsURL string
	// AccentColor as #rrggbb (default #3558d6).
	AccentColor string
}

// Manifest is the manifest.json document.
type Manifest struct {
	Schema             string      `json:"$schema"`
	ManifestVersion    string      `json:"manifestVersion"`
	Version            string      `json:"version"`
	ID                 string      `json:"id"`
	Developer          Developer   `json:"developer"`
	Name               Name        `json:"name"`
	Description        Description `json:"description"`
	Icons              Icons       `json:"icons"`
	AccentColor        string      `json:"accentColor"`
	StaticTabs         []StaticTab `json:"staticTabs"`
	Permissions        []string    `json:"permissions"`
	ValidDomains       []string    `json:"validDomains"`
	WebApplicationInfo WebAppInfo  `json:"webApplicationInfo"`
}

// Developer is the manifest's developer block.
type Developer struct {
	Name          string `json:"name"`
	WebsiteURL    string `json:"websiteUrl"`
	PrivacyURL    string `json:"privacyUrl"`
	TermsOfUseURL string `json:"termsOfUseUrl"`
}

// Name is the app's short and full name.
type Name struct {
	Short string `json:"short"`
	Full  string `json:"full"`
}

// Description is the app's short and full description.
type Description struct {
	Short string `json:"short"`
	Full  string `json:"full"`
}

// Icons names the icon files in the package.
type Icons struct {
	Color   string `json:"color"`
	Outline string `json:"outline"`
}

// StaticTab is a personal tab.
type StaticTab struct {
	EntityID   string   `json:"entityId"`
	Name       string   `json:"name"`
	ContentURL string   `json:"contentUrl"`
	WebsiteURL string   `json:"websiteUrl"`
	Scopes     []string `json:"scopes"`
}

// WebAppInfo is the SSO registration of the tab.
type WebAppInfo struct {
	ID       string `json:"id"`
	Resource string `json:"resource"`
}

var (
	guidRE  = regexp.MustCompile(`^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$`)
	colorRE = regexp.MustCompile(`^#[0-9a-fA-F]{6}$`)
	semver  = regexp.MustCompile(`^\d+\.\d+\.\d+$`)
)

// BuildManifest checks o and returns the manifest.
func BuildManifest(o Options) (*Manifest, error) {
	if !guidRE.MatchString(o.AppID) {
		return nil, fmt.Errorf("teamsapp: app id %q is not a GUID", o.AppID)
	}
	if !guidRE.MatchString(o.ClientID) {
		return nil, fmt.Errorf("teamsapp: client id %q is not a GUID", o.ClientID)
	}
	tab, err := url.Parse(o.TabURL)
	if err != nil || tab.Host == "" || (tab.Scheme != "https" && tab.Scheme != "http") {
		return nil, fmt.Errorf("teamsapp: tab URL %q is not an absolute http(s) URL", o.TabURL)
	}
	if o.Version == "" {
		o.Version = "1.0.0"
	}
	if !semver.MatchString(o.Version) {
		return nil, fmt.Errorf("teamsapp: version %q is not x.y.z", o.Version)
	}
	if o.ShortName == "" {
		o.ShortName = "Phone"
	}
	if o.FullName == "" || o.FullName == o.ShortName {
		o.FullName = o.ShortName + " for Microsoft Teams"
	}
	if len(o.ShortName) > 30 || len(o.FullName) > 100 {
		return nil, fmt.Errorf("teamsapp: names are limited to 30 (short) and 100 (full) characters")
	}
	if o.AccentColor == "" {
		o.AccentColor = "#3558d6"
	}
	if !colorRE.MatchString(o.AccentColor) {
		return nil, fmt.Errorf("teamsapp: accent colour %q is not #rrggbb", o.AccentColor)
	}
	site := tab.Scheme + "://" + tab.Host
	if o.WebsiteURL == "" {
		o.WebsiteURL = site
	}
	if o.PrivacyURL == "" {
		o.PrivacyURL = site + "/privacy"
	}
	if o.TermsURL == "" {
		o.TermsURL = site + "/terms"
	}
	if o.DeveloperName == "" {
		o.DeveloperName = tab.Hostname()
	}
	if len(o.DeveloperName) > 32 {
		o.DeveloperName = o.DeveloperName[:32]
	}
	domains := []string{tab.Host}
	for _, d := range o.ExtraDomains {
		if d = strings.TrimSpace(d); d != "" && d != tab.Host {
			domains = append(domains, d)
		}
	}
	if len(domains) > 16 {
		return nil, fmt.Errorf("teamsapp: at most 16 valid domains")
	}
	return &Manifest{
		Schema:          "https://developer.microsoft.com/json-schemas/teams/v" + SchemaVersion + "/MicrosoftTeams.schema.json",
		ManifestVersion: SchemaVersion,
		Version:         o.Version,
		ID:              strings.ToLower(o.AppID),
		Developer:       Developer{Name: o.DeveloperName, WebsiteURL: o.WebsiteURL, PrivacyURL: o.PrivacyURL, TermsOfUseURL: o.TermsURL},
		Name:            Name{Short: o.ShortName, Full: o.FullName},
		Description: Description{
			Short: "Your PBX line in Teams: dial, answer and transfer.",
			Full: "Makes and takes the calls of your company phone system (PBX) inside Microsoft Teams: dial pad, " +
				"recent calls, contacts, hold, transfer and keypad. Calls ring you in Teams first and then connect " +
				"through your PBX extension. Installed for you by your administrator.",
		},
		Icons:       Icons{Color: "color.png", Outline: "outline.png"},
		AccentColor: o.AccentColor,
		StaticTabs: []StaticTab{{EntityID: "dialer", Name: "Phone", ContentURL: o.TabURL, WebsiteURL: o.TabURL,
			Scopes: []string{"personal"}}},
		Permissions:        []string{"identity"},
		ValidDomains:       domains,
		WebApplicationInfo: WebAppInfo{ID: strings.ToLower(o.ClientID), Resource: "api://" + tab.Host + "/" + strings.ToLower(o.ClientID)},
	}, nil
}

// Package returns the app package zip for o.
func Package(o Options) ([]byte, error) {
	m, err := BuildManifest(o)
	if err != nil {
		return nil, err
	}
	mj, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	colorPNG, err := encodePNG(ColorIcon(m.AccentColor))
	if err != nil {
		return nil, err
	}
	outlinePNG, err := encodePNG(OutlineIcon())
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	// A fixed time keeps the package bytes stable for the same options.
	when := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, f := range []struct {
		name string
		data []byte
	}{{"manifest.json", mj}, {"color.png", colorPNG}, {"outline.png", outlinePNG}} {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: f.name, Method: zip.Deflate, Modified: when})
		if err != nil {
			return nil, err
		}
		if _, err := w.Write(f.data); err != nil {
			return nil, err
		}
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func encodePNG(img image.Image) ([]byte, error) {
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func parseHex(s string) color.NRGBA {
	var r, g, b uint8
	fmt.Sscanf(s, "#%02x%02x%02x", &r, &g, &b)
	return color.NRGBA{r, g, b, 255}
}

// ColorIcon draws the 192×192 colour icon: a rounded square in the accent
// colour with a white 3×3 dial pad.
func ColorIcon(accent string) image.Image {
	const n = 192
	img := image.NewNRGBA(image.Rect(0, 0, n, n))
	bg := parseHex(accent)
	white := color.NRGBA{255, 255, 255, 255}
	for y := 0; y < n; y++ {
		for x := 0; x < n; x++ {
			if inRoundRect(x, y, 0, 0, n, n, 36) {
				img.SetNRGBA(x, y, bg)
			}
		}
	}
	drawPad(img, n, 46, 18, white)
	return img
}

// OutlineIcon draws the 32×32 outline icon: a white dial pad on
// transparency, as Teams requires.
func OutlineIcon() image.Image {
	const n = 32
	img := image.NewNRGBA(image.Rect(0, 0, n, n))
	drawPad(img, n, 9, 3.2, color.NRGBA{255, 255, 255, 255})
	return img
}

// drawPad draws nine dots spaced step apart around the centre.
func drawPad(img *image.NRGBA, n int, step, r float64, c color.NRGBA) {
	mid := float64(n) / 2
	for i := -1; i <= 1; i++ {
		for j := -1; j <= 1; j++ {
			cx, cy := mid+float64(i)*step, mid+float64(j)*step
			for y := int(cy - r - 1); y <= int(cy+r+1); y++ {
				for x := int(cx - r - 1); x <= int(cx+r+1); x++ {
					dx, dy := float64(x)+0.5-cx, float64(y)+0.5-cy
					if dx*dx+dy*dy <= r*r {
						img.SetNRGBA(x, y, c)
					}
				}
			}
		}
	}
}

func inRoundRect(x, y, x0, y0, x1, y1, rad int) bool {
	cx := min(max(x, x0+rad), x1-rad-1)
	cy := min(max(y, y0+rad), y1-rad-1)
	dx, dy := x-cx, y-cy
	return dx*dx+dy*dy <= rad*rad
}
