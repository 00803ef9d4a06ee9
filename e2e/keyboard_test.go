package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/sluis-gateway/sluis/internal/testenv"
	"github.com/sluis-gateway/sluis/mfa"
)

// focus is what has the keyboard's focus, and how it shows.
type focus struct {
	Tag      string  `json:"tag"`
	ID       string  `json:"id"`
	Text     string  `json:"text"`
	Outline  string  `json:"outline"`  // computed outline: style width colour
	Shadow   string  `json:"shadow"`   // computed box-shadow
	Contrast float64 `json:"contrast"` // of the outline or shadow against the background around it
	Visible  bool    `json:"visible"`  // an outline or a shadow is drawn, at 3:1 or more
}

func (f focus) String() string {
	return fmt.Sprintf("<%s id=%q> %q (outline %q, box-shadow %q, contrast %.2f:1)", f.Tag, f.ID, f.Text, f.Outline, f.Shadow, f.Contrast)
}

// focused reads the focused element and how its focus is drawn: an
// outline of some width, or a box shadow, whose colour stands out from
// the background around the element by at least 3:1 (WCAG 2.1's 1.4.11
// for what shows a state).
var focused = chromedp.Evaluate[focus](`(() => {
	const e = document.activeElement || document.body, s = getComputedStyle(e);
	const rgba = c => { const m = c.match(/[\d.]+/g) || [0, 0, 0, 0]; return m.map(Number).concat([1]).slice(0, 4); };
	// The background the outline is drawn on: the first ancestor's that
	// is not transparent.
	let bg = [255, 255, 255, 1];
	for (let p = e.parentElement; p; p = p.parentElement) {
		const c = rgba(getComputedStyle(p).backgroundColor);
		if (c[3] > 0) { bg = c; break; }
	}
	const over = (c, b) => [0, 1, 2].map(i => c[i] * c[3] + b[i] * (1 - c[3]));
	const lum = c => { const l = c.map(v => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); });
		return 0.2126 * l[0] + 0.7152 * l[1] + 0.0722 * l[2]; };
	const ratio = (a, b) => { const x = lum(a), y = lum(b); return (Math.max(x, y) + 0.05) / (Math.min(x, y) + 0.05); };
	let contrast = 0;
	if (s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) > 0) contrast = ratio(over(rgba(s.outlineColor), bg), bg.slice(0, 3));
	if (s.boxShadow !== 'none') contrast = Math.max(contrast, ratio(over(rgba(s.boxShadow), bg), bg.slice(0, 3)));
	return {tag: e.tagName.toLowerCase(), id: e.id || '', text: (e.innerText || e.value || '').trim().slice(0, 60),
		outline: s.outlineStyle + ' ' + s.outlineWidth + ' ' + s.outlineColor, shadow: s.boxShadow, contrast: contrast,
		visible: e !== document.body && contrast >= 3};
})()`)

// keys types text with key events, as a keyboard does.
func keys(text string) chromedp.Action[chromedp.Void] { return chromedp.KeyEvent(text) }

// tabTo presses Tab until the focused element matches the CSS selector
// sel, at most max times; every element the focus stops on must show it.
func tabTo(t *testing.T, sel string, max int) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		var stops []string
		for range max {
			if _, err := chromedp.KeyEvent(kb.Tab)(ctx, tg); err != nil {
				return err
			}
			f, err := focused(ctx, tg)
			if err != nil {
				return err
			}
			stops = append(stops, f.String())
			if !f.Visible {
				return fmt.Errorf("focus is not visible on %s", f)
			}
			at, err := chromedp.Evaluate[bool](`document.activeElement.matches(`+fmt.Sprintf("%q", sel)+`)`)(ctx, tg)
			if err != nil {
				return err
			}
			if at {
				return nil
			}
		}
		return fmt.Errorf("%s not reached with %d presses of Tab; the focus went:\n  %s", sel, max, strings.Join(stops, "\n  "))
	})
}

// focusShows checks that the element that has the focus (after a page
// loads: the one with autofocus) is sel and shows its focus.
func focusShows(sel string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		f, err := focused(ctx, tg)
		if err != nil {
			return err
		}
		at, err := chromedp.Evaluate[bool](`document.activeElement.matches(`+fmt.Sprintf("%q", sel)+`)`)(ctx, tg)
		if err != nil {
			return err
		}
		if !at {
			return fmt.Errorf("the focus is on %s, not on %s", f, sel)
		}
		if !f.Visible {
			return fmt.Errorf("focus is not visible on %s", f)
		}
		return nil
	})
}

