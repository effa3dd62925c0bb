package monitor_test

import (
	"bytes"
	"context"
	"fmt"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/monitor"
)

// chromiumPath is Debian's chromium package (.ci/run installs it).
const chromiumPath = "/usr/bin/chromium"

// browser is a headless Chromium tab that records every request it makes and
// every script error or console error (a CSP violation among them).
type browser struct {
	ctx context.Context

	mu       sync.Mutex
	requests []string
	problems []string
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Skipf("no headless browser: %s is absent (apt-get install -y chromium; .ci/run installs it)", chromiumPath)
	}
	profileDir := t.TempDir() // removed after the browser exits: cleanups run last-registered first
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("no-default-browser-check", true),
		chromedp.UserDataDir(profileDir),
		chromedp.WindowSize(1280, 1100),
	)
	ctx, cancel := chromedp.NewContext(allocCtx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 2*time.Minute)
	t.Cleanup(func() {
		_ = chromedp.Cancel(ctx) // closes the browser and waits for it
		cancelTimeout()
		cancel()
		cancelAlloc()
	})
	b := &browser{ctx: ctx}
	require.NoError(t, chromedp.Listen(ctx, func(ev any) {
		b.mu.Lock()
		defer b.mu.Unlock()
		switch e := ev.(type) {
		case *network.EventRequestWillBeSent:
			b.requests = append(b.requests, e.Request.URL)
		case *runtime.EventExceptionThrown:
			b.problems = append(b.problems, "exception: "+e.ExceptionDetails.Text)
		case *log.EventEntryAdded:
			if e.Entry.Level == log.EntryLevelError {
				b.problems = append(b.problems, "log: "+e.Entry.Text)
			}
		}
	}))
	return b
}

func (b *browser) do(t *testing.T, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	require.NoError(t, chromedp.Do(b.ctx, steps...))
}

func (b *browser) text(t *testing.T, selector string) string {
	t.Helper()
	s, err := chromedp.Run(b.ctx, chromedp.Text(chromedp.CSS(selector)))
	require.NoError(t, err, selector)
	return strings.TrimSpace(s)
}

// waitFor polls a JavaScript predicate in the page.
func (b *browser) waitFor(t *testing.T, what, predicate string, timeout time.Duration) {
	t.Helper()
	_, err := chromedp.Run(b.ctx, chromedp.Poll[chromedp.Void](predicate, chromedp.WithPollingTimeout(timeout)))
	require.NoError(t, err, "waiting for %s (%s)", what, predicate)
}

// checkSelfContained asserts that every request the page made went to the
// handler's origin and that no script or console error happened.
func (b *browser) checkSelfContained(t *testing.T, origin string) {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	require.NotEmpty(t, b.requests)
	for _, u := range b.requests {
		assert.True(t, strings.HasPrefix(u, origin+prefix+"/"), "a request left the handler: %s", u)
	}
	assert.Empty(t, b.problems, "script or console errors")
}

func (b *browser) requested(suffix string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, u := range b.requests {
		if strings.HasSuffix(u, suffix) {
			return true
		}
	}
	return false
}

