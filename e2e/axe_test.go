package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
)

// axeScript finds axe-core's axe.min.js: $SLUIS_AXE (scripts/test.sh sets
// it after installing axe-core with npm), else where scripts/test.sh puts
// it, ${XDG_CACHE_HOME:-$HOME/.cache}/sluis/npm. Missing, the test skips,
// or fails under SLUIS_REQUIRE_INTEGRATION=1.
func axeScript(t *testing.T) string {
	t.Helper()
	paths := []string{os.Getenv("SLUIS_AXE")}
	cache := os.Getenv("XDG_CACHE_HOME")
	if cache == "" {
		if home, err := os.UserHomeDir(); err == nil {
			cache = filepath.Join(home, ".cache")
		}
	}
	if cache != "" {
		paths = append(paths, filepath.Join(cache, "sluis", "npm", "node_modules", "axe-core", "axe.min.js"))
	}
	for _, p := range paths {
		if p == "" {
			continue
		}
		if b, err := os.ReadFile(p); err == nil && len(b) > 0 {
			return string(b)
		}
	}
	if os.Getenv("SLUIS_REQUIRE_INTEGRATION") == "1" {
		t.Fatal("axe-core not found (SLUIS_AXE or the npm cache of scripts/test.sh), and SLUIS_REQUIRE_INTEGRATION=1: run scripts/test.sh once")
	}
	t.Skip("axe-core not found; run scripts/test.sh once, or set SLUIS_AXE to axe.min.js")
	return ""
}

// view is one way a page is looked at: a viewport width in CSS pixels and
// a colour scheme.
type view struct {
	width, height int64
	scheme        string // prefers-color-scheme: light or dark
}

// views are the ones every page is checked in: a desktop and a phone
// (390 px: a common phone's width), each in light and in dark mode.
var views = []view{{1280, 900, "light"}, {1280, 900, "dark"}, {390, 844, "light"}, {390, 844, "dark"}}

// setView sizes the page's viewport and sets its colour scheme; both stay
// for later navigations of the tab.
func setView(v view) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		if _, err := cdp.Call(ctx, tg, emulation.SetDeviceMetricsOverride, emulation.SetDeviceMetricsOverrideParams{
			Width: v.width, Height: v.height, DeviceScaleFactor: 1, Mobile: v.width < 600,
		}); err != nil {
			return err
		}
		_, err := cdp.Call(ctx, tg, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
			Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: v.scheme}},
		})
		return err
	})
}

// axeViolation is one rule axe-core found broken, with the elements
// (CSS selectors) that break it.
type axeViolation struct {
	ID     string `json:"id"`
	Impact string `json:"impact"`
	Help   string `json:"help"`
	Nodes  []struct {
		Target  string `json:"target"`
		Summary string `json:"summary"`
	} `json:"nodes"`
}

// axeResult is what axeRun asks axe-core for: how many rules passed, and
// the violations.
type axeResult struct {
	Passes     int            `json:"passes"`
	Violations []axeViolation `json:"violations"`
	// Incomplete are the rules axe-core could not decide (a colour it
	// cannot compute, say): not failures, but logged for a person to look
	// at.
	Incomplete []axeViolation `json:"incomplete"`
}

func (v axeViolation) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s (%s): %s", v.ID, v.Impact, v.Help)
	for _, n := range v.Nodes {
		fmt.Fprintf(&b, "\n    %s: %s", n.Target, strings.ReplaceAll(n.Summary, "\n", " "))
	}
	return b.String()
}

// axeRun injects axe-core into the page (once per document; through
// DevTools, so the page's CSP is not loosened) and runs the WCAG 2.0 and
// 2.1 rules of levels A and AA on the whole document.
func axeRun(script string, out *axeResult) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		loaded, err := chromedp.Evaluate[bool](`typeof axe !== 'undefined'`)(ctx, tg)
		if err != nil {
			return err
		}
		if !loaded {
			if _, err := chromedp.Evaluate[chromedp.Void](script)(ctx, tg); err != nil {
				return fmt.Errorf("injecting axe-core: %w", err)
			}
		}
		res, err := chromedp.Evaluate[axeResult](`axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}, resultTypes: ['violations', 'incomplete']})
			.then(r => {
				const f = vs => vs.map(v => ({id: v.id, impact: v.impact || '', help: v.help,
					nodes: v.nodes.map(n => ({target: n.target.join(' '), summary: n.failureSummary || ''}))}));
				return {passes: r.passes.length, violations: f(r.violations), incomplete: f(r.incomplete)};
			})`, chromedp.EvalAwaitPromise)(ctx, tg)
		if err != nil {
			return err
		}
		// A run that passed no rule did not look at the page.
		if res.Passes == 0 {
			return fmt.Errorf("axe-core passed no rule: it did not run on the page")
		}
		*out = res
		return nil
	})
}

