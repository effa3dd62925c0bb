package imapconn

import (
	"context"
	"errors"
	"fmt"

	"github.com/emersion/go-imap/v2"
	"golang.org/x/oauth2"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/auth"
	"github.com/serversync/serversync/connector"
)

// ErrIdleUnsupported is returned by WaitForChange when the server offers neither
// IDLE nor IMAP4rev2: poll instead. It matches errors.ErrUnsupported, so callers
// that must not import this package can recognise it too.
var ErrIdleUnsupported = fmt.Errorf("imap: the server does not support IDLE: %w", errors.ErrUnsupported)

// ErrSessionBroken is wrapped by the errors of a session whose connection was
// lost or aborted (a canceled context aborts the command in flight): open a new one.
var ErrSessionBroken = errors.New("imap: session unusable after a lost or aborted connection")

// errSessionClosed is returned by a session used after Close.
var errSessionClosed = errors.New("imap: session closed")

// credentialScope is where an authentication problem belongs: a service account
// (impersonation, delegation) is shared by every mailbox of the profile.
func credentialScope(creds auth.Credentials) serversync.AlertScope {
	switch creds.Kind {
	case auth.KindImpersonation, auth.KindDelegation:
		return serversync.ScopeProfile
	}
	return serversync.ScopeMailbox
}

// classify turns an error from an IMAP operation into a *serversync.ConnectorError.
// ctxErr is the error of the context that bounded the operation when it fired;
// conn supplies the network error imapclient reports only as text.
func (s *session) classify(op string, err error, ctxErr error) error {
	if err == nil {
		return nil
	}
	// A reply that broke its limits is the cause of whatever the parser made
	// of the rest (a FETCH response cut short looks like one without a body).
	if s.bounded != nil {
		if limit := s.bounded.LimitError(); limit != nil {
			scope := serversync.ScopeMailbox
			if s.caps == nil { // before login every mailbox meets the same server
				scope = serversync.ScopeProfile
			}
			return limit.Classify(op, scope, fmt.Errorf("imap: %s: %w (%w)", op, limit, ErrSessionBroken))
		}
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
		return connector.Error(op, serversync.ErrorTransient, serversync.ScopeMailbox, code,
			fmt.Errorf("imap: %s: %w (%w)", op, ctxErr, ErrSessionBroken))
	}
	var imapErr *imap.Error
	if errors.As(err, &imapErr) {
		return classifyResponse(op, imapErr, err, s.target.Credentials)
	}
	var retrieve *oauth2.RetrieveError
	if errors.As(err, &retrieve) {
		return connector.Error(op, serversync.ErrorAuth, credentialScope(s.target.Credentials), serversync.CodeAuthFailed, err)
	}
	if errors.Is(err, auth.ErrMechanismUnavailable) {
		return connector.Error(op, serversync.ErrorPermanent, serversync.ScopeProfile, serversync.CodeAuthUnavailable, err)
	}
	// Anything else is the connection failing under us: imapclient reports
	// network errors as text, so prefer the one the connection saw.
	if s.conn != nil {
		if netErr := s.conn.readErr(); netErr != nil && !errors.Is(netErr, errAborted) {
			err = fmt.Errorf("%w (%w)", netErr, err)
		}
	}
	if s.client != nil {
		err = fmt.Errorf("%w (%w)", err, ErrSessionBroken)
	}
	return connector.NetError(op, fmt.Errorf("imap: %s: %w", op, err))
}

// classifyResponse classifies a tagged NO or BAD by its response code (RFC 5530).
func classifyResponse(op string, imapErr *imap.Error, err error, creds auth.Credentials) error {
	kind, scope, code := serversync.ErrorPermanent, serversync.ScopeMailbox, serversync.CodeCommandFailed
	switch imapErr.Type {
	case imap.StatusResponseTypeBad:
		code = serversync.CodeProtocolError
	case imap.StatusResponseTypeBye: // e.g. a greeting refusing more connections
		kind, code = serversync.ErrorTransient, serversync.CodeServerUnavailable
	}
	switch imapErr.Code {
	case imap.ResponseCodeUnavailable, imap.ResponseCodeServerBug, imap.ResponseCodeInUse,
		imap.ResponseCodeLimit, imap.ResponseCode("TOOMANY"), imap.ResponseCode("EXPUNGEISSUED"):
		kind, code = serversync.ErrorTransient, serversync.CodeServerUnavailable
	case imap.ResponseCodeAuthenticationFailed:
		kind, scope, code = serversync.ErrorAuth, credentialScope(creds), serversync.CodeAuthFailed
	case imap.ResponseCodeAuthorizationFailed:
		// The service account authenticated but may not act for this mailbox.
		kind, code = serversync.ErrorAuth, serversync.CodeAuthFailed
	case imap.ResponseCodeExpired, imap.ResponseCodeContactAdmin:
		kind, scope, code = serversync.ErrorAuth, credentialScope(creds), serversync.CodeAuthExpired
	case imap.ResponseCodePrivacyRequired:
		scope, code = serversync.ScopeProfile, serversync.CodeTLSUnavailable
	case imap.ResponseCodeNonExistent, imap.ResponseCodeTryCreate:
		code = serversync.CodeFolderNotFound
	case imap.ResponseCodeOverQuota:
		code = serversync.CodeOverQuota
	case imap.ResponseCodeNoPerm:
		code = serversync.CodeNoPermission
	case "":
		if op == "authenticate" && imapErr.Type == imap.StatusResponseTypeNo {
			// Many servers refuse a login without a response code.
			kind, scope, code = serversync.ErrorAuth, credentialScope(creds), serversync.CodeAuthFailed
		}
	}
	return connector.Error(op, kind, scope, code, fmt.Errorf("imap: %s: %w", op, err))
}