func TestBrowserPagesRender(t *testing.T) {
	e := newEnv(t, monitor.Options{}, nil)
	e.seed(t)
	b := newBrowser(t)

	b.do(t, chromedp.Navigate(e.url("/")), chromedp.WaitVisible(chromedp.CSS("#throughput")))
	assert.Equal(t, "1", b.text(t, "#mailbox-count"))
	assert.Equal(t, "2", b.text(t, "#failures-hour"))
	assert.Contains(t, b.text(t, "p.banner.bad"), "More than half of a profile's mailboxes failed")
	bars, err := chromedp.Run(b.ctx, chromedp.Evaluate[int](`document.querySelectorAll("#throughput rect.tracked").length`))
	require.NoError(t, err)
	assert.Equal(t, 1, bars, "the chart is drawn")
	color, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](`getComputedStyle(document.querySelector("#throughput rect.tracked")).fill`))
	require.NoError(t, err)
	assert.Equal(t, "rgb(26, 127, 55)", color, "the stylesheet applies")

	b.do(t, chromedp.Click(chromedp.CSS(`a[href$="/mailboxes/`+e.mailbox.ID+`"]`)), chromedp.WaitVisible(chromedp.CSS("#mailbox-address")))
	assert.Equal(t, "alice@contoso.test", b.text(t, "#mailbox-address"))
	assert.Equal(t, "1", b.text(t, "#count-tracked"))
	assert.Contains(t, b.text(t, "#last-error"), "What to do:")

	b.do(t, chromedp.Navigate(e.url("/profiles/"+e.profile.ID)), chromedp.WaitVisible(chromedp.CSS("#profile-name")))
	assert.Equal(t, "Contoso mail", b.text(t, "#profile-name"))
	assert.Contains(t, b.text(t, "#certificate"), "CN=s2s.contoso.test")

	assert.True(t, b.requested("/static/monitor.css"))
	assert.True(t, b.requested("/static/poll.js"))
	b.checkSelfContained(t, e.server.URL)
}

func TestBrowserTestAndEnable(t *testing.T) {
	e := newEnv(t, monitor.Options{}, func(m *serversync.Mailbox) { m.OAuthToken = serversync.OAuthToken{} })
	require.NoError(t, e.admin.Approve(context.Background(), "admin", e.mailbox.ID))
	b := newBrowser(t)

	b.do(t, chromedp.Navigate(e.url("/mailboxes/"+e.mailbox.ID)), chromedp.WaitVisible(chromedp.CSS("#test-enable")))
	assert.Equal(t, "NotRun", b.text(t, "#incoming-status"))
	b.do(t, chromedp.Click(chromedp.CSS("#test-enable")), chromedp.WaitVisible(chromedp.CSS("#notice")))
	assert.Equal(t, "Test & Enable finished.", b.text(t, "#notice"))
	assert.Equal(t, "enabled", b.text(t, "#incoming-status"))
	assert.Equal(t, "enabled", b.text(t, "#outgoing-status"))
	m, err := e.store.GetMailbox(context.Background(), e.mailbox.ID)
	require.NoError(t, err)
	assert.Equal(t, serversync.TestSuccess, m.Status)

	// Disable, from the same page. The notice shown now goes first, so that the
	// wait is for the next page's.
	_, err = chromedp.Run(b.ctx, chromedp.Evaluate[bool](`document.getElementById("notice").remove() === undefined`))
	require.NoError(t, err)
	b.do(t, chromedp.Click(chromedp.CSS("#disable")), chromedp.WaitVisible(chromedp.CSS("#notice")))
	assert.Contains(t, b.text(t, "#notice"), "disabled")
	assert.Equal(t, "Success", b.text(t, "#incoming-status"), "tested, not enabled")
	b.checkSelfContained(t, e.server.URL)
}

