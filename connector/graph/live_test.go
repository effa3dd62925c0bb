package graph_test

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/auth"
	"github.com/serversync/serversync/auth/aadtest"
	"github.com/serversync/serversync/connector/graph"
	"github.com/serversync/serversync/connector/graph/graphtest"
	"github.com/serversync/serversync/connector/imapconn"
	"github.com/serversync/serversync/internal/testcert"
)

// The live test's settings: a real Microsoft 365 tenant and an app registration
// with a certificate and the application permissions Mail.ReadWrite and Mail.Send
// (admin consent given). See examples/exchange-online for the registration.
const (
	liveTenantEnv   = "SERVERSYNC_LIVE_GRAPH_TENANT"    // directory (tenant) ID or domain
	liveClientIDEnv = "SERVERSYNC_LIVE_GRAPH_CLIENT_ID" // application (client) ID
	liveCertEnv     = "SERVERSYNC_LIVE_GRAPH_CERT"      // PEM file of the app's certificate
	liveKeyEnv      = "SERVERSYNC_LIVE_GRAPH_KEY"       // PEM file of its RSA private key
	liveMailboxEnv  = "SERVERSYNC_LIVE_GRAPH_MAILBOX"   // the mailbox read (and sent from)
	liveSendToEnv   = "SERVERSYNC_LIVE_GRAPH_SEND_TO"   // optional: send one email there
	// liveIMAPEnv = 1 also logs in to outlook.office365.com:993 with an app-only
	// XOAUTH2 token; the app then needs IMAP.AccessAsApp (Office 365 Exchange
	// Online) and an Exchange service principal with FullAccess on the mailbox.
	liveIMAPEnv = "SERVERSYNC_LIVE_IMAP"
)

// liveFetchLimit is how many inbox messages the live delta round reads.
const liveFetchLimit = 20

var errEnough = errors.New("read enough")

// TestLiveGraph runs the connector against real Microsoft Graph: an app-only
// token from login.microsoftonline.com, every Probe step, one delta round over the
// inbox (its first liveFetchLimit messages; nothing changed on the server) and,
// when asked, one sendMail. It is skipped unless the SERVERSYNC_LIVE_GRAPH_*
// variables are set.
func TestLiveGraph(t *testing.T) {
	liveGraph(t, liveSettings(t))
}

