package imapconn

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/auth"
	"github.com/serversync/serversync/connector"
)

// Defaults of [Options].
const (
	// FetchBatchSizeDefault is how many UIDs one UID FETCH command asks for.
	FetchBatchSizeDefault = 200
	// MaxParallelFetchDefault is how many connections one Fetch may use: 1 turns
	// parallel fetching off.
	MaxParallelFetchDefault = 1
	// IdleRestartDefault is how often a waiting IDLE is restarted, under the 29
	// minutes after which RFC 2177 lets servers drop an idle client.
	IdleRestartDefault = 25 * time.Minute
	// LogoutTimeoutDefault bounds the LOGOUT that Close sends.
	LogoutTimeoutDefault = 5 * time.Second
)

// parallelMinBatches is how many batches a fetch must span before extra
// connections are worth opening.
const parallelMinBatches = 4

// Options configure a [Connector]. A nil *Options is equivalent to a zero Options,
// and zero fields take the …Default constants.
type Options struct {
	// FetchBatchSize is how many UIDs one UID FETCH asks for (default 200).
	FetchBatchSize int
	// MaxParallelFetch is how many connections one Fetch may use to download a
	// large range (more than 4 batches), within the profile's connection budget:
	// the session's own plus MaxParallelFetch-1 extra ones opened for that fetch.
	// Messages are still delivered one at a time in UID order; batches fetched
	// ahead are held in memory, at most (MaxParallelFetch+1) × FetchBatchSize
	// messages. Default 1: off, every body streams from the server to the callback.
	MaxParallelFetch int
	// IdleRestart is how often WaitForChange restarts IDLE (default 25 minutes).
	IdleRestart time.Duration
	// MaxReplyBytes bounds one server response outside message bodies: its line,
	// atoms, lists and small literals (default connector.MaxReplyBytesDefault,
	// 1 MiB). A response over it ends the operation with "reply_too_long".
	MaxReplyBytes int64
	// MaxMessageBytes bounds one message body, a FETCH literal (default
	// connector.MaxMessageBytesDefault, 256 MiB). A larger announcement ends the
	// fetch with "reply_too_long" before any of it is read.
	MaxMessageBytes int64
	// Logger receives debug logs about connections; nil discards them. Secrets are
	// never logged.
	Logger *slog.Logger
}

// Connector opens IMAP sessions. It implements serversync.IncomingConnector and
// is safe for concurrent use; the sessions it opens are not.
type Connector struct {
	batchSize   int
	maxParallel int
	idleRestart time.Duration
	limits      connector.ReplyLimits // without Timeout: the endpoint's
	log         *slog.Logger
	tls         connector.TLSConfigs
}

var _ serversync.IncomingConnector = (*Connector)(nil)

