// Package pop3conn receives mail over POP3 (RFC 1939) for serversync, on the small
// client in internal/pop3.
//
// POP3 has one folder, no server-side moves and no appends, and a session sees the
// maildrop as it was when it logged in. So:
//   - the cursor holds the UIDLs of the last messages read (up to CursorWindow),
//     and Fetch offers the messages listed after the latest of them still on the
//     server. Messages gone because they were deleted (by delete-after-processing,
//     by another client or by the server) are no reset while one of those remains.
//     After the Syncer's deletions the session hands out a cursor without them
//     (CursorAfterDeletes), so a mailbox emptied by delete-after-processing starts
//     again from its first message, which is new. Only when none of the remembered
//     UIDLs is listed any more (the server renumbered them, or someone else removed
//     them all) is every message offered again with FetchResult.Reset set: the
//     Store's per-mailbox message keys keep them from being tracked twice;
//   - each Fetch after the first logs in again, so new mail is seen and pending
//     deletions are committed;
//   - Delete marks a message (DELE); the server removes it when the session ends
//     with QUIT (Commit, Close, or the next Fetch);
//   - sessions are no serversync.FolderSession: nothing can be moved or appended;
//   - delegation (opening another user's mailbox) does not exist in POP3 and is
//     refused; impersonation works with SASL PLAIN's authorization identity or the
//     master-user login form;
//   - FetchRequest.Since reads each candidate's headers with TOP n 0 and skips
//     messages dated before it; RemoteMessage.ReceivedAt is then that date.
//
// Implicit TLS (POP3S, 995) and STLS (110) are supported; an endpoint that asks for
// STLS never falls back to plaintext.
//
// Whatever the server sends, what it costs is bounded: every exchange must be
// over within Endpoint.Timeout (a message: plus a second per 64 KiB, counting
// no more than Options.MaxMessageBytes whatever LIST claims), listings and
// headers hold at most Options.MaxReplyBytes and a message at most
// Options.MaxMessageBytes ("reply_too_long", permanent; "reply_too_slow",
// transient). A server that greets in another protocol (IMAP's "* OK", SMTP's
// "220") is a permanent, profile-wide "protocol_mismatch".
package pop3conn

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/mail"
	"slices"
	"strings"
	"time"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/auth"
	"github.com/serversync/serversync/connector"
	"github.com/serversync/serversync/internal/pop3"
)

// Options configure a [Connector]. A nil *Options means defaults.
type Options struct {
	// Logger receives debug logs; nil discards them. Secrets are never logged.
	Logger *slog.Logger
	// MaxReplyBytes bounds a listing (CAPA, UIDL, LIST) and the headers read for
	// FetchRequest.Since (default connector.MaxReplyBytesDefault, 1 MiB, some
	// 30,000 messages in UIDL). Over it: "reply_too_long".
	MaxReplyBytes int64
	// MaxMessageBytes bounds one message, RETR (default
	// connector.MaxMessageBytesDefault, 256 MiB). Over it: "reply_too_long".
	MaxMessageBytes int64
}

// Connector opens POP3 sessions. It implements serversync.IncomingConnector and
// serversync.Prober and is safe for concurrent use; its sessions are not.
type Connector struct {
	log    *slog.Logger
	limits pop3.Limits
	tls    connector.TLSConfigs
}

var (
	_ serversync.IncomingConnector     = (*Connector)(nil)
	_ serversync.Prober                = (*Connector)(nil)
	_ serversync.CommitSession         = (*session)(nil)
	_ serversync.DeletionCursorSession = (*session)(nil)
)