// liveGraph is the live test's body; TestLiveGraphOnFakes runs it against the
// fake Entra ID and Graph so that it is known to work before anyone has a tenant
// to point it at.
func liveGraph(t *testing.T, env liveEnv) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	tokens := liveTokens(t, ctx, env)
	target := liveTarget(t, env, tokens(serversync.GraphScopeDefault))
	conn := graph.New(nil)
	defer conn.CloseIdleConnections()

	steps := conn.Probe(ctx, target)
	require.NotEmpty(t, steps)
	for _, s := range steps {
		t.Logf("probe %-16s ok=%t %s", s.Name, s.OK, s.Detail)
		assert.True(t, s.OK, "probe step %s: %s (%v)", s.Name, s.Detail, s.Err)
	}

	sess, err := conn.OpenIncoming(ctx, target)
	require.NoError(t, err)
	defer sess.Close()
	read := 0
	res, err := sess.Fetch(ctx, serversync.FetchRequest{}, func(m *serversync.RemoteMessage) error {
		head := make([]byte, 1)
		if _, err := m.Body.Read(head); err != nil {
			return fmt.Errorf("message %d: %w", read+1, err)
		}
		assert.NotEmpty(t, m.Ref)
		assert.NotEmpty(t, m.Cursor)
		read++
		t.Logf("message %2d: %d bytes, received %s", read, m.Size, m.ReceivedAt.Format(time.RFC3339))
		if read == liveFetchLimit {
			return errEnough
		}
		return nil
	})
	if read < liveFetchLimit {
		require.NoError(t, err, "delta round")
		assert.NotEmpty(t, res.Cursor, "the delta link once the round is complete")
	} else {
		require.ErrorIs(t, err, errEnough)
	}
	t.Logf("delta round: %d messages read; stats %+v", read, conn.Stats())

	if env.sendTo != "" {
		out, err := conn.OpenOutgoing(ctx, target)
		require.NoError(t, err)
		defer out.Close()
		id := make([]byte, 12)
		_, _ = rand.Read(id)
		msg := fmt.Sprintf("From: <%s>\r\nTo: <%s>\r\nSubject: serversync live test %s\r\nMessage-ID: <%s@serversync.test>\r\n"+
			"Date: %s\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"+
			"Sent by serversync's connector/graph live test.\r\n",
			env.mailbox, env.sendTo, time.Now().UTC().Format(time.RFC3339), hex.EncodeToString(id), time.Now().Format(time.RFC1123Z))
		require.NoError(t, out.Send(ctx, serversync.Envelope{From: env.mailbox, To: []string{env.sendTo}}, strings.NewReader(msg)), "sendMail")
		t.Logf("sent one email to %s", env.sendTo)
	}

	if env.imap {
		imapTarget := &serversync.Target{
			ProfileID: "live", MailboxID: "live", EmailAddress: env.mailbox,
			Endpoint: serversync.Endpoint{Host: "outlook.office365.com", Port: 993, TLS: serversync.TLSImplicit, Timeout: 30 * time.Second},
			Credentials: auth.Credentials{Kind: auth.KindAppOnly, Username: env.mailbox,
				TokenSource: tokens(serversync.OutlookScopeDefault)},
		}
		// XOAUTH2 with user=<mailbox> and the app's token, then EXAMINE INBOX (the
		// read-only SELECT).
		steps := imapconn.New(nil).Probe(ctx, imapTarget)
		require.NotEmpty(t, steps)
		for _, s := range steps {
			t.Logf("imap  %-16s ok=%t %s", s.Name, s.OK, s.Detail)
			assert.True(t, s.OK, "IMAP step %s: %s (%v)", s.Name, s.Detail, s.Err)
		}
		assert.Equal(t, "open-inbox", steps[len(steps)-1].Name, "logged in and opened INBOX")
	}
}

// liveTokens returns app-only token sources for the live settings, one per
// scope; the first token for Graph is asked for at once, so a refused
// registration fails here.
func liveTokens(t *testing.T, ctx context.Context, env liveEnv) func(scope string) oauth2.TokenSource {
	t.Helper()
	transport := http.DefaultTransport.(*http.Transport).Clone()
	if env.rootCAsPEM != "" {
		roots, err := x509.SystemCertPool()
		require.NoError(t, err)
		require.True(t, roots.AppendCertsFromPEM([]byte(env.rootCAsPEM)))
		transport.TLSClientConfig = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	}
	t.Cleanup(transport.CloseIdleConnections)
	sources := map[string]oauth2.TokenSource{} // one per scope: a token is asked for once
	tokens := func(scope string) oauth2.TokenSource {
		if ts, ok := sources[scope]; ok {
			return ts
		}
		cfg := &auth.AppTokenConfig{
			TokenURL: auth.AppTokenURL(env.authority, env.tenant), ClientID: env.clientID, Certificate: env.cert, Scope: scope,
			HTTPClient: &http.Client{Transport: transport, Timeout: 30 * time.Second},
		}
		sources[scope] = oauth2.ReuseTokenSource(nil, cfg.TokenSource(ctx))
		return sources[scope]
	}
	token, err := tokens(serversync.GraphScopeDefault).Token()
	require.NoError(t, err, "app-only token for Graph")
	require.NotEmpty(t, token.AccessToken)
	t.Logf("token for Graph, expires %s", token.Expiry.Format(time.RFC3339)) // never the token itself
	return tokens
}

// liveTarget is the live mailbox on Graph with app-only tokens.
func liveTarget(t *testing.T, env liveEnv, tokens oauth2.TokenSource) *serversync.Target {
	t.Helper()
	graphURL, err := url.Parse(env.graphURL)
	require.NoError(t, err)
	graphPort, _ := strconv.Atoi(cmp.Or(graphURL.Port(), "443"))
	return &serversync.Target{
		ProfileID: "live", MailboxID: "live", EmailAddress: env.mailbox,
		Endpoint: serversync.Endpoint{URL: env.graphURL, Host: graphURL.Hostname(), Port: graphPort,
			TLS: serversync.TLSImplicit, RootCAsPEM: env.rootCAsPEM, Timeout: 30 * time.Second},
		Credentials: auth.Credentials{Kind: auth.KindAppOnly, Username: env.mailbox, TokenSource: tokens},
	}
}

