package serversync

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"

	"github.com/serversync/serversync/auth"
)

// Server-to-server authentication (DESIGN §11): OAuth 2.0 client credentials
// with a certificate. One app-only token per profile and resource serves every
// mailbox of the profile, in every process.

// The resources app-only tokens are asked for, as their ".default" scopes.
const (
	GraphScopeDefault   = "https://graph.microsoft.com/.default"   // Graph (ExchangeOnline, ExchangeOnlineHybrid)
	OutlookScopeDefault = "https://outlook.office365.com/.default" // Exchange Online's IMAP, POP3 and SMTP
)

// appTokenRefreshAhead is how long before it expires a shared token is replaced.
// Entra ID's tokens last 60–90 minutes; five minutes leaves room for a slow
// token endpoint and for clocks that disagree.
const appTokenRefreshAhead = 5 * time.Minute

// appTokenConfig is the client-credentials request of a server-to-server
// profile for one direction, and the key under which its token is shared.
func appTokenConfig(p *Profile, settings *OrgSettings, dir Direction) (*auth.AppTokenConfig, string, error) {
	forbid := func(code string, err error) error {
		return &ConnectorError{Op: "credentials", Kind: ErrorAuth, Scope: ScopeProfile, Code: code, Err: err}
	}
	cert, err := auth.ParseClientCertificate(p.CertificatePEM, p.CertificateKey)
	if err != nil {
		return nil, "", forbid(CodeBadTarget, fmt.Errorf("profile %q: %w", p.Name, err))
	}
	tenant := p.TenantID
	if p.UseDefaultTenantID {
		tenant = settings.DefaultTenantID
	}
	if tenant == "" {
		return nil, "", forbid(CodeBadTarget, fmt.Errorf("profile %q has no tenant ID (and the organisation no DefaultTenantID)", p.Name))
	}
	tokenURL := auth.AppTokenURL("", tenant)
	if p.TokenURL != "" {
		tokenURL = strings.ReplaceAll(p.TokenURL, "{tenant}", url.PathEscape(tenant))
	}
	client, err := profileHTTPClient(p)
	if err != nil {
		return nil, "", forbid(CodeTLSBadRootCA, err)
	}
	cfg := &auth.AppTokenConfig{
		TokenURL:    tokenURL,
		ClientID:    p.ClientID,
		Certificate: cert,
		Scope:       appTokenScope(p, dir),
		HTTPClient:  client,
	}
	// The key names the profile and resource, and changes with anything that
	// makes another token: a new certificate is never served the old one's token.
	id := sha256.Sum256([]byte(cfg.TokenURL + "\n" + cfg.ClientID + "\n" + cert.ThumbprintS256()))
	key := fmt.Sprintf("%s%s#%x", appTokenKeyPrefix(p.ID), cfg.Scope, id[:12])
	return cfg, key, nil
}

// appTokenKeyPrefix starts the keys of every shared token of a profile.
func appTokenKeyPrefix(profileID string) string { return "s2s/" + profileID + "/" }

// appTokenScope is the scope an app-only token is asked for: the profile's
// Scopes, or the .default scope of the resource its protocol talks to.
func appTokenScope(p *Profile, dir Direction) string {
	if len(p.Scopes) > 0 {
		return strings.Join(p.Scopes, " ")
	}
	protocol := p.IncomingProtocol()
	if dir == Outgoing {
		protocol = p.OutgoingProtocol()
	}
	if protocol == "graph" {
		return GraphScopeDefault
	}
	return OutlookScopeDefault
}

// profileHTTPClient reaches the token endpoint with TLS verified against the
// system roots and the profile's ExtraRootCAsPEM, within its ConnectionTimeout.
func profileHTTPClient(p *Profile) (*http.Client, error) {
	roots, err := x509.SystemCertPool()
	if err != nil {
		roots = x509.NewCertPool()
	}
	if p.ExtraRootCAsPEM != "" && !roots.AppendCertsFromPEM([]byte(p.ExtraRootCAsPEM)) {
		return nil, fmt.Errorf("profile %q: ExtraRootCAsPEM holds no PEM certificate", p.Name)
	}
	timeout := p.ConnectionTimeout
	if timeout == 0 {
		timeout = ConnectionTimeoutDefault
	}
	transport := &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         (&net.Dialer{Timeout: timeout}).DialContext,
		TLSClientConfig:     &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout: timeout,
		ForceAttemptHTTP2:   true,
		IdleConnTimeout:     90 * time.Second,
	}
	return &http.Client{Transport: transport, Timeout: timeout}, nil
}

// appTokens holds the Syncer's shared app-only tokens, one per key.
type appTokens struct {
	mu     sync.Mutex
	shared map[string]*sharedAppToken
}

// sourceFor returns the token source of the Syncer's shared token for cfg and key,
// and forgets the tokens of the same profile and scope made with settings that
// changed since.
func (a *appTokens) sourceFor(ctx context.Context, s *Syncer, cfg *auth.AppTokenConfig, key string) oauth2.TokenSource {
	a.mu.Lock()
	defer a.mu.Unlock()
	shared, ok := a.shared[key]
	if !ok {
		if a.shared == nil {
			a.shared = make(map[string]*sharedAppToken)
		}
		stem, _, _ := strings.Cut(key, "#")
		for old := range a.shared {
			if strings.HasPrefix(old, stem+"#") {
				delete(a.shared, old)
			}
		}
		shared = &sharedAppToken{key: key, cfg: cfg, syncer: s}
		a.shared[key] = shared
	}
	return contextTokenSource{ctx: ctx, token: shared.get}
}

