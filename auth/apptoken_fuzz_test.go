package auth

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
)

// FuzzParseTokenResponse feeds the token endpoint's reply parser arbitrary bodies:
// it must never panic, a success must be a usable token, and an error must never
// quote the access token. The seed corpus lives in testdata/fuzz.
func FuzzParseTokenResponse(f *testing.F) {
	f.Add(200, "", `{"token_type":"Bearer","expires_in":3599,"ext_expires_in":3599,"access_token":"eyJ0"}`)
	f.Add(200, "", `{"token_type":"Bearer","expires_in":"3599","access_token":"eyJ0"}`)
	f.Add(400, "", `{"error":"invalid_request","error_description":"AADSTS90002: Tenant 'x' not found.","error_codes":[90002]}`)
	f.Add(429, "30", `{"error":"temporarily_unavailable"}`)
	f.Add(503, "Wed, 21 Oct 2015 07:28:00 GMT", `<html>`)
	f.Add(200, "", `{"error":"invalid_grant"}`)
	now := time.Unix(1_800_000_000, 0)
	f.Fuzz(func(t *testing.T, status int, retryAfter, body string) {
		header := http.Header{"Retry-After": {retryAfter}, "Content-Type": {"application/json"}}
		token, err := parseTokenResponse(status, header, []byte(body), now)
		if err == nil {
			if token == nil || token.AccessToken == "" || token.TokenType != "Bearer" || !token.Expiry.After(now) {
				t.Fatalf("unusable token %+v", token)
			}
			return
		}
		if token != nil {
			t.Fatal("a token and an error")
		}
		var refused *TokenError
		if errors.As(err, &refused) && (refused.RetryAfter < 0 || refused.RetryAfter > 24*time.Hour) {
			t.Fatalf("RetryAfter %v", refused.RetryAfter)
		}
		if status == 200 && !errors.As(err, &refused) && strings.Contains(body, `"access_token":"SECRET`) && strings.Contains(err.Error(), "SECRET") {
			t.Fatalf("the error quotes the token: %v", err)
		}
	})
}
