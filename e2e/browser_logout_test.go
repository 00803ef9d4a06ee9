package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/sluis-gateway/sluis/internal/testenv"
	"github.com/sluis-gateway/sluis/mfa"
)

// Item 8 of issue 12, in Chromium: after logout, neither going back to an
// app page nor opening it again shows anything of it; the browser has to
// ask, and is sent to log in.
func TestBrowserLogoutLeavesNoAppPageBehind(t *testing.T) {
	chromium(t)
	const marker = "patient-record-4711"
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// No Cache-Control of its own, as many apps: the browser may keep
		// the page for going back.
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, "<!doctype html><title>record</title><p id=record>%s for %s</p>", marker, r.Header.Get("X-Sluis-User"))
	}))
	t.Cleanup(app.Close)
	g := testenv.Start(t, testenv.App{Name: "wiki", Host: wikiHost, Upstream: app.URL, Groups: []string{"staff"}, MFA: true})
	secret := g.AddUser("anna", pw, "staff")
	b := &tab{t: t, ctx: newBrowser(t, 90*time.Second, ignoreCertificates), logs: g.Logs}

	code := func() string {
		now := time.Now()
		c, err := mfa.Code(secret, now)
		if err != nil {
			t.Fatal(err)
		}
		g.UseCode("anna", mfa.Step(now))
		return c
	}
	b.step("the app page sends a browser without a session to the login page", stepTime,
		chromedp.Navigate(g.URL(wikiHost, "/record")),
		chromedp.WaitVisible(chromedp.ID("username")))
	b.step("the password leads to the code form", stepTime,
		chromedp.SendKeys(chromedp.ID("username"), "anna"),
		chromedp.SendKeys(chromedp.ID("password"), pw),
		chromedp.Submit(chromedp.ID("password")),
		chromedp.WaitVisible(chromedp.ID("code")))
	var record string
	b.step("the code leads to the app's record", stepTime,
		chromedp.SendKeys(chromedp.ID("code"), code()),
		chromedp.Submit(chromedp.ID("code")),
		chromedp.WaitVisible(chromedp.ID("record")),
		into(&record, chromedp.Text(chromedp.ID("record"))))
	if !strings.Contains(record, marker) {
		t.Fatalf("the app page shows %q, not the record", record)
	}
	b.step("the launcher's logout button leads to the login page", stepTime,
		chromedp.Navigate(g.URL(g.Portal, "/")),
		chromedp.WaitVisible(chromedp.CSS(".logout button")),
		chromedp.Click(chromedp.CSS(".logout button")),
		chromedp.WaitVisible(chromedp.ID("username")))
	after, err := b.page()
	if err != nil {
		t.Fatal(err)
	}

	// Going back to the app page: the history entry is there, its
	// content must not be.
	hist, err := chromedp.Run(b.ctx, chromedp.NavigationEntries())
	if err != nil {
		t.Fatal(err)
	}
	back := int64(-1)
	for i, e := range hist.Entries {
		if int64(i) < hist.CurrentIndex && e.URL == g.URL(wikiHost, "/record") {
			back = e.ID
		}
	}
	if back < 0 {
		t.Fatalf("no history entry of the app page in %d entries", len(hist.Entries))
	}
	// A page restored from the back/forward cache fires no load event:
	// send the command without waiting for one, and wait for the tab to
	// show another page than the one logout left.
	b.step("going back is accepted", stepTime, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, page.NavigateToHistoryEntry, page.NavigateToHistoryEntryParams{EntryID: back})
		return err
	}))
	b.until("going back shows another page than the login page after logout", stepTime,
		fmt.Sprintf(`location.href !== %q && document.readyState === "complete"`, after.URL))
	back1, err := b.page()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(back1.Text, marker) {
		t.Fatalf("going back after logout shows the app page at %s: %q", back1.URL, back1.Text)
	}
	b.step("going back after logout shows the login page", stepTime, chromedp.WaitVisible(chromedp.ID("username")))

	// Opening it again: the login page, not the record.
	b.step("opening the app page after logout shows the login page", stepTime,
		chromedp.Navigate(g.URL(wikiHost, "/record")),
		chromedp.WaitVisible(chromedp.ID("username")))
	if p, err := b.page(); err != nil || strings.Contains(p.Text, marker) {
		t.Fatalf("opening the app page after logout: %v, %q", err, p.Text)
	}
}
