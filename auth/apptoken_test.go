package auth_test

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/serversync/serversync/auth"
	"github.com/serversync/serversync/internal/testclock"
)

// tokenServer is a scripted token endpoint over TLS. reply answers each request
// after the form has been checked; assertions records what was posted.
type tokenServer struct {
	*httptest.Server
	requests   atomic.Int64
	mu         sync.Mutex
	assertions []string
}

func newTokenServer(t *testing.T, cert *auth.ClientCertificate, reply func(w http.ResponseWriter, n int64)) *tokenServer {
	t.Helper()
	ts := &tokenServer{}
	ts.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := ts.requests.Add(1)
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" {
			t.Errorf("%s with %q", r.Method, r.Header.Get("Content-Type"))
		}
		if err := r.ParseForm(); err != nil {
			t.Error(err)
		}
		for k, want := range map[string]string{"grant_type": "client_credentials", "client_id": "app-1",
			"scope": "https://graph.microsoft.com/.default", "client_assertion_type": auth.ClientAssertionType} {
			if got := r.PostForm.Get(k); got != want {
				t.Errorf("%s = %q, want %q", k, got, want)
			}
		}
		assertion := r.PostForm.Get("client_assertion")
		header, claims, input, sig := decodeJWT(t, assertion)
		digest := sha256.Sum256([]byte(input))
		if header["alg"] != "PS256" || rsa.VerifyPSS(&cert.Key.PublicKey, crypto.SHA256, digest[:], sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash}) != nil {
			t.Errorf("the assertion is not a valid PS256 JWT (%v)", header)
		}
		if want := ts.URL + r.URL.Path; claims["aud"] != want {
			t.Errorf("aud = %v, want %s", claims["aud"], want)
		}
		ts.mu.Lock()
		ts.assertions = append(ts.assertions, assertion)
		ts.mu.Unlock()
		reply(w, n)
	}))
	t.Cleanup(ts.Close)
	return ts
}

func (ts *tokenServer) config(cert *auth.ClientCertificate, now func() time.Time) *auth.AppTokenConfig {
	return &auth.AppTokenConfig{
		TokenURL: auth.AppTokenURL(ts.URL, "tenant-1"), ClientID: "app-1", Certificate: cert,
		Scope: "https://graph.microsoft.com/.default", HTTPClient: ts.Client(), Now: now,
	}
}

func (ts *tokenServer) lastAssertion() string {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if len(ts.assertions) == 0 {
		return ""
	}
	return ts.assertions[len(ts.assertions)-1]
}

func replyToken(lifetime int) func(http.ResponseWriter, int64) {
	return func(w http.ResponseWriter, n int64) {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		fmt.Fprintf(w, `{"token_type":"Bearer","expires_in":%d,"ext_expires_in":%d,"access_token":"token-%d"}`, lifetime, lifetime, n)
	}
}

func TestAppTokenConfigToken(t *testing.T) {
	cert := parsed(t, validClientCert(t))
	ts := newTokenServer(t, cert, replyToken(3599))
	now := time.Now()
	token, err := ts.config(cert, func() time.Time { return now }).Token(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if token.AccessToken != "token-1" || token.TokenType != "Bearer" || !token.Expiry.Equal(now.Add(3599*time.Second)) {
		t.Errorf("token = %+v", token)
	}
}

func TestAppTokenConfigRefusals(t *testing.T) {
	cert := parsed(t, validClientCert(t))
	for _, tc := range []struct {
		name    string
		reply   func(http.ResponseWriter)
		check   func(t *testing.T, err error)
		isToken bool
	}{
		{"Entra error", func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(401)
			fmt.Fprint(w, `{"error":"invalid_client","error_description":"AADSTS700027: Client assertion failed signature validation.\r\nTrace ID: x","error_codes":[700027],"timestamp":"2026-01-01 00:00:00Z","trace_id":"x","correlation_id":"y"}`)
		}, func(t *testing.T, err error) {
			var te *auth.TokenError
			if !errors.As(err, &te) || te.StatusCode != 401 || te.OAuthCode != "invalid_client" ||
				!strings.HasPrefix(te.Description, "AADSTS700027:") || fmt.Sprint(te.ErrorCodes) != "[700027]" || te.Temporary() {
				t.Errorf("err = %#v", err)
			}
		}, true},
		{"throttled", func(w http.ResponseWriter) {
			w.Header().Set("Retry-After", "7")
			w.WriteHeader(429)
			fmt.Fprint(w, `{"error":"temporarily_unavailable","error_codes":[50196]}`)
		}, func(t *testing.T, err error) {
			var te *auth.TokenError
			if !errors.As(err, &te) || te.RetryAfter != 7*time.Second || !te.Temporary() {
				t.Errorf("err = %#v", err)
			}
		}, true},
		{"HTML outage page", func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(503)
			fmt.Fprint(w, "<html>down</html>")
		}, func(t *testing.T, err error) {
			var te *auth.TokenError
			if !errors.As(err, &te) || te.StatusCode != 503 || !te.Temporary() || !strings.Contains(te.Description, "not an OAuth error (text/html") {
				t.Errorf("err = %v", err)
			}
		}, true},
		{"200 not JSON", func(w http.ResponseWriter) { fmt.Fprint(w, "<html>") }, func(t *testing.T, err error) {
			if err == nil || !strings.Contains(err.Error(), "not JSON") {
				t.Errorf("err = %v", err)
			}
		}, false},
		{"oversized", func(w http.ResponseWriter) {
			fmt.Fprint(w, `{"access_token":"`+strings.Repeat("a", auth.TokenResponseLimit)+`"}`)
		}, func(t *testing.T, err error) {
			if err == nil || !strings.Contains(err.Error(), "larger than") || strings.Contains(err.Error(), "aaaa") {
				t.Errorf("err = %.200v", err)
			}
		}, false},
		{"no expires_in", func(w http.ResponseWriter) { fmt.Fprint(w, `{"token_type":"Bearer","access_token":"secret-token"}`) },
			func(t *testing.T, err error) {
				if err == nil || !strings.Contains(err.Error(), "expires_in") || strings.Contains(err.Error(), "secret-token") {
					t.Errorf("err = %v", err)
				}
			}, false},
		{"not bearer", func(w http.ResponseWriter) {
			fmt.Fprint(w, `{"token_type":"mac","expires_in":60,"access_token":"secret-token"}`)
		}, func(t *testing.T, err error) {
			if err == nil || !strings.Contains(err.Error(), "Bearer") || strings.Contains(err.Error(), "secret-token") {
				t.Errorf("err = %v", err)
			}
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := newTokenServer(t, cert, func(w http.ResponseWriter, _ int64) { tc.reply(w) })
			token, err := ts.config(cert, nil).Token(t.Context())
			if token != nil {
				t.Fatalf("token = %v", token)
			}
			tc.check(t, err)
			var te *auth.TokenError
			if errors.As(err, &te) != tc.isToken {
				t.Errorf("TokenError: %v, want %v", !tc.isToken, tc.isToken)
			}
			if a := ts.lastAssertion(); a == "" || strings.Contains(err.Error(), a) {
				t.Error("the error holds the assertion")
			}
		})
	}
}