// keyboardBrowser starts Chromium speaking lang, in light or dark mode, at
// a desktop's width, and lets the portal write to the clipboard (the copy
// button).
func keyboardBrowser(t *testing.T, g *testenv.Gateway, accept string, v view) context.Context {
	bctx := newBrowser(t, 2*time.Minute, ignoreCertificates)
	err := chromedp.Do(bctx, speak(accept), setView(v), chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		// A headless tab is never the focused window: without this no
		// element would match :focus-visible.
		if _, err := cdp.Call(ctx, tg, emulation.SetFocusEmulationEnabled, emulation.SetFocusEmulationEnabledParams{Enabled: true}); err != nil {
			return err
		}
		origin := strings.TrimSuffix(g.URL(g.Portal, "/"), "/")
		for _, name := range []string{"clipboard-read", "clipboard-write"} {
			if _, err := cdp.Call(ctx, tg, browser.SetPermission, browser.SetPermissionParams{
				Permission: &browser.PermissionDescriptor{Name: name}, Setting: browser.PermissionSettingGranted, Origin: origin,
			}); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
		}
		return nil
	}))
	if err != nil {
		t.Fatalf("browser: %v", err)
	}
	return bctx
}

// keyboardViews are the colour schemes the keyboard runs alternate: each
// language in one, so that focus is checked visible in both.
var keyboardViews = map[string]view{"en": {1280, 900, "light"}, "nl": {1280, 900, "dark"}}

// A person logs in with the keyboard alone, in English and in Dutch: the
// name (focused on arrival), Tab, the password, Enter, the code (focused
// on arrival), Enter: the launcher. A wrong password first keeps the
// name, and the focus goes to the password. Every focus stop shows.
func TestKeyboardLogin(t *testing.T) {
	chromium(t)
	g := startAccessible(t)
	for _, l := range langs {
		t.Run(l.code, func(t *testing.T) {
			user := "kees-" + l.code
			secret := g.AddUser(user, pw, "staff")
			bctx := keyboardBrowser(t, g, l.accept, keyboardViews[l.code])
			var h1, name, launcher string
			err := chromedp.Do(bctx,
				chromedp.Navigate(g.URL(g.Portal, "/login")),
				chromedp.WaitVisible(chromedp.ID("username")),
				focusShows("#username"),
				keys(user),
				tabTo(t, "#password", 1),
				keys("wrong"+kb.Enter),
				chromedp.WaitVisible(chromedp.CSS(".error")),
				into(&name, chromedp.Value(chromedp.ID("username"))),
				focusShows("#password"),
				keys(pw+kb.Enter),
				chromedp.WaitVisible(chromedp.ID("code")),
				focusShows("#code"),
				into(&h1, chromedp.Text(chromedp.CSS("h1"))),
			)
			if err != nil {
				t.Fatalf("name and password: %v\n%s", err, g.Logs())
			}
			if name != user {
				t.Errorf("after a wrong password the name is %q, want %q", name, user)
			}
			err = chromedp.Do(bctx,
				keys(g.Code(user, secret)+kb.Enter),
				chromedp.WaitVisible(chromedp.CSS(".apps")),
				into(&launcher, chromedp.Text(chromedp.CSS("h1"))),
			)
			if err != nil {
				t.Fatalf("code: %v\n%s", err, g.Logs())
			}
			want := map[string]string{"en": "Your applications", "nl": "Uw toepassingen"}[l.code]
			if launcher != want {
				t.Fatalf("after the code: %q, want the launcher %q (code page %q)", launcher, want, h1)
			}
		})
	}
}

