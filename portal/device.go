package portal

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/sluis-gateway/sluis"
	"github.com/sluis-gateway/sluis/frontdoor"
	"github.com/sluis-gateway/sluis/session"
	"github.com/sluis-gateway/sluis/tunnel"
)

// The device login of `sluis connect`: the client starts it and polls; the
// user approves its short code on the portal, logged in as usual (password
// and second factor, or a passkey). The client then holds a session token
// of its own, bound to tunnel.Host, revocable like any session.
const (
	deviceLifetime = 10 * time.Minute
	devicePoll     = 2 * time.Second
	// userCodeLetters has no vowels (no words) and no look-alikes.
	userCodeLetters = "BCDFGHJKLMNPQRSTVWXZ"
)

func newUserCode() string {
	b := make([]byte, 8)
	rand.Read(b)
	out := make([]byte, 0, 9)
	for i, c := range b {
		if i == 4 {
			out = append(out, '-')
		}
		// 256 is not a multiple of 20: the first 240 values are even.
		for c >= 240 {
			var x [1]byte
			rand.Read(x[:])
			c = x[0]
		}
		out = append(out, userCodeLetters[int(c)%len(userCodeLetters)])
	}
	return string(out)
}

// normUserCode accepts what a person types: any case, with or without the
// dash or spaces.
func normUserCode(s string) (string, bool) {
	var b strings.Builder
	for _, r := range strings.ToUpper(s) {
		switch {
		case r == '-' || r == ' ':
		case strings.ContainsRune(userCodeLetters, r):
			b.WriteRune(r)
		default:
			return "", false
		}
	}
	if b.Len() != 8 {
		return "", false
	}
	c := b.String()
	return c[:4] + "-" + c[4:], true
}

// apiBody reads the small JSON body of a client API request. The client
// API carries no cookies, so a cross-site form can do nothing with it.
func apiBody(w http.ResponseWriter, r *http.Request, v any) error {
	// The client always says how long its body is; a body of unknown
	// length is refused like one too long.
	if r.ContentLength < 0 {
		return statusError(http.StatusRequestEntityTooLarge)
	}
	b, err := readJSON(w, r, 4<<10)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return statusError(http.StatusBadRequest)
	}
	return nil
}

// DeviceStart is the client's answer to POST /device/start.
type DeviceStart struct {
	DeviceCode string `json:"device_code"`
	UserCode   string `json:"user_code"`
	// VerificationURI is where the user types the user code. There is no
	// address with the code in it: a link that opens a filled-in approval
	// is what an attacker would send a victim.
	VerificationURI string `json:"verification_uri"`
	Interval        int    `json:"interval"`
	ExpiresIn       int    `json:"expires_in"`
}

// DevicePoll is the client's answer to POST /device/poll.
type DevicePoll struct {
	Status string `json:"status"` // pending, approved, denied, expired
	Token  string `json:"token,omitempty"`
	User   string `json:"user,omitempty"`
}

func (p *Portal) deviceStart(w http.ResponseWriter, r *http.Request) error {
	var req struct{}
	if err := apiBody(w, r, &req); err != nil {
		return err
	}
	src := frontdoor.ClientIP(r)
	// Each start stores a row: a source (an IPv6 /64 counts as one) that
	// starts many is slowed down, and the pending ones are capped.
	if wait, err := p.deviceThrottle.Begin(r.Context(), throttleKey(src)); err != nil {
		return err
	} else if wait > 0 {
		return writeJSON(w, http.StatusTooManyRequests, jsonAnswer{Error: p.waitMessage(r, wait)})
	}
	if n, err := p.Store.PendingDeviceGrants(r.Context(), p.Now()); err != nil {
		return err
	} else if n >= maxPendingDevices {
		return writeJSON(w, http.StatusServiceUnavailable, jsonAnswer{Error: p.t(r, "device.busy")})
	}
	if level, reason, err := p.level(r); err != nil {
		return err
	} else if level == sluis.LevelClosed {
		return writeJSON(w, http.StatusServiceUnavailable, jsonAnswer{Error: p.levelNotice(r, level, reason)})
	}
	device, hash := session.NewToken()
	now := p.Now()
	var code string
	for range 5 {
		code = newUserCode()
		err := p.Store.CreateDeviceGrant(r.Context(), sluis.DeviceGrant{DeviceHash: hash[:], UserCode: code, Source: src, CreatedAt: now, ExpiresAt: now.Add(deviceLifetime)})
		if err == nil {
			break
		}
		if sluis.ErrorCode(err) != sluis.ECONFLICT {
			return err
		}
		code = ""
	}
	if code == "" {
		return errors.New("no free user code")
	}
	return writeJSON(w, http.StatusOK, DeviceStart{DeviceCode: device, UserCode: code, VerificationURI: p.BaseURL(p.Host) + "/device",
		Interval: int(devicePoll / time.Second), ExpiresIn: int(deviceLifetime / time.Second)})
}

