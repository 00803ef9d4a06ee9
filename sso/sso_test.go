package sso

import (
	"slices"
	"testing"
)

func TestCountsAsMFA(t *testing.T) {
	tests := []struct {
		amr       []string
		acr       string
		want      bool
		wantAMR   []string
		wantACR   []string
		situation string
	}{
		{[]string{"pwd"}, "", false, []string{"mfa", "otp"}, nil, "password only"},
		{[]string{"pwd", "otp"}, "", true, []string{"mfa", "otp"}, nil, "password and a code"},
		{[]string{"hwk"}, "", false, nil, nil, "nothing configured: never counted"},
		{nil, "urn:mace:incommon:iap:silver", true, nil, []string{"urn:mace:incommon:iap:silver"}, "acr configured"},
		{nil, "", false, nil, []string{""}, "an empty acr never counts"},
	}
	for _, tt := range tests {
		if got := CountsAsMFA(tt.amr, tt.acr, tt.wantAMR, tt.wantACR); got != tt.want {
			t.Errorf("%s: %v, want %v", tt.situation, got, tt.want)
		}
	}
}

func TestStringsOf(t *testing.T) {
	if got := stringsOf("staff"); !slices.Equal(got, []string{"staff"}) {
		t.Errorf("a string: %v", got)
	}
	if got := stringsOf([]any{"a", 3, "b"}); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("a list: %v", got)
	}
	if got := stringsOf(map[string]any{"x": "y"}); got != nil {
		t.Errorf("an object: %v", got)
	}
}

func TestIssuerMustBeHTTPS(t *testing.T) {
	for issuer, ok := range map[string]bool{
		"https://idp.corp.example/realms/staff": true,
		"http://localhost:9998/":                true, // tests and development only
		"http://idp.corp.example/":              false,
		"ftp://idp.corp.example/":               false,
		"":                                      false,
	} {
		if _, err := New(Config{Name: "x", Issuer: issuer}); (err == nil) != ok {
			t.Errorf("issuer %q: %v", issuer, err)
		}
	}
}
