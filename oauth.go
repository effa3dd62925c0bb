package serversync

import (
	"context"
	"sync"

	"golang.org/x/oauth2"

	"github.com/serversync/serversync/auth"
)

// resolveTarget is ResolveTarget for the Syncer's jobs. A server-to-server
// profile's mailboxes share one app-only token. A mailbox on OAuth gets a
// token source that stores each token it refreshes, so the next connection reuses it
// instead of asking the provider again. Without that every connection made with an
// hour-old token would be a refresh (10,000 mailboxes polled every 5 minutes, 2,000
// refreshes a minute, which providers throttle), and a provider that rotates refresh
// tokens would revoke the stored one after its first use.
func (s *Syncer) resolveTarget(ctx context.Context, w *work, dir Direction) (*Target, error) {
	m := w.m
	if w.p.credentialSource(dir) == CredentialsOAuth {
		// Another connection, of this job or of another host, may have refreshed
		// the token since the mailbox was loaded; a provider that rotates refresh
		// tokens accepts each one once.
		if stored, err := s.store.GetMailbox(ctx, m.ID); err == nil {
			m = m.Clone()
			m.OAuthToken = stored.OAuthToken
		}
	}
	m, err := s.discovered(ctx, w, m, dir)
	if err != nil {
		return nil, err
	}
	// Every mailbox of a server-to-server profile shares one token (and, through
	// an AppTokenStore, every process): no token request per connection.
	t, err := resolveTarget(ctx, w.p, m, w.settings, dir, s.cfg.Kerberos, s.appTokenSource(ctx))
	if err != nil || t.Credentials.Kind != auth.KindOAuth {
		return t, err
	}
	mailboxID := m.ID
	t.Credentials.TokenSource = &savingTokenSource{
		src:  t.Credentials.TokenSource,
		last: m.OAuthToken.AccessToken.Reveal(),
		save: func(token *oauth2.Token) { s.saveOAuthToken(ctx, mailboxID, token) },
	}
	return t, nil
}

// appTokenSource gives every mailbox of a server-to-server profile one token
// (and, through an AppTokenStore, every process): no token request per connection.
func (s *Syncer) appTokenSource(ctx context.Context) func(cfg *auth.AppTokenConfig, key string) oauth2.TokenSource {
	return func(cfg *auth.AppTokenConfig, key string) oauth2.TokenSource {
		return s.appTokens.sourceFor(ctx, s, cfg, key)
	}
}

// savingTokenSource calls save with each token src returns that it has not seen.
type savingTokenSource struct {
	src  oauth2.TokenSource
	save func(*oauth2.Token)

	mu   sync.Mutex
	last string // the access token last seen
}

func (ts *savingTokenSource) Token() (*oauth2.Token, error) {
	token, err := ts.src.Token()
	if err != nil {
		return nil, err
	}
	ts.mu.Lock()
	fresh := token.AccessToken != ts.last
	ts.last = token.AccessToken
	ts.mu.Unlock()
	if fresh {
		ts.save(token)
	}
	return token, nil
}

// saveOAuthToken stores a refreshed token on its mailbox. A failure is only logged:
// the token in hand still works, and the next connection refreshes again.
func (s *Syncer) saveOAuthToken(ctx context.Context, mailboxID string, token *oauth2.Token) {
	_, err := s.store.UpdateMailbox(context.WithoutCancel(ctx), mailboxID, func(m *Mailbox) error {
		m.OAuthToken.AccessToken = auth.NewSecret(token.AccessToken)
		if token.RefreshToken != "" { // providers that don't rotate send none
			m.OAuthToken.RefreshToken = auth.NewSecret(token.RefreshToken)
		}
		m.OAuthToken.TokenType, m.OAuthToken.Expiry = token.TokenType, token.Expiry
		return nil
	})
	if err != nil {
		s.log.Warn("store a refreshed OAuth token", "mailbox", mailboxID, "err", err)
	}
}