// New returns a POP3 connector.
func New(opts *Options) *Connector {
	c := &Connector{}
	if opts != nil {
		c.log = opts.Logger
		c.limits = pop3.Limits{MaxReplyBytes: opts.MaxReplyBytes, MaxMessageBytes: opts.MaxMessageBytes}
	}
	c.limits = pop3.Limits{
		MaxReplyBytes:   cmp.Or(max(c.limits.MaxReplyBytes, 0), connector.MaxReplyBytesDefault),
		MaxMessageBytes: cmp.Or(max(c.limits.MaxMessageBytes, 0), connector.MaxMessageBytesDefault),
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	return c
}

// OpenIncoming connects, secures and authenticates. Errors are
// *serversync.ConnectorError values with the *pop3.Error reachable through errors.As.
func (c *Connector) OpenIncoming(ctx context.Context, target *serversync.Target) (serversync.IncomingSession, error) {
	if err := checkTarget(target); err != nil {
		return nil, err
	}
	s := &session{
		tls:     &c.tls,
		limits:  c.limits,
		target:  *target,
		timeout: cmp.Or(target.Endpoint.Timeout, serversync.ConnectionTimeoutDefault),
		log:     c.log.With("host", target.Endpoint.Host, "mailbox", target.MailboxID),
	}
	if err := s.login(ctx, nil); err != nil {
		return nil, err
	}
	return s, nil
}

// Probe tests the target step by step: connect, tls, authenticate, open-inbox
// (STAT). Nothing changes on the server.
func (c *Connector) Probe(ctx context.Context, target *serversync.Target) []serversync.TestStep {
	if err := checkTarget(target); err != nil {
		return []serversync.TestStep{{Name: "connect", Err: err, Detail: err.Error()}}
	}
	s := &session{tls: &c.tls, limits: c.limits, target: *target, timeout: cmp.Or(target.Endpoint.Timeout, serversync.ConnectionTimeoutDefault), log: c.log}
	var steps []serversync.TestStep
	step := func(name, ok string) func(error) {
		start := time.Now()
		return func(err error) {
			st := serversync.TestStep{Name: name, OK: err == nil, Err: err, Duration: time.Since(start), Detail: ok}
			if err != nil {
				st.Detail = err.Error()
			}
			steps = append(steps, st)
		}
	}
	err := s.login(ctx, step)
	if err == nil {
		done := step("open-inbox", "the inbox opened")
		err = s.call(ctx, "stat", func(ctx context.Context) error { _, _, err := s.client.Stat(ctx); return err })
		done(err)
		_ = s.Close()
	}
	return steps
}

func checkTarget(target *serversync.Target) error {
	if target == nil || target.Endpoint.Host == "" || target.Endpoint.Port == 0 {
		return connector.Error("dial", serversync.ErrorPermanent, serversync.ScopeProfile, serversync.CodeBadTarget,
			errors.New("pop3: target has no host or port"))
	}
	switch target.Endpoint.TLS {
	case serversync.TLSImplicit, serversync.TLSStartTLS, serversync.TLSNone:
	default:
		return connector.Error("dial", serversync.ErrorPermanent, serversync.ScopeProfile, serversync.CodeBadTarget,
			fmt.Errorf("pop3: unresolved TLS mode %q", target.Endpoint.TLS))
	}
	if target.Credentials.Kind == auth.KindDelegation {
		return connector.Error("authenticate", serversync.ErrorPermanent, serversync.ScopeProfile, serversync.CodeDelegationUnavailable,
			errors.New("pop3: delegation needs a shared namespace, which POP3 lacks: use impersonation or mailbox credentials"))
	}
	return nil
}

// session is one logged-in POP3 connection.
type session struct {
	tls     *connector.TLSConfigs
	limits  pop3.Limits
	target  serversync.Target
	timeout time.Duration
	log     *slog.Logger
	client  *pop3.Client
	open    bool            // until Close; a broken connection is replaced by the next Fetch
	numbers map[string]int  // UIDL → message number of this connection's snapshot
	deleted map[string]bool // UIDLs marked with DELE on this connection
	listing []string        // the UIDLs the last Fetch listed, in maildrop order
	gone    map[string]bool // UIDLs of listing deleted and committed since
}

// login dials, secures and authenticates; report, when set, records each step.
func (s *session) login(ctx context.Context, report func(name, ok string) func(error)) error {
	if report == nil {
		report = func(string, string) func(error) { return func(error) {} }
	}
	done := report("connect", "connected to "+s.target.Endpoint.Address())
	conn, err := connector.DialTarget(ctx, &s.target, s.tls)
	if err == nil {
		err = s.call(ctx, "greeting", func(ctx context.Context) error {
			var err error
			if s.client, err = pop3.NewClient(ctx, conn); err != nil {
				return err
			}
			s.client.SetLimits(s.limits)
			return nil
		})
		if err != nil {
			conn.Close()
		}
	}
	done(err)
	if err != nil {
		return err
	}
	ok := false
	defer func() {
		if !ok {
			s.client.Close()
			s.client = nil
		}
	}()

	var caps pop3.Capabilities
	if s.target.Endpoint.TLS == serversync.TLSStartTLS {
		done := report("tls", "STLS upgraded the connection")
		err := s.call(ctx, "starttls", func(ctx context.Context) error {
			tlsConfig, err := s.tls.For(s.target.Endpoint)
			if err != nil {
				return err
			}
			return s.client.StartTLS(ctx, tlsConfig)
		})
		var perr *pop3.Error
		if errors.As(err, &perr) {
			err = connector.Error("starttls", serversync.ErrorPermanent, serversync.ScopeProfile, serversync.CodeTLSUnavailable,
				fmt.Errorf("pop3: the server refused STLS, which the profile requires (credentials were not sent): %w", err))
		}
		done(err)
		if err != nil {
			return err
		}
	} else if s.target.Endpoint.TLS == serversync.TLSImplicit {
		report("tls", "implicit TLS")(nil)
	}
	done = report("authenticate", "logged in")
	err = s.call(ctx, "capability", func(ctx context.Context) error {
		var err error
		caps, err = s.client.Capabilities(ctx)
		var perr *pop3.Error
		if errors.As(err, &perr) { // CAPA is optional (RFC 2449): assume USER/PASS only
			caps, err = pop3.Capabilities{}, nil
		}
		return err
	})
	if err == nil {
		err = s.authenticate(ctx, caps)
	}
	done(err)
	if err != nil {
		return err
	}
	ok = true
	s.open = true
	s.numbers, s.deleted = nil, make(map[string]bool)
	s.log.Debug("pop3: session open", "tls", s.target.Endpoint.TLS, "credentials", s.target.Credentials.Kind)
	return nil
}

func (s *session) authenticate(ctx context.Context, caps pop3.Capabilities) error {
	creds := s.target.Credentials
	encrypted := s.target.Endpoint.TLS != serversync.TLSNone
	if err := connector.CheckPlaintextAuth(s.target.Endpoint, encrypted); err != nil {
		return err
	}
	if creds.Kind == auth.KindAnonymous || creds.Kind == "" {
		return connector.Error("authenticate", serversync.ErrorPermanent, serversync.ScopeProfile, serversync.CodeAuthUnavailable,
			fmt.Errorf("pop3: %q credentials cannot log in to POP3", creds.Kind))
	}
	_, mech, err := creds.SASLClientFor(ctx, "pop", s.target.Endpoint.Host, caps.SASLMechanisms())
	if ce := connector.TokenFailure("authenticate", creds, err); ce != nil {
		return ce
	}
	if err != nil {
		if !errors.Is(err, auth.ErrMechanismUnavailable) || !creds.CanUsePlainLogin() {
			return s.classify("authenticate", err, nil)
		}
		return s.call(ctx, "authenticate", func(ctx context.Context) error {
			return s.client.Login(ctx, creds.LoginName(), creds.Password.Reveal())
		})
	}
	return s.call(ctx, "authenticate", func(ctx context.Context) error {
		return s.client.Authenticate(ctx, mech)
	})
}

// call runs one exchange bounded by the connection timeout and classifies its error.
func (s *session) call(ctx context.Context, op string, fn func(ctx context.Context) error) error {
	return s.callWithin(ctx, op, s.timeout, fn)
}

// callWithin runs one exchange that must be over, replies whole, within d.
// The caller's own deadline or cancellation is reported as such; d running
// out, however steadily bytes came, is "reply_too_slow".
func (s *session) callWithin(parent context.Context, op string, d time.Duration, fn func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeoutCause(parent, d, errReplyTooSlow)
	defer cancel()
	err := fn(ctx)
	if err != nil && parent.Err() == nil && errors.Is(context.Cause(ctx), errReplyTooSlow) {
		limit := &connector.ReplyLimitError{Code: serversync.CodeReplyTooSlow,
			Reason: fmt.Sprintf("the server's reply did not arrive whole within %v", d)}
		return limit.Classify(op, s.limitScope(op), fmt.Errorf("pop3: %s: %w (%w)", op, limit, err))
	}
	return s.classify(op, err, ctx.Err())
}

var errReplyTooSlow = errors.New("pop3: reply too slow")

// limitScope is where a reply over its limits belongs: before login every
// mailbox of the profile meets the same server.
func (s *session) limitScope(op string) serversync.AlertScope {
	switch op {
	case "greeting", "starttls", "capability", "authenticate":
		return serversync.ScopeProfile
	}
	return serversync.ScopeMailbox
}

// classify turns an error into a *serversync.ConnectorError.
func (s *session) classify(op string, err, ctxErr error) error {
	if err == nil {
		return nil
	}
	var ce *serversync.ConnectorError
	if errors.As(err, &ce) {
		return err
	}
	if ctxErr != nil {
		code := serversync.CodeCanceled
		if errors.Is(ctxErr, context.DeadlineExceeded) {
			code = serversync.CodeTimeout
		}
		return connector.Error(op, serversync.ErrorTransient, serversync.ScopeMailbox, code, fmt.Errorf("pop3: %s: %w", op, err))
	}
	creds := s.target.Credentials
	scope := serversync.ScopeMailbox
	if creds.Kind == auth.KindImpersonation {
		scope = serversync.ScopeProfile // the service account is shared by every mailbox
	}
	var (
		perr     *pop3.Error
		greeting *pop3.GreetingError
	)
	if errors.As(err, &greeting) {
		if mismatch := connector.MismatchError(op, "POP3", connector.RecognizeGreeting([]byte(greeting.Line)), err); mismatch != nil {
			return mismatch
		}
	}
	if errors.Is(err, pop3.ErrReplyTooLong) {
		limit := &connector.ReplyLimitError{Code: serversync.CodeReplyTooLong, Reason: fmt.Sprintf(
			"a reply of the server is over its limit (raise Options.MaxReplyBytes, %d, or MaxMessageBytes, %d, if the server is legitimate)",
			s.limits.MaxReplyBytes, s.limits.MaxMessageBytes)}
		return limit.Classify(op, s.limitScope(op), fmt.Errorf("pop3: %s: %w (%w)", op, limit, err))
	}
	switch {
	case errors.As(err, &perr) && perr.IsAuth():
		return connector.Error(op, serversync.ErrorAuth, scope, serversync.CodeAuthFailed, err)
	case errors.As(err, &perr) && perr.Temporary():
		return connector.Error(op, serversync.ErrorTransient, serversync.ScopeMailbox, serversync.CodeServerUnavailable, err)
	case errors.As(err, &perr):
		return connector.Error(op, serversync.ErrorPermanent, serversync.ScopeMailbox, serversync.CodeCommandFailed, err)
	case errors.Is(err, pop3.ErrProtocol):
		return connector.Error(op, serversync.ErrorPermanent, serversync.ScopeMailbox, serversync.CodeProtocolError, err)
	case errors.Is(err, auth.ErrMechanismUnavailable):
		return connector.Error(op, serversync.ErrorPermanent, serversync.ScopeProfile, serversync.CodeAuthUnavailable, err)
	case op == "authenticate" && !isNetwork(err):
		// The SASL mechanism gave up (e.g. the token source failed).
		return connector.Error(op, serversync.ErrorAuth, scope, serversync.CodeAuthFailed, err)
	}
	return connector.NetError(op, fmt.Errorf("pop3: %s: %w", op, err))
}

func isNetwork(err error) bool {
	var netErr interface{ Timeout() bool }
	return errors.As(err, &netErr) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

func (s *session) usable() error {
	if s.client == nil {
		return connector.Error("session", serversync.ErrorTransient, serversync.ScopeMailbox, serversync.CodeCanceled,
			errors.New("pop3: session closed or broken: open a new one"))
	}
	return nil
}

// Fetch offers the messages after req.Cursor, in maildrop order.
func (s *session) Fetch(ctx context.Context, req serversync.FetchRequest, fn func(*serversync.RemoteMessage) error) (serversync.FetchResult, error) {
	var result serversync.FetchResult
	if req.Folder != "" && !strings.EqualFold(req.Folder, "INBOX") {
		return result, connector.Error("fetch", serversync.ErrorPermanent, serversync.ScopeMailbox, serversync.CodeFolderNotFound,
			fmt.Errorf("pop3: no folder %q: POP3 has only the inbox", req.Folder))
	}
	if !s.open {
		return result, s.usable()
	}
	// Log in again to see mail that arrived since, committing deletions; this also
	// replaces a connection an earlier error broke.
	quitCtx, cancel := context.WithTimeout(ctx, s.timeout)
	err := s.quit(quitCtx)
	cancel()
	if err != nil {
		return result, err
	}
	if err := s.login(ctx, nil); err != nil {
		return result, err
	}

	var uids []pop3.UIDEntry
	var sizes map[int]int64
	err = s.call(ctx, "uidl", func(ctx context.Context) error {
		var err error
		if uids, err = s.client.UIDL(ctx); err != nil {
			return err
		}
		list, err := s.client.List(ctx)
		sizes = make(map[int]int64, len(list))
		for _, m := range list {
			sizes[m.Number] = m.Size
		}
		return err
	})
	if err != nil {
		return result, s.broken(err)
	}
	s.numbers = make(map[string]int, len(uids))
	s.listing, s.gone = make([]string, len(uids)), make(map[string]bool)
	for i, u := range uids {
		s.numbers[u.UID] = u.Number
		s.listing[i] = u.UID
	}

	start, reset := resumeAt(s.listing, req.Cursor)
	if reset {
		s.log.Debug("pop3: none of the cursor's UIDLs is listed: offering every message again")
	}
	result.Reset = reset
	result.Cursor = cursorAt(s.listing, len(s.listing))
	for i, u := range uids[start:] {
		if s.deleted[u.UID] {
			continue
		}
		var received time.Time
		if !req.Since.IsZero() {
			if received, err = s.headerDate(ctx, u.Number); err != nil {
				return result, s.broken(err)
			}
			if !received.IsZero() && received.Before(req.Since) {
				continue
			}
		}
		if err := s.retrieve(ctx, u, sizes[u.Number], received, cursorAt(s.listing, start+i+1), fn); err != nil {
			return result, err
		}
	}
	return result, nil
}

// retrieve streams one message to fn; cursor is the position after it.
func (s *session) retrieve(ctx context.Context, u pop3.UIDEntry, size int64, received time.Time, cursor []byte, fn func(*serversync.RemoteMessage) error) error {
	// The whole body must arrive within the timeout plus a second per 64 KiB, so a
	// large message on a slow link is not cut off while a stalled one is. The
	// size is the server's word: no more than the message limit counts.
	parent := ctx
	within := s.timeout + connector.BodyAllowance(min(max(size, 0), s.limits.MaxMessageBytes))
	ctx, cancel := context.WithTimeoutCause(ctx, within, errReplyTooSlow)
	defer cancel()
	classify := func(err error) error { return s.classifyRetr(parent, ctx, within, err) }
	body, err := s.client.Retr(ctx, u.Number)
	if err != nil {
		return s.broken(classify(err))
	}
	reader := &bodyReader{r: body, classify: classify}
	fnErr := fn(&serversync.RemoteMessage{
		Ref: u.UID, Size: size, ReceivedAt: received, Body: reader, Cursor: cursor,
	})
	err = body.Close()
	if reader.err != nil || (err != nil && fnErr == nil) {
		s.broken(cmp.Or(reader.err, classify(err)))
	}
	if fnErr == nil && err != nil {
		return classify(err)
	}
	return fnErr
}

// classifyRetr classifies an error reading a message bounded by ctx (within
// of parent): ctx running out while parent did not is "reply_too_slow".
func (s *session) classifyRetr(parent, ctx context.Context, within time.Duration, err error) error {
	if err != nil && parent.Err() == nil && errors.Is(context.Cause(ctx), errReplyTooSlow) {
		limit := &connector.ReplyLimitError{Code: serversync.CodeReplyTooSlow,
			Reason: fmt.Sprintf("the message did not arrive whole within %v", within)}
		return limit.Classify("retr", serversync.ScopeMailbox, fmt.Errorf("pop3: retr: %w (%w)", limit, err))
	}
	return s.classify("retr", err, ctx.Err())
}

// bodyReader classifies the errors of reading a message, so a callback that
// returns them as they are still returns a *serversync.ConnectorError.
type bodyReader struct {
	r        io.Reader
	classify func(error) error
	err      error
}

func (b *bodyReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF {
		b.err = b.classify(err)
		err = b.err
	}
	return n, err
}

// headerDate reads message n's headers with TOP and returns its Date, or zero when
// it has none that parses (the message is then not skipped).
func (s *session) headerDate(ctx context.Context, n int) (time.Time, error) {
	var date time.Time
	err := s.call(ctx, "top", func(ctx context.Context) error {
		r, err := s.client.Top(ctx, n, 0)
		if err != nil {
			return err
		}
		msg, perr := mail.ReadMessage(bufio.NewReader(r))
		if perr == nil {
			date, _ = msg.Header.Date()
		}
		return r.Close()
	})
	return date, err
}

// broken drops a connection whose error left it unusable, so the next call says so
// instead of talking to a confused server.
func (s *session) broken(err error) error {
	var perr *pop3.Error
	if err != nil && !errors.As(err, &perr) && s.client != nil {
		s.client.Close()
		s.client = nil
	}
	return err
}

// Delete marks the message for deletion; the server removes it when the session
// ends (Close, or the next Fetch logging in again).
func (s *session) Delete(ctx context.Context, folder, ref string) error {
	if err := s.usable(); err != nil {
		return err
	}
	n, ok := s.numbers[ref]
	if !ok {
		return connector.Error("delete", serversync.ErrorPermanent, serversync.ScopeMailbox, serversync.CodeBadRef,
			fmt.Errorf("pop3: message %q is not in this session's listing", ref))
	}
	if s.deleted[ref] {
		return nil
	}
	if err := s.call(ctx, "delete", func(ctx context.Context) error { return s.client.Dele(ctx, n) }); err != nil {
		return s.broken(err)
	}
	s.deleted[ref] = true
	return nil
}

// Commit ends the POP3 transaction with QUIT, so the server applies the
// deletions made so far; the next Fetch logs in again.
func (s *session) Commit(ctx context.Context) error {
	if err := s.usable(); err != nil || len(s.deleted) == 0 {
		return err
	}
	c, deleted := s.client, s.deleted
	s.client, s.numbers, s.deleted = nil, nil, make(map[string]bool) // s.open stays: Fetch reconnects
	if err := s.classify("quit", c.Quit(ctx), ctx.Err()); err != nil {
		return err
	}
	if s.gone == nil {
		s.gone = make(map[string]bool)
	}
	for uid := range deleted {
		s.gone[uid] = true
	}
	return nil
}

// CursorAfterDeletes returns cursor without the messages this session deleted and
// committed: the UIDLs before its position that are still on the server. A cursor
// the last Fetch did not hand out is returned as it is.
func (s *session) CursorAfterDeletes(cursor []byte) []byte {
	window := decodeCursor(cursor)
	if len(window) == 0 || len(s.gone) == 0 {
		return cursor
	}
	end := slices.Index(s.listing, window[len(window)-1])
	if end < 0 {
		return cursor
	}
	kept := make([]string, 0, end+1)
	for _, uid := range s.listing[:end+1] {
		if !s.gone[uid] {
			kept = append(kept, uid)
		}
	}
	return cursorAt(kept, len(kept))
}

// CursorWindow is how many UIDLs a cursor remembers: the last messages read, so
// that a position survives the deletion of the message it names.
const CursorWindow = 32

// cursorPrefix starts every cursor that holds a window of UIDLs. A cursor without
// it is one UIDL, as cursors were before.
const cursorPrefix = "uidls\n"

// cursorAt is the cursor after the first n messages of listing. It is never nil:
// an empty window says the position is before the first message.
func cursorAt(listing []string, n int) []byte {
	window := listing[max(0, n-CursorWindow):n]
	return []byte(cursorPrefix + strings.Join(window, "\n"))
}

// decodeCursor returns the UIDLs a cursor remembers, oldest first.
func decodeCursor(cursor []byte) []string {
	rest, ok := strings.CutPrefix(string(cursor), cursorPrefix)
	switch {
	case !ok && len(cursor) > 0:
		return []string{string(cursor)}
	case rest == "":
		return nil
	}
	return strings.Split(rest, "\n")
}

// resumeAt returns the index in listing of the first message after cursor, and
// whether the cursor was invalidated: it remembers UIDLs and none is listed any
// more, although the maildrop is not empty. Remembered messages that are gone were
// deleted; the latest one still listed is the position.
func resumeAt(listing []string, cursor []byte) (start int, reset bool) {
	window := decodeCursor(cursor)
	if len(window) == 0 {
		return 0, false
	}
	at := make(map[string]int, len(listing))
	for i, uid := range listing {
		at[uid] = i
	}
	for i := len(window) - 1; i >= 0; i-- {
		if j, ok := at[window[i]]; ok {
			return j + 1, false
		}
	}
	return 0, len(listing) > 0
}

// quit ends the connection with QUIT, committing deletions.
func (s *session) quit(ctx context.Context) error {
	c := s.client
	s.client, s.open = nil, false
	if c == nil {
		return nil
	}
	return s.classify("quit", c.Quit(ctx), ctx.Err())
}

// Close sends QUIT (committing deletions) within the connection timeout.
func (s *session) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	return s.quit(ctx)
}