// A provider that echoes the request must not get the assertion into the error.
func TestAppTokenConfigErrorsNeverHoldTheAssertion(t *testing.T) {
	cert := parsed(t, validClientCert(t))
	var ts *tokenServer
	ts = newTokenServer(t, cert, func(w http.ResponseWriter, _ int64) {
		w.WriteHeader(400)
		fmt.Fprintf(w, `{"error":"invalid_request","error_description":"bad assertion %s"}`, ts.lastAssertion())
	})
	_, err := ts.config(cert, nil).Token(t.Context())
	if err == nil || strings.Contains(err.Error(), ts.lastAssertion()) || !strings.Contains(err.Error(), auth.Redacted) {
		t.Errorf("err = %v", err)
	}
}

func TestAppTokenConfigInvalid(t *testing.T) {
	cert := parsed(t, validClientCert(t))
	ts := newTokenServer(t, cert, replyToken(3599))
	for name, mutate := range map[string]func(*auth.AppTokenConfig){
		"http URL":       func(c *auth.AppTokenConfig) { c.TokenURL = strings.Replace(c.TokenURL, "https:", "http:", 1) },
		"no client ID":   func(c *auth.AppTokenConfig) { c.ClientID = "" },
		"no scope":       func(c *auth.AppTokenConfig) { c.Scope = "" },
		"no certificate": func(c *auth.AppTokenConfig) { c.Certificate = nil },
		"bad algorithm":  func(c *auth.AppTokenConfig) { c.Algorithm = "HS256" },
	} {
		cfg := ts.config(cert, nil)
		mutate(cfg)
		if _, err := cfg.Token(t.Context()); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if n := ts.requests.Load(); n != 0 {
		t.Errorf("%d requests sent for invalid configs", n)
	}
}

func TestAppTokenConfigCertificateOutsideValidity(t *testing.T) {
	for name, cc := range map[string]struct{ from, to time.Duration }{
		"expired":       {-48 * time.Hour, -time.Hour},
		"not yet valid": {time.Hour, 48 * time.Hour},
	} {
		cert := parsed(t, clientCert(t, time.Now().Add(cc.from), time.Now().Add(cc.to)))
		ts := newTokenServer(t, cert, replyToken(3599))
		_, err := ts.config(cert, nil).TokenSource(t.Context()).Token()
		if !errors.Is(err, auth.ErrCertificateExpired) {
			t.Errorf("%s: err = %v", name, err)
		}
		if n := ts.requests.Load(); n != 0 {
			t.Errorf("%s: %d requests sent", name, n)
		}
	}
}

func TestAppTokenSourceSingleFlight(t *testing.T) {
	cert := parsed(t, validClientCert(t))
	release := make(chan struct{})
	ts := newTokenServer(t, cert, func(w http.ResponseWriter, n int64) {
		<-release
		replyToken(3599)(w, n)
	})
	source := ts.config(cert, nil).TokenSource(t.Context())
	var wg sync.WaitGroup
	tokens := make([]string, 50)
	for i := range tokens {
		wg.Go(func() {
			token, err := source.Token()
			if err != nil {
				t.Error(err)
				return
			}
			tokens[i] = token.AccessToken
		})
	}
	waitForRequest(t, ts)
	close(release)
	wg.Wait()
	if n := ts.requests.Load(); n != 1 {
		t.Errorf("%d requests, want 1", n)
	}
	for _, tok := range tokens {
		if tok != "token-1" {
			t.Fatalf("a caller got %q", tok)
		}
	}
}

func TestAppTokenSourceRefreshesBeforeExpiry(t *testing.T) {
	cert := parsed(t, validClientCert(t))
	for _, tc := range []struct {
		lifetime   int
		stillValid time.Duration // the cached token is still returned then
	}{
		{3600, 55*time.Minute - time.Second}, // renewed 5 minutes before expiry
		{120, 59 * time.Second},              // short-lived: renewed at half its life
	} {
		t.Run(fmt.Sprint(tc.lifetime), func(t *testing.T) {
			clock := testclock.New(time.Now())
			ts := newTokenServer(t, cert, replyToken(tc.lifetime))
			source := ts.config(cert, clock.Now).TokenSource(t.Context())
			get := func() string {
				t.Helper()
				tok, err := source.Token()
				if err != nil {
					t.Fatal(err)
				}
				return tok.AccessToken
			}
			if got := get(); got != "token-1" {
				t.Fatal(got)
			}
			clock.Advance(tc.stillValid)
			if got := get(); got != "token-1" {
				t.Fatalf("renewed too early: %s", got)
			}
			clock.Advance(2 * time.Second)
			if got := get(); got != "token-2" {
				t.Fatalf("not renewed: %s", got)
			}
			if n := ts.requests.Load(); n != 2 {
				t.Errorf("%d requests, want 2", n)
			}
		})
	}
}

func TestAppTokenSourceFailureDoesNotPoison(t *testing.T) {
	cert := parsed(t, validClientCert(t))
	ts := newTokenServer(t, cert, func(w http.ResponseWriter, n int64) {
		if n == 1 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(503)
			fmt.Fprint(w, `{"error":"temporarily_unavailable"}`)
			return
		}
		replyToken(3599)(w, n)
	})
	source := ts.config(cert, nil).TokenSource(t.Context())
	var te *auth.TokenError
	if _, err := source.Token(); !errors.As(err, &te) || !te.Temporary() {
		t.Fatalf("first call: %v", err)
	}
	for range 3 {
		tok, err := source.Token()
		if err != nil || tok.AccessToken != "token-2" {
			t.Fatalf("after the failure: %v, %v", tok, err)
		}
	}
	if n := ts.requests.Load(); n != 2 {
		t.Errorf("%d requests, want 2", n)
	}
}

