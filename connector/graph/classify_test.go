package graph_test

import (
	"bytes"
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/auth"
	"github.com/serversync/serversync/connector/graph"
)

// TestErrorClassification checks what each Graph error reply becomes, for
// the operation it answers.
func TestErrorClassification(t *testing.T) {
	fetch := func(ctx context.Context, c *graph.Connector, target *serversync.Target) error {
		s, err := c.OpenIncoming(ctx, target)
		if err != nil {
			return err
		}
		defer s.Close()
		_, err = s.Fetch(ctx, serversync.FetchRequest{}, func(*serversync.RemoteMessage) error { return nil })
		return err
	}
	send := func(ctx context.Context, c *graph.Connector, target *serversync.Target) error {
		s, err := c.OpenOutgoing(ctx, target)
		if err != nil {
			return err
		}
		defer s.Close()
		msg := "From: alice@contoso.test\r\nTo: bob@example.test\r\nSubject: hi\r\n\r\nhello\r\n"
		return s.Send(ctx, serversync.Envelope{From: "alice@contoso.test", To: []string{"bob@example.test"}}, bytes.NewReader([]byte(msg)))
	}
	move := func(ctx context.Context, c *graph.Connector, target *serversync.Target) error {
		s, err := c.OpenIncoming(ctx, target)
		if err != nil {
			return err
		}
		defer s.Close()
		return s.(serversync.FolderSession).Move(ctx, "inbox", "AAMkAD", "inbox")
	}
	for _, tc := range []struct {
		name      string
		op        func(context.Context, *graph.Connector, *serversync.Target) error
		delegated bool
		status    int
		code, msg string
		kind      serversync.ErrorKind
		scope     serversync.AlertScope
		want      string
		says      string
	}{
		{"invalid token app-only", fetch, false, 401, "InvalidAuthenticationToken", "Access token validation failure.", serversync.ErrorAuth, serversync.ScopeProfile, serversync.CodeAuthFailed, "InvalidAuthenticationToken"},
		{"invalid token delegated", fetch, true, 401, "InvalidAuthenticationToken", "Access token validation failure.", serversync.ErrorAuth, serversync.ScopeMailbox, serversync.CodeAuthFailed, "Access token validation failure"},
		{"expired token", fetch, false, 401, "InvalidAuthenticationToken", "Lifetime validation failed, the token is expired.", serversync.ErrorAuth, serversync.ScopeProfile, serversync.CodeAuthExpired, "expired"},
		{"access denied", fetch, false, 403, "ErrorAccessDenied", "Access is denied. Check credentials and try again.", serversync.ErrorAuth, serversync.ScopeMailbox, serversync.CodeNoPermission, "application access policy"},
		{"unknown user", fetch, false, 404, "ErrorInvalidUser", "The requested user 'alice@contoso.test' is invalid.", serversync.ErrorPermanent, serversync.ScopeMailbox, serversync.CodeMailboxNotFound, "ErrorInvalidUser"},
		{"no Exchange Online", fetch, false, 404, "MailboxNotEnabledForRESTAPI", "The mailbox is either inactive, soft-deleted, or is hosted on-premise.", serversync.ErrorPermanent, serversync.ScopeMailbox, serversync.CodeMailboxNotFound, "MailboxNotEnabledForRESTAPI"},
		{"unknown folder", fetch, false, 404, "ErrorItemNotFound", "The specified object was not found in the store.", serversync.ErrorPermanent, serversync.ScopeMailbox, serversync.CodeFolderNotFound, "ErrorItemNotFound"},
		{"unavailable without Retry-After", fetch, false, 503, "ServiceUnavailable", "Service Unavailable", serversync.ErrorTransient, serversync.ScopeProfile, serversync.CodeServerUnavailable, "ServiceUnavailable"},
		{"internal error", fetch, false, 500, "InternalServerError", "boom", serversync.ErrorTransient, serversync.ScopeMailbox, serversync.CodeServerUnavailable, "boom"},
		{"bad request", fetch, false, 400, "BadRequest", "Invalid filter clause", serversync.ErrorTransient, serversync.ScopeMailbox, serversync.CodeCommandFailed, "Invalid filter clause"},
		{"mailbox full", fetch, false, 400, "ErrorQuotaExceeded", "The mailbox is over its quota.", serversync.ErrorPermanent, serversync.ScopeMailbox, serversync.CodeOverQuota, "quota"},
		{"send too large", send, false, 413, "ErrorMessageSizeExceeded", "The message exceeds the maximum supported size.", serversync.ErrorPermanent, serversync.ScopeItem, serversync.CodeMessageTooLarge, "ErrorMessageSizeExceeded"},
		{"send no recipients", send, false, 400, "ErrorInvalidRecipients", "At least one recipient is not valid.", serversync.ErrorPermanent, serversync.ScopeItem, serversync.CodeRecipientRejected, "ErrorInvalidRecipients"},
		{"send bad MIME", send, false, 400, "ErrorMimeContentInvalidBase64String", "Invalid base64 string for MIME content.", serversync.ErrorPermanent, serversync.ScopeItem, serversync.CodeRejected, "ErrorMimeContentInvalidBase64String"},
		{"send denied", send, false, 403, "ErrorAccessDenied", "Access is denied.", serversync.ErrorAuth, serversync.ScopeMailbox, serversync.CodeNoPermission, "Mail.Send"},
		{"move unknown message", move, false, 404, "ErrorItemNotFound", "The specified object was not found in the store.", serversync.ErrorPermanent, serversync.ScopeItem, serversync.CodeBadRef, "ErrorItemNotFound"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			target := scripted(t, func(w http.ResponseWriter, r *http.Request) {
				graphError(w, tc.status, tc.code, tc.msg)
			})
			if tc.delegated {
				target.Credentials.Kind = auth.KindOAuth
			}
			c := graph.New(nil)
			defer c.CloseIdleConnections()
			err := tc.op(context.Background(), c, target)
			require.Error(t, err)
			var ce *serversync.ConnectorError
			require.ErrorAs(t, err, &ce)
			assert.Equal(t, tc.want, ce.Code, "%v", err)
			assert.Equal(t, tc.kind, ce.Kind, "%v", err)
			assert.Equal(t, tc.scope, ce.Scope, "%v", err)
			assert.Contains(t, err.Error(), tc.says)
			assert.NotContains(t, err.Error(), "secret-token")
		})
	}
}

