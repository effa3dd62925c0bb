package aadtest_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"time"

	"github.com/serversync/serversync/auth"
	"github.com/serversync/serversync/auth/aadtest"
	"github.com/serversync/serversync/internal/testcert"
)

// An app gets its own token for Exchange Online's IMAP with its certificate, and
// the resource server checks it.
func Example() {
	srv, err := aadtest.NewServer(&aadtest.Options{SigningKey: keys()[2]})
	if err != nil {
		panic(err)
	}
	defer srv.Close()

	// The app registration: a tenant, an app, its certificate and its permission.
	cc, err := testcert.ClientCertWithKey("crm-sync", keys()[0], time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour))
	if err != nil {
		panic(err)
	}
	srv.AddTenant("tenant-1", "contoso.example")
	srv.RegisterApp("tenant-1", "app-1", cc.Certificate, "IMAP.AccessAsApp")

	// The app's side: its certificate and key, and a client that trusts the server.
	cert, err := auth.ParseClientCertificate(cc.CertPEM, auth.NewSecret(cc.KeyPEM))
	if err != nil {
		panic(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM([]byte(srv.RootCAsPEM()))
	transport := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}
	defer transport.CloseIdleConnections()
	cfg := &auth.AppTokenConfig{
		TokenURL:    srv.TokenURL("tenant-1"),
		ClientID:    "app-1",
		Certificate: cert,
		Scope:       "https://outlook.office365.com/.default",
		HTTPClient:  &http.Client{Transport: transport},
	}
	token, err := cfg.TokenSource(context.Background()).Token()
	if err != nil {
		panic(err)
	}

	claims, err := srv.VerifyAccessToken(token.AccessToken, "https://outlook.office365.com")
	if err != nil {
		panic(err)
	}
	fmt.Println(claims.AppID, claims.Roles, claims.DomainPrincipal, claims.Issuer)
	fmt.Println("token requests:", srv.TokenRequests())
	// Output:
	// app-1 [IMAP.AccessAsApp] app-1@contoso.example https://sts.windows.net/tenant-1/
	// token requests: 1
}
