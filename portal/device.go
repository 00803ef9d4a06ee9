package portal

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
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
	if r.Header.Get("Content-Type") != "application/json" {
		return statusError(http.StatusUnsupportedMediaType)
	}
	if r.ContentLength < 0 || r.ContentLength > 4<<10 {
		return statusError(http.StatusRequestEntityTooLarge)
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 4<<10))
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
	DeviceCode      string `json:"device_code"`
	UserCode        string `json:"user_code"`
	VerificationURI string `json:"verification_uri"`
	// VerificationURIComplete has the user code in it.
	VerificationURIComplete string `json:"verification_uri_complete"`
	Interval                int    `json:"interval"`
	ExpiresIn               int    `json:"expires_in"`
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
	// Each start stores a row: a source that starts many is slowed down.
	if wait := p.SourceThrottle.Begin("device-start:" + src); wait > 0 {
		return writeJSON(w, http.StatusTooManyRequests, jsonAnswer{Error: waitMessage(wait)})
	}
	if level, reason, err := p.level(r); err != nil {
		return err
	} else if level == sluis.LevelClosed {
		return writeJSON(w, http.StatusServiceUnavailable, jsonAnswer{Error: levelNotice(level, reason)})
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
	uri := p.BaseURL(p.Host) + "/device"
	return writeJSON(w, http.StatusOK, DeviceStart{DeviceCode: device, UserCode: code, VerificationURI: uri,
		VerificationURIComplete: uri + "?code=" + code, Interval: int(devicePoll / time.Second), ExpiresIn: int(deviceLifetime / time.Second)})
}

func (p *Portal) devicePoll(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		DeviceCode string `json:"device_code"`
	}
	if err := apiBody(w, r, &req); err != nil {
		return err
	}
	hash, ok := session.ParseToken(req.DeviceCode)
	if !ok {
		return writeJSON(w, http.StatusBadRequest, DevicePoll{Status: "expired"})
	}
	g, err := p.Store.TakeDeviceGrant(r.Context(), hash[:], p.Now())
	if sluis.ErrorCode(err) == sluis.ENOTFOUND {
		return writeJSON(w, http.StatusGone, DevicePoll{Status: "expired"})
	}
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

// deviceGrant finds the pending grant of the code in the request, and the
// approving user's session; it answers the request itself when there is
// nothing to approve.
func (p *Portal) deviceGrant(w http.ResponseWriter, r *http.Request) (*session.Active, sluis.DeviceGrant, bool, error) {
	code, ok := normUserCode(r.FormValue("code"))
	a := p.current(r)
	if a == nil || a.Session.Stage != sluis.StageComplete || p.Stale(r.Context(), a) {
		rd := p.BaseURL(p.Host) + "/device"
		if ok {
			rd += "?code=" + code
		}
		http.Redirect(w, r, "/login?rd="+url.QueryEscape(rd), http.StatusSeeOther)
		return nil, sluis.DeviceGrant{}, false, nil
	}
	d := pageData{Title: "Approve sluis connect", CSRF: p.csrfToken(w, r), User: a.User.Name}
	if !ok {
		d.Error = "That is not a login code. Check the code sluis connect printed."
		return nil, sluis.DeviceGrant{}, false, p.render(w, http.StatusBadRequest, "device", d)
	}
	g, err := p.Store.DeviceGrantByUserCode(r.Context(), code, p.Now())
	if sluis.ErrorCode(err) == sluis.ENOTFOUND {
		d.Error = "No login waits for that code, or it expired. Start sluis connect again."
		return nil, sluis.DeviceGrant{}, false, p.render(w, http.StatusNotFound, "device", d)
	}
	return a, g, err == nil, err
}

func (p *Portal) deviceForm(w http.ResponseWriter, r *http.Request) error {
	a, g, ok, err := p.deviceGrant(w, r)
	if !ok || err != nil {
		return err
	}
	d := pageData{Title: "Approve sluis connect", CSRF: p.csrfToken(w, r), User: a.User.Name,
		DeviceCode: g.UserCode, DeviceSource: g.Source, DeviceAge: p.Now().Sub(g.CreatedAt).Round(time.Second).String()}
	return p.render(w, http.StatusOK, "device", d)
}

func (p *Portal) deviceDecide(w http.ResponseWriter, r *http.Request) error {
	csrfOK, err := p.parseForm(w, r)
	if err != nil {
		return err
	}
	if !csrfOK {
		return statusError(http.StatusForbidden)
	}
	a, g, ok, err := p.deviceGrant(w, r)
	if !ok || err != nil {
		return err
	}
	d := pageData{Title: "Approve sluis connect", CSRF: p.csrfToken(w, r), User: a.User.Name}
	if r.PostFormValue("decision") != "approve" {
		if err := p.Store.DecideDeviceGrant(r.Context(), g.UserCode, false, a.User.Name, "", nil, p.Now()); err != nil && sluis.ErrorCode(err) != sluis.ENOTFOUND {
			return err
		}
		p.event(r, sluis.EventLoginFailure, a.User.Name, sluis.OutcomeDenied, "sluis connect from "+g.Source+" denied by the user")
		d.Notice = "Denied. That sluis connect gets no access."
		return p.render(w, http.StatusOK, "device", d)
	}
	// The client's own session: as strong as the login that approved it,
	// with its own token, bound to the tunnel pseudo host.
	now := p.Now()
	tok, hash := session.NewToken()
	x := sluis.Session{ID: session.NewID(), User: a.User.Name, Stage: sluis.StageComplete, CreatedAt: now, LastSeen: now,
		ExpiresAt: now.Add(p.Lifetime), MFAAt: a.Session.MFAAt, MFAMethod: a.Session.MFAMethod, Source: g.Source, UserAgent: "sluis connect"}
	if err := p.Store.CreateSession(r.Context(), x, hash[:], tunnel.Host); err != nil {
		return err
	}
	sealed := p.Sealer.Seal([]byte(tok), "device:"+hex.EncodeToString(g.DeviceHash))
	if err := p.Store.DecideDeviceGrant(r.Context(), g.UserCode, true, a.User.Name, x.ID, sealed, now); err != nil {
		p.Store.RevokeSession(r.Context(), x.ID, now)
		if sluis.ErrorCode(err) == sluis.ENOTFOUND {
			d.Error = "That login expired meanwhile. Start sluis connect again."
			return p.render(w, http.StatusNotFound, "device", d)
		}
		return err
	}
	p.event(r, sluis.EventLoginSuccess, a.User.Name, sluis.OutcomeSuccess, "sluis connect from "+g.Source+" approved; its session "+x.ID)
	d.Notice = "Approved. You can close this page; sluis connect is logged in."
	return p.render(w, http.StatusOK, "device", d)
}
