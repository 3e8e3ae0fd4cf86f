package portal_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/pbx2teams/pbx2teams/internal/browser"
)

// journey is a Chromium session driving the portal for one test, with
// the steps every browser journey uses. Set PORTAL_SCREENSHOTS to a
// directory to keep screenshots (one named failName when a step fails).
type journey struct {
	t        *testing.T
	b        *browser.Browser
	failName string
}

func newJourney(t *testing.T, timeout time.Duration, failName string) *journey {
	return &journey{t: t, b: browser.New(t, browser.Options{Timeout: timeout}), failName: failName}
}

// shot saves a screenshot when PORTAL_SCREENSHOTS is set.
func (j *journey) shot(name string) {
	dir := os.Getenv("PORTAL_SCREENSHOTS")
	if dir == "" {
		return
	}
	if err := j.b.Screenshot(filepath.Join(dir, name+".png")); err != nil {
		j.t.Log(err)
	}
}

// do runs browser actions, failing the test with what was being done.
func (j *journey) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	j.t.Helper()
	if err := chromedp.Do(j.b.Ctx, actions...); err != nil {
		j.shot(j.failName)
		j.t.Fatalf("%s: %v", what, err)
	}
}

// text is the text of the first element matching sel.
func (j *journey) text(sel string) string {
	j.t.Helper()
	s, err := chromedp.Run(j.b.Ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		j.t.Fatalf("text of %s: %v", sel, err)
	}
	return s
}

// exists reports whether an element matches sel.
func (j *journey) exists(sel string) bool {
	j.t.Helper()
	ok, err := chromedp.Run(j.b.Ctx, chromedp.Evaluate[bool](`document.querySelector(`+jsString(sel)+`) !== null`))
	if err != nil {
		j.t.Fatal(err)
	}
	return ok
}
