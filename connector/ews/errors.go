package ews

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/auth"
	"github.com/serversync/serversync/connector"
)

// classify turns what a request ended with into a *serversync.ConnectorError.
// The messages quote EWS's ResponseCode and text; the password is never in them.
func (m *mailbox) classify(op string, about what, err error) error {
	var ce *serversync.ConnectorError
	if errors.As(err, &ce) {
		return err
	}
	e := func(kind serversync.ErrorKind, scope serversync.AlertScope, code, advice string) error {
		if advice != "" {
			return connector.Error(op, kind, scope, code, fmt.Errorf("%s: %w", advice, err))
		}
		return connector.Error(op, kind, scope, code, err)
	}
	var le *connector.ReplyLimitError
	if errors.As(err, &le) {
		return le.Classify(op, serversync.ScopeMailbox, err)
	}
	var pe *ProtocolError
	if errors.As(err, &pe) {
		return e(serversync.ErrorTransient, serversync.ScopeProfile, serversync.CodeProtocolError, "")
	}
	// A service account's failure (or the process's own identity's) concerns
	// every mailbox of the profile.
	authScope := serversync.ScopeMailbox
	if k := m.target.Credentials.Kind; k == auth.KindImpersonation || k == auth.KindDelegation || k == auth.KindIntegrated {
		authScope = serversync.ScopeProfile
	}
	var he *httpError
	if errors.As(err, &he) {
		switch {
		case he.Status == http.StatusUnauthorized:
			return e(serversync.ErrorAuth, authScope, serversync.CodeAuthFailed, "Exchange refused the user name and password")
		case he.Status == http.StatusForbidden:
			return e(serversync.ErrorAuth, authScope, serversync.CodeNoPermission, "Exchange forbids this account to use EWS")
		case he.Status == http.StatusNotFound:
			return e(serversync.ErrorPermanent, serversync.ScopeProfile, serversync.CodeBadTarget,
				"there is no EWS at this URL: check the server (usually https://mail.example.com/EWS/Exchange.asmx) or use AutoDiscover")
		case he.Status == http.StatusServiceUnavailable || he.Status == http.StatusBadGateway || he.Status == http.StatusGatewayTimeout:
			return e(serversync.ErrorTransient, serversync.ScopeProfile, serversync.CodeServerUnavailable, "Exchange is unavailable for now")
		case he.Status >= 500:
			return e(serversync.ErrorTransient, serversync.ScopeMailbox, serversync.CodeServerUnavailable, "Exchange failed to answer")
		}
		return e(serversync.ErrorTransient, serversync.ScopeMailbox, serversync.CodeCommandFailed, "Exchange refused the request")
	}
	var re *ResponseError
	if !errors.As(err, &re) {
		return connector.NetError(op, err)
	}
	switch {
	case re.is("ErrorImpersonateUserDenied", "ErrorImpersonationDenied", "ErrorImpersonationFailed"):
		return e(serversync.ErrorPermanent, serversync.ScopeMailbox, serversync.CodeNoPermission,
			"the service account may not impersonate this mailbox: grant it the ApplicationImpersonation role for the mailbox")
	case re.is("ErrorAccessDenied", "ErrorDelegateNoUser", "ErrorNoPublicFolderReplicaAvailable"):
		advice := "the account may not open this mailbox"
		if m.delegate != "" {
			advice = "the service account has no delegate rights on this mailbox: grant it Full Access (Add-MailboxPermission) or use impersonation"
		}
		return e(serversync.ErrorPermanent, serversync.ScopeMailbox, serversync.CodeNoPermission, advice)
	case re.is("ErrorNonExistentMailbox", "ErrorMailboxNotFound", "ErrorInvalidSmtpAddress", "ErrorMailRecipientNotFound"):
		return e(serversync.ErrorPermanent, serversync.ScopeMailbox, serversync.CodeMailboxNotFound, "Exchange has no mailbox for this address")
	case re.is("ErrorQuotaExceeded"):
		return e(serversync.ErrorPermanent, serversync.ScopeMailbox, serversync.CodeOverQuota, "the mailbox is full")
	case re.is("ErrorMessageSizeExceeded"):
		return e(serversync.ErrorPermanent, serversync.ScopeItem, serversync.CodeMessageTooLarge, "Exchange refused the message as too large")
	case re.is("ErrorItemNotFound") && about == aboutMessage:
		return e(serversync.ErrorPermanent, serversync.ScopeItem, serversync.CodeBadRef, "the message is not in the mailbox")
	case re.is("ErrorFolderNotFound", "ErrorItemNotFound"):
		return e(serversync.ErrorPermanent, serversync.ScopeMailbox, serversync.CodeFolderNotFound, "the folder is not in the mailbox")
	case re.is("ErrorInvalidSyncStateData"):
		return e(serversync.ErrorPermanent, serversync.ScopeMailbox, serversync.CodeBadCursor, "Exchange no longer knows the sync state")
	case re.is("ErrorServerBusy"):
		return e(serversync.ErrorTransient, serversync.ScopeMailbox, serversync.CodeThrottled, "")
	case re.is("ErrorInternalServerTransientError", "ErrorMailboxStoreUnavailable", "ErrorMailboxMoveInProgress", "ErrorConnectionFailed", "ErrorTimeoutExpired"):
		return e(serversync.ErrorTransient, serversync.ScopeMailbox, serversync.CodeServerUnavailable, "Exchange is unavailable for now")
	case re.is("ErrorInvalidServerVersion", "ErrorInvalidRequest", "ErrorSchemaValidation"):
		return e(serversync.ErrorPermanent, serversync.ScopeProfile, serversync.CodeProtocolError,
			"Exchange does not understand the request: it may be older than Exchange 2013 SP1 (set the connector's ServerVersion)")
	case about == aboutSend && re.is("ErrorInvalidRecipients", "ErrorSendAsDenied"):
		return e(serversync.ErrorPermanent, serversync.ScopeItem, serversync.CodeRecipientRejected, "Exchange refused the recipients or sender")
	case about == aboutSend:
		return e(serversync.ErrorPermanent, serversync.ScopeItem, serversync.CodeRejected, "Exchange refused the message")
	}
	return e(serversync.ErrorTransient, serversync.ScopeMailbox, serversync.CodeCommandFailed, "Exchange refused the request")
}

// first returns the failure of the first response message, classified, or nil.
func (m *mailbox) first(op string, about what, msgs []responseMessage, status int) error {
	if len(msgs) == 0 {
		return connector.Error(op, serversync.ErrorTransient, serversync.ScopeMailbox, serversync.CodeProtocolError,
			errors.New("ews: the reply has no response message"))
	}
	if re := msgs[0].err(status); re != nil {
		return m.classify(op, about, re)
	}
	return nil
}
