// Package browser starts Debian's Chromium headless for tests and hands back
// a chromedp context bounded by a deadline. The portal's tests and, later,
// the Phone App tab's tests drive pages through it.
//
// Chromium runs with its own throw-away profile in t.TempDir(), without
// background networking, sync, component updates or QUIC, so that a test
// talks to nothing but the loopback server it opens.
package browser

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// DefaultPath is where Debian's chromium package installs the browser.
const DefaultPath = "/usr/bin/chromium"

// PathEnv overrides DefaultPath.
const PathEnv = "PBX2TEAMS_CHROMIUM"

// Options tune a browser; the zero value is usable.
type Options struct {
	// Timeout bounds everything done with the browser's context
	// (default 90 s): a hung page fails the test instead of hanging it.
	Timeout time.Duration
	// Width and Height of the window (default 1280×900).
	Width, Height int
}

// Browser is one running headless Chromium with one tab.
type Browser struct {
	// Ctx runs chromedp actions in the tab, e.g.
	// chromedp.Do(b.Ctx, chromedp.Navigate(url)).
	Ctx context.Context

	mu      sync.Mutex
	console []chromedp.ConsoleMessage
}

// Path returns the Chromium binary to use, or "" if there is none.
func Path() string {
	p := os.Getenv(PathEnv)
	if p == "" {
		p = DefaultPath
	}
	if st, err := os.Stat(p); err != nil || st.IsDir() {
		if lp, err := exec.LookPath("chromium"); err == nil && os.Getenv(PathEnv) == "" {
			return lp
		}
		return ""
	}
	return p
}

// New starts a headless Chromium for t and stops it when t ends. Without a
// Chromium binary the test is skipped, unless the environment variable CI is
// set, where it fails: CI must never skip a browser test silently.
func New(t testing.TB, o Options) *Browser {
	t.Helper()
	path := Path()
	if path == "" {
		want := DefaultPath
		if p := os.Getenv(PathEnv); p != "" {
			want = p + " (" + PathEnv + ")"
		}
		if os.Getenv("CI") != "" {
			t.Fatalf("browser: chromium not found at %s (install the Debian package chromium)", want)
		}
		t.Skipf("browser: chromium not found at %s; skipping", want)
	}
	if o.Timeout <= 0 {
		o.Timeout = 90 * time.Second
	}
	if o.Width <= 0 || o.Height <= 0 {
		o.Width, o.Height = 1280, 900
	}
	timeout, cancelTimeout := context.WithTimeout(context.Background(), o.Timeout)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(timeout,
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-features", "Translate,MediaRouter,OptimizationHints"),
		// Loopback only: never use a proxy from the environment.
		chromedp.Flag("no-proxy-server", true),
		chromedp.Flag("password-store", "basic"),
		chromedp.Flag("use-mock-keychain", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(o.Width, o.Height),
	)
	ctx, cancelTab := chromedp.NewContext(allocCtx, chromedp.WithLogf(t.Logf), chromedp.WithErrorf(func(f string, a ...any) {
		t.Logf("chromedp: "+f, a...)
	}))
	b := &Browser{Ctx: ctx}
	t.Cleanup(func() {
		// Close the browser gracefully; cancelAlloc then waits for the
		// process to exit (it is killed if it did not close).
		_ = chromedp.Cancel(ctx)
		cancelTab()
		cancelAlloc()
		cancelTimeout()
	})
	// Start the browser now so that a broken installation fails here, with
	// a clear message, rather than in the first action of the test.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("browser: start %s: %v", path, err)
	}
	// Subscribe before returning, so that no message of the first page
	// is missed; the goroutine only drains the queue.
	msgs := chromedp.Console(ctx)
	go func() {
		for m, err := range msgs {
			if err != nil {
				return
			}
			b.mu.Lock()
			b.console = append(b.console, m)
			b.mu.Unlock()
		}
	}()
	return b
}

// Console returns the console messages, uncaught exceptions and browser log
// entries (such as Content-Security-Policy violations) seen so far.
func (b *Browser) Console() []chromedp.ConsoleMessage {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]chromedp.ConsoleMessage(nil), b.console...)
}

// Errors returns the console errors and exceptions seen so far, as text.
func (b *Browser) Errors() []string {
	var out []string
	for _, m := range b.Console() {
		if m.Type == chromedp.ConsoleError || m.Type == chromedp.ConsoleException {
			out = append(out, strings.TrimSpace(m.String()))
		}
	}
	return out
}

// Screenshot writes a PNG of the whole page to path; meant for looking at
// pages while developing, not for committing.
func (b *Browser) Screenshot(path string) error {
	buf, err := chromedp.Run(b.Ctx, chromedp.FullScreenshot(100))
	if err != nil {
		return fmt.Errorf("browser: screenshot: %w", err)
	}
	return os.WriteFile(path, buf, 0o644)
}
