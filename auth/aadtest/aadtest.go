// Package aadtest is a fake Microsoft Entra ID (Azure AD) token endpoint for
// server-to-server authentication: the OAuth 2.0 client credentials grant with a
// certificate-signed client assertion, over TLS on loopback.
//
// It verifies each client assertion as Entra ID documents it (algorithm, registered
// certificate by x5t#S256 or x5t, signature, audience, issuer and subject, time
// range, jti replay, scope) and answers refusals in Entra's JSON shape with real
// AADSTS codes. What it issues are v1 access tokens (what Graph and Exchange
// receive): RS256 JWTs signed with the server's key, which [Server.VerifyAccessToken]
// checks — and which Dovecot's oauth2 passdb accepts with local validation, given
// [Server.IssuerPublicKeyPEM] under [Server.KeyID].
//
// The fake keeps no list of resources: any "<resource>/.default" scope is granted,
// and the token's aud is the resource. Its own additions to Entra's behaviour are
// the domain_principal claim (see [AccessClaims]), a cap of [MaxAssertionLifetime]
// on assertions, and [Server.FailNext].
//
// Tests and examples use it alike: nothing in its API needs a testing.T.
package aadtest

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
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/serversync/serversync/internal/testcert"
)

// Options configure a Server. A nil *Options is the zero value: every default.
type Options struct {
	SigningKey *rsa.PrivateKey // signs access tokens; nil = a new 2048-bit key
	// KeyID is the "kid" of issued tokens; "" = the base64url SHA-256 of the
	// public key's DER, truncated to 27 characters (the length of Microsoft's kids).
	KeyID         string
	TokenLifetime time.Duration    // 0 = TokenLifetimeDefault; expires_in is one second less
	Now           func() time.Time // nil = time.Now
}

// Defaults and limits of the fake, close to Entra ID's.
const (
	TokenLifetimeDefault = time.Hour
	// ClockSkew is how far in the future an assertion's nbf may be.
	ClockSkew = 5 * time.Minute
	// MaxAssertionLifetime is how far in the future an assertion's exp may be
	// (plus ClockSkew).
	// Entra ID accepts longer-lived assertions; the fake is stricter on purpose.
	MaxAssertionLifetime = time.Hour
)

// Server is a fake Entra ID token endpoint. Its methods are safe for concurrent use.
type Server struct {
	srv      *httptest.Server
	rootPEM  string
	key      *rsa.PrivateKey
	kid      string
	lifetime time.Duration
	now      func() time.Time

	mu       sync.Mutex
	tenants  map[string]*tenant // by tenant ID and by lower-case domain
	requests int
	fail     injectedFailure
}

type tenant struct {
	id, domain string
	apps       map[string]*app
}

type app struct {
	certs []*x509.Certificate
	roles []string
	jtis  map[string]time.Time // assertion IDs seen, until their assertion expires
}

type injectedFailure struct {
	n, status, aadsts int
	oauthCode         string
	retryAfter        time.Duration
}

// NewServer starts a fake token endpoint on 127.0.0.1 with a throwaway TLS
// certificate ([Server.RootCAsPEM]). Close it when done.
func NewServer(opts *Options) (*Server, error) {
	if opts == nil {
		opts = &Options{}
	}
	s := &Server{key: opts.SigningKey, kid: opts.KeyID, lifetime: opts.TokenLifetime, now: opts.Now,
		tenants: map[string]*tenant{}}
	if s.key == nil {
		key, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return nil, fmt.Errorf("aadtest: signing key: %w", err)
		}
		s.key = key
	}
	if s.kid == "" {
		der, err := x509.MarshalPKIXPublicKey(&s.key.PublicKey)
		if err != nil {
			return nil, fmt.Errorf("aadtest: signing key: %w", err)
		}
		sum := sha256.Sum256(der)
		s.kid = base64.RawURLEncoding.EncodeToString(sum[:])[:27]
	}
	if s.lifetime <= 0 {
		s.lifetime = TokenLifetimeDefault
	}
	if s.now == nil {
		s.now = time.Now
	}
	cert, rootPEM, err := testcert.New()
	if err != nil {
		return nil, fmt.Errorf("aadtest: TLS certificate: %w", err)
	}
	s.rootPEM = rootPEM
	mux := http.NewServeMux()
	mux.HandleFunc("/{tenant}/oauth2/v2.0/token", s.serveToken)
	s.srv = httptest.NewUnstartedServer(mux)
	s.srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	s.srv.StartTLS()
	return s, nil
}

// Close stops the server and waits for the requests in progress.
func (s *Server) Close() { s.srv.Close() }