// sharedAppToken is one app-only token shared by every mailbox of a profile in
// this process and, through an [AppTokenStore], with the other processes.
type sharedAppToken struct {
	key    string
	cfg    *auth.AppTokenConfig
	syncer *Syncer

	mu    sync.Mutex    // one request for a new token at a time
	token *oauth2.Token // the last one seen
}

// fresh reports whether token is good for a while yet. Tokens and client
// assertions live on the identity provider's clock, the wall clock: Config.Now,
// which tests move, dates neither.
func (t *sharedAppToken) fresh(token *oauth2.Token) bool {
	return token != nil && token.AccessToken != "" && time.Now().Add(appTokenRefreshAhead).Before(token.Expiry)
}

// token returns the shared token, asking the store and then the identity
// provider when it is about to expire.
func (t *sharedAppToken) get(ctx context.Context) (*oauth2.Token, error) {
	token, err := t.current(ctx)
	if err != nil {
		return nil, err
	}
	// A copy for each caller: oauth2's wrappers write to the tokens they are given.
	c := *token
	return &c, nil
}

func (t *sharedAppToken) current(ctx context.Context) (*oauth2.Token, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.fresh(t.token) {
		return t.token, nil
	}
	shared, sharing := t.syncer.store.(AppTokenStore)
	if sharing {
		stored, err := shared.AppToken(ctx, t.key)
		switch {
		case err == nil && t.fresh(stored.oauth2()):
			t.token = stored.oauth2()
			return t.token, nil
		case err != nil && !errors.Is(err, ErrNotFound):
			t.syncer.log.Warn("read the shared app token; asking the identity provider", "err", err)
		}
	}
	token, err := t.cfg.Token(ctx)
	if err != nil {
		return nil, err
	}
	t.token = token
	if sharing {
		kept, err := shared.PutAppToken(context.WithoutCancel(ctx), t.key, AppToken{
			AccessToken: auth.NewSecret(token.AccessToken), TokenType: token.TokenType, Expiry: token.Expiry,
			UpdatedAt: time.Now(),
		})
		switch {
		case err != nil:
			t.syncer.log.Warn("share the app token", "err", err)
		case t.fresh(kept.oauth2()):
			t.token = kept.oauth2() // another process stored a later one meanwhile
		}
	}
	return t.token, nil
}

func (a AppToken) oauth2() *oauth2.Token {
	return &oauth2.Token{AccessToken: a.AccessToken.Reveal(), TokenType: a.TokenType, Expiry: a.Expiry}
}

// contextTokenSource binds a context to a token function for oauth2.TokenSource,
// whose Token method takes none.
type contextTokenSource struct {
	ctx   context.Context
	token func(context.Context) (*oauth2.Token, error)
}

func (s contextTokenSource) Token() (*oauth2.Token, error) { return s.token(s.ctx) }

// certificateCheckInterval is how often, at most, a process looks at a
// profile's certificate expiry.
const certificateCheckInterval = time.Hour

// checkCertificateExpiry warns the owner of a server-to-server profile whose
// certificate expires within Config.CertificateExpiryWarning, once a day. An
// expired certificate needs no warning: every connection fails with
// CodeCertificateExpired, which alerts on its own.
func (s *Syncer) checkCertificateExpiry(ctx context.Context, w *work) {
	p := w.p
	if p == nil || p.Owner == "" || p.CertificateNotAfter.IsZero() || !w.settings.AlertWarnings ||
		(p.IncomingCredentialSource != CredentialsServerToServer && p.OutgoingCredentialSource != CredentialsServerToServer) {
		return
	}
	now := s.cfg.Now()
	left := p.CertificateNotAfter.Sub(now)
	if left <= 0 || left > s.cfg.CertificateExpiryWarning {
		return
	}
	s.certCheckMu.Lock()
	checked := s.certChecked[p.ID]
	if !checked.IsZero() && now.Sub(checked) < certificateCheckInterval {
		s.certCheckMu.Unlock()
		return
	}
	if s.certChecked == nil {
		s.certChecked = make(map[string]time.Time)
	}
	s.certChecked[p.ID] = now
	s.certCheckMu.Unlock()
	for a, err := range s.store.ListAlerts(ctx, AlertFilter{ProfileID: p.ID, Recipient: p.Owner, Level: AlertWarning, Since: now.Add(-24 * time.Hour)}) {
		if err != nil || a.Code == CodeCertificateExpiring {
			return
		}
	}
	a := &Alert{
		ID: NewID(), Level: AlertWarning, Scope: ScopeProfile, Recipient: p.Owner, ProfileID: p.ID,
		Code: CodeCertificateExpiring, CreatedAt: now,
		Message: fmt.Sprintf("The server-to-server certificate of profile %q expires on %s (in %d days): "+
			"register a new certificate with the application (client ID %s) and save it on the profile before then, "+
			"or every mailbox of the profile stops synchronizing.",
			p.Name, p.CertificateNotAfter.UTC().Format("2006-01-02 15:04 MST"), int(left.Hours()/24), p.ClientID),
	}
	if err := s.store.AddAlert(ctx, a); err != nil {
		s.log.Error("store alert", "err", err, "code", a.Code)
		return
	}
	s.emit(Event{Kind: EventAlertRaised, ProfileID: p.ID, Alert: a})
}