func TestTokenNeverInErrors(t *testing.T) {
	target := scripted(t, func(w http.ResponseWriter, r *http.Request) {
		graphError(w, http.StatusBadRequest, "BadRequest", "cannot parse "+r.Header.Get("Authorization"))
	})
	err := fetchErr(t, graph.New(nil), target)
	assert.NotContains(t, err.Error(), secretToken)
	assert.Contains(t, err.Error(), "cannot parse Bearer [token]")
}

func TestUnsupportedCredentials(t *testing.T) {
	target := scripted(t, func(w http.ResponseWriter, r *http.Request) { t.Error("no request may be sent") })
	target.Credentials = auth.Credentials{Kind: auth.KindPassword, Username: "alice", Password: auth.NewSecret("pw")}
	_, err := graph.New(nil).OpenIncoming(context.Background(), target)
	var ce *serversync.ConnectorError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, serversync.CodeAuthUnavailable, ce.Code)
	assert.Equal(t, serversync.ErrorPermanent, ce.Kind)
	assert.Contains(t, err.Error(), "Graph needs OAuth or server-to-server credentials")
}

func TestPlainHTTPRefused(t *testing.T) {
	target := scripted(t, func(w http.ResponseWriter, r *http.Request) {})
	target.Endpoint.URL = "http://127.0.0.1:1"
	_, err := graph.New(nil).OpenIncoming(context.Background(), target)
	var ce *serversync.ConnectorError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, serversync.CodePlaintextAuthRefused, ce.Code)
}

// errTokenSource fails like an identity provider refusing the application.
type errTokenSource struct{ err error }

func (s errTokenSource) Token() (*oauth2.Token, error) { return nil, s.err }

func TestTokenFailure(t *testing.T) {
	target := scripted(t, func(w http.ResponseWriter, r *http.Request) { t.Error("no request without a token") })
	target.Credentials.TokenSource = errTokenSource{&auth.TokenError{StatusCode: 401, OAuthCode: "invalid_client", Description: "AADSTS7000215: Invalid client secret provided."}}
	err := fetchErr(t, graph.New(nil), target)
	var ce *serversync.ConnectorError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, serversync.CodeTokenRefused, ce.Code)
	assert.Equal(t, serversync.ScopeProfile, ce.Scope, "an app-only token serves the whole profile")
	assert.Contains(t, err.Error(), "AADSTS7000215")
}

func TestUntrustedCertificate(t *testing.T) {
	target := scripted(t, func(w http.ResponseWriter, r *http.Request) { t.Error("no request over an untrusted connection") })
	target.Endpoint.RootCAsPEM = ""
	err := fetchErr(t, graph.New(nil), target)
	var ce *serversync.ConnectorError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, serversync.CodeTLSVerifyFailed, ce.Code)
}

func TestRetryAfterPastMaxRetryWait(t *testing.T) {
	calls := 0
	target := scripted(t, func(w http.ResponseWriter, r *http.Request) {
		calls++
		w.Header().Set("Retry-After", "1")
		graphError(w, http.StatusTooManyRequests, "ApplicationThrottled", "MailboxConcurrency limit exceeded")
	})
	c := graph.New(&graph.Options{MaxRetryWait: 2500 * time.Millisecond})
	defer c.CloseIdleConnections()
	start := time.Now()
	err := fetchErr(t, c, target)
	var ce *serversync.ConnectorError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, serversync.CodeThrottled, ce.Code)
	assert.Equal(t, serversync.ErrorTransient, ce.Kind)
	assert.Equal(t, 3, calls, "two waits of 1 s fit in 2.5 s, the third does not")
	assert.GreaterOrEqual(t, time.Since(start), 2*time.Second)
	st := c.Stats()
	assert.Equal(t, int64(3), st.Throttled)
	assert.Equal(t, int64(3), st.Requests)
	assert.GreaterOrEqual(t, st.RetryWait, 2*time.Second)
}

func TestRetryAfterCancelled(t *testing.T) {
	target := scripted(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "60")
		graphError(w, http.StatusServiceUnavailable, "ServiceUnavailable", "busy")
	})
	c := graph.New(nil)
	defer c.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	s, err := c.OpenIncoming(ctx, target)
	require.NoError(t, err)
	_, err = s.Fetch(ctx, serversync.FetchRequest{}, func(*serversync.RemoteMessage) error { return nil })
	require.Error(t, err)
	assert.Less(t, time.Since(start), 5*time.Second, "the wait ends with the context")
}

func fetchErr(t *testing.T, c *graph.Connector, target *serversync.Target) error {
	t.Helper()
	s, err := c.OpenIncoming(context.Background(), target)
	if err != nil {
		return err
	}
	defer s.Close()
	_, err = s.Fetch(context.Background(), serversync.FetchRequest{}, func(*serversync.RemoteMessage) error { return nil })
	require.Error(t, err)
	return err
}