// URL is the authority: https://127.0.0.1:PORT.
func (s *Server) URL() string { return s.srv.URL }

// TokenURL is a tenant's token endpoint, {URL}/{tenant}/oauth2/v2.0/token; the
// tenant may be given by ID or by domain. It is also the audience that client
// assertions sent to it must carry.
func (s *Server) TokenURL(tenantID string) string {
	return s.srv.URL + "/" + tenantID + "/oauth2/v2.0/token"
}

// RootCAsPEM is the PEM certificate clients trust to reach the server.
func (s *Server) RootCAsPEM() string { return s.rootPEM }

// Client returns an HTTP client that trusts the server (and nothing else extra).
func (s *Server) Client() *http.Client { return s.srv.Client() }

// Issuer is the "iss" of the v1 access tokens a tenant issues, the tokens Graph and
// Exchange Online receive.
func Issuer(tenantID string) string { return "https://sts.windows.net/" + tenantID + "/" }

// KeyID is the "kid" header of issued access tokens.
func (s *Server) KeyID() string { return s.kid }

// IssuerPublicKeyPEM is the PEM ("PUBLIC KEY", PKIX) of the key that signs access
// tokens: what a resource server (e.g. Dovecot's local validation) verifies with.
func (s *Server) IssuerPublicKeyPEM() string {
	der, err := x509.MarshalPKIXPublicKey(&s.key.PublicKey)
	if err != nil {
		panic(err) // an RSA public key always marshals
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

// AddTenant adds (or renames the domain of) a tenant. Its token endpoint answers
// under the tenant ID and under the domain.
func (s *Server) AddTenant(tenantID, domain string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.tenants[tenantID]
	if t == nil {
		t = &tenant{id: tenantID, apps: map[string]*app{}}
	} else {
		delete(s.tenants, strings.ToLower(t.domain))
	}
	t.domain = domain
	s.tenants[tenantID] = t
	if domain != "" {
		s.tenants[strings.ToLower(domain)] = t
	}
}

// RegisterApp registers an application (service principal) in a tenant with a
// certificate, and grants it application roles (e.g. "Mail.ReadWrite",
// "IMAP.AccessAsApp"). Registering again adds a certificate, as during key
// rotation, and more roles. It panics if no tenant was added with that ID.
func (s *Server) RegisterApp(tenantID, clientID string, cert *x509.Certificate, roles ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.tenants[tenantID]
	if t == nil || t.id != tenantID {
		panic(fmt.Sprintf("aadtest: RegisterApp: tenant %q was not added", tenantID))
	}
	a := t.apps[clientID]
	if a == nil {
		a = &app{jtis: map[string]time.Time{}}
		t.apps[clientID] = a
	}
	if cert != nil && !slices.ContainsFunc(a.certs, cert.Equal) {
		a.certs = append(a.certs, cert)
	}
	for _, r := range roles {
		if !slices.Contains(a.roles, r) {
			a.roles = append(a.roles, r)
		}
	}
}

// RemoveCertificate unregisters one certificate of an app: the end of a key rotation.
func (s *Server) RemoveCertificate(tenantID, clientID string, cert *x509.Certificate) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t := s.tenants[tenantID]; t != nil {
		if a := t.apps[clientID]; a != nil {
			a.certs = slices.DeleteFunc(a.certs, cert.Equal)
		}
	}
}

// TokenRequests is how many requests the token endpoint answered, whether it
// issued a token or not.
func (s *Server) TokenRequests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests
}