// New returns an IMAP connector. A nil opts means defaults.
func New(opts *Options) *Connector {
	if opts == nil {
		opts = &Options{}
	}
	c := &Connector{
		batchSize:   cmp.Or(max(opts.FetchBatchSize, 0), FetchBatchSizeDefault),
		maxParallel: cmp.Or(max(opts.MaxParallelFetch, 0), MaxParallelFetchDefault),
		idleRestart: cmp.Or(max(opts.IdleRestart, 0), IdleRestartDefault),
		limits:      connector.ReplyLimits{MaxReplyBytes: opts.MaxReplyBytes, MaxMessageBytes: opts.MaxMessageBytes},
		log:         opts.Logger,
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	return c
}

// OpenIncoming connects to target.Endpoint, upgrades with STARTTLS when the
// endpoint says so (never falling back to plaintext), authenticates with
// target.Credentials and, for delegation, finds the other-users namespace. The
// session implements serversync.IncomingSession and serversync.IdleSession.
//
// Errors are *serversync.ConnectorError values: codes "tls_unavailable",
// "tls_verify_failed", "plaintext_auth_refused", "auth_failed", "auth_unavailable",
// "delegation_unavailable", "network", … with the raw *imap.Error reachable
// through errors.As.
func (c *Connector) OpenIncoming(ctx context.Context, target *serversync.Target) (serversync.IncomingSession, error) {
	s, err := c.open(ctx, target)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// open dials, secures and authenticates a session.
func (c *Connector) open(ctx context.Context, target *serversync.Target) (*session, error) {
	return c.openSteps(ctx, target, nil)
}

// openSteps is open, recording each step (connect, tls, greeting, authenticate) in
// rec for Test Connection when rec is not nil.
func (c *Connector) openSteps(ctx context.Context, target *serversync.Target, rec *steps) (*session, error) {
	if target == nil || target.Endpoint.Host == "" || target.Endpoint.Port == 0 {
		return nil, rec.fail("connect", connector.Error("dial", serversync.ErrorPermanent, serversync.ScopeProfile, serversync.CodeBadTarget,
			errors.New("imap: target has no host or port")))
	}
	ep := target.Endpoint
	switch ep.TLS {
	case serversync.TLSImplicit, serversync.TLSStartTLS, serversync.TLSNone:
	default:
		return nil, rec.fail("connect", connector.Error("dial", serversync.ErrorPermanent, serversync.ScopeProfile, serversync.CodeBadTarget,
			fmt.Errorf("imap: unresolved TLS mode %q", ep.TLS)))
	}
	// Refused before connecting: a password must not follow a greeting in the clear.
	if err := connector.CheckTarget(target); err != nil {
		return nil, rec.fail("connect", err)
	}
	s := &session{
		c:       c,
		target:  *target,
		timeout: cmp.Or(ep.Timeout, serversync.ConnectionTimeoutDefault),
		changed: make(chan struct{}, 1),
		folders: make(map[string]folderState),
		created: make(map[string]bool),
		log:     c.log.With("host", ep.Host, "mailbox", target.MailboxID),
	}
	// Dialing in two steps (TCP, then the TLS handshake) lets Test Connection tell
	// an unreachable port from an untrusted certificate.
	done := rec.start("connect")
	raw, err := connector.Connect(ctx, ep)
	if done(err, "connected to "+ep.Address()) != nil {
		return nil, err
	}
	if ep.TLS == serversync.TLSImplicit {
		done = rec.start("tls")
		raw, err = connector.Handshake(ctx, raw, ep, &c.tls)
		if done(err, "implicit TLS: the server's certificate for "+ep.Host+" is trusted") != nil {
			return nil, err
		}
	}
	limits := c.limits.WithDefaults(s.timeout)
	options := &imapclient.Options{UnilateralDataHandler: s.unilateralHandler()}

	ok := false
	defer func() {
		if !ok {
			if s.client == nil {
				_ = raw.Close()
			}
			s.closeConn()
		}
	}()
	var greeting []byte // a synthetic greeting after our own STARTTLS
	if ep.TLS == serversync.TLSStartTLS {
		done = rec.start("tls")
		tlsConn, err := c.startTLS(ctx, s.timeout, raw, limits, ep)
		if done(err, "STARTTLS upgraded the connection: the server's certificate for "+ep.Host+" is trusted") != nil {
			return nil, err
		}
		raw = tlsConn
		// imapclient waits for a greeting; the server sent its own before
		// STARTTLS, and capabilities must be asked again over TLS anyway.
		greeting = []byte("* OK TLS established\r\n")
	} else {
		done = rec.start("greeting")
	}
	s.bounded = connector.NewBoundedConn(raw, limits, connector.FrameIMAP)
	var inner net.Conn = s.bounded
	if greeting != nil {
		inner = &prefixConn{Conn: inner, prefix: greeting}
	}
	s.conn = newGuardedConn(inner)
	s.client = imapclient.New(s.conn, options)
	if err := s.run(ctx, "greeting", s.client.WaitGreeting); err != nil {
		if mismatch := connector.MismatchError("greeting", "IMAP", connector.RecognizeGreeting(s.bounded.FirstBytes()), err); mismatch != nil {
			err = mismatch
		} else {
			err = connector.NoGreetingHint(err, ep, s.bounded.FirstBytes())
		}
		if greeting == nil {
			return nil, done(err, "")
		}
		return nil, err
	}
	if greeting == nil {
		done(nil, "the server greeted as an IMAP server")
	}
	done = rec.start("authenticate")
	err = s.authenticate(ctx)
	if err == nil {
		err = s.loadNamespace(ctx)
	}
	if done(err, "logged in as "+target.Credentials.LoginName()) != nil {
		return nil, err
	}
	ok = true
	s.log.Debug("imap: session open", "tls", ep.TLS, "credentials", target.Credentials.Kind)
	return s, nil
}

// authenticate logs in as target.Credentials say, refusing to send credentials
// in the clear unless the endpoint allows it.
func (s *session) authenticate(ctx context.Context) error {
	creds := s.target.Credentials
	encrypted := s.target.Endpoint.TLS == serversync.TLSImplicit || s.target.Endpoint.TLS == serversync.TLSStartTLS
	if err := connector.CheckPlaintextAuth(s.target.Endpoint, encrypted); err != nil {
		return err
	}
	if creds.Kind == auth.KindAnonymous || creds.Kind == "" {
		return connector.Error("authenticate", serversync.ErrorPermanent, serversync.ScopeProfile, serversync.CodeAuthUnavailable,
			fmt.Errorf("imap: %q credentials cannot log in to IMAP", creds.Kind))
	}
	var caps imap.CapSet
	if err := s.run(ctx, "capability", func() error {
		caps = s.client.Caps()
		if caps == nil {
			return errors.New("imap: no CAPABILITY reply")
		}
		return nil
	}); err != nil {
		return err
	}
	if s.client.State() != imap.ConnStateNotAuthenticated {
		return connector.Error("authenticate", serversync.ErrorPermanent, serversync.ScopeProfile, serversync.CodeProtocolError,
			errors.New("imap: server pre-authenticated the connection (PREAUTH): cannot log in as the profile says"))
	}

	mech, client, saslErr := creds.SASLClientFor(ctx, "imap", s.target.Endpoint.Host, caps.AuthMechanisms())
	if ce := connector.TokenFailure("authenticate", creds, saslErr); ce != nil {
		return ce
	}
	useLogin := saslErr != nil && errors.Is(saslErr, auth.ErrMechanismUnavailable) &&
		creds.CanUsePlainLogin() && !caps.Has(imap.CapLoginDisabled)
	if saslErr != nil && !useLogin {
		if caps.Has(imap.CapLoginDisabled) && !encrypted {
			saslErr = fmt.Errorf("%w (the server advertises LOGINDISABLED on this unencrypted connection: use TLS)", saslErr)
		}
		return s.classify("authenticate", saslErr, nil)
	}
	err := s.run(ctx, "authenticate", func() error {
		if useLogin {
			return s.client.Login(creds.LoginName(), creds.Password.Reveal()).Wait()
		}
		if mech == auth.GSSAPI {
			s.conn.writeEmptySASLResponses(true)
			defer s.conn.writeEmptySASLResponses(false)
		}
		return s.client.Authenticate(auth.MarkMechanismErrors(client))
	})
	var refused *auth.MechanismError
	if errors.As(err, &refused) {
		// The mechanism itself gave up (e.g. the server's XOAUTH2 error challenge).
		return connector.Error("authenticate", serversync.ErrorAuth, credentialScope(creds), serversync.CodeAuthFailed, refused.Err)
	}
	if err != nil {
		return err
	}
	s.log.Debug("imap: authenticated", "mechanism", cmp.Or(mech, "LOGIN"))
	return s.run(ctx, "capability", func() error {
		s.caps = s.client.Caps()
		if s.caps == nil {
			return errors.New("imap: no CAPABILITY reply after login")
		}
		return nil
	})
}
