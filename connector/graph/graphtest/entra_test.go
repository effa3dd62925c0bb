package graphtest_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/serversync/serversync/auth"
	"github.com/serversync/serversync/auth/aadtest"
	"github.com/serversync/serversync/connector/graph/graphtest"
	"github.com/serversync/serversync/internal/testcert"
)

// Tokens of the fake Entra ID open Graph only for the audience, tenant and
// roles they were issued with.
func TestEntraAuthenticator(t *testing.T) {
	entra, err := aadtest.NewServer(nil)
	require.NoError(t, err)
	defer entra.Close()
	entra.AddTenant("tenant-a", "contoso.test")
	cert, err := testcert.NewClientCert("app", 2048, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	require.NoError(t, err)
	entra.RegisterApp("tenant-a", "app-1", cert.Certificate, "Mail.ReadWrite")

	authenticate := graphtest.EntraAuthenticator(entra)
	graphToken := issue(t, entra, cert, "https://graph.microsoft.com/.default")
	p, err := authenticate(context.Background(), graphToken)
	require.NoError(t, err)
	require.Equal(t, graphtest.Principal{AppOnly: true, TenantID: "tenant-a", AppID: "app-1", Permissions: []string{"Mail.ReadWrite"}}, p)

	_, err = authenticate(context.Background(), issue(t, entra, cert, "https://outlook.office365.com/.default"))
	require.Error(t, err, "a token for IMAP/SMTP is no Graph token")
	_, err = authenticate(context.Background(), graphToken+"x")
	require.Error(t, err, "tampered")
}

// issue gets a token from entra with the client credentials of cert.
func issue(t *testing.T, entra *aadtest.Server, cert *testcert.ClientCert, scope string) string {
	t.Helper()
	cfg := &auth.AppTokenConfig{
		TokenURL: entra.TokenURL("tenant-a"), ClientID: "app-1", Scope: scope, HTTPClient: entra.Client(),
		Certificate: &auth.ClientCertificate{Certificate: cert.Certificate, Key: cert.Key},
	}
	token, err := cfg.Token(context.Background())
	require.NoError(t, err)
	return token.AccessToken
}
