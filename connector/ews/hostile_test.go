package ews_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/connector/ews"
)

// hostile serves handler over TLS and fetches from it as alice.
func hostile(t *testing.T, opts ews.Options, timeout time.Duration, handler http.HandlerFunc) error {
	t.Helper()
	ts := httptest.NewTLSServer(handler)
	t.Cleanup(ts.Close)
	client := ts.Client()
	t.Cleanup(client.CloseIdleConnections)
	opts.HTTPClient = client
	c := ews.New(&opts)
	target := &serversync.Target{MailboxID: "mb", EmailAddress: alice, Credentials: password("alice", "alice-pw"),
		Endpoint: serversync.Endpoint{URL: ts.URL + "/EWS/Exchange.asmx", TLS: serversync.TLSImplicit, Timeout: timeout}}
	sess, err := c.OpenIncoming(context.Background(), target)
	if err != nil {
		return err
	}
	defer sess.Close()
	_, err = sess.Fetch(context.Background(), serversync.FetchRequest{}, func(*serversync.RemoteMessage) error { return nil })
	return err
}

func TestHostileReplies(t *testing.T) {
	t.Run("HTMLLoginPage", func(t *testing.T) {
		err := hostile(t, ews.Options{}, 5*time.Second, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			_, _ = w.Write([]byte("<html><body>Outlook Web App sign in</body></html>"))
		})
		ce := code(t, err)
		assert.Equal(t, serversync.CodeProtocolError, ce.Code)
		assert.Contains(t, err.Error(), "check the EWS URL")
	})
	t.Run("NotEWS404", func(t *testing.T) {
		err := hostile(t, ews.Options{}, 5*time.Second, http.NotFound)
		ce := code(t, err)
		assert.Equal(t, serversync.CodeBadTarget, ce.Code)
		assert.Equal(t, serversync.ErrorPermanent, ce.Kind)
	})
	t.Run("EndlessReply", func(t *testing.T) {
		err := hostile(t, ews.Options{}, 5*time.Second, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/xml")
			chunk := []byte(strings.Repeat("<a>", 1<<14))
			for range (ews.MaxReplyBytes >> 14) + 2 {
				if _, err := w.Write(chunk); err != nil {
					return
				}
			}
		})
		assert.Equal(t, serversync.CodeReplyTooLong, code(t, err).Code)
	})
	t.Run("NoReply", func(t *testing.T) {
		release := make(chan struct{})
		err := hostile(t, ews.Options{}, 200*time.Millisecond, func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		})
		close(release) // before the server's Close waits for the handler
		ce := code(t, err)
		assert.Equal(t, serversync.CodeTimeout, ce.Code)
		assert.Equal(t, serversync.ErrorTransient, ce.Kind)
	})
	t.Run("Unauthorized", func(t *testing.T) {
		err := hostile(t, ews.Options{}, 5*time.Second, func(w http.ResponseWriter, r *http.Request) {
			if _, pw, ok := r.BasicAuth(); !ok || pw != "alice-pw" {
				t.Error("Basic credentials missing")
			}
			w.Header().Set("WWW-Authenticate", "NTLM")
			w.WriteHeader(http.StatusUnauthorized)
		})
		ce := code(t, err)
		assert.Equal(t, serversync.CodeAuthFailed, ce.Code)
		assert.Equal(t, serversync.ErrorAuth, ce.Kind)
	})
}
