// Package mfa holds second factors. For now: TOTP (RFC 6238) with six
// digits, SHA-1 and 30-second steps, the parameters every authenticator app
// understands. Time is passed in, never read here, so tests control it.
package mfa

import (
	"bytes"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"image/png"
	"net/url"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
)

// Period is the TOTP time step.
const Period = 30 * time.Second

var opts = totp.ValidateOpts{Period: uint(Period / time.Second), Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1}

// Key is a new TOTP secret with what a user needs to enrol it.
type Key struct {
	Secret string // base32, for typing into an app
	URI    string // otpauth:// URI, for a QR code
	key    *otp.Key
}

// NewKey generates a random 160-bit secret for account at issuer.
func NewKey(issuer, account string) (Key, error) {
	k, err := totp.Generate(totp.GenerateOpts{Issuer: issuer, AccountName: account, Period: opts.Period, Digits: opts.Digits, Algorithm: opts.Algorithm, SecretSize: 20})
	if err != nil {
		return Key{}, err
	}
	return Key{Secret: k.Secret(), URI: k.URL(), key: k}, nil
}

// KeyFor rebuilds the enrolment view of an existing secret.
func KeyFor(issuer, account, secret string) (Key, error) {
	uri := fmt.Sprintf("otpauth://totp/%s:%s?algorithm=SHA1&digits=6&issuer=%s&period=30&secret=%s",
		url.PathEscape(issuer), url.PathEscape(account), url.QueryEscape(issuer), secret)
	k, err := otp.NewKeyFromURL(uri)
	if err != nil {
		return Key{}, err
	}
	return Key{Secret: secret, URI: k.URL(), key: k}, nil
}

// QRDataURI renders the key's URI as a PNG QR code in a data: URI, drawn on
// the server so the page needs no script.
func (k Key) QRDataURI() (string, error) {
	img, err := k.key.Image(240, 240)
	if err != nil {
		return "", err
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return "", err
	}
	return "data:image/png;base64," + base64.StdEncoding.EncodeToString(buf.Bytes()), nil
}

// Step returns the TOTP time step of t.
func Step(t time.Time) int64 { return t.Unix() / int64(Period/time.Second) }

// Code returns the code of secret for the step containing t.
func Code(secret string, t time.Time) (string, error) {
	return totp.GenerateCodeCustom(secret, t, opts)
}

// Verify checks code against secret at now, accepting one step of clock
// skew either way. It returns the step the code belongs to, so the caller
// can make sure each step is used only once.
func Verify(secret, code string, now time.Time) (step int64, ok bool) {
	if len(code) != 6 {
		return 0, false
	}
	for _, c := range code {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	matched := int64(-1)
	for d := int64(-1); d <= 1; d++ {
		s := Step(now) + d
		want, err := totp.GenerateCodeCustom(secret, time.Unix(s*int64(Period/time.Second), 0), opts)
		if err != nil {
			return 0, false
		}
		// Check every candidate, matched or not, so timing says nothing.
		if subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 && matched < 0 {
			matched = s
		}
	}
	return matched, matched >= 0
}