func TestAppTokenSourceHonoursContext(t *testing.T) {
	cert := parsed(t, validClientCert(t))
	ts := newTokenServer(t, cert, replyToken(3599))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := ts.config(cert, nil).TokenSource(ctx).Token(); !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v", err)
	}
}

// The default client verifies TLS: the test server's certificate is not trusted.
func TestAppTokenConfigVerifiesTLS(t *testing.T) {
	cert := parsed(t, validClientCert(t))
	ts := newTokenServer(t, cert, replyToken(3599))
	cfg := ts.config(cert, nil)
	cfg.HTTPClient = nil
	if _, err := cfg.Token(t.Context()); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("err = %v", err)
	}
	if n := ts.requests.Load(); n != 0 {
		t.Errorf("%d requests reached the server", n)
	}
}

// waitForRequest waits until the server has received a request (it is then
// blocked in its handler, and every caller is waiting for it or about to).
func waitForRequest(t *testing.T, ts *tokenServer) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ts.requests.Load() == 0; {
		if time.Now().After(deadline) {
			t.Fatal("no token request arrived")
		}
		time.Sleep(time.Millisecond)
	}
}

// Callers waiting for a request that fails share its error: a failing provider
// gets one request, not one per caller.
func TestAppTokenSourceWaitersShareFailure(t *testing.T) {
	cert := parsed(t, validClientCert(t))
	release := make(chan struct{})
	ts := newTokenServer(t, cert, func(w http.ResponseWriter, n int64) {
		<-release
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprint(w, `{"error":"temporarily_unavailable"}`)
	})
	source := ts.config(cert, nil).TokenSource(t.Context())
	var wg sync.WaitGroup
	var failures atomic.Int64
	for range 20 {
		wg.Go(func() {
			var te *auth.TokenError
			if _, err := source.Token(); errors.As(err, &te) && te.Temporary() {
				failures.Add(1)
			}
		})
	}
	waitForRequest(t, ts)
	close(release)
	wg.Wait()
	// Callers that came after the failed request ended sent their own: at most a few.
	if got := failures.Load(); got != 20 {
		t.Errorf("%d callers saw the failure, want 20", got)
	}
	if n := ts.requests.Load(); n < 1 || n > 20 {
		t.Errorf("%d requests", n)
	}
}