func (p *Portal) devicePoll(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		DeviceCode string `json:"device_code"`
	}
	if err := apiBody(w, r, &req); err != nil {
		return err
	}
	// Polls with codes that do not exist count against their source.
	key := "device-poll:" + throttleKey(frontdoor.ClientIP(r))
	if wait, err := p.deviceThrottle.Begin(r.Context(), key); err != nil {
		return err
	} else if wait > 0 {
		return writeJSON(w, http.StatusTooManyRequests, DevicePoll{Status: "slow_down"})
	}
	hash, ok := session.ParseToken(req.DeviceCode)
	if !ok {
		return writeJSON(w, http.StatusBadRequest, DevicePoll{Status: "expired"})
	}
	g, err := p.Store.TakeDeviceGrant(r.Context(), hash[:], p.Now())
	if sluis.ErrorCode(err) == sluis.ENOTFOUND {
		return writeJSON(w, http.StatusGone, DevicePoll{Status: "expired"})
	}
	p.deviceThrottle.Forgive(context.WithoutCancel(r.Context()), key)
	if err != nil {
		return err
	}
	switch g.State {
	case sluis.DevicePending:
		return writeJSON(w, http.StatusOK, DevicePoll{Status: "pending"})
	case sluis.DeviceDenied:
		return writeJSON(w, http.StatusForbidden, DevicePoll{Status: "denied"})
	case sluis.DeviceApproved:
		tok, err := p.Sealer.Open(g.SealedToken, "device:"+hex.EncodeToString(hash[:]))
		if err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, DevicePoll{Status: "approved", Token: string(tok), User: g.User})
	}
	return writeJSON(w, http.StatusGone, DevicePoll{Status: "expired"})
}

// deviceUser returns the approving user's session, or sends the browser
// to log in first.
func (p *Portal) deviceUser(w http.ResponseWriter, r *http.Request) *session.Active {
	a := p.current(r)
	if a == nil || a.Session.Stage != sluis.StageComplete || p.stale(r.Context(), a) {
		http.Redirect(w, r, "/login?rd="+url.QueryEscape(p.BaseURL(p.Host)+"/device"), http.StatusSeeOther)
		return nil
	}
	return a
}

// deviceForm asks for the code that sluis connect shows. The code is
// never taken from the address: a link must not be able to lead a user to
// a filled-in approval of someone else's client.
func (p *Portal) deviceForm(w http.ResponseWriter, r *http.Request) error {
	a := p.deviceUser(w, r)
	if a == nil {
		return nil
	}
	return p.render(w, r, http.StatusOK, "device", pageData{Title: p.t(r, "device.title"), CSRF: p.csrfToken(w, r), User: a.User.Name})
}