type liveEnv struct {
	tenant, clientID, mailbox, sendTo string
	cert                              *auth.ClientCertificate
	imap                              bool
	authority                         string // "" = login.microsoftonline.com
	graphURL                          string
	rootCAsPEM                        string // trusted besides the system roots (the fakes')
}

// liveSettings reads the live test's variables, skipping the test unless all the
// required ones are set.
func liveSettings(t *testing.T) liveEnv {
	t.Helper()
	required := []string{liveTenantEnv, liveClientIDEnv, liveCertEnv, liveKeyEnv, liveMailboxEnv}
	for _, name := range required {
		if os.Getenv(name) == "" {
			t.Skipf("live Graph test: set %s (and optionally %s, %s=1) to run it against a real tenant",
				strings.Join(required, ", "), liveSendToEnv, liveIMAPEnv)
		}
	}
	certPEM, err := os.ReadFile(os.Getenv(liveCertEnv))
	require.NoError(t, err, liveCertEnv)
	keyPEM, err := os.ReadFile(os.Getenv(liveKeyEnv))
	require.NoError(t, err, liveKeyEnv)
	cert, err := auth.ParseClientCertificate(string(certPEM), auth.NewSecret(string(keyPEM)))
	require.NoError(t, err, "%s and %s", liveCertEnv, liveKeyEnv)
	return liveEnv{
		tenant: os.Getenv(liveTenantEnv), clientID: os.Getenv(liveClientIDEnv),
		mailbox: os.Getenv(liveMailboxEnv), sendTo: os.Getenv(liveSendToEnv), cert: cert,
		imap: os.Getenv(liveIMAPEnv) == "1", graphURL: serversync.GraphURLDefault,
	}
}

// TestLiveGraphOnFakes runs the live test's body against the fake Entra ID and
// Graph (IMAP aside), with the token checked by Graph as Graph checks it.
func TestLiveGraphOnFakes(t *testing.T) {
	const bob = "bob@contoso.test"
	aad, err := aadtest.NewServer(nil)
	require.NoError(t, err)
	defer aad.Close()
	cc, err := testcert.NewClientCert("live-on-fakes", 2048, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	require.NoError(t, err)
	aad.AddTenant("tenant-live", "contoso.test")
	aad.RegisterApp("tenant-live", "app-live", cc.Certificate, "Mail.ReadWrite", "Mail.Send")
	srv, err := graphtest.NewServer(&graphtest.Options{
		Authenticate: graphtest.EntraAuthenticator(aad),
	})
	require.NoError(t, err)
	defer srv.Close()
	srv.AddMailbox(alice, "tenant-live")
	srv.AddMailbox(bob, "tenant-live")
	for n := 1; n <= liveFetchLimit+5; n++ {
		_, err := srv.Deliver(alice, "inbox", message(n), time.Now().Add(time.Duration(n-100)*time.Minute))
		require.NoError(t, err)
	}
	cert, err := auth.ParseClientCertificate(cc.CertPEM, auth.NewSecret(cc.KeyPEM))
	require.NoError(t, err)

	liveGraph(t, liveEnv{tenant: "contoso.test", clientID: "app-live", mailbox: alice, sendTo: bob, cert: cert,
		authority: aad.URL(), graphURL: srv.URL(), rootCAsPEM: aad.RootCAsPEM() + srv.RootCAsPEM()})

	assert.Len(t, srv.Messages(alice, "inbox"), liveFetchLimit+5, "nothing changed in the inbox")
	require.Len(t, srv.Sent(), 1, "one sendMail")
	assert.Equal(t, []string{bob}, srv.Sent()[0].To)
	assert.Len(t, srv.Messages(bob, "inbox"), 1)
	assert.Equal(t, 1, aad.TokenRequests(), "one token, reused")
}
