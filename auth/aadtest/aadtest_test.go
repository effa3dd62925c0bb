package aadtest_test

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/serversync/serversync/auth"
	"github.com/serversync/serversync/auth/aadtest"
	"github.com/serversync/serversync/internal/testcert"
	"github.com/serversync/serversync/internal/testclock"
)

const (
	tenantID = "9188040d-6c67-4c5b-b112-36a304b66dad"
	domain   = "contoso.example"
	clientID = "11111111-2222-3333-4444-555555555555"
	outlook  = "https://outlook.office365.com"
)

// keys are [0] the app's, [1] another app's, [2] the server's: made once, as RSA
// key generation is slow under -race.
var keys = sync.OnceValue(func() [3]*rsa.PrivateKey {
	var k [3]*rsa.PrivateKey
	for i := range k {
		key, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		k[i] = key
	}
	return k
})

type fixture struct {
	srv   *aadtest.Server
	clock *testclock.Clock
	cert  *testcert.ClientCert // registered
	other *testcert.ClientCert // not registered
	http  *http.Client
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	clock := testclock.New(time.Now().Truncate(time.Second))
	srv, err := aadtest.NewServer(&aadtest.Options{SigningKey: keys()[2], Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	mk := func(name string, key *rsa.PrivateKey) *testcert.ClientCert {
		cc, err := testcert.ClientCertWithKey(name, key, clock.Now().Add(-time.Hour), clock.Now().Add(30*24*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		return cc
	}
	f := &fixture{srv: srv, clock: clock, cert: mk("app", keys()[0]), other: mk("other", keys()[1])}
	srv.AddTenant(tenantID, domain)
	srv.RegisterApp(tenantID, clientID, f.cert.Certificate, "IMAP.AccessAsApp", "Mail.ReadWrite")
	// Trust the server through RootCAsPEM, as a host would.
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM([]byte(srv.RootCAsPEM())) {
		t.Fatal("RootCAsPEM holds no certificate")
	}
	transport := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}
	t.Cleanup(transport.CloseIdleConnections)
	f.http = &http.Client{Transport: transport}
	return f
}

func (f *fixture) config(t *testing.T, cc *testcert.ClientCert, alg auth.AssertionAlgorithm) *auth.AppTokenConfig {
	t.Helper()
	cert, err := auth.ParseClientCertificate(cc.CertPEM, auth.NewSecret(cc.KeyPEM))
	if err != nil {
		t.Fatal(err)
	}
	return &auth.AppTokenConfig{TokenURL: f.srv.TokenURL(tenantID), ClientID: clientID, Certificate: cert,
		Scope: outlook + "/.default", Algorithm: alg, HTTPClient: f.http, Now: f.clock.Now}
}

func TestEndToEnd(t *testing.T) {
	for _, alg := range []auth.AssertionAlgorithm{auth.AssertionPS256, auth.AssertionRS256} {
		t.Run(string(alg), func(t *testing.T) {
			f := newFixture(t)
			source := f.config(t, f.cert, alg).TokenSource(t.Context())
			token, err := source.Token()
			if err != nil {
				t.Fatal(err)
			}
			if got := token.Expiry.Sub(f.clock.Now()); got != 3599*time.Second {
				t.Errorf("lifetime %v, want 3599s", got)
			}
			claims, err := f.srv.VerifyAccessToken(token.AccessToken, outlook)
			if err != nil {
				t.Fatal(err)
			}
			want := aadtest.AccessClaims{TenantID: tenantID, AppID: clientID, Audience: outlook, Issuer: aadtest.Issuer(tenantID),
				DomainPrincipal: clientID + "@" + domain, Roles: []string{"IMAP.AccessAsApp", "Mail.ReadWrite"},
				IssuedAt: f.clock.Now(), ExpiresAt: f.clock.Now().Add(time.Hour)}
			if fmt.Sprint(*claims) != fmt.Sprint(want) {
				t.Errorf("claims = %+v\nwant     %+v", *claims, want)
			}
			// The raw token: RS256 with the kid, v1 claims, no azp.
			header, payload := jwtParts(t, token.AccessToken)
			if header["alg"] != "RS256" || header["kid"] != f.srv.KeyID() || header["typ"] != "JWT" {
				t.Errorf("header = %v", header)
			}
			if _, ok := payload["azp"]; ok {
				t.Error("the access token has an azp claim")
			}
			for k, v := range map[string]any{"iss": "https://sts.windows.net/" + tenantID + "/", "ver": "1.0", "appidacr": "2", "idtyp": "app"} {
				if payload[k] != v {
					t.Errorf("%s = %v, want %v", k, payload[k], v)
				}
			}
			if payload["oid"] == nil || payload["oid"] != payload["sub"] {
				t.Errorf("oid %v, sub %v", payload["oid"], payload["sub"])
			}
			// Cached: more calls send no request until the token is due.
			for range 5 {
				if _, err := source.Token(); err != nil {
					t.Fatal(err)
				}
			}
			if n := f.srv.TokenRequests(); n != 1 {
				t.Errorf("%d token requests, want 1", n)
			}
			f.clock.Advance(56 * time.Minute)
			renewed, err := source.Token()
			if err != nil || renewed.AccessToken == token.AccessToken || f.srv.TokenRequests() != 2 {
				t.Errorf("not renewed: %v, %d requests", err, f.srv.TokenRequests())
			}
		})
	}
}

func TestConcurrentCallersShareOneRequest(t *testing.T) {
	f := newFixture(t)
	source := f.config(t, f.cert, "").TokenSource(t.Context())
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			if _, err := source.Token(); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := f.srv.TokenRequests(); n != 1 {
		t.Errorf("%d token requests, want 1", n)
	}
}

func jwtParts(t *testing.T, token string) (header, claims map[string]any) {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("%d parts", len(parts))
	}
	for i, into := range []*map[string]any{&header, &claims} {
		raw, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(raw, into); err != nil {
			t.Fatal(err)
		}
	}
	return header, claims
}

// request is a raw token request, built independently of package auth so that
// every field can be wrong.
type request struct {
	method  string
	path    string // "" = the tenant's token path
	form    url.Values
	json    bool
	header  map[string]any
	claims  map[string]any
	key     *rsa.PrivateKey
	pssSalt int // PS256 salt length; 0 = the hash length
}

func (f *fixture) request(now time.Time) *request {
	s256 := sha256.Sum256(f.cert.Certificate.Raw)
	return &request{
		method: http.MethodPost,
		form: url.Values{"grant_type": {"client_credentials"}, "client_id": {clientID}, "scope": {outlook + "/.default"},
			"client_assertion_type": {auth.ClientAssertionType}},
		header: map[string]any{"alg": "PS256", "typ": "JWT", "x5t#S256": base64.RawURLEncoding.EncodeToString(s256[:])},
		claims: map[string]any{"aud": f.srv.TokenURL(tenantID), "iss": clientID, "sub": clientID, "jti": rand.Text(),
			"nbf": now.Unix(), "iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix()},
		key: f.cert.Key,
	}
}

func (r *request) assertion(t *testing.T) string {
	t.Helper()
	enc := func(v map[string]any) string {
		raw, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return base64.RawURLEncoding.EncodeToString(raw)
	}
	input := enc(r.header) + "." + enc(r.claims)
	digest := sha256.Sum256([]byte(input))
	var sig []byte
	var err error
	switch r.header["alg"] {
	case "PS256":
		salt := r.pssSalt
		if salt == 0 {
			salt = rsa.PSSSaltLengthEqualsHash
		}
		sig, err = rsa.SignPSS(rand.Reader, r.key, crypto.SHA256, digest[:], &rsa.PSSOptions{SaltLength: salt})
	case "RS256", "HS256":
		sig, err = rsa.SignPKCS1v15(rand.Reader, r.key, crypto.SHA256, digest[:])
	}
	if err != nil {
		t.Fatal(err)
	}
	return input + "." + base64.RawURLEncoding.EncodeToString(sig)
}

type entraError struct {
	Error         string `json:"error"`
	Description   string `json:"error_description"`
	ErrorCodes    []int  `json:"error_codes"`
	Timestamp     string `json:"timestamp"`
	TraceID       string `json:"trace_id"`
	CorrelationID string `json:"correlation_id"`
}

// send posts r (adding its signed assertion unless the form has one) and returns
// the status and the decoded body.
func (f *fixture) send(t *testing.T, r *request) (int, map[string]any, entraError) {
	t.Helper()
	form := maps.Clone(r.form)
	if _, ok := form["client_assertion"]; !ok {
		form.Set("client_assertion", r.assertion(t))
	}
	target := f.srv.TokenURL(tenantID)
	if r.path != "" {
		target = f.srv.URL() + r.path
	}
	body, contentType := form.Encode(), "application/x-www-form-urlencoded"
	if r.json {
		raw, _ := json.Marshal(form)
		body, contentType = string(raw), "application/json"
	}
	req, err := http.NewRequestWithContext(t.Context(), r.method, target, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	resp, err := f.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var generic map[string]any
	var e entraError
	if json.Unmarshal(raw, &generic) != nil || json.Unmarshal(raw, &e) != nil {
		t.Fatalf("not JSON: %s", raw)
	}
	return resp.StatusCode, generic, e
}

func TestSuccessShape(t *testing.T) {
	f := newFixture(t)
	status, body, _ := f.send(t, f.request(f.clock.Now()))
	if status != 200 || body["token_type"] != "Bearer" || body["expires_in"] != float64(3599) || body["ext_expires_in"] != float64(3599) {
		t.Fatalf("%d %v", status, body)
	}
	if _, err := f.srv.VerifyAccessToken(body["access_token"].(string), outlook); err != nil {
		t.Error(err)
	}
}

func TestAccepted(t *testing.T) {
	for name, mutate := range map[string]func(f *fixture, r *request){
		"RS256": func(f *fixture, r *request) { r.header["alg"] = "RS256" },
		"legacy x5t (SHA-1)": func(f *fixture, r *request) {
			sum := sha1.Sum(f.cert.Certificate.Raw)
			delete(r.header, "x5t#S256")
			r.header["x5t"] = base64.RawURLEncoding.EncodeToString(sum[:])
		},
		"tenant by domain": func(f *fixture, r *request) {
			r.path = "/" + domain + "/oauth2/v2.0/token"
			r.claims["aud"] = f.srv.TokenURL(domain)
		},
		"nbf within the skew": func(f *fixture, r *request) { r.claims["nbf"] = f.clock.Now().Add(4 * time.Minute).Unix() },
		"exp in an hour":      func(f *fixture, r *request) { r.claims["exp"] = f.clock.Now().Add(time.Hour).Unix() },
	} {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t)
			r := f.request(f.clock.Now())
			mutate(f, r)
			if status, body, e := f.send(t, r); status != 200 {
				t.Fatalf("%d %v %s", status, body, e.Description)
			}
		})
	}
}

func TestRefusals(t *testing.T) {
	for _, tc := range []struct {
		name      string
		mutate    func(f *fixture, r *request)
		status    int
		oauthCode string
		aadsts    int
		says      string
	}{
		{"GET", func(f *fixture, r *request) { r.method = http.MethodGet }, 400, "invalid_request", 900561, "only accepts POST"},
		{"unknown tenant", func(f *fixture, r *request) { r.path = "/nope/oauth2/v2.0/token" }, 400, "invalid_request", 90002, "Tenant 'nope' not found"},
		{"JSON body", func(f *fixture, r *request) { r.json = true }, 400, "invalid_request", 900144, "'grant_type'"},
		{"no grant_type", func(f *fixture, r *request) { r.form.Del("grant_type") }, 400, "invalid_request", 900144, "'grant_type'"},
		{"password grant", func(f *fixture, r *request) { r.form.Set("grant_type", "password") }, 400, "unsupported_grant_type", 70003, "'password'"},
		{"no client_id", func(f *fixture, r *request) { r.form.Del("client_id") }, 400, "invalid_request", 900144, "'client_id'"},
		{"no scope", func(f *fixture, r *request) { r.form.Del("scope") }, 400, "invalid_request", 900144, "'scope'"},
		{"delegated scope", func(f *fixture, r *request) { r.form.Set("scope", outlook+"/IMAP.AccessAsUser.All") }, 400, "invalid_scope", 70011, "/.default suffixed"},
		{"bare .default", func(f *fixture, r *request) { r.form.Set("scope", "/.default") }, 400, "invalid_scope", 70011, ""},
		{"two scopes", func(f *fixture, r *request) { r.form.Set("scope", outlook+"/.default offline_access/.default") }, 400, "invalid_scope", 70011, ""},
		{"no assertion", func(f *fixture, r *request) { r.form.Set("client_assertion", "") }, 400, "invalid_client", 7000218, "'client_assertion' or 'client_secret'"},
		{"no assertion type", func(f *fixture, r *request) { r.form.Del("client_assertion_type") }, 400, "invalid_request", 900144, "'client_assertion_type'"},
		{"wrong assertion type", func(f *fixture, r *request) {
			r.form.Set("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:saml2-bearer")
		}, 401, "invalid_client", 50012, "not supported"},
		{"unknown app", func(f *fixture, r *request) { r.form.Set("client_id", "someone-else") }, 400, "unauthorized_client", 700016, "'someone-else' was not found in the directory 'contoso.example'"},
		{"garbage assertion", func(f *fixture, r *request) { r.form.Set("client_assertion", "a.b.c") }, 401, "invalid_client", 50027, "malformed"},
		{"two-part assertion", func(f *fixture, r *request) { r.form.Set("client_assertion", "a.b") }, 401, "invalid_client", 50027, "malformed"},
		{"alg none", func(f *fixture, r *request) {
			r.header["alg"] = "none"
			a := r.assertion(t)
			r.form.Set("client_assertion", a[:strings.LastIndexByte(a, '.')+1])
		}, 401, "invalid_client", 50027, "'none' is not a supported"},
		{"alg HS256", func(f *fixture, r *request) { r.header["alg"] = "HS256" }, 401, "invalid_client", 50027, "'HS256'"},
		{"no thumbprint", func(f *fixture, r *request) { delete(r.header, "x5t#S256") }, 401, "invalid_client", 700027, "key was not found"},
		{"unregistered certificate", func(f *fixture, r *request) {
			sum := sha256.Sum256(f.other.Certificate.Raw)
			r.header["x5t#S256"] = base64.RawURLEncoding.EncodeToString(sum[:])
			r.key = f.other.Key
		}, 401, "invalid_client", 700027, "not registered on application"},
		{"signed by another key", func(f *fixture, r *request) { r.key = f.other.Key }, 401, "invalid_client", 700027, "failed signature validation"},
		{"RS256 signature labelled PS256", func(f *fixture, r *request) {
			r.header["alg"] = "RS256"
			a := r.assertion(t)
			parts := strings.Split(a, ".")
			h, _ := json.Marshal(map[string]any{"alg": "PS256", "typ": "JWT", "x5t#S256": r.header["x5t#S256"]})
			r.form.Set("client_assertion", base64.RawURLEncoding.EncodeToString(h)+"."+parts[1]+"."+parts[2])
		}, 401, "invalid_client", 700027, "failed signature validation"},
		{"PS256 with a longer salt", func(f *fixture, r *request) { r.pssSalt = 100 }, 401, "invalid_client", 700027, "failed signature validation"},
		{"tampered claims", func(f *fixture, r *request) {
			a := r.assertion(t)
			parts := strings.Split(a, ".")
			r.claims["jti"] = "changed"
			parts[1] = strings.Split(r.assertion(t), ".")[1]
			r.form.Set("client_assertion", strings.Join(parts, "."))
		}, 401, "invalid_client", 700027, "failed signature validation"},
		{"iss is not the client", func(f *fixture, r *request) { r.claims["iss"] = "other" }, 401, "invalid_client", 700021, "doesn't match 'client_id'"},
		{"sub is not the client", func(f *fixture, r *request) { r.claims["sub"] = "other" }, 401, "invalid_client", 700021, "doesn't match 'client_id'"},
		{"aud of another tenant", func(f *fixture, r *request) { r.claims["aud"] = f.srv.TokenURL("other-tenant") }, 401, "invalid_client", 50013, "audience"},
		{"aud of the real Entra", func(f *fixture, r *request) { r.claims["aud"] = auth.AppTokenURL("", tenantID) }, 401, "invalid_client", 50013, "audience"},
		{"aud as an array", func(f *fixture, r *request) { r.claims["aud"] = []string{f.srv.TokenURL(tenantID)} }, 401, "invalid_client", 50013, "audience"},
		{"expired", func(f *fixture, r *request) { r.claims["exp"] = f.clock.Now().Add(-time.Second).Unix() }, 401, "invalid_client", 700024, "not within its valid time range"},
		{"nbf in the future", func(f *fixture, r *request) { r.claims["nbf"] = f.clock.Now().Add(6 * time.Minute).Unix() }, 401, "invalid_client", 700024, "not within its valid time range"},
		{"exp too far", func(f *fixture, r *request) { r.claims["exp"] = f.clock.Now().Add(2 * time.Hour).Unix() }, 401, "invalid_client", 700024, "not within its valid time range"},
		{"no jti", func(f *fixture, r *request) { delete(r.claims, "jti") }, 400, "invalid_request", 90014, "'jti'"},
		{"no exp", func(f *fixture, r *request) { delete(r.claims, "exp") }, 400, "invalid_request", 90014, "'exp'"},
		{"no nbf", func(f *fixture, r *request) { delete(r.claims, "nbf") }, 400, "invalid_request", 90014, "'nbf'"},
		{"registered certificate expired", func(f *fixture, r *request) {
			cc, err := testcert.ClientCertWithKey("old", f.other.Key, f.clock.Now().Add(-48*time.Hour), f.clock.Now().Add(-time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			f.srv.RegisterApp(tenantID, clientID, cc.Certificate)
			sum := sha256.Sum256(cc.Certificate.Raw)
			r.header["x5t#S256"] = base64.RawURLEncoding.EncodeToString(sum[:])
			r.key = cc.Key
		}, 401, "invalid_client", 700027, "The key used is expired"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			r := f.request(f.clock.Now())
			tc.mutate(f, r)
			status, body, e := f.send(t, r)
			if status != tc.status || e.Error != tc.oauthCode || fmt.Sprint(e.ErrorCodes) != fmt.Sprintf("[%d]", tc.aadsts) {
				t.Fatalf("got %d %s %v, want %d %s %d: %s", status, e.Error, e.ErrorCodes, tc.status, tc.oauthCode, tc.aadsts, e.Description)
			}
			if !strings.HasPrefix(e.Description, fmt.Sprintf("AADSTS%d: ", tc.aadsts)) || !strings.Contains(e.Description, tc.says) ||
				!strings.Contains(e.Description, "\r\nTrace ID: "+e.TraceID) {
				t.Errorf("description %q, want it to say %q", e.Description, tc.says)
			}
			if _, err := time.Parse("2006-01-02 15:04:05Z", e.Timestamp); err != nil || e.CorrelationID == "" || len(e.TraceID) != 36 {
				t.Errorf("timestamp %q, trace %q, correlation %q", e.Timestamp, e.TraceID, e.CorrelationID)
			}
			if _, ok := body["access_token"]; ok {
				t.Error("an access token with an error")
			}
			if f.srv.TokenRequests() != 1 {
				t.Errorf("TokenRequests = %d, want 1", f.srv.TokenRequests())
			}
		})
	}
}

func TestReplayRefused(t *testing.T) {
	f := newFixture(t)
	r := f.request(f.clock.Now())
	r.form.Set("client_assertion", r.assertion(t))
	if status, _, e := f.send(t, r); status != 200 {
		t.Fatalf("first use: %d %s", status, e.Description)
	}
	status, _, e := f.send(t, r)
	if status != 401 || fmt.Sprint(e.ErrorCodes) != "[50013]" || !strings.Contains(e.Description, "already used") {
		t.Fatalf("replay: %d %v %s", status, e.ErrorCodes, e.Description)
	}
	// The same jti in a new assertion is a replay too.
	again := f.request(f.clock.Now())
	again.claims["jti"] = r.claims["jti"]
	if status, _, e := f.send(t, again); status != 401 || !strings.Contains(e.Description, "already used") {
		t.Fatalf("same jti: %d %s", status, e.Description)
	}
	// Another app's jti space is its own.
	f.srv.RegisterApp(tenantID, "app-2", f.other.Certificate)
	other := f.request(f.clock.Now())
	other.form.Set("client_id", "app-2")
	other.claims["iss"], other.claims["sub"], other.claims["jti"] = "app-2", "app-2", r.claims["jti"]
	sum := sha256.Sum256(f.other.Certificate.Raw)
	other.header["x5t#S256"] = base64.RawURLEncoding.EncodeToString(sum[:])
	other.key = f.other.Key
	if status, _, e := f.send(t, other); status != 200 {
		t.Fatalf("other app, same jti: %d %s", status, e.Description)
	}
	// Once the assertion has expired, the old one is refused for its time.
	f.clock.Advance(6 * time.Minute)
	if status, _, e := f.send(t, r); status != 401 || !strings.Contains(e.Description, "AADSTS700024") {
		t.Fatalf("expired replay: %d %s", status, e.Description)
	}
}

func TestKeyRotation(t *testing.T) {
	f := newFixture(t)
	f.srv.RegisterApp(tenantID, clientID, f.other.Certificate) // the new certificate, next to the old
	oldCfg, newCfg := f.config(t, f.cert, ""), f.config(t, f.other, auth.AssertionRS256)
	for name, cfg := range map[string]*auth.AppTokenConfig{"old": oldCfg, "new": newCfg} {
		if _, err := cfg.Token(t.Context()); err != nil {
			t.Fatalf("%s certificate during rotation: %v", name, err)
		}
	}
	f.srv.RemoveCertificate(tenantID, clientID, f.cert.Certificate)
	_, err := oldCfg.Token(t.Context())
	var te *auth.TokenError
	if !errors.As(err, &te) || te.StatusCode != 401 || te.OAuthCode != "invalid_client" || fmt.Sprint(te.ErrorCodes) != "[700027]" || te.Temporary() {
		t.Fatalf("old certificate after rotation: %v", err)
	}
	if _, err := newCfg.Token(t.Context()); err != nil {
		t.Fatalf("new certificate after rotation: %v", err)
	}
}

func TestFailNext(t *testing.T) {
	f := newFixture(t)
	cfg := f.config(t, f.cert, "")
	f.srv.FailNext(2, http.StatusTooManyRequests, "", 0, 1500*time.Millisecond)
	for range 2 {
		_, err := cfg.Token(t.Context())
		var te *auth.TokenError
		if !errors.As(err, &te) || te.StatusCode != 429 || te.OAuthCode != "temporarily_unavailable" || te.RetryAfter != 2*time.Second || !te.Temporary() {
			t.Fatalf("throttled: %#v", err)
		}
	}
	f.srv.FailNext(1, http.StatusBadRequest, "invalid_request", 90002, 0)
	_, err := cfg.Token(t.Context())
	var te *auth.TokenError
	if !errors.As(err, &te) || te.StatusCode != 400 || fmt.Sprint(te.ErrorCodes) != "[90002]" || te.Temporary() || te.RetryAfter != 0 ||
		!strings.HasPrefix(te.Description, "AADSTS90002: ") {
		t.Fatalf("injected 90002: %#v", err)
	}
	f.srv.FailNext(1, http.StatusServiceUnavailable, "", 0, 0)
	source := cfg.TokenSource(t.Context())
	if _, err := source.Token(); !errors.As(err, &te) || !te.Temporary() {
		t.Fatalf("503: %v", err)
	}
	if _, err := source.Token(); err != nil {
		t.Fatalf("after the injected failures: %v", err)
	}
	if n := f.srv.TokenRequests(); n != 5 {
		t.Errorf("TokenRequests = %d, want 5", n)
	}
}

func TestVerifyAccessTokenRefusals(t *testing.T) {
	f := newFixture(t)
	token, err := f.config(t, f.cert, "").Token(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	good := token.AccessToken
	parts := strings.Split(good, ".")
	_, claims := jwtParts(t, good)
	claims["appid"] = "intruder"
	forged, _ := json.Marshal(claims)
	otherServer, err := aadtest.NewServer(&aadtest.Options{SigningKey: keys()[1], Now: f.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer otherServer.Close()
	otherServer.AddTenant(tenantID, domain)
	for name, tc := range map[string]struct{ token, audience, says string }{
		"not a JWT":        {"abc", outlook, "not a JWT"},
		"forged claims":    {parts[0] + "." + base64.RawURLEncoding.EncodeToString(forged) + "." + parts[2], outlook, "bad signature"},
		"other audience":   {good, "https://graph.microsoft.com", "audience"},
		"truncated":        {parts[0] + "." + parts[1] + ".", outlook, "bad signature"},
		"from elsewhere":   {good, outlook, "kid"}, // checked by otherServer below
		"bad base64 token": {"!!.!!.!!", outlook, "malformed"},
	} {
		verifier := f.srv
		if name == "from elsewhere" {
			verifier = otherServer
		}
		_, err := verifier.VerifyAccessToken(tc.token, tc.audience)
		if !errors.Is(err, aadtest.ErrInvalidAccessToken) || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%s: %v", name, err)
		}
		if err != nil && strings.Contains(err.Error(), parts[2]) {
			t.Errorf("%s: the error quotes the token", name)
		}
	}
	f.clock.Advance(time.Hour)
	if _, err := f.srv.VerifyAccessToken(good, outlook); !errors.Is(err, aadtest.ErrInvalidAccessToken) || !strings.Contains(err.Error(), "expired") {
		t.Errorf("expired: %v", err)
	}
}

func TestServerMetadata(t *testing.T) {
	key := keys()[1]
	srv, err := aadtest.NewServer(&aadtest.Options{SigningKey: key, KeyID: "my-kid", TokenLifetime: 10 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if srv.KeyID() != "my-kid" || !strings.HasPrefix(srv.URL(), "https://127.0.0.1:") ||
		srv.TokenURL("t") != srv.URL()+"/t/oauth2/v2.0/token" || aadtest.Issuer("t") != "https://sts.windows.net/t/" {
		t.Errorf("kid %s, URL %s", srv.KeyID(), srv.URL())
	}
	block, _ := pem.Decode([]byte(srv.IssuerPublicKeyPEM()))
	if block == nil || block.Type != "PUBLIC KEY" {
		t.Fatalf("IssuerPublicKeyPEM: %q", srv.IssuerPublicKeyPEM())
	}
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil || !key.PublicKey.Equal(pub) {
		t.Errorf("IssuerPublicKeyPEM: %v", err)
	}
	def, err := aadtest.NewServer(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer def.Close()
	if len(def.KeyID()) != 27 || strings.ContainsAny(def.KeyID(), "+/=") {
		t.Errorf("default kid %q", def.KeyID())
	}
	// The token lifetime option reaches expires_in.
	srv.AddTenant("t", "t.example")
	cc, err := testcert.ClientCertWithKey("app", keys()[0], time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	srv.RegisterApp("t", "app", cc.Certificate)
	cert, err := auth.ParseClientCertificate(cc.CertPEM, auth.NewSecret(cc.KeyPEM))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	token, err := (&auth.AppTokenConfig{TokenURL: srv.TokenURL("t"), ClientID: "app", Certificate: cert,
		Scope: "https://graph.microsoft.com/.default", HTTPClient: srv.Client(), Now: func() time.Time { return now }}).Token(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if token.Expiry.Sub(now) != 599*time.Second {
		t.Errorf("lifetime %v", token.Expiry.Sub(now))
	}
	claims, err := srv.VerifyAccessToken(token.AccessToken, "https://graph.microsoft.com")
	if err != nil || claims.DomainPrincipal != "app@t.example" || claims.Roles != nil {
		t.Errorf("claims %+v, %v", claims, err)
	}
}