// deviceDecide looks up a typed code (step "show") and then approves or
// denies it (step "approve" or "deny").
func (p *Portal) deviceDecide(w http.ResponseWriter, r *http.Request) error {
	csrfOK, err := p.parseForm(w, r)
	if err != nil {
		return err
	}
	if !csrfOK {
		return statusError(http.StatusForbidden)
	}
	a := p.deviceUser(w, r)
	if a == nil {
		return nil
	}
	d := pageData{Title: p.t(r, "device.title"), CSRF: p.csrfToken(w, r), User: a.User.Name}
	code, ok := normUserCode(r.PostFormValue("code"))
	if !ok {
		d.Error = p.t(r, "device.not_code")
		return p.render(w, r, http.StatusBadRequest, "device", d)
	}
	// A wrong code counts like a wrong one-time code.
	src := frontdoor.ClientIP(r)
	if wait, err := p.attempt(r.Context(), guess{kind: "device", user: a.User.Name, src: src}); err != nil {
		return err
	} else if wait > 0 {
		d.Error = p.waitMessage(r, wait)
		return p.render(w, r, http.StatusTooManyRequests, "device", d)
	}
	g, err := p.Store.DeviceGrantByUserCode(r.Context(), code, p.Now())
	if sluis.ErrorCode(err) == sluis.ENOTFOUND {
		p.event(r, sluis.EventLoginFailure, a.User.Name, sluis.OutcomeFailure, "sluis connect: unknown or expired code")
		d.Error = p.t(r, "device.no_login")
		return p.render(w, r, http.StatusNotFound, "device", d)
	}
	if err != nil {
		return err
	}
	p.succeeded(r.Context(), guess{kind: "device", user: a.User.Name, src: src})
	switch r.PostFormValue("decision") {
	case "deny":
		if err := p.Store.DecideDeviceGrant(r.Context(), g.UserCode, false, a.User.Name, "", nil, p.Now()); err != nil && sluis.ErrorCode(err) != sluis.ENOTFOUND {
			return err
		}
		p.event(r, sluis.EventLoginFailure, a.User.Name, sluis.OutcomeDenied, "sluis connect from "+g.Source+" denied by the user")
		d.Notice = p.t(r, "device.denied")
		return p.render(w, r, http.StatusOK, "device", d)
	case "approve":
	default:
		d.DeviceCode, d.DeviceSource, d.DeviceAge = g.UserCode, g.Source, p.ago(r, p.Now().Sub(g.CreatedAt))
		return p.render(w, r, http.StatusOK, "device", d)
	}
	// Approving hands out a credential of its own: only with a second
	// factor passed just now.
	if p.Now().Sub(a.Session.MFAAt) > recentMFA {
		d.Error = p.t(r, "device.too_old")
		return p.render(w, r, http.StatusForbidden, "device", d)
	}
	// The client's own session: bound to the tunnel pseudo host, ending no
	// later than the login that approved it (and with it, at its logout or
	// revocation), and never counted as
	// phishing-resistant (the approval itself could have been talked out
	// of its user).
	now := p.Now()
	tok, hash := session.NewToken()
	x := sluis.Session{ID: session.NewID(), User: a.User.Name, Stage: sluis.StageComplete, CreatedAt: now, LastSeen: now,
		ExpiresAt: a.Session.ExpiresAt, MFAAt: a.Session.MFAAt, MFAMethod: sluis.FactorDevice, Source: g.Source, UserAgent: "sluis connect",
		ParentID: a.Session.ID}
	if err := p.record(r, sluis.EventLoginSuccess, a.User.Name, sluis.OutcomeSuccess, "sluis connect from "+g.Source+" approved; its session "+x.ID); err != nil {
		return err
	}
	if err := p.Store.CreateSession(r.Context(), x, hash[:], tunnel.Host); err != nil {
		return err
	}
	sealed := p.Sealer.Seal([]byte(tok), "device:"+hex.EncodeToString(g.DeviceHash))
	if err := p.Store.DecideDeviceGrant(r.Context(), g.UserCode, true, a.User.Name, x.ID, sealed, now); err != nil {
		p.Store.RevokeSession(r.Context(), x.ID, now)
		if sluis.ErrorCode(err) == sluis.ENOTFOUND {
			d.Error = p.t(r, "device.expired")
			return p.render(w, r, http.StatusNotFound, "device", d)
		}
		return err
	}
	d.Notice = p.t(r, "device.approved")
	return p.render(w, r, http.StatusOK, "device", d)
}

// maxPendingDevices caps the device logins waiting at once.
const maxPendingDevices = 10000

// throttleKey is the key a source is throttled by: its address, or for
// IPv6 its /64, which one client usually has whole.
func throttleKey(src string) string {
	ip, err := netip.ParseAddr(src)
	if err != nil || ip.Is4() || ip.Is4In6() {
		return src
	}
	p, _ := ip.Prefix(64)
	return p.String()
}

// ago says how long ago something was, in r's language: seconds under a
// minute, else whole minutes.
func (p *Portal) ago(r *http.Request, d time.Duration) string {
	if d < time.Minute {
		return p.t(r, "device.ago_seconds", int(max(d, 0)/time.Second))
	}
	return p.t(r, "device.ago_minutes", int(d/time.Minute))
}
