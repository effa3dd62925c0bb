// Package smtpconn is the outgoing connector for SMTP servers, on go-smtp.
//
// A session connects with implicit TLS (port 465), with STARTTLS (587) — which is
// then mandatory: a server that doesn't offer it gets no credentials and no mail — or,
// where the profile allows it, in plaintext (25). It authenticates with the
// credentials the profile's source says (PLAIN, LOGIN, XOAUTH2, OAUTHBEARER, or
// none for anonymous relays) and sends messages with SMTPUTF8 and 8BITMIME as
// they need. Replies are classified: 4xx transient, 5xx permanent, 530/534/535
// authentication.
//
// A Connector is safe for concurrent use; a session is not. go-smtp takes no
// context, so a session closes its connection when the context of the call in
// progress ends: after a cancellation the session is unusable and must be closed.
//
// Whatever the server sends, a reply (everything between two commands) holds at
// most Options.MaxReplyBytes and must arrive whole within Endpoint.Timeout of
// its first byte ("reply_too_long", permanent; "reply_too_slow", transient), and
// until the session is open no wait outlasts Endpoint.Timeout. A server that
// greets in another protocol (IMAP's "* OK", POP3's "+OK") is a permanent,
// profile-wide "protocol_mismatch".
package smtpconn

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/emersion/go-smtp"
	"golang.org/x/oauth2"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/auth"
	"github.com/serversync/serversync/connector"
)

// LocalNameDefault is the name the connector gives in EHLO.
const LocalNameDefault = "localhost"

// Options configures a Connector. A nil *Options is equivalent to a zero one.
type Options struct {
	LocalName string       // EHLO name; default LocalNameDefault
	Logger    *slog.Logger // default slog.Default()
	// MaxReplyBytes bounds one server reply, multi-line replies whole (default
	// connector.MaxReplyBytesDefault, 1 MiB). A longer one, or a line over
	// RFC 5321's limit doubled, ends the call with "reply_too_long".
	MaxReplyBytes int64
}

// Connector opens SMTP sessions. Safe for concurrent use.
type Connector struct {
	localName string
	log       *slog.Logger
	limits    connector.ReplyLimits // without Timeout: the endpoint's
	tls       connector.TLSConfigs
}

var (
	_ serversync.OutgoingConnector = (*Connector)(nil)
	_ serversync.Prober            = (*Connector)(nil)
)

// New returns a Connector.
func New(opts *Options) *Connector {
	if opts == nil {
		opts = &Options{}
	}
	return &Connector{localName: cmp.Or(opts.LocalName, LocalNameDefault), log: cmp.Or(opts.Logger, slog.Default()),
		limits: connector.ReplyLimits{MaxReplyBytes: opts.MaxReplyBytes}}
}

// Session is an open, authenticated SMTP connection. Not safe for concurrent use.
type Session struct {
	client   *smtp.Client
	endpoint serversync.Endpoint
	opened   bool                   // greeted, secured and authenticated
	conn     *connector.BoundedConn // the dialed connection, closed to interrupt a call whose context ended
	creds    auth.Credentials
}

var _ serversync.OutgoingSession = (*Session)(nil)

// OpenOutgoing implements serversync.OutgoingConnector.
func (c *Connector) OpenOutgoing(ctx context.Context, target *serversync.Target) (serversync.OutgoingSession, error) {
	return c.open(ctx, target, &steps{})
}

// Probe implements serversync.Prober: connect, TLS, EHLO, authenticate, then
// MAIL FROM and RCPT TO the mailbox's own address, and RSET, so nothing is sent.
func (c *Connector) Probe(ctx context.Context, target *serversync.Target) []serversync.TestStep {
	st := &steps{record: true}
	s, err := c.open(ctx, target, st)
	if err != nil {
		return st.list
	}
	defer s.Close()
	stop := s.watch(ctx)
	defer stop()
	if st.do("mail-from", func() error { return s.classify(ctx, "mail-from", s.client.Mail(target.EmailAddress, nil)) }) {
		st.do("rcpt-to", func() error { return s.classify(ctx, "rcpt-to", s.client.Rcpt(target.EmailAddress, nil)) })
	}
	_ = s.client.Reset()
	return st.list
}