// A mailbox's page follows the Syncer without being reloaded: Test & Enable runs
// in the background, the initial sync tracks the inbox, and the page shows it.
func TestBrowserStatusChangesLive(t *testing.T) {
	e := newEnv(t, monitor.Options{Refresh: 200 * time.Millisecond}, func(m *serversync.Mailbox) { m.OAuthToken = serversync.OAuthToken{} })
	const n = 5
	for i := range n {
		require.NoError(t, e.demo.Deliver(e.mailbox.EmailAddress, []byte(fmt.Sprintf("From: Bob <bob@fabrikam.test>\r\n"+
			"To: alice@contoso.test\r\nSubject: Order %d\r\nMessage-ID: <order-%d@fabrikam.test>\r\n"+
			"Date: Mon, 23 Nov 2026 09:00:00 +0000\r\nContent-Type: text/plain\r\n\r\nHello\r\n", i, i))))
	}
	b := newBrowser(t)
	b.do(t, chromedp.Navigate(e.url("/mailboxes/"+e.mailbox.ID)), chromedp.WaitVisible(chromedp.CSS("#incoming-status")))
	// The live part is replaced every 200 ms: read it through waits, never mid-swap.
	b.waitFor(t, "incoming not run", `document.querySelector("#incoming-status")?.textContent.trim() === "NotRun"`, 10*time.Second)
	b.waitFor(t, "nothing tracked", `document.querySelector("#count-tracked")?.textContent.trim() === "0"`, 10*time.Second)
	_, err := chromedp.Run(b.ctx, chromedp.Evaluate[bool](`window.stillTheSamePage = true`))
	require.NoError(t, err)

	e.run(t)
	require.NoError(t, e.admin.Approve(context.Background(), "admin", e.mailbox.ID)) // the Syncer tests it in the background
	b.waitFor(t, "incoming enabled", `document.querySelector("#incoming-status")?.textContent.trim() === "enabled"`, time.Minute)
	b.waitFor(t, "the inbox tracked", `document.querySelector("#count-tracked")?.textContent.trim() === "5"`, time.Minute)
	b.waitFor(t, "the last sync shown", `(document.querySelector("#last-sync")?.textContent.trim() ?? "never") !== "never"`, time.Minute)
	same, err := chromedp.Run(b.ctx, chromedp.Evaluate[bool](`window.stillTheSamePage === true`))
	require.NoError(t, err)
	assert.True(t, same, "updated in place, not reloaded")
	b.waitFor(t, "the tracked mail listed", `(document.querySelector("table.activities")?.textContent ?? "").includes("Order 4")`, 10*time.Second)
	b.checkSelfContained(t, e.server.URL)
}

// TestBrowserScreenshots draws the overview and a mailbox page after a real sync
// and writes PNGs a person can look at: into $SERVERSYNC_SCREENSHOTS when set
// (kept), else into the test's temporary directory.
func TestBrowserScreenshots(t *testing.T) {
	e := newEnv(t, monitor.Options{}, func(m *serversync.Mailbox) { m.OAuthToken = serversync.OAuthToken{} })
	for i := range 12 {
		require.NoError(t, e.demo.Deliver(e.mailbox.EmailAddress, []byte(fmt.Sprintf("From: Bob <bob@fabrikam.test>\r\n"+
			"To: alice@contoso.test\r\nSubject: Quote request %d\r\nMessage-ID: <quote-%d@fabrikam.test>\r\n"+
			"Date: Mon, 23 Nov 2026 09:00:00 +0000\r\nContent-Type: text/plain\r\n\r\nHello\r\n", i, i))))
	}
	e.seed(t)
	e.run(t)
	require.NoError(t, e.admin.Approve(context.Background(), "admin", e.mailbox.ID))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := serversync.WaitInitialSync(ctx, e.store, e.mailbox.ID)
	require.NoError(t, err)

	dir := os.Getenv("SERVERSYNC_SCREENSHOTS")
	if dir == "" {
		dir = t.TempDir()
	}
	require.NoError(t, os.MkdirAll(dir, 0o755))
	b := newBrowser(t)
	for name, path := range map[string]string{"overview": "/", "mailbox": "/mailboxes/" + e.mailbox.ID, "profile": "/profiles/" + e.profile.ID} {
		b.do(t, chromedp.Navigate(e.url(path)), chromedp.WaitVisible(chromedp.CSS("#live")))
		shot, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100)) // 100: PNG
		require.NoError(t, err)
		img, err := png.Decode(bytes.NewReader(shot))
		require.NoError(t, err, "a PNG")
		assert.GreaterOrEqual(t, img.Bounds().Dx(), 1000)
		assert.Greater(t, img.Bounds().Dy(), 400)
		file := filepath.Join(dir, "monitor-"+name+".png")
		require.NoError(t, os.WriteFile(file, shot, 0o644))
		t.Logf("screenshot: %s", file)
	}
	b.checkSelfContained(t, e.server.URL)
}
