package e2e

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// stepTime bounds an ordinary browser step (a page load, a form sent): far
// more than it takes on a loaded machine, far less than the browser's own
// limit, so a step that can never finish fails the test in seconds.
const stepTime = 15 * time.Second

// tab drives a browser tab step by step. Each step has its own time limit,
// and a step that fails or runs out of time fails the test at once, saying
// what the step expected and what the page showed instead.
type tab struct {
	t   *testing.T
	ctx context.Context // a tab whose browser has started (see newBrowser)
	// logs, if set, returns more to show when a step fails (the gateway's
	// log).
	logs func() string
}

// step runs actions as one step that must finish within d; what says what
// the step expects, as the failure message will show it.
func (b *tab) step(what string, d time.Duration, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := b.try(d, actions...); err != nil {
		b.fail(what, d, err)
	}
}

// try runs actions within d and returns their error, for a step whose
// failure the test judges itself.
func (b *tab) try(d time.Duration, actions ...chromedp.Action[chromedp.Void]) error {
	ctx, cancel := context.WithTimeout(b.ctx, d)
	defer cancel()
	return chromedp.Do(ctx, actions...)
}

// until waits up to d for the JavaScript expression cond to be true in the
// tab. It evaluates cond afresh from here every 50ms, so the wait survives
// navigations (a script waiting inside the page would not) and pages
// restored from the back/forward cache (which fire no load event, on which
// chromedp's own waits hang).
func (b *tab) until(what string, d time.Duration, cond string) {
	b.t.Helper()
	deadline := time.Now().Add(d)
	var last error
	for {
		ctx, cancel := context.WithTimeout(b.ctx, time.Second)
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](cond))
		cancel()
		if err == nil && ok {
			return
		}
		last = err
		if time.Now().After(deadline) || b.ctx.Err() != nil {
			break
		}
		select {
		case <-b.ctx.Done():
		case <-time.After(50 * time.Millisecond): // the page gives no signal to wait on
		}
	}
	if last == nil {
		last = fmt.Errorf("%s still false", cond)
	}
	b.fail(what, d, fmt.Errorf("%w (%w)", context.DeadlineExceeded, last))
}

// shown is what the tab shows now: its URL, its title and the start of its
// text.
type shown struct {
	URL, Title, Text string
}

// page reads what the tab shows, within a few seconds.
func (b *tab) page() (shown, error) {
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	return chromedp.Run(ctx, chromedp.Evaluate[shown](
		`({URL: location.href, Title: document.title, Text: document.body ? document.body.innerText.slice(0, 2000) : ""})`))
}

// fail ends the test with what the step expected, why it did not happen,
// and what the tab showed.
func (b *tab) fail(what string, d time.Duration, err error) {
	b.t.Helper()
	why := err.Error()
	switch {
	case b.ctx.Err() != nil:
		why = fmt.Sprintf("the browser's own time ran out (%v)", err)
	case errors.Is(err, context.DeadlineExceeded):
		why = fmt.Sprintf("not within %s (%v)", d, err)
	}
	var msg strings.Builder
	fmt.Fprintf(&msg, "%s: %s\n", what, why)
	if p, perr := b.page(); perr != nil {
		fmt.Fprintf(&msg, "the page could not be read: %v\n", perr)
	} else {
		fmt.Fprintf(&msg, "the page: %s (title %q)\n%s\n", p.URL, p.Title, indent(p.Text))
	}
	if b.logs != nil {
		fmt.Fprintf(&msg, "log:\n%s", b.logs())
	}
	b.t.Fatal(msg.String())
}

func indent(s string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return "    (no text)"
	}
	return "    " + strings.ReplaceAll(s, "\n", "\n    ")
}
