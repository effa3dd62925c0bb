// Command exchange-online runs serversync's Exchange Online flow end to end:
// server-to-server authentication with a certificate (one app-only token per
// profile, shared by every mailbox), Test & Enable, incoming mail tracked through
// Microsoft Graph's message delta, and an email sent with sendMail.
//
// With no flags it needs no setup and no network: it starts
//
//   - a fake Microsoft Entra ID token endpoint (auth/aadtest) with a tenant whose
//     domain is contoso.test, and an app registered there with a generated
//     certificate and the application permissions Mail.ReadWrite and Mail.Send;
//   - a fake Microsoft Graph (connector/graph/graphtest) that checks every bearer
//     token against that token endpoint's signing key, with the mailboxes
//     alice@contoso.test and bob@contoso.test, and a few messages in alice's inbox;
//
// then, on the embedded default store (a SQLite file in a temporary directory),
// an ExchangeOnline profile with ServerToServer credentials pointed at the fakes,
// both mailboxes Test & Enabled, a Syncer that tracks alice's mail, an email from
// alice to bob queued through the Syncer, delivered by the fake Graph into bob's
// inbox and tracked there, correlated to the email that was sent by its tracking
// token, and bob's answer tracked in alice's mailbox, correlated to her email by
// its In-Reply-To header. It ends with the
// number of tokens the identity provider issued and the Graph connector's request
// counters. It takes a second or two and exits non-zero with a message when any
// step fails.
//
//	go run ./examples/exchange-online
//
// # A real tenant
//
// Flags point it at a real Microsoft 365 tenant instead: login.microsoftonline.com
// and https://graph.microsoft.com. It Test & Enables one mailbox, tracks its mail of
// the last day, and with -to sends it one email (to itself or anyone).
//
//	go run ./examples/exchange-online -tenant TENANT-ID -client-id APP-ID \
//	    -cert app.crt -key app.key -mailbox someone@contoso.com [-to someone@contoso.com]
//
//	-tenant id        the directory (tenant) ID, or its domain (contoso.onmicrosoft.com)
//	-client-id id     the application (client) ID of the app registration
//	-cert file        the app's certificate, PEM
//	-key file         its RSA private key, PEM (PKCS#1 or PKCS#8, unencrypted)
//	-mailbox address  the mailbox to Test & Enable and track
//	-to address       send one test email from -mailbox to this address
//
// The app registration it needs (Microsoft Entra admin center, App registrations):
//
//  1. Register an application (single tenant); note its Application (client) ID and
//     the Directory (tenant) ID.
//  2. API permissions: Microsoft Graph, Application permissions, Mail.ReadWrite and
//     Mail.Send; then "Grant admin consent". Delegated permissions are not used.
//  3. Certificates & secrets: upload the certificate (.cer/.pem/.crt, public part
//     only). A self-signed one will do (app.key stays with you; see below).
//  4. Optional but advised: application permissions reach every mailbox of the
//     tenant; restrict the app to the mailboxes it syncs with an application access
//     policy (Exchange Online PowerShell: New-ApplicationAccessPolicy -AppId APP-ID
//     -PolicyScopeGroupId crm-sync@contoso.com -AccessRight RestrictAccess), or with
//     RBAC for Applications. A mailbox outside it fails Test & Enable with 403.
//
// A self-signed certificate and its key, for step 3 and -cert/-key:
//
//	openssl req -x509 -newkey rsa:2048 -nodes -days 365 -subj /CN=serversync -keyout app.key -out app.crt
//
// Nothing is kept: the database lives in a temporary directory removed at exit, so
// every run tracks the mailbox's last day again. Tracking changes nothing on the
// server; the test email, when sent, stays in the mailbox's Sent Items.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

// options are the command's flags; all empty is the fakes mode.
type options struct {
	tenant   string
	clientID string
	certFile string
	keyFile  string
	mailbox  string
	to       string

	// Not flags: where the real-tenant mode connects, for its test against the
	// fakes. Empty means Microsoft's endpoints.
	graphURL     string // Graph, "" = https://graph.microsoft.com
	tokenURL     string // the token endpoint, "{tenant}" replaced
	extraRootCAs string // PEM, trusted besides the system roots
}

func (o options) real() bool {
	return o.tenant != "" || o.clientID != "" || o.certFile != "" || o.keyFile != "" || o.mailbox != "" || o.to != ""
}

func main() {
	var o options
	flag.StringVar(&o.tenant, "tenant", "", "directory (tenant) ID or domain of a real tenant (default: the fake one)")
	flag.StringVar(&o.clientID, "client-id", "", "application (client) ID of the app registration")
	flag.StringVar(&o.certFile, "cert", "", "PEM file of the app's certificate")
	flag.StringVar(&o.keyFile, "key", "", "PEM file of the certificate's RSA private key")
	flag.StringVar(&o.mailbox, "mailbox", "", "address of the mailbox to Test & Enable and track")
	flag.StringVar(&o.to, "to", "", "send one test email from -mailbox to this address")
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "exchange-online: unexpected argument %q\n", flag.Arg(0))
		flag.Usage()
		os.Exit(2)
	}
	// Ctrl-C stops the Syncer gracefully and still removes the temporary directory.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	_, err := run(ctx, o, os.Stdout)
	if err != nil && ctx.Err() != nil {
		err = errors.New("interrupted")
	}
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "exchange-online:", err)
		os.Exit(1)
	}
}