func (c *Connector) open(ctx context.Context, target *serversync.Target, st *steps) (*Session, error) {
	ep := target.Endpoint
	s := &Session{creds: target.Credentials, endpoint: ep}
	if !st.do("connect", func() error {
		raw, err := connector.DialTarget(ctx, target, &c.tls)
		if err != nil {
			return err
		}
		// A reply is what the server sends between two commands: at most
		// MaxReplyBytes, whole within the endpoint timeout from its first byte.
		// Until the session is open no wait lasts longer than the timeout
		// either: go-smtp greets (inside NewClientStartTLS) with its own five
		// minutes.
		s.conn = connector.NewBoundedConn(raw, c.limits.WithDefaults(cmp.Or(ep.Timeout, serversync.ConnectionTimeoutDefault)), connector.FrameByRequest)
		s.conn.SetMaxWait(cmp.Or(ep.Timeout, serversync.ConnectionTimeoutDefault))
		return nil
	}) {
		return nil, st.err
	}
	stop := s.watch(ctx)
	defer stop()
	encrypted := ep.TLS == serversync.TLSImplicit
	if ep.TLS == serversync.TLSStartTLS {
		ok := st.do("tls", func() error {
			cfg, err := c.tls.For(ep)
			if err != nil {
				return err
			}
			s.client, err = smtp.NewClientStartTLS(s.conn, cfg)
			if err != nil {
				return s.startTLSError(ctx, err)
			}
			// The TLS handshake happens on the first command after STARTTLS:
			// an untrusted certificate shows up here.
			return s.classify(ctx, "starttls", s.client.Hello(c.localName), s.client.Noop())
		})
		if !ok {
			s.conn.Close()
			return nil, st.err
		}
		encrypted = true
	} else {
		s.client = smtp.NewClient(s.conn)
		if !st.do("ehlo", func() error {
			return s.classify(ctx, "ehlo", s.client.Hello(c.localName), s.client.Noop())
		}) {
			s.conn.Close()
			return nil, st.err
		}
	}
	if ep.Timeout > 0 {
		s.client.CommandTimeout = ep.Timeout
	}
	if s.creds.Kind != auth.KindAnonymous {
		if !st.do("authenticate", func() error { return s.authenticate(ctx, ep, encrypted) }) {
			s.conn.Close()
			return nil, st.err
		}
	}
	// From now on go-smtp's timeouts hold: CommandTimeout (the endpoint's) for
	// commands, and for the reply to a message's data RFC 5321's ten minutes
	// (SubmissionTimeout): cutting that wait short would leave the outcome unknown.
	s.conn.SetMaxWait(0)
	s.opened = true
	return s, nil
}

// startTLSError classifies a failure of NewClientStartTLS: a reply, a network error,
// a greeting that was not SMTP, or — when none of those — the server not offering
// STARTTLS at all.
func (s *Session) startTLSError(ctx context.Context, err error) error {
	var smtpErr *smtp.SMTPError
	var netErr net.Error
	if ctx.Err() != nil || !s.greeted() || errors.As(err, &smtpErr) || errors.As(err, &netErr) || errors.Is(err, io.EOF) {
		return s.classify(ctx, "starttls", err)
	}
	return connector.Error("starttls", serversync.ErrorPermanent, serversync.ScopeProfile, serversync.CodeTLSUnavailable,
		fmt.Errorf("smtp: the server does not offer STARTTLS, and the profile requires TLS: nothing was sent (%w)", err))
}

