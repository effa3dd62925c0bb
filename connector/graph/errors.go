package graph

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/connector"
)

// classify turns a Graph error reply into a *serversync.ConnectorError. The
// message quotes Graph's code and message; the token is never in it.
func (m *mailbox) classify(op string, about what, ge *graphError) error {
	e := func(kind serversync.ErrorKind, scope serversync.AlertScope, code, advice string) error {
		if advice != "" {
			return connector.Error(op, kind, scope, code, fmt.Errorf("%s: %w", advice, ge))
		}
		return connector.Error(op, kind, scope, code, ge)
	}
	authScope := serversync.ScopeMailbox
	if m.appOnly {
		authScope = serversync.ScopeProfile
	}
	is := ge.is
	switch {
	case ge.Status == http.StatusUnauthorized:
		if strings.Contains(strings.ToLower(ge.Message), "expired") {
			return e(serversync.ErrorAuth, authScope, serversync.CodeAuthExpired, "Graph says the access token has expired")
		}
		return e(serversync.ErrorAuth, authScope, serversync.CodeAuthFailed, "Graph refused the access token (check the application's tenant and permissions)")
	case ge.Status == http.StatusForbidden && (about == aboutACT || about == aboutACTItem):
		advice := "the signed-in user may not open this mailbox's calendar, contacts or tasks: grant Calendars.ReadWrite, Contacts.ReadWrite and Tasks.ReadWrite"
		if m.appOnly {
			advice = "the application may not open this mailbox's calendar, contacts or tasks: grant it Calendars.ReadWrite, Contacts.ReadWrite " +
				"and Tasks.ReadWrite.All (application permissions, with admin consent)"
		}
		return e(serversync.ErrorAuth, serversync.ScopeMailbox, serversync.CodeNoPermission, advice)
	case ge.Status == http.StatusNotFound && about == aboutACTItem && !is("ErrorInvalidUser", "MailboxNotEnabledForRESTAPI", "MailboxNotSupportedForRESTAPI"):
		return e(serversync.ErrorPermanent, serversync.ScopeItem, serversync.CodeBadRef, "the item is not on the server")
	case ge.Status == http.StatusPreconditionFailed:
		return e(serversync.ErrorPermanent, serversync.ScopeItem, serversync.CodeRejected, "the item changed on the server")
	case ge.Status == http.StatusForbidden:
		advice := "the signed-in user may not open this mailbox: grant the Mail.ReadWrite and Mail.Send permissions"
		if m.appOnly {
			advice = "the application may not open this mailbox: grant it Mail.ReadWrite and Mail.Send (application permissions, with admin consent), " +
				"and check that no application access policy excludes this mailbox"
		}
		return e(serversync.ErrorAuth, serversync.ScopeMailbox, serversync.CodeNoPermission, advice)
	case is("ErrorInvalidUser", "MailboxNotEnabledForRESTAPI", "MailboxNotSupportedForRESTAPI") ||
		(ge.Status == http.StatusNotFound && is("ResourceNotFound") && about == aboutMailbox):
		return e(serversync.ErrorPermanent, serversync.ScopeMailbox, serversync.CodeMailboxNotFound,
			"Graph has no Exchange Online mailbox for this address")
	case is("ErrorQuotaExceeded") || ge.Status == http.StatusInsufficientStorage:
		return e(serversync.ErrorPermanent, serversync.ScopeMailbox, serversync.CodeOverQuota, "the mailbox is full")
	case ge.Status == http.StatusRequestEntityTooLarge || is("ErrorMessageSizeExceeded"):
		return e(serversync.ErrorPermanent, serversync.ScopeItem, serversync.CodeMessageTooLarge, "Graph refused the message as too large")
	case ge.Status == http.StatusNotFound && about == aboutMessage:
		return e(serversync.ErrorPermanent, serversync.ScopeItem, serversync.CodeBadRef, "the message is not in the mailbox")
	case ge.Status == http.StatusNotFound && about == aboutFolder:
		return e(serversync.ErrorPermanent, serversync.ScopeMailbox, serversync.CodeFolderNotFound, "the folder is not in the mailbox")
	case ge.Status == http.StatusNotFound && about == aboutMailbox:
		return e(serversync.ErrorPermanent, serversync.ScopeMailbox, serversync.CodeMailboxNotFound, "")
	case about == aboutSend && is("ErrorInvalidRecipients"):
		return e(serversync.ErrorPermanent, serversync.ScopeItem, serversync.CodeRecipientRejected, "Graph refused the recipients")
	case about == aboutSend && ge.Status >= 400 && ge.Status < 500:
		return e(serversync.ErrorPermanent, serversync.ScopeItem, serversync.CodeRejected, "Graph refused the message")
	case ge.Status == http.StatusServiceUnavailable || ge.Status == http.StatusBadGateway || ge.Status == http.StatusGatewayTimeout:
		return e(serversync.ErrorTransient, serversync.ScopeProfile, serversync.CodeServerUnavailable, "Graph is unavailable for now")
	case ge.Status >= 500:
		return e(serversync.ErrorTransient, serversync.ScopeMailbox, serversync.CodeServerUnavailable, "Graph failed to answer")
	}
	return e(serversync.ErrorTransient, serversync.ScopeMailbox, serversync.CodeCommandFailed, "Graph refused the request")
}

// isSyncStateLost reports whether a delta request failed because its token
// expired or is unknown: the client starts again from a fresh delta.
func isSyncStateLost(ge *graphError) bool {
	return ge.Status == http.StatusGone || ge.is("SyncStateNotFound", "SyncStateInvalid", "resyncRequired")
}

// is reports whether Graph's error code is one of codes, whatever the case.
func (e *graphError) is(codes ...string) bool {
	for _, c := range codes {
		if strings.EqualFold(e.Code, c) {
			return true
		}
	}
	return false
}