// FailNext makes the next n token requests fail without being looked at: HTTP
// status, OAuth error code ("" = temporarily_unavailable for 429 and 5xx,
// invalid_request otherwise), AADSTS code (0 = none) and, if positive, a
// Retry-After header (whole seconds, rounded up). For example 503, 429 with
// Retry-After, or 400 invalid_request AADSTS90002.
func (s *Server) FailNext(n int, status int, oauthCode string, aadstsCode int, retryAfter time.Duration) {
	if oauthCode == "" {
		oauthCode = "invalid_request"
		if status == http.StatusTooManyRequests || status >= 500 {
			oauthCode = "temporarily_unavailable"
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail = injectedFailure{n: n, status: status, oauthCode: oauthCode, aadsts: aadstsCode, retryAfter: retryAfter}
}

// AADSTS codes the fake answers with. Where Entra ID documents no code of its own
// for a check, the comment names the closest documented one used instead.
const (
	codeTenantNotFound      = 90002   // InvalidTenantName
	codeMissingParameter    = 900144  // "The request body must contain the following parameter: '…'"
	codePostOnly            = 900561  // "The endpoint only accepts POST requests"
	codeUnsupportedGrant    = 70003   // UnsupportedGrantType
	codeInvalidScope        = 70011   // InvalidScope
	codeNoClientCredential  = 7000218 // "must contain … 'client_assertion' or 'client_secret'"
	codeAssertionType       = 50012   // AuthenticationFailed: Entra has no code for a wrong client_assertion_type
	codeAppNotFound         = 700016  // UnauthorizedClient_DoesNotMatchRequest
	codeMalformedJWT        = 50027   // InvalidJwtToken (also: unsupported alg)
	codeKeyNotRegistered    = 700027  // InvalidClientAssertion: key not found, expired, bad signature
	codeAppIDMismatch       = 700021  // ClientAssertionAppIdMismatch: iss/sub ≠ client_id
	codeAudience            = 50013   // InvalidAssertion: audience
	codeReplay              = 50013   // InvalidAssertion: Entra documents no replay code of its own
	codeMissingClaim        = 90014   // MissingRequiredField
	codeAssertionTimeRange  = 700024  // ClientAssertionNotWithinValidTimeRange
	assertionTypeJWTBearer  = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
	certificateCredentialsD = "Review the documentation at https://docs.microsoft.com/azure/active-directory/develop/active-directory-certificate-credentials ."
)

type refusal struct {
	status    int
	oauthCode string
	aadsts    int
	message   string
}

func refuse(status int, oauthCode string, aadsts int, format string, args ...any) *refusal {
	return &refusal{status: status, oauthCode: oauthCode, aadsts: aadsts, message: fmt.Sprintf(format, args...)}
}

func invalidClient(aadsts int, format string, args ...any) *refusal {
	return refuse(http.StatusUnauthorized, "invalid_client", aadsts, format, args...)
}

func missingParameter(name string) *refusal {
	return refuse(http.StatusBadRequest, "invalid_request", codeMissingParameter,
		"The request body must contain the following parameter: '%s'.", name)
}

func (s *Server) serveToken(w http.ResponseWriter, r *http.Request) {
	// Read the body and answer without the lock, decide under it: a slow client
	// must not hold up the others.
	r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
	formErr := r.ParseForm()
	if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		formErr = errors.New("not a form")
	}
	token, ref, retryAfter, now := s.decide(r, formErr)
	if retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(retryAfter.Seconds()))))
	}
	if ref != nil {
		writeRefusal(w, ref, now)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store, no-cache")
	w.Header().Set("Pragma", "no-cache")
	expiresIn := max(int(s.lifetime/time.Second)-1, 1)
	_ = json.NewEncoder(w).Encode(struct {
		TokenType    string `json:"token_type"`
		ExpiresIn    int    `json:"expires_in"`
		ExtExpiresIn int    `json:"ext_expires_in"`
		AccessToken  string `json:"access_token"`
	}{"Bearer", expiresIn, expiresIn, token})
}

func (s *Server) decide(r *http.Request, formErr error) (token string, ref *refusal, retryAfter time.Duration, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests++
	now = s.now()
	if f := &s.fail; f.n > 0 {
		f.n--
		msg := "Injected failure."
		if f.status == http.StatusTooManyRequests {
			msg = "Too many requests. Try again later."
		}
		return "", &refusal{status: f.status, oauthCode: f.oauthCode, aadsts: f.aadsts, message: msg}, f.retryAfter, now
	}
	token, ref = s.issue(r, formErr, now)
	return token, ref, 0, now
}

