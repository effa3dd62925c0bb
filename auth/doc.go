// Package auth holds what serversync knows about credentials, apart from where they
// are configured (profiles and mailboxes, in the root package):
//
//   - [Secret]: a password, token, client secret or private key that never prints its
//     value (fmt, slog and JSON show [Redacted]); [Secret.Reveal] is the one way in.
//   - [Credentials]: what a connector logs in with for one mailbox — its [Kind]
//     (password, impersonation, delegation, OAuth, anonymous) and the SASL client
//     that kind needs ([Credentials.SASLClient]).
//   - [Sealer] with a [KeyProvider]: AES-256-GCM sealing of secrets at rest, each
//     sealed value naming its key so keys can be rotated. [KeysFromEnv] reads
//     SERVERSYNC_SECRET_KEY (or SERVERSYNC_SECRET_KEY_FILE) and
//     SERVERSYNC_PREVIOUS_SECRET_KEYS; [GenerateKeyFile] writes a new key file.
//   - [ClientCertificate] and [AppTokenConfig]: server-to-server (app-only)
//     authentication with Microsoft Entra ID — the OAuth 2.0 client credentials
//     grant with a client assertion (a PS256 or RS256 JWT naming the certificate by
//     its x5t#S256) signed by the app's certificate key.
//     [AppTokenConfig.TokenSource] caches the token per resource and sends one
//     request at a time; refusals are [*TokenError] with Entra's AADSTS codes, an
//     expired certificate is [ErrCertificateExpired] before any request. Package
//     aadtest is a fake Entra ID token endpoint to test against.
//   - Windows-integrated authentication: [KerberosConfig] says where the realm and
//     the process's own identity (keytab or ticket cache) are; [Credentials.SASLClientFor]
//     speaks SASL GSSAPI (RFC 4752) with a ticket from the KDC, and [HTTPTransport]
//     authenticates HTTP requests with Negotiate (SPNEGO), NTLM, Basic or a Bearer
//     token as [Credentials.Protocol] and the server's offer say. KDC failures are
//     [*KerberosError]; no identity for [KindIntegrated] is [ErrNoKerberosIdentity].
//
// Stores seal every Secret with a Sealer before it touches disk; connectors receive
// revealed credentials only inside a [Credentials] value built for one connection.
package auth