// wider lists the elements that reach past the card's right edge, or the
// viewport's (none when the page needs no sideways scroll and nothing
// spills out of its card).
var wider = chromedp.Evaluate[[]string](`(() => {
	// The card's right edge (a page without one: the viewport's).
	const card = document.querySelector('main.card');
	const w = card ? card.getBoundingClientRect().right : document.documentElement.clientWidth;
	// Inside an element that scrolls sideways by itself (a data table
	// wider than a phone: WCAG 1.4.10 leaves two-dimensional tables out)
	// nothing makes the page scroll; the scroller itself is checked.
	const scrolls = e => {
		for (let a = e.parentElement; a && a !== document.body; a = a.parentElement) {
			const o = getComputedStyle(a).overflowX;
			if (o === 'auto' || o === 'scroll') return true;
		}
		return false;
	};
	// A page's own frame (the console's header) spans the viewport
	// beside a card; what is in the card must stay within it.
	const vw = document.documentElement.clientWidth;
	const limit = e => card && card.contains(e) ? w : vw;
	return [...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > limit(e) + 1 && !scrolls(e))
		.map(e => e.tagName.toLowerCase() + (e.getAttribute('id') ? '#' + e.getAttribute('id') : '') +
			(e.getAttribute('class') ? '.' + e.getAttribute('class').replace(/ /g, '.') : '') +
			' (' + Math.round(e.getBoundingClientRect().right) + ' px)').slice(0, 10);
})()`)

// checkPage looks at the page open in bctx in every view: a full-page
// screenshot into dir named a11y-<page>-<lang>-<width>-<scheme>.png,
// axe-core's WCAG 2.1 A and AA rules, and that nothing is wider than the
// viewport. Each violation is reported (all of
// them, with their elements) and fails the test; it returns how many
// there were.
func checkPage(t *testing.T, bctx context.Context, script, dir, page, lang string) int {
	t.Helper()
	n := 0
	for _, v := range views {
		var shot []byte
		var res axeResult
		var overflow []string
		err := chromedp.Do(bctx, setView(v), into(&shot, chromedp.FullScreenshot(100)), axeRun(script, &res), into(&overflow, wider))
		if err != nil {
			t.Errorf("%s (%s, %d px, %s): %v", page, lang, v.width, v.scheme, err)
			n++
			continue
		}
		name := fmt.Sprintf("a11y-%s-%s-%d-%s.png", page, lang, v.width, v.scheme)
		if err := os.WriteFile(filepath.Join(dir, name), shot, 0o644); err != nil {
			t.Errorf("screenshot %s: %v", name, err)
		}
		for _, f := range res.Violations {
			t.Errorf("%s (%s, %d px, %s): %s", page, lang, v.width, v.scheme, f)
		}
		for _, f := range res.Incomplete {
			t.Logf("%s (%s, %d px, %s), for a person to check: %s", page, lang, v.width, v.scheme, f)
		}
		n += len(res.Violations)
		// WCAG 1.4.10: content reflows to the width, nothing needs a
		// sideways scroll.
		if len(overflow) > 0 {
			t.Errorf("%s (%s, %d px, %s): wider than the card or the viewport: %s", page, lang, v.width, v.scheme, strings.Join(overflow, ", "))
			n++
		}
	}
	return n
}

// The helper finds what axe-core should find: a page with an image without
// a text, a link without a name and grey text on white fails.
func TestAxeFindsViolations(t *testing.T) {
	chromium(t)
	script := axeScript(t)
	page := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		io.WriteString(w, `<!doctype html><html><title>t</title><body><img src="x.png"><p style="color:#bbb;background:#fff">low contrast</p><a href="/x"></a></body></html>`)
	}))
	defer page.Close()
	bctx := newBrowser(t, time.Minute, ignoreCertificates)
	var res axeResult
	if err := chromedp.Do(bctx, chromedp.Navigate(page.URL), setView(views[0]), axeRun(script, &res)); err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, v := range res.Violations {
		got[v.ID] = true
	}
	for _, want := range []string{"image-alt", "color-contrast", "link-name", "html-has-lang"} {
		if !got[want] {
			t.Errorf("axe-core did not report %s; it found %v", want, res.Violations)
		}
	}
}