// issue checks a token request as Entra ID does and returns the access token, or
// the refusal. s.mu is held.
func (s *Server) issue(r *http.Request, formErr error, now time.Time) (string, *refusal) {
	if r.Method != http.MethodPost {
		return "", refuse(http.StatusBadRequest, "invalid_request", codePostOnly,
			"The endpoint only accepts POST requests. Received a %s request.", r.Method)
	}
	segment := r.PathValue("tenant")
	t := s.tenants[segment]
	if t == nil {
		t = s.tenants[strings.ToLower(segment)]
	}
	if t == nil {
		return "", refuse(http.StatusBadRequest, "invalid_request", codeTenantNotFound,
			"Tenant '%s' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant.", segment)
	}
	if formErr != nil {
		return "", missingParameter("grant_type") // what Entra says to a JSON or unreadable body
	}
	form := r.PostForm
	switch grant := form.Get("grant_type"); grant {
	case "":
		return "", missingParameter("grant_type")
	case "client_credentials":
	default:
		return "", refuse(http.StatusBadRequest, "unsupported_grant_type", codeUnsupportedGrant,
			"The request body must contain the following parameter: 'grant_type'. The app requested an unsupported grant type '%s'.", grant)
	}
	clientID := form.Get("client_id")
	if clientID == "" {
		return "", missingParameter("client_id")
	}
	scope := form.Get("scope")
	if scope == "" {
		return "", missingParameter("scope")
	}
	resource, ok := strings.CutSuffix(scope, "/.default")
	if !ok || resource == "" || strings.ContainsAny(scope, " \t") {
		return "", refuse(http.StatusBadRequest, "invalid_scope", codeInvalidScope,
			"The provided value for the input parameter 'scope' is not valid. The scope %s is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).", scope)
	}
	assertion := form.Get("client_assertion")
	if assertion == "" {
		return "", refuse(http.StatusBadRequest, "invalid_client", codeNoClientCredential,
			"The request body must contain the following parameter: 'client_assertion' or 'client_secret'.")
	}
	if typ := form.Get("client_assertion_type"); typ != assertionTypeJWTBearer {
		if typ == "" {
			return "", missingParameter("client_assertion_type")
		}
		return "", invalidClient(codeAssertionType, "Client assertion type '%s' is not supported; use '%s'.", typ, assertionTypeJWTBearer)
	}
	a := t.apps[clientID]
	if a == nil {
		return "", refuse(http.StatusBadRequest, "unauthorized_client", codeAppNotFound,
			"Application with identifier '%s' was not found in the directory '%s'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.",
			clientID, cmpOr(t.domain, t.id))
	}
	claims, ref := s.checkAssertion(assertion, clientID, a, "https://"+r.Host+r.URL.Path, now)
	if ref != nil {
		return "", ref
	}
	// Remember the jti until the assertion expires; forget expired ones.
	for jti, exp := range a.jtis {
		if !exp.After(now) {
			delete(a.jtis, jti)
		}
	}
	if _, seen := a.jtis[claims.Jti]; seen {
		return "", invalidClient(codeReplay, "The client assertion with jti '%s' was already used. A client assertion is good for one token request: make a new one for each.", claims.Jti)
	}
	a.jtis[claims.Jti] = time.Unix(*claims.Exp, 0)
	token, err := s.accessToken(t, clientID, a.roles, resource, now)
	if err != nil {
		return "", refuse(http.StatusInternalServerError, "server_error", 0, "Signing the token failed: %v", err)
	}
	return token, nil
}

type assertionClaims struct {
	Aud json.RawMessage `json:"aud"`
	Iss string          `json:"iss"`
	Sub string          `json:"sub"`
	Jti string          `json:"jti"`
	Nbf *int64          `json:"nbf"`
	Exp *int64          `json:"exp"`
}

