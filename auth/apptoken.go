package auth

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"
)

// AuthorityDefault is Microsoft Entra ID's global authority.
const AuthorityDefault = "https://login.microsoftonline.com"

// Token request limits and defaults.
const (
	// TokenResponseLimit caps the token endpoint's reply; a token response is a few KiB.
	TokenResponseLimit = 1 << 20
	// TokenRequestTimeoutDefault bounds one token request when AppTokenConfig.HTTPClient is nil.
	TokenRequestTimeoutDefault = 30 * time.Second
	// TokenExpiryDelta is how long before its expiry a cached app token is renewed
	// (half the lifetime for tokens that live less than twice as long).
	TokenExpiryDelta = 5 * time.Minute
)

// ClientAssertionType is the client_assertion_type of a JWT client assertion (RFC 7523).
const ClientAssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// AppTokenURL is the OAuth 2.0 v2 token endpoint of a tenant:
// {authority}/{tenant}/oauth2/v2.0/token. An empty authority is [AuthorityDefault].
func AppTokenURL(authority, tenantID string) string {
	return strings.TrimRight(cmpOr(authority, AuthorityDefault), "/") + "/" + url.PathEscape(tenantID) + "/oauth2/v2.0/token"
}

// AppTokenConfig gets an application's own access token (server-to-server
// authentication) with the OAuth 2.0 client credentials grant, proving the app's
// identity with a client assertion signed by its certificate.
//
// A config must not be changed while in use; [AppTokenConfig.TokenSource] copies it.
type AppTokenConfig struct {
	TokenURL    string // see AppTokenURL; must be https
	ClientID    string // the application (client) ID
	Certificate *ClientCertificate
	// Scope is the resource's ".default" scope: "https://graph.microsoft.com/.default"
	// for Graph, "https://outlook.office365.com/.default" for IMAP, POP and SMTP.
	Scope     string
	Algorithm AssertionAlgorithm // "" means AssertionPS256
	// HTTPClient sends the token request. nil means a client that verifies TLS
	// with the system roots and gives up after TokenRequestTimeoutDefault.
	HTTPClient *http.Client
	Now        func() time.Time // nil means time.Now
}

var defaultTokenHTTPClient = &http.Client{Timeout: TokenRequestTimeoutDefault}

func (cfg *AppTokenConfig) now() time.Time {
	if cfg.Now != nil {
		return cfg.Now()
	}
	return time.Now()
}

func (cfg *AppTokenConfig) validate() error {
	var missing []string
	for _, f := range []struct{ name, value string }{{"TokenURL", cfg.TokenURL}, {"ClientID", cfg.ClientID}, {"Scope", cfg.Scope}} {
		if f.value == "" {
			missing = append(missing, f.name)
		}
	}
	if cfg.Certificate == nil || cfg.Certificate.Certificate == nil || cfg.Certificate.Key == nil {
		missing = append(missing, "Certificate")
	}
	if len(missing) > 0 {
		return fmt.Errorf("auth: app token: %s required", strings.Join(missing, ", "))
	}
	u, err := url.Parse(cfg.TokenURL)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return fmt.Errorf("auth: app token: the token URL %q is not an https URL", cfg.TokenURL)
	}
	return nil
}

