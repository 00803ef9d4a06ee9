package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

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
	bctx := newBrowser(t, 90*time.Second, ignoreCertificates)

	code := func() string {
		now := time.Now()
		c, err := mfa.Code(secret, now)
		if err != nil {
			t.Fatal(err)
		}
		g.UseCode("anna", mfa.Step(now))
		return c
	}
	var record string
	err := chromedp.Do(bctx,
		chromedp.Navigate(g.URL(wikiHost, "/record")),
		chromedp.WaitVisible(chromedp.ID("username")),
		chromedp.SendKeys(chromedp.ID("username"), "anna"),
		chromedp.SendKeys(chromedp.ID("password"), pw),
		chromedp.Submit(chromedp.ID("password")),
		chromedp.WaitVisible(chromedp.ID("code")),
	)
	if err != nil {
		t.Fatalf("login: %v\n%s", err, g.Logs())
	}
	err = chromedp.Do(bctx,
		chromedp.SendKeys(chromedp.ID("code"), code()),
		chromedp.Submit(chromedp.ID("code")),
		chromedp.WaitVisible(chromedp.ID("record")),
		into(&record, chromedp.Text(chromedp.ID("record"))),
	)
	if err != nil || !strings.Contains(record, marker) {
		t.Fatalf("app page: %q, %v\n%s", record, err, g.Logs())
	}
	err = chromedp.Do(bctx,
		chromedp.Navigate(g.URL(g.Portal, "/")),
		chromedp.WaitVisible(chromedp.CSS(".logout button")),
		chromedp.Click(chromedp.CSS(".logout button")),
		chromedp.WaitVisible(chromedp.ID("username")),
	)
	if err != nil {
		t.Fatalf("logout: %v\n%s", err, g.Logs())
	}

	// Going back to the app page: the history entry is there, its
	// content must not be.
	hist, err := chromedp.Run(bctx, chromedp.NavigationEntries())
	if err != nil {
		t.Fatal(err)
	}
	cur, entries := hist.CurrentIndex, hist.Entries
	back := int64(-1)
	for i, e := range entries {
		if int64(i) < cur && e.URL == g.URL(wikiHost, "/record") {
			back = e.ID
		}
	}
	if back < 0 {
		t.Fatalf("no history entry of the app page in %d entries", len(entries))
	}
	var body, loc string
	// A page restored from the back/forward cache fires no load event, on
	// which the navigation waits: give it a while, then look at the page.
	backCtx, cancel := context.WithTimeout(bctx, 10*time.Second)
	if err := chromedp.Do(backCtx, chromedp.NavigateToHistoryEntry(back)); err != nil {
		t.Logf("going back: %v", err)
	}
	cancel()
	err = chromedp.Do(bctx,
		chromedp.Sleep(time.Second),
		chromedp.WaitReady("body"),
		into(&body, chromedp.Text("body")),
		into(&loc, chromedp.Location()),
	)
	if err != nil {
		t.Fatalf("going back: %v", err)
	}
	if strings.Contains(body, marker) {
		t.Fatalf("going back after logout shows the app page at %s: %q", loc, body)
	}
	// Opening it again: the login page, not the record.
	err = chromedp.Do(bctx,
		chromedp.Navigate(g.URL(wikiHost, "/record")),
		chromedp.WaitVisible(chromedp.ID("username")),
		into(&body, chromedp.Text("body")),
	)
	if err != nil || strings.Contains(body, marker) {
		t.Fatalf("opening the app page after logout: %v, %q", err, body)
	}
}
