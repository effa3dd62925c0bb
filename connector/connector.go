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
			return nil, Error("tls", serversync.ErrorPermanent, serversync.ScopeProfile, "tls_bad_root_ca",
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
// may be nil). STARTTLS is the protocol's job.
func Dial(ctx context.Context, ep serversync.Endpoint, configs *TLSConfigs) (net.Conn, error) {
	if ep.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, ep.Timeout)
		defer cancel()
	}
	dialer := &net.Dialer{KeepAlive: 30 * time.Second}
	if ep.TLS != serversync.TLSImplicit {
		conn, err := dialer.DialContext(ctx, "tcp", ep.Address())
		if err != nil {
			return nil, NetError("dial", err)
		}
		return conn, nil
	}
	cfg, err := configs.For(ep)
	if err != nil {
		return nil, err
	}
	conn, err := (&tls.Dialer{NetDialer: dialer, Config: cfg}).DialContext(ctx, "tcp", ep.Address())
	if err != nil {
		return nil, NetError("dial", err)
	}
	return conn, nil
}

// Error builds a classified connector error.
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
		return Error(op, serversync.ErrorPermanent, serversync.ScopeProfile, "tls_verify_failed",
			fmt.Errorf("the server's certificate is not trusted (add its CA to the profile's ExtraRootCAsPEM if it is yours): %w", err))
	case errors.As(err, &recordHeader):
		spoke := ""
		if protocol := RecognizeGreeting(recordHeader.RecordHeader[:]); protocol != "" && protocol != "TLS" {
			spoke = " (it greeted in " + protocol + " without TLS)"
		}
		return Error(op, serversync.ErrorPermanent, serversync.ScopeProfile, CodeTLSMismatch,
			fmt.Errorf("the server did not answer with TLS%s: check the port, the server type and the TLS mode (implicit TLS is for 993, 995 and 465; STARTTLS for 143, 110 and 587): %w", spoke, err))
	case errors.Is(err, context.Canceled):
		return Error(op, serversync.ErrorTransient, serversync.ScopeMailbox, "canceled", err)
	case errors.As(err, &dnsErr) && dnsErr.IsNotFound:
		return Error(op, serversync.ErrorPermanent, serversync.ScopeProfile, "host_not_found", err)
	}
	return Error(op, serversync.ErrorTransient, serversync.ScopeProfile, "network", err)
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
	return Error("authenticate", serversync.ErrorPermanent, serversync.ScopeProfile, "plaintext_auth_refused", ErrPlaintextAuth)
}
