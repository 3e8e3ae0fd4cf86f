package browser

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestBrowserLoadsLoopbackPage starts Chromium, opens a page from a loopback
// server, reads its title and text, and sees the console error the page logs.
func TestBrowserLoadsLoopbackPage(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, `<!doctype html><title>hello page</title><p id="msg">served to the browser</p><script>console.error("boom from page")</script>`)
	}))
	defer srv.Close()
	if !strings.HasPrefix(srv.URL, "http://127.0.0.1:") {
		t.Fatalf("test server not on loopback: %s", srv.URL)
	}
	b := New(t, Options{Timeout: 60 * time.Second})
	if err := chromedp.Do(b.Ctx, chromedp.Navigate(srv.URL)); err != nil {
		t.Fatal(err)
	}
	title, err := chromedp.Run(b.Ctx, chromedp.Title())
	if err != nil || title != "hello page" {
		t.Fatalf("title = %q, %v", title, err)
	}
	text, err := chromedp.Run(b.Ctx, chromedp.Text(chromedp.ID("msg")))
	if err != nil || text != "served to the browser" {
		t.Fatalf("text = %q, %v", text, err)
	}
	// The console message arrives asynchronously.
	deadline := time.Now().Add(10 * time.Second)
	for {
		errs := b.Errors()
		if len(errs) > 0 {
			if !strings.Contains(errs[0], "boom from page") {
				t.Fatalf("console errors = %q", errs)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the page's console.error was not seen")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