// checkAssertion verifies a client assertion for clientID against tokenURL.
func (s *Server) checkAssertion(assertion, clientID string, a *app, tokenURL string, now time.Time) (*assertionClaims, *refusal) {
	malformed := invalidClient(codeMalformedJWT, "JWT token is invalid or malformed.")
	parts := strings.Split(assertion, ".")
	if len(parts) != 3 {
		return nil, malformed
	}
	var header struct {
		Alg     string `json:"alg"`
		X5tS256 string `json:"x5t#S256"`
		X5t     string `json:"x5t"`
	}
	var claims assertionClaims
	if decodeSegment(parts[0], &header) != nil || decodeSegment(parts[1], &claims) != nil {
		return nil, malformed
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return nil, malformed
	}
	if header.Alg != "PS256" && header.Alg != "RS256" {
		return nil, invalidClient(codeMalformedJWT, "Invalid JWT token. '%s' is not a supported signature algorithm. Supported signing algorithms are: 'PS256, RS256'.", header.Alg)
	}
	thumbprint := cmpOr(header.X5tS256, header.X5t)
	var cert *x509.Certificate
	for _, c := range a.certs {
		s256 := sha256.Sum256(c.Raw)
		s1 := sha1.Sum(c.Raw)
		if (header.X5tS256 != "" && header.X5tS256 == base64.RawURLEncoding.EncodeToString(s256[:])) ||
			(header.X5tS256 == "" && header.X5t != "" && header.X5t == base64.RawURLEncoding.EncodeToString(s1[:])) {
			cert = c
			break
		}
	}
	if cert == nil {
		return nil, invalidClient(codeKeyNotRegistered,
			"The certificate with identifier used to sign the client assertion is not registered on application. [Reason - The key was not found., Thumbprint of key used by client: '%s', Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see configured keys for app Id '%s'.]",
			thumbprint, clientID)
	}
	if now.Before(cert.NotBefore) || now.After(cert.NotAfter) {
		return nil, invalidClient(codeKeyNotRegistered,
			"Client assertion contains an invalid signature. [Reason - The key used is expired., Thumbprint of key used by client: '%s', Found key 'Start=%s, End=%s']",
			thumbprint, cert.NotBefore.UTC().Format(time.RFC3339), cert.NotAfter.UTC().Format(time.RFC3339))
	}
	pub, ok := cert.PublicKey.(*rsa.PublicKey)
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if ok && header.Alg == "PS256" {
		err = rsa.VerifyPSS(pub, crypto.SHA256, digest[:], sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
	} else if ok {
		err = rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], sig)
	}
	if !ok || err != nil {
		return nil, invalidClient(codeKeyNotRegistered, "Client assertion failed signature validation.")
	}
	for name, missing := range map[string]bool{"iss": claims.Iss == "", "sub": claims.Sub == "", "aud": len(claims.Aud) == 0,
		"jti": claims.Jti == "", "exp": claims.Exp == nil, "nbf": claims.Nbf == nil} {
		if missing {
			return nil, refuse(http.StatusBadRequest, "invalid_request", codeMissingClaim,
				"The required field '%s' is missing from the credential. Ensure that you have all the necessary parameters for the login request.", name)
		}
	}
	if claims.Iss != clientID || claims.Sub != clientID {
		return nil, invalidClient(codeAppIDMismatch, "Client assertion application identifier doesn't match 'client_id' parameter. %s", certificateCredentialsD)
	}
	var aud string
	if json.Unmarshal(claims.Aud, &aud) != nil || aud != tokenURL {
		return nil, invalidClient(codeAudience, "Assertion audience claim does not match the required value. The audience in the assertion was '%s' and the expected audience is '%s'.",
			strings.Trim(string(claims.Aud), `"`), tokenURL)
	}
	nbf, exp := time.Unix(*claims.Nbf, 0), time.Unix(*claims.Exp, 0)
	if !exp.After(now) || nbf.After(now.Add(ClockSkew)) || exp.After(now.Add(MaxAssertionLifetime+ClockSkew)) {
		return nil, invalidClient(codeAssertionTimeRange, "Client assertion is not within its valid time range. Current time: %s, assertion valid from %s, expiry time of assertion %s. %s",
			now.UTC().Format("2006-01-02T15:04:05.0000000Z"), nbf.UTC().Format("2006-01-02T15:04:05.0000000Z"),
			exp.UTC().Format("2006-01-02T15:04:05.0000000Z"), certificateCredentialsD)
	}
	return &claims, nil
}

func decodeSegment(segment string, into any) error {
	raw, err := base64.RawURLEncoding.DecodeString(segment)
	if err != nil {
		return err
	}
	return json.Unmarshal(raw, into)
}

// writeRefusal answers in Entra ID's error shape.
func writeRefusal(w http.ResponseWriter, ref *refusal, now time.Time) {
	traceID, correlationID := newGUID(), newGUID()
	timestamp := now.UTC().Format("2006-01-02 15:04:05Z")
	description := ref.message
	codes := []int{}
	if ref.aadsts != 0 {
		description = fmt.Sprintf("AADSTS%d: %s", ref.aadsts, ref.message)
		codes = []int{ref.aadsts}
	}
	description += fmt.Sprintf("\r\nTrace ID: %s\r\nCorrelation ID: %s\r\nTimestamp: %s", traceID, correlationID, timestamp)
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store, no-cache")
	w.Header().Set("Pragma", "no-cache")
	w.WriteHeader(ref.status)
	body := struct {
		Error         string `json:"error"`
		Description   string `json:"error_description"`
		ErrorCodes    []int  `json:"error_codes"`
		Timestamp     string `json:"timestamp"`
		TraceID       string `json:"trace_id"`
		CorrelationID string `json:"correlation_id"`
		ErrorURI      string `json:"error_uri,omitempty"`
	}{ref.oauthCode, description, codes, timestamp, traceID, correlationID, ""}
	if ref.aadsts != 0 {
		body.ErrorURI = "https://login.microsoftonline.com/error?code=" + strconv.Itoa(ref.aadsts)
	}
	_ = json.NewEncoder(w).Encode(body)
}

func newGUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// stableGUID derives a GUID from names: the object ID of an app's service
// principal in a tenant stays the same across tokens.
func stableGUID(parts ...string) string {
	b := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	b[6] = b[6]&0x0f | 0x50
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// ErrInvalidAccessToken is wrapped by every refusal of [Server.VerifyAccessToken].
var ErrInvalidAccessToken = errors.New("aadtest: invalid access token")