// A new user enrols with the keyboard alone, in English and in Dutch:
// password, the code from the secret on the page (the code field is
// focused on arrival), Enter; on the recovery codes Tab to the download
// and to "continue", Enter: the launcher.
func TestKeyboardEnrolment(t *testing.T) {
	chromium(t)
	g := startAccessible(t)
	for _, l := range langs {
		t.Run(l.code, func(t *testing.T) {
			user := "noor-" + l.code
			g.MustCLI(pw+"\n", "user", "add", user, "--groups", "staff", "--password-stdin")
			bctx := keyboardBrowser(t, g, l.accept, keyboardViews[l.code])
			var secret, h1 string
			err := chromedp.Do(bctx,
				chromedp.Navigate(g.URL(g.Portal, "/login")),
				chromedp.WaitVisible(chromedp.ID("username")),
				focusShows("#username"),
				keys(user),
				tabTo(t, "#password", 1),
				keys(pw+kb.Enter),
				chromedp.WaitVisible(chromedp.ID("totp-secret")),
				focusShows("#code"),
				into(&secret, chromedp.Text(chromedp.ID("totp-secret"))),
			)
			if err != nil {
				t.Fatalf("to the enrolment: %v\n%s", err, g.Logs())
			}
			code, err := mfa.Code(strings.ReplaceAll(secret, " ", ""), time.Now())
			if err != nil {
				t.Fatalf("secret %q: %v", secret, err)
			}
			g.UseCode(user, mfa.Step(time.Now()))
			err = chromedp.Do(bctx,
				keys(code+kb.Enter),
				chromedp.WaitVisible(chromedp.ID("recovery-codes")),
				tabTo(t, "#download", 20),
				tabTo(t, "#continue", 3),
				keys(kb.Enter),
				chromedp.WaitVisible(chromedp.CSS(".apps")),
				into(&h1, chromedp.Text(chromedp.CSS("h1"))),
			)
			if err != nil {
				t.Fatalf("code and recovery codes: %v\n%s", err, g.Logs())
			}
			if want := map[string]string{"en": "Your applications", "nl": "Uw toepassingen"}[l.code]; h1 != want {
				t.Fatalf("after the recovery codes: %q, want %q", h1, want)
			}
		})
	}
}

// A person uses the launcher with the keyboard alone, in English and in
// Dutch: Tab to an app's link, Enter opens the app; back on the launcher,
// Tab to the TCP app's copy button, Space copies its command (and says
// so); Tab to the sessions page and back; Tab to Log out, Enter: the
// login page, and the session is gone.
func TestKeyboardLauncher(t *testing.T) {
	chromium(t)
	g := startAccessible(t)
	for _, l := range langs {
		t.Run(l.code, func(t *testing.T) {
			user := "lot-" + l.code
			secret := g.AddUser(user, pw, "staff")
			bctx := keyboardBrowser(t, g, l.accept, keyboardViews[l.code])
			var app, copied, clip, sessions string
			err := chromedp.Do(bctx,
				chromedp.Navigate(g.URL(g.Portal, "/login")),
				chromedp.WaitVisible(chromedp.ID("username")),
				keys(user+kb.Tab+pw+kb.Enter),
				chromedp.WaitVisible(chromedp.ID("code")),
				keys(g.Code(user, secret)+kb.Enter),
				chromedp.WaitVisible(chromedp.CSS(".apps")),
				tabTo(t, "#app-wiki", 10),
				keys(kb.Enter),
				chromedp.WaitVisible(chromedp.ID("page")),
				into(&app, chromedp.Text(chromedp.ID("page"))),
			)
			if err != nil {
				t.Fatalf("to the app: %v\n%s", err, g.Logs())
			}
			if app != "Wiki" {
				t.Fatalf("Enter on the app's link opened %q", app)
			}
			err = chromedp.Do(bctx,
				chromedp.Navigate(g.URL(g.Portal, "/")),
				chromedp.WaitVisible(chromedp.CSS(".apps")),
				tabTo(t, `button[data-copy="cmd-db"]`, 10),
				keys(" "),
				into(new(bool), chromedp.Poll[bool](`document.getElementById('cmd-db-copied').textContent !== ''`, chromedp.WithPollingTimeout(5*time.Second))),
				into(&copied, chromedp.Text(chromedp.ID("cmd-db-copied"))),
				into(&clip, chromedp.Evaluate[string](`navigator.clipboard.readText()`, chromedp.EvalAwaitPromise)),
				tabTo(t, "#sessions-link", 10),
				keys(kb.Enter),
				chromedp.WaitVisible(chromedp.CSS("table.sessions")),
				into(&sessions, chromedp.Location()),
			)
			if err != nil {
				t.Fatalf("copy and sessions: %v\n%s", err, g.Logs())
			}
			if !strings.Contains(clip, "sluis connect db") || copied == "" {
				t.Errorf("Space on the copy button: said %q, clipboard %q", copied, clip)
			}
			if sessions != g.URL(g.Portal, "/sessions") {
				t.Errorf("Enter on the sessions link opened %s", sessions)
			}
			var after string
			err = chromedp.Do(bctx,
				chromedp.Navigate(g.URL(g.Portal, "/")),
				chromedp.WaitVisible(chromedp.CSS(".apps")),
				tabTo(t, ".logout button", 3),
				keys(kb.Enter),
				chromedp.WaitVisible(chromedp.ID("username")),
				chromedp.Navigate(g.URL(g.Portal, "/")),
				chromedp.WaitVisible(chromedp.ID("username")),
				into(&after, chromedp.Location()),
			)
			if err != nil {
				t.Fatalf("log out: %v\n%s", err, g.Logs())
			}
			if !strings.Contains(after, "/login") {
				t.Fatalf("after logging out the launcher is at %s", after)
			}
		})
	}
}

