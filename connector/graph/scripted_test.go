package graph_test

import (
	"crypto/tls"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/auth"
	"github.com/serversync/serversync/internal/testcert"
)

// secretToken is the access token of the scripted servers' targets: no error
// or log may show it.
const secretToken = "eyJ0eXAi.secret-token-never-shown.sig"

// scripted serves handler over TLS on loopback (for replies the fake Graph
// server does not give: garbage, endless bodies, unusual statuses) and
// returns a target for it with app-only credentials.
func scripted(t *testing.T, handler http.HandlerFunc) *serversync.Target {
	t.Helper()
	cert, pemText := testcert.Must()
	srv := httptest.NewUnstartedServer(handler)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the untrusted-certificate test's handshake failure
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return &serversync.Target{
		MailboxID: "mb-1", EmailAddress: "alice@contoso.test",
		Endpoint: serversync.Endpoint{URL: srv.URL, RootCAsPEM: pemText, Timeout: 5 * time.Second},
		Credentials: auth.Credentials{Kind: auth.KindAppOnly, Username: "alice@contoso.test",
			TokenSource: oauth2.StaticTokenSource(&oauth2.Token{AccessToken: secretToken})},
	}
}

// graphError answers a Graph error.
func graphError(w http.ResponseWriter, status int, code, message string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(`{"error":{"code":"` + code + `","message":"` + message + `"}}`))
}
