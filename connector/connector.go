// Package connector holds what every protocol connector shares: TLS configuration
// that verifies by default, dialing bounded by a context and a timeout, and turning
// network and TLS failures into classified *serversync.ConnectorError values.
//
// The protocol libraries take no context and set connection deadlines of their own,
// so a deadline set when a context ends can be overwritten: connectors interrupt a
// call by closing its connection (smtp) or by wrapping it so a cancellation can't be
// undone (imap).
//
// Every reply a server sends is bounded in bytes and in time ([ReplyLimits],
// [BoundedConn]), and a server that answers in another protocol than the
// profile's is told apart from a network failure ([RecognizeGreeting],
// [MismatchError]).
//
// One package per protocol lives below it (imap, pop3, smtp); connectortest is the
// conformance suite they all pass.
package connector

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/auth"
)

// TLSConfig returns the client TLS configuration for an endpoint: system roots plus
// the profile's extra CAs, the endpoint host as server name, TLS 1.2 at least.
// Certificate verification is never turned off.
func TLSConfig(ep serversync.Endpoint) (*tls.Config, error) {
	cfg := &tls.Config{ServerName: ep.Host, MinVersion: tls.VersionTLS12}
	if ep.RootCAsPEM != "" {
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM([]byte(ep.RootCAsPEM)) {
			return nil, Error("tls", serversync.ErrorPermanent, serversync.ScopeProfile, serversync.CodeTLSBadRootCA,
				errors.New("the profile's extra root CAs hold no PEM certificate"))
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
}

// TLSConfigs keeps one TLS configuration per server and set of extra roots, each
// with a session cache: a connector reconnecting for every poll then resumes TLS
// sessions instead of running a full handshake and rebuilding its root pool each
// time. The zero value is ready; a nil *TLSConfigs builds a fresh configuration
// per call. Safe for concurrent use.
type TLSConfigs struct {
	mu      sync.Mutex
	configs map[tlsKey]*tls.Config
}

type tlsKey struct{ host, rootCAs string }

// For returns the configuration for ep, shared by every connection to it. Callers
// must not modify it.
func (c *TLSConfigs) For(ep serversync.Endpoint) (*tls.Config, error) {
	if c == nil {
		return TLSConfig(ep)
	}
	key := tlsKey{ep.Host, ep.RootCAsPEM}
	c.mu.Lock()
	defer c.mu.Unlock()
	if cfg, ok := c.configs[key]; ok {
		return cfg, nil
	}
	cfg, err := TLSConfig(ep)
	if err != nil {
		return nil, err
	}
	cfg.ClientSessionCache = tls.NewLRUClientSessionCache(0)
	if c.configs == nil {
		c.configs = make(map[tlsKey]*tls.Config)
	}
	c.configs[key] = cfg
	return cfg, nil
}

// Dial connects to the endpoint within ctx and the endpoint's timeout, doing the TLS
// handshake right away for implicit TLS (with a configuration from configs, which
// may be nil). STARTTLS is the protocol's job. Connectors dial with [DialTarget],
// which checks the target first.
func Dial(ctx context.Context, ep serversync.Endpoint, configs *TLSConfigs) (net.Conn, error) {
	ctx, cancel := withTimeout(ctx, ep)
	defer cancel()
	conn, err := connect(ctx, ep)
	if err != nil || ep.TLS != serversync.TLSImplicit {
		return conn, err
	}
	return handshake(ctx, conn, ep, configs)
}

// DialTarget is Dial for a connector's target, refusing first (see [CheckTarget])
// a target whose credentials would travel unencrypted: nothing is then sent, not
// even a TCP connection is opened.
func DialTarget(ctx context.Context, target *serversync.Target, configs *TLSConfigs) (net.Conn, error) {
	if err := CheckTarget(target); err != nil {
		return nil, err
	}
	return Dial(ctx, target.Endpoint, configs)
}

// Connect opens the TCP connection to the endpoint, within ctx and the endpoint's
// timeout, without TLS: the first step of Dial, for Test Connection's step by step
// report. Call [CheckTarget] first.
func Connect(ctx context.Context, ep serversync.Endpoint) (net.Conn, error) {
	ctx, cancel := withTimeout(ctx, ep)
	defer cancel()
	return connect(ctx, ep)
}

// Handshake runs the client side of the TLS handshake on conn, within ctx and the
// endpoint's timeout, verifying the server's certificate: the second step of Dial
// for implicit TLS. conn is closed when the handshake fails.
func Handshake(ctx context.Context, conn net.Conn, ep serversync.Endpoint, configs *TLSConfigs) (net.Conn, error) {
	ctx, cancel := withTimeout(ctx, ep)
	defer cancel()
	return handshake(ctx, conn, ep, configs)
}

func withTimeout(ctx context.Context, ep serversync.Endpoint) (context.Context, context.CancelFunc) {
	if ep.Timeout > 0 {
		return context.WithTimeout(ctx, ep.Timeout)
	}
	return ctx, func() {}
}

func connect(ctx context.Context, ep serversync.Endpoint) (net.Conn, error) {
	dialer := &net.Dialer{KeepAlive: 30 * time.Second}
	conn, err := dialer.DialContext(ctx, "tcp", ep.Address())
	if err != nil {
		return nil, NetError("dial", err)
	}
	return conn, nil
}

func handshake(ctx context.Context, conn net.Conn, ep serversync.Endpoint, configs *TLSConfigs) (net.Conn, error) {
	cfg, err := configs.For(ep)
	if err != nil {
		conn.Close()
		return nil, err
	}
	tlsConn := tls.Client(conn, cfg)
	if err := tlsConn.HandshakeContext(ctx); err != nil {
		conn.Close()
		return nil, NetError("dial", err)
	}
	return tlsConn, nil
}

// Error builds a classified connector error; code is one of the serversync.Code…
// constants, so one code means one thing whichever connector returns it.
func Error(op string, kind serversync.ErrorKind, scope serversync.AlertScope, code string, err error) *serversync.ConnectorError {
	return &serversync.ConnectorError{Op: op, Kind: kind, Scope: scope, Code: code, Err: err}
}

// NetError classifies a failure to reach or talk to a server: certificate problems
// are permanent and hit the whole profile; timeouts, refusals and resets are
// transient; context cancellation keeps its context error reachable.
func NetError(op string, err error) error {
	var ce *serversync.ConnectorError
	if err == nil || errors.As(err, &ce) {
		return err
	}
	var (
		unknownAuthority x509.UnknownAuthorityError
		hostname         x509.HostnameError
		invalid          x509.CertificateInvalidError
		verify           *tls.CertificateVerificationError
		recordHeader     tls.RecordHeaderError
		dnsErr           *net.DNSError
	)
	switch {
	case errors.As(err, &unknownAuthority), errors.As(err, &hostname), errors.As(err, &invalid), errors.As(err, &verify):
		return Error(op, serversync.ErrorPermanent, serversync.ScopeProfile, serversync.CodeTLSVerifyFailed,
			fmt.Errorf("the server's certificate is not trusted (add its CA to the profile's ExtraRootCAsPEM if it is yours): %w", err))
	case errors.As(err, &recordHeader):
		spoke := ""
		if protocol := RecognizeGreeting(recordHeader.RecordHeader[:]); protocol != "" && protocol != "TLS" {
			spoke = " (it greeted in " + protocol + " without TLS)"
		}
		return Error(op, serversync.ErrorPermanent, serversync.ScopeProfile, serversync.CodeTLSMismatch,
			fmt.Errorf("the server did not answer with TLS%s: check the port, the server type and the TLS mode (implicit TLS is for 993, 995 and 465; STARTTLS for 143, 110 and 587): %w", spoke, err))
	case errors.Is(err, context.Canceled):
		return Error(op, serversync.ErrorTransient, serversync.ScopeMailbox, serversync.CodeCanceled, err)
	case errors.As(err, &dnsErr) && dnsErr.IsNotFound:
		return Error(op, serversync.ErrorPermanent, serversync.ScopeProfile, serversync.CodeHostNotFound, err)
	}
	return Error(op, serversync.ErrorTransient, serversync.ScopeProfile, serversync.CodeNetwork, err)
}

// TokenFailure classifies a failure to get an OAuth access token, or returns nil
// when err is not one: a certificate that is expired is permanent
// ([serversync.CodeCertificateExpired]), as is one that cannot be used at all
// ([serversync.CodeBadTarget]); a refusal by the identity provider is
// an authentication failure ([serversync.CodeTokenRefused]) unless the provider
// said to come back later. An app-only token serves every mailbox of the profile,
// so its failures are profile-wide; a mailbox's own token concerns that mailbox.
// Kerberos failures before any byte reaches the server are classified here too: the
// KDC refusing the login is an authentication failure ([serversync.CodeAuthFailed]),
// no answer from it a transient one, and no Kerberos identity configured for
// Windows-integrated credentials a permanent [serversync.CodeAuthUnavailable].
func TokenFailure(op string, creds auth.Credentials, err error) *serversync.ConnectorError {
	scope := serversync.ScopeMailbox
	if creds.Kind == auth.KindAppOnly {
		scope = serversync.ScopeProfile
	}
	var refused *auth.TokenError
	var kerberos *auth.KerberosError
	switch {
	case errors.Is(err, auth.ErrNoKerberosIdentity):
		return Error(op, serversync.ErrorPermanent, serversync.ScopeProfile, serversync.CodeAuthUnavailable, err)
	case errors.As(err, &kerberos) && kerberos.Refused:
		// The KDC refused the login: the mailbox's own password is wrong, or the
		// profile's service account (or the process's own identity) is.
		if creds.Kind != auth.KindPassword {
			scope = serversync.ScopeProfile
		}
		return Error(op, serversync.ErrorAuth, scope, serversync.CodeAuthFailed, err)
	case errors.As(err, &kerberos):
		// No answer from the KDC (or no usable krb5.conf): every mailbox of the
		// profile waits on it alike.
		return Error(op, serversync.ErrorTransient, serversync.ScopeProfile, serversync.CodeServerUnavailable, err)
	case errors.Is(err, auth.ErrCertificateExpired):
		return Error(op, serversync.ErrorAuth, serversync.ScopeProfile, serversync.CodeCertificateExpired, err)
	case errors.Is(err, auth.ErrBadCertificate), errors.Is(err, auth.ErrCertificateKeyMismatch):
		// Saved profiles were checked; this is a profile damaged since, or a
		// host that built its targets by hand.
		return Error(op, serversync.ErrorAuth, serversync.ScopeProfile, serversync.CodeBadTarget, err)
	case errors.As(err, &refused) && refused.Temporary():
		return Error(op, serversync.ErrorTransient, scope, serversync.CodeServerUnavailable, err)
	case errors.As(err, &refused):
		return Error(op, serversync.ErrorAuth, scope, serversync.CodeTokenRefused, err)
	}
	return nil
}

// ErrPlaintextAuth is returned instead of sending credentials over an unencrypted
// connection when the organisation does not allow it.
var ErrPlaintextAuth = errors.New("connector: refusing to send credentials over an unencrypted connection (OrgSettings.AllowCredentialsOverNonSecureChannels is off)")

// CheckPlaintextAuth refuses authentication on an unencrypted connection unless the
// endpoint allows it.
func CheckPlaintextAuth(ep serversync.Endpoint, encrypted bool) error {
	if encrypted || ep.AllowPlaintextAuth {
		return nil
	}
	return Error("authenticate", serversync.ErrorPermanent, serversync.ScopeProfile, serversync.CodePlaintextAuthRefused, ErrPlaintextAuth)
}

// CheckTarget refuses, before a connection is made, a target whose credentials
// would travel unencrypted: TLS off (Endpoint.TLS None) without
// Endpoint.AllowPlaintextAuth, for any credentials but anonymous ones.
// serversync.ResolveTarget refuses such targets already; this check keeps a target
// built another way, or from stale settings, from putting a password on the wire.
// Connectors still check again when they authenticate ([CheckPlaintextAuth]).
func CheckTarget(target *serversync.Target) error {
	if target == nil || target.Endpoint.TLS != serversync.TLSNone || target.Endpoint.AllowPlaintextAuth {
		return nil
	}
	if kind := target.Credentials.Kind; kind == auth.KindAnonymous || kind == "" {
		return nil // nothing secret to send
	}
	return Error("connect", serversync.ErrorPermanent, serversync.ScopeProfile, serversync.CodePlaintextAuthRefused,
		fmt.Errorf("%w: the target turns TLS off and has %s credentials: turn TLS on for the profile", ErrPlaintextAuth, target.Credentials.Kind))
}

// Advice is what a person can do about a failed Test Connection step, from the
// code of err (a *serversync.ConnectorError); other errors give their own text.
func Advice(err error, ep serversync.Endpoint) string {
	var ce *serversync.ConnectorError
	if !errors.As(err, &ce) {
		return err.Error()
	}
	switch ce.Code {
	case serversync.CodeNetwork:
		return fmt.Sprintf("the server could not be reached at %s: check the server name, the port and the firewall", ep.Address())
	case serversync.CodeHostNotFound:
		return fmt.Sprintf("the host name %q does not resolve: check the profile's server name", ep.Host)
	case serversync.CodeTimeout:
		return fmt.Sprintf("the server at %s did not answer within %s: check the port (and that it serves this protocol) and that the server is up", ep.Address(), ep.Timeout)
	case serversync.CodeTLSVerifyFailed:
		return fmt.Sprintf("the certificate of %s is not trusted (unknown authority, wrong host name or expired): fix the server's certificate, or add its CA to the profile's ExtraRootCAsPEM if it is your own", ep.Host)
	case serversync.CodeTLSMismatch:
		return fmt.Sprintf("the server at %s did not answer with TLS: check the port and the TLS mode (Implicit for 993/995/465, STARTTLS for 143/110/587)", ep.Address())
	case serversync.CodeTLSBadRootCA:
		return "the profile's ExtraRootCAsPEM holds no PEM certificate: paste the CA certificate in PEM form"
	case serversync.CodeTLSUnavailable:
		return "the server does not offer STARTTLS, which the profile requires: use implicit TLS (its own port) or have STARTTLS enabled on the server"
	case serversync.CodePlaintextAuthRefused:
		return "the credentials would travel unencrypted: turn TLS on for this profile (Implicit or STARTTLS), or turn the organisation setting AllowCredentialsOverNonSecureChannels on"
	case serversync.CodeTLSRequiredByOrg:
		return "TLS is off for this profile, which the organisation setting AllowNonSSLEmail does not allow: turn TLS on for the profile, or turn AllowNonSSLEmail on"
	case serversync.CodeAuthFailed:
		return "the server refused the credentials: check the user name and password (or token) of this mailbox, or of the profile's service account"
	case serversync.CodeAuthExpired:
		return "the server says the password or token has expired: renew it, then test again"
	case serversync.CodeAuthUnavailable:
		return "the server offers no login mechanism these credentials can use: check the profile's credential source and authentication protocol"
	case serversync.CodeDelegationUnavailable:
		return "the server has no shared (other users') namespace to open delegated mailboxes in: use impersonation (UseImpersonation) or mailbox credentials"
	case serversync.CodeFolderNotFound:
		return "the mailbox's inbox could not be opened: check that the mailbox exists on the server and, with Profile credentials, that the service account was granted access to it"
	case serversync.CodeNoPermission:
		return "the account may not open the inbox: check its rights on the server"
	case serversync.CodeServerUnavailable:
		return "the server is busy or refusing connections for now: try again later"
	case serversync.CodeProtocolError:
		return fmt.Sprintf("the server at %s did not answer as the protocol expects: check the port and the profile's server type", ep.Address())
	}
	return ce.Error()
}