func (s *Session) authenticate(ctx context.Context, ep serversync.Endpoint, encrypted bool) error {
	if err := connector.CheckPlaintextAuth(ep, encrypted); err != nil {
		return err
	}
	ok, mechanisms := s.client.Extension("AUTH")
	if !ok {
		return connector.Error("authenticate", serversync.ErrorPermanent, serversync.ScopeProfile, serversync.CodeAuthUnavailable,
			errors.New("smtp: the server offers no authentication (AUTH); use anonymous credentials for a relay that needs none"))
	}
	_, client, err := s.creds.SASLClientFor(ctx, "smtp", ep.Host, strings.Fields(mechanisms))
	var refused *oauth2.RetrieveError
	switch {
	case err == nil:
	case connector.TokenFailure("authenticate", s.creds, err) != nil:
		return connector.TokenFailure("authenticate", s.creds, err)
	case ctx.Err() != nil:
		return connector.NetError("authenticate", fmt.Errorf("smtp: authenticate interrupted: %w", ctx.Err()))
	case errors.Is(err, auth.ErrMechanismUnavailable):
		return connector.Error("authenticate", serversync.ErrorPermanent, serversync.ScopeProfile, serversync.CodeAuthUnavailable, err)
	case errors.As(err, &refused):
		// The provider would not refresh the mailbox's OAuth token: its grant was
		// revoked or has expired.
		return connector.Error("authenticate", serversync.ErrorAuth, serversync.ScopeMailbox, serversync.CodeAuthFailed, err)
	default: // the token endpoint could not be reached, say
		return connector.NetError("authenticate", err)
	}
	err = s.client.Auth(auth.MarkMechanismErrors(client))
	var gaveUp *auth.MechanismError
	if errors.As(err, &gaveUp) && ctx.Err() == nil {
		// The mechanism itself gave up: the server's XOAUTH2 error challenge (a JSON
		// status) before its 535, which go-smtp never reads once the client cancels.
		scope := serversync.ScopeMailbox
		if s.creds.Kind == auth.KindImpersonation || s.creds.Kind == auth.KindDelegation {
			scope = serversync.ScopeProfile
		}
		return connector.Error("authenticate", serversync.ErrorAuth, scope, serversync.CodeAuthFailed, gaveUp.Err)
	}
	return s.classify(ctx, "authenticate", err)
}

// Send implements serversync.OutgoingSession. go-smtp asks for BODY=8BITMIME by
// itself when the server offers it; SMTPUTF8 is asked for when an address needs it.
func (s *Session) Send(ctx context.Context, env serversync.Envelope, msg io.Reader) error {
	if err := ctx.Err(); err != nil {
		return connector.NetError("send", err)
	}
	stop := s.watch(ctx)
	defer stop()
	utf8 := !isASCII(env.From)
	for _, to := range env.To {
		utf8 = utf8 || !isASCII(to)
	}
	if ok, _ := s.client.Extension("SMTPUTF8"); utf8 && !ok {
		return connector.Error("mail-from", serversync.ErrorPermanent, serversync.ScopeMailbox, serversync.CodeSMTPUTF8Unsupported,
			errors.New("smtp: an address is not ASCII and the server does not offer SMTPUTF8: nothing was sent"))
	}
	if err := s.client.Mail(env.From, &smtp.MailOptions{UTF8: utf8}); err != nil {
		return s.fail(ctx, "mail-from", err)
	}
	for _, to := range env.To {
		if err := s.client.Rcpt(to, nil); err != nil {
			return s.fail(ctx, "rcpt-to", err)
		}
	}
	w, err := s.client.Data()
	if err != nil {
		return s.fail(ctx, "data", err)
	}
	if _, err := io.Copy(w, msg); err != nil {
		_ = w.Close()
		return s.fail(ctx, "data", err)
	}
	if err := w.Close(); err != nil {
		var smtpErr *smtp.SMTPError
		if !errors.As(err, &smtpErr) {
			// The message went out but no reply came back: the server may have
			// accepted it, and sending it again could deliver it twice.
			return connector.Error("data", serversync.ErrorPermanent, serversync.ScopeItem, serversync.CodeSendOutcomeUnknown,
				fmt.Errorf("smtp: no reply after the message was sent, so it may have been delivered: %w", err))
		}
		return s.fail(ctx, "data", err)
	}
	return nil
}

// fail resets the transaction so the session stays usable, and classifies err.
func (s *Session) fail(ctx context.Context, op string, err error) error {
	if ctx.Err() == nil {
		_ = s.client.Reset()
	}
	return s.classify(ctx, op, err)
}

// Close sends QUIT (briefly) and closes the connection. Calling it again does nothing.
func (s *Session) Close() error {
	if s.client == nil {
		return nil
	}
	_ = s.conn.SetDeadline(time.Now().Add(2 * time.Second))
	if err := s.client.Quit(); err != nil {
		_ = s.client.Close()
	}
	s.client = nil
	return nil
}

// watch closes the connection when ctx ends during a call: go-smtp resets deadlines
// on every command, so closing is the only interruption that can't be undone.
func (s *Session) watch(ctx context.Context) (stop func() bool) {
	return context.AfterFunc(ctx, func() { _ = s.conn.Close() })
}