// A person approves a `sluis connect` login and ends their other sessions
// with the keyboard alone, in English and in Dutch: on the device page
// the code field has the focus, the code and Enter show the request, Tab
// to Approve and Enter approve it; on the sessions page Tab to "end all
// other sessions" and Space end them.
func TestKeyboardDeviceAndSessions(t *testing.T) {
	chromium(t)
	g := startAccessible(t)
	dir := artifacts(t)
	for _, l := range langs {
		t.Run(l.code, func(t *testing.T) {
			user := "fien-" + l.code
			secret := g.AddUser(user, pw, "staff")
			g.Login(g.ClientFrom("127.0.0.22"), "", user, pw, secret) // another session
			bctx := keyboardBrowser(t, g, l.accept, keyboardViews[l.code])
			var approved, ended string
			var shot []byte
			err := chromedp.Do(bctx,
				chromedp.Navigate(g.URL(g.Portal, "/login")),
				chromedp.WaitVisible(chromedp.ID("username")),
				keys(user+kb.Tab+pw+kb.Enter),
				chromedp.WaitVisible(chromedp.ID("code")),
				keys(g.Code(user, secret)+kb.Enter),
				chromedp.WaitVisible(chromedp.CSS(".apps")),
				chromedp.Navigate(g.URL(g.Portal, "/device")),
				chromedp.WaitVisible(chromedp.ID("code")),
				focusShows("#code"),
				keys(startDevice(t, g)+kb.Enter),
				chromedp.WaitVisible(chromedp.ID("approve")),
				tabTo(t, "#approve", 10),
				into(&shot, chromedp.FullScreenshot(100)),
				keys(kb.Enter),
				chromedp.WaitVisible(chromedp.CSS(".notice")),
				into(&approved, chromedp.Text(chromedp.CSS(".notice"))),
			)
			if err != nil {
				t.Fatalf("device approval: %v\n%s", err, g.Logs())
			}
			os.WriteFile(filepath.Join(dir, "keyboard-device-"+l.code+".png"), shot, 0o644)
			if want := map[string]string{"en": "Approved.", "nl": "Goedgekeurd."}[l.code]; !strings.HasPrefix(approved, want) {
				t.Errorf("after Enter on Approve: %q, want %q…", approved, want)
			}
			err = chromedp.Do(bctx,
				chromedp.Navigate(g.URL(g.Portal, "/sessions")),
				chromedp.WaitVisible(chromedp.ID("end-others")),
				tabTo(t, "#end-others", 15),
				into(&shot, chromedp.FullScreenshot(100)),
				keys(" "),
				chromedp.WaitVisible(chromedp.CSS(".notice")),
				into(&ended, chromedp.Text(chromedp.CSS(".notice"))),
			)
			if err != nil {
				t.Fatalf("ending the other sessions: %v\n%s", err, g.Logs())
			}
			os.WriteFile(filepath.Join(dir, "keyboard-sessions-"+l.code+".png"), shot, 0o644)
			// The other browser's and the approved sluis connect's.
			if want := map[string]string{"en": "2 sessions ended.", "nl": "2 sessies beëindigd."}[l.code]; ended != want {
				t.Errorf("after Space on end-others: %q, want %q", ended, want)
			}
		})
	}
}