// Token sends one token request and returns the access token, with its Expiry set.
// The certificate is checked first: an expired one gives an error wrapping
// [ErrCertificateExpired] and no request. A refusal by the provider is a
// [*TokenError]. Neither the assertion nor a token ever appears in an error.
func (cfg *AppTokenConfig) Token(ctx context.Context) (*oauth2.Token, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	now := cfg.now()
	if err := cfg.Certificate.CheckValidAt(now); err != nil {
		return nil, err
	}
	assertion, err := cfg.Certificate.ClientAssertion(cfg.ClientID, cfg.TokenURL, cmp.Or(cfg.Algorithm, AssertionPS256), now)
	if err != nil {
		return nil, err
	}
	form := url.Values{
		"grant_type":            {"client_credentials"},
		"client_id":             {cfg.ClientID},
		"scope":                 {cfg.Scope},
		"client_assertion_type": {ClientAssertionType},
		"client_assertion":      {assertion},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, cfg.TokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, fmt.Errorf("auth: app token: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	client := cfg.HTTPClient
	if client == nil {
		client = defaultTokenHTTPClient
	}
	resp, err := client.Do(req)
	if err != nil {
		// *url.Error names the method and URL, never the form.
		return nil, fmt.Errorf("auth: app token request for %s: %w", cfg.ClientID, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, TokenResponseLimit+1))
	if err != nil {
		return nil, fmt.Errorf("auth: app token: read the reply: %w", err)
	}
	if len(body) > TokenResponseLimit {
		return nil, fmt.Errorf("auth: app token: the token endpoint's reply (HTTP %d) is larger than %d bytes", resp.StatusCode, TokenResponseLimit)
	}
	token, err := parseTokenResponse(resp.StatusCode, resp.Header, body, now)
	if err != nil {
		var refused *TokenError
		if errors.As(err, &refused) {
			refused.Description = strings.ReplaceAll(refused.Description, assertion, Redacted)
		}
		return nil, err
	}
	return token, nil
}

// maxDescription keeps a hostile or broken provider from filling logs.
const maxDescription = 2000

type tokenResponse struct {
	TokenType   string          `json:"token_type"`
	ExpiresIn   json.RawMessage `json:"expires_in"` // a number (v2) or a string (v1 endpoints)
	AccessToken string          `json:"access_token"`
	Error       string          `json:"error"`
	Description string          `json:"error_description"`
	ErrorCodes  []int           `json:"error_codes"`
}

// parseTokenResponse reads a token endpoint's reply (RFC 6749 §5.1 and §5.2).
// Errors describe the reply without quoting a token.
func parseTokenResponse(status int, header http.Header, body []byte, now time.Time) (*oauth2.Token, error) {
	var r tokenResponse
	jsonErr := json.Unmarshal(body, &r)
	if status != http.StatusOK || (jsonErr == nil && r.Error != "") {
		refused := &TokenError{StatusCode: status, RetryAfter: parseRetryAfter(header.Get("Retry-After"), now)}
		if jsonErr != nil {
			refused.Description = fmt.Sprintf("the reply is not an OAuth error (%s, %d bytes)", describeContentType(header), len(body))
			return nil, refused
		}
		refused.OAuthCode = truncate(r.Error, 100)
		refused.Description = truncate(r.Description, maxDescription)
		refused.ErrorCodes = r.ErrorCodes
		if len(refused.ErrorCodes) > 20 {
			refused.ErrorCodes = refused.ErrorCodes[:20]
		}
		return nil, refused
	}
	if jsonErr != nil {
		return nil, fmt.Errorf("auth: app token: the token endpoint answered HTTP 200 with a reply that is not JSON (%s, %d bytes)",
			describeContentType(header), len(body))
	}
	if r.AccessToken == "" {
		return nil, errors.New("auth: app token: the token endpoint's reply has no access_token")
	}
	if !strings.EqualFold(r.TokenType, "Bearer") {
		return nil, fmt.Errorf("auth: app token: token_type %q is not Bearer", truncate(r.TokenType, 40))
	}
	seconds, err := parseExpiresIn(r.ExpiresIn)
	if err != nil {
		return nil, err
	}
	return &oauth2.Token{AccessToken: r.AccessToken, TokenType: "Bearer", ExpiresIn: seconds, Expiry: now.Add(time.Duration(seconds) * time.Second)}, nil
}

// parseExpiresIn reads expires_in, a number of seconds or (older endpoints) a string
// holding one. A token without a lifetime cannot be cached safely, so it is refused.
func parseExpiresIn(raw json.RawMessage) (int64, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) > 0 && raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err == nil {
			raw = []byte(s)
		}
	}
	seconds, err := strconv.ParseInt(string(raw), 10, 64)
	if err != nil || seconds <= 0 || seconds > 366*24*3600 {
		return 0, errors.New("auth: app token: the token endpoint's reply has no valid expires_in")
	}
	return seconds, nil
}

// parseRetryAfter reads Retry-After: delay seconds or an HTTP date. Absent or
// unreadable values give 0.
func parseRetryAfter(value string, now time.Time) time.Duration {
	value = strings.TrimSpace(value)
	if value == "" {
		return 0
	}
	if seconds, err := strconv.ParseInt(value, 10, 64); err == nil {
		if seconds <= 0 {
			return 0
		}
		return time.Duration(min(seconds, 24*3600)) * time.Second
	}
	if at, err := http.ParseTime(value); err == nil && at.After(now) {
		return min(at.Sub(now), 24*time.Hour)
	}
	return 0
}

func describeContentType(header http.Header) string {
	mediaType, _, err := mime.ParseMediaType(header.Get("Content-Type"))
	if err != nil || mediaType == "" {
		return "no content type"
	}
	return truncate(mediaType, 80)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// TokenSource returns a cached source of app tokens. It returns the cached token
// until [TokenExpiryDelta] (or half the token's lifetime, for short-lived tokens)
// before it expires, then asks for a new one.
//
// The source is safe for concurrent use and sends at most one request at a time:
// callers that arrive while a request is in flight wait for it and share its
// outcome. A failed request returns its error to those callers and leaves the cache
// as it was, so the next call tries again. ctx bounds every request the source
// sends; once it is done, the source fails.
func (cfg *AppTokenConfig) TokenSource(ctx context.Context) oauth2.TokenSource {
	return &appTokenSource{cfg: *cfg, ctx: ctx}
}

type appTokenSource struct {
	cfg AppTokenConfig
	ctx context.Context

	mu       sync.Mutex
	token    *oauth2.Token
	refresh  time.Time // when the cached token is due for renewal
	inFlight *tokenFlight
}

type tokenFlight struct {
	done  chan struct{}
	token *oauth2.Token
	err   error
}

func (s *appTokenSource) Token() (*oauth2.Token, error) {
	s.mu.Lock()
	if s.token != nil && s.cfg.now().Before(s.refresh) {
		token := *s.token
		s.mu.Unlock()
		return &token, nil
	}
	if f := s.inFlight; f != nil {
		s.mu.Unlock()
		<-f.done
		return copyToken(f.token), f.err
	}
	f := &tokenFlight{done: make(chan struct{})}
	s.inFlight = f
	s.mu.Unlock()

	issued := s.cfg.now()
	f.token, f.err = s.cfg.Token(s.ctx)

	s.mu.Lock()
	if f.err == nil {
		s.token = f.token
		lifetime := f.token.Expiry.Sub(issued)
		s.refresh = f.token.Expiry.Add(-min(TokenExpiryDelta, lifetime/2))
	}
	s.inFlight = nil
	s.mu.Unlock()
	close(f.done)
	return copyToken(f.token), f.err
}

func copyToken(t *oauth2.Token) *oauth2.Token {
	if t == nil {
		return nil
	}
	c := *t
	return &c
}