// classify turns the first non-nil error into a *serversync.ConnectorError.
func (s *Session) classify(ctx context.Context, op string, errs ...error) (classified error) {
	var err error
	for _, e := range errs {
		if e != nil {
			err = e
			break
		}
	}
	if err == nil {
		return nil
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		return connector.NetError(op, fmt.Errorf("smtp: %s interrupted: %w", op, ctxErr))
	}
	if !s.greeted() {
		// A server that greets in another protocol: the profile's port or
		// server type is wrong, and no retry will fix it.
		if mismatch := connector.MismatchError(op, "SMTP", connector.RecognizeGreeting(s.conn.FirstBytes()), err); mismatch != nil {
			return mismatch
		}
		defer func() { classified = connector.NoGreetingHint(classified, s.endpoint, s.conn.FirstBytes()) }()
	}
	if limit := s.conn.LimitError(); limit != nil {
		return limit.Classify(op, s.limitScope(), fmt.Errorf("smtp: %s: %w", op, limit))
	}
	if errors.Is(err, smtp.ErrTooLongLine) {
		limit := &connector.ReplyLimitError{Code: serversync.CodeReplyTooLong, Reason: "the server's reply has a line longer than RFC 5321 allows (doubled)"}
		return limit.Classify(op, s.limitScope(), fmt.Errorf("smtp: %s: %w", op, err))
	}
	var smtpErr *smtp.SMTPError
	if !errors.As(err, &smtpErr) {
		return connector.NetError(op, err)
	}
	kind, scope, code := serversync.ErrorPermanent, serversync.ScopeMailbox, serversync.CodeRejected
	switch {
	case smtpErr.Code == 530 || smtpErr.Code == 534 || smtpErr.Code == 535:
		kind, code = serversync.ErrorAuth, serversync.CodeAuthFailed
		if s.creds.Kind == auth.KindImpersonation || s.creds.Kind == auth.KindDelegation {
			scope = serversync.ScopeProfile // the profile's service account: every mailbox is hit
		}
	case smtpErr.Code == 552:
		code = serversync.CodeMessageTooLarge
	case op == "rcpt-to" && (smtpErr.Code == 550 || smtpErr.Code == 551 || smtpErr.Code == 553):
		code = serversync.CodeRecipientRejected
	case smtpErr.Code >= 400 && smtpErr.Code < 500:
		kind, code = serversync.ErrorTransient, serversync.CodeTemporaryFailure
	}
	return connector.Error(op, kind, scope, code, err)
}

// greeted reports whether the server's first bytes were an SMTP reply.
func (s *Session) greeted() bool {
	return connector.RecognizeGreeting(s.conn.FirstBytes()) == "SMTP"
}

// limitScope is where a reply over the limits belongs: before login every
// mailbox of the profile meets the same server.
func (s *Session) limitScope() serversync.AlertScope {
	if !s.opened {
		return serversync.ScopeProfile
	}
	return serversync.ScopeMailbox
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// steps runs the stages of opening a session, recording them for Probe.
type steps struct {
	record bool
	list   []serversync.TestStep
	err    error
}

// do runs one stage and reports whether it succeeded; the first error is kept.
func (st *steps) do(name string, fn func() error) bool {
	start := time.Now()
	err := fn()
	if st.record {
		step := serversync.TestStep{Name: name, OK: err == nil, Err: err, Duration: time.Since(start)}
		if err != nil {
			step.Detail = advice(err)
		}
		st.list = append(st.list, step)
	}
	st.err = err
	return err == nil
}

// advice is what a person can do about a failed step.
func advice(err error) string {
	var ce *serversync.ConnectorError
	if !errors.As(err, &ce) {
		return err.Error()
	}
	switch ce.Code {
	case serversync.CodeAuthFailed:
		return "the server refused the credentials: check the user name and password (or token) for this mailbox or profile"
	case serversync.CodeTLSUnavailable:
		return "the server does not offer STARTTLS: use implicit TLS (port 465) or ask for STARTTLS to be enabled"
	case serversync.CodeTLSVerifyFailed:
		return "the server's certificate is not trusted: add its CA to the profile's ExtraRootCAsPEM if it is yours"
	case serversync.CodePlaintextAuthRefused:
		return "credentials would travel unencrypted: turn TLS on for this profile"
	case serversync.CodeNetwork, serversync.CodeHostNotFound:
		return "the server could not be reached: check the host name, the port and the firewall"
	}
	return ce.Error()
}
