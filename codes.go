package serversync

// The codes below are every ConnectorError.Code, LastError.Code and Alert.Code this
// library and its connectors produce: stable, machine-readable, safe to switch on.
// A connector of another package uses these constants too, so one code means one
// thing whichever protocol met it (codes_test.go checks that no other code is
// returned). Each says when it happens and what fixes it.

// Codes of the failures the Syncer finds before any server is involved: what a
// person must fix in the mailbox, its profile or the deployment.
const (
	// CodeNotApproved: the mailbox's email address is not approved (or was
	// rejected) while the org settings require approval. An administrator approves it.
	CodeNotApproved = "not_approved"
	// CodeNoProfile: the mailbox has no email server profile. Set one, then run Test & Enable.
	CodeNoProfile = "no_profile"
	// CodeNoConnector: no connector of this Syncer handles the profile's server
	// type in that direction (every Exchange type, so far). Pass one in Connectors
	// or change the profile's server type.
	CodeNoConnector = "no_connector"
	// CodeNotServerSideSync: the mailbox's outgoing method is not ServerSideSync,
	// so this library never sends its email. Change the mailbox's outgoing method.
	CodeNotServerSideSync = "not_server_side_sync"
	// CodeOutgoingNotEnabled: outgoing email is not enabled for the mailbox: not
	// yet tested, or disabled after a failure. Test & Enable turns it on.
	CodeOutgoingNotEnabled = "outgoing_not_enabled"
	// CodeMailboxNotFound: an email was queued for, or belongs to, a mailbox that
	// does not exist (any more). Queue it from an existing mailbox.
	CodeMailboxNotFound = "mailbox_not_found"
	// CodeBadMessage: a queued email cannot be turned into a MIME message (or read
	// for appending). Fix the email's fields or attachments and queue it again.
	CodeBadMessage = "bad_message"
	// CodeUnsupportedCredentials: the profile asks for a credential source no
	// connector implements. Choose another credential source for the profile.
	CodeUnsupportedCredentials = "unsupported_credentials"
	// CodeSendOutcomeUnknown: a message was handed to the server without a reply
	// coming back: it may have been delivered, so it is not sent again until a
	// person checks the recipient's mailbox and queues it again if it is missing.
	CodeSendOutcomeUnknown = "send_outcome_unknown"
	// CodeHookPanic: a host hook (TrackFunc, AddressResolver, OnEvent) panicked.
	// Retried like a transient failure; fix the host's code.
	CodeHookPanic = "hook_panic"
	// CodeInternal: neither the mail server's nor the mailbox's failure, such as
	// the store being unreachable or a host hook returning an error. Retried
	// without counting towards Config.MaxTransientFailures, so an outage of the host's
	// database does not leave every mailbox to be Test & Enabled again; fix the
	// store or the hook the message names.
	CodeInternal = "internal"
)

// Codes of the errors that refuse a connection the security settings forbid. They
// are the Code of the *ConnectorError that ResolveTarget (and, for plaintext
// credentials, the connectors themselves) return, and of a [ProfileConflict].
const (
	// CodeTLSRequiredByOrg: the profile turns TLS off, and
	// OrgSettings.AllowNonSSLEmail is off. Turn TLS on for the profile, or the setting on.
	CodeTLSRequiredByOrg = "tls_required_by_org"
	// CodeTLSRequired: the profile turns TLS off for a server type that always
	// needs it (Exchange Online). Turn TLS on for the profile.
	CodeTLSRequired = "tls_required"
	// CodePlaintextAuthRefused: credentials would be sent over an unencrypted
	// connection, and OrgSettings.AllowCredentialsOverNonSecureChannels is off.
	// Turn TLS on for the profile, or the setting on.
	CodePlaintextAuthRefused = "plaintext_auth_refused"
)

// Codes of failures to reach a server or to talk to it safely.
const (
	// CodeBadTarget: the target a connector was given cannot be dialed (no host,
	// no port, TLS mode not resolved). Fix the profile's server name and port.
	CodeBadTarget = "bad_target"
	// CodeNetwork: the server could not be reached or the connection broke.
	// Transient and profile-wide; check the server name, port and firewall if it lasts.
	CodeNetwork = "network"
	// CodeHostNotFound: the server's host name does not resolve. Fix the profile's server name.
	CodeHostNotFound = "host_not_found"
	// CodeTimeout: the server did not answer within the endpoint timeout.
	// Transient; check the port and that the server is up if it lasts.
	CodeTimeout = "timeout"
	// CodeCanceled: the operation was canceled (the Syncer stopping, a lease
	// lost). Transient; nothing to fix.
	CodeCanceled = "canceled"
	// CodeTLSVerifyFailed: the server's certificate is not trusted (unknown
	// authority, wrong host name, expired). Fix the certificate, or add its CA to
	// the profile's ExtraRootCAsPEM if it is your own.
	CodeTLSVerifyFailed = "tls_verify_failed"
	// CodeTLSBadRootCA: the profile's ExtraRootCAsPEM holds no PEM certificate.
	// Paste the CA certificate in PEM form.
	CodeTLSBadRootCA = "tls_bad_root_ca"
	// CodeTLSMismatch: a TLS client met a server that does not speak TLS on that
	// port. Permanent and profile-wide: fix the port or the TLS mode.
	CodeTLSMismatch = "tls_mismatch"
	// CodeTLSUnavailable: the profile asks for STARTTLS and the server does not
	// offer it (or requires TLS the connection lacks). Use implicit TLS on its own
	// port, or have STARTTLS enabled on the server.
	CodeTLSUnavailable = "tls_unavailable"
	// CodeReplyTooLong: a reply outgrew MaxReplyBytes (an endless line, atom or
	// list) or a message body outgrew MaxMessageBytes. Permanent: a server that
	// sends it is broken (or the limits are too small for it), and asking again
	// gets the same reply; the message says which limit to raise if the server is
	// legitimate.
	CodeReplyTooLong = "reply_too_long"
	// CodeReplyTooSlow: a reply did not arrive whole within the endpoint timeout
	// (plus a second per 64 KiB of message body), though bytes kept trickling in.
	// Transient, like any timeout: an overloaded server or link may recover.
	CodeReplyTooSlow = "reply_too_slow"
	// CodeProtocolMismatch: the server greeted in another protocol (a POP3 server
	// at the IMAP port…). Permanent and profile-wide: the port or server type in
	// the profile is wrong.
	CodeProtocolMismatch = "protocol_mismatch"
	// CodeProtocolError: the server answered in the right protocol but not as it
	// prescribes (a malformed reply). Check the port and server type; otherwise
	// the server is broken.
	CodeProtocolError = "protocol_error"
	// CodeServerUnavailable: the server is busy, shutting down or refusing
	// connections for now. Transient: retried later.
	CodeServerUnavailable = "server_unavailable"
	// CodeThrottled: the server asked to slow down (HTTP 429 or 503 with
	// Retry-After) more often than one sync waits for. Transient: retried later.
	CodeThrottled = "throttled"
)

// Codes of authentication failures.
const (
	// CodeAuthFailed: the server refused the credentials. Fix the user name and
	// password (or token) of the mailbox, or of the profile's service account.
	CodeAuthFailed = "auth_failed"
	// CodeAuthExpired: the server says the password or token has expired. Renew it.
	CodeAuthExpired = "auth_expired"
	// CodeAuthUnavailable: the server offers no login mechanism the credentials
	// can use. Change the profile's credential source or authentication protocol.
	CodeAuthUnavailable = "auth_unavailable"
	// CodeDelegationUnavailable: the server cannot open another user's mailbox
	// the way the profile asks (no shared namespace; POP3 has no delegation). Use
	// impersonation or mailbox credentials.
	CodeDelegationUnavailable = "delegation_unavailable"
	// CodeTokenRefused: the identity provider refused to issue a token (unknown
	// tenant or application, certificate not registered with the application,
	// permission not granted). Fix the profile's tenant, client ID or
	// certificate, or the app registration; the message quotes the provider.
	CodeTokenRefused = "token_refused"
	// CodeCertificateExpired: the profile's server-to-server certificate is
	// expired or not yet valid. Register a new certificate with the application
	// and save it on the profile.
	CodeCertificateExpired = "certificate_expired"
)

// Codes of failures inside a mailbox, after login.
const (
	// CodeFolderNotFound: the folder (the inbox) could not be opened. Check that
	// the mailbox exists and that the account may open it.
	CodeFolderNotFound = "folder_not_found"
	// CodeNoPermission: the account may not do this in the mailbox. Grant it the rights.
	CodeNoPermission = "no_permission"
	// CodeOverQuota: the mailbox is full. Free space or raise its quota.
	CodeOverQuota = "over_quota"
	// CodeUIDValidityChanged: the server renumbered the folder's messages while
	// the session was open. Transient: the next sync starts again from a new cursor.
	CodeUIDValidityChanged = "uidvalidity_changed"
	// CodeBadCursor: a stored cursor is not one the connector handed out. It
	// comes from another connector or a damaged store; clear the mailbox's cursor.
	CodeBadCursor = "bad_cursor"
	// CodeBadRef: a message reference is not one the server handed out (or the
	// message is gone). Nothing to fix for that message; report it if it repeats.
	CodeBadRef = "bad_ref"
	// CodeCommandFailed: the server refused a command without saying why it
	// would help to retry. The message holds the server's reply.
	CodeCommandFailed = "command_failed"
)

// Codes of refused outgoing email (SMTP replies).
const (
	// CodeRejected: the server refused the email permanently (a 5xx reply not
	// covered below). The message holds the server's reply.
	CodeRejected = "rejected"
	// CodeRecipientRejected: the server refused a recipient (550, 551, 553). Fix the address.
	CodeRecipientRejected = "recipient_rejected"
	// CodeMessageTooLarge: the server refused the email as too large (552).
	// Send smaller attachments.
	CodeMessageTooLarge = "message_too_large"
	// CodeTemporaryFailure: the server refused for now (4xx). Retried with back-off.
	CodeTemporaryFailure = "temporary_failure"
	// CodeSMTPUTF8Unsupported: an address is not ASCII and the server does not
	// offer SMTPUTF8, so nothing was sent. Use an ASCII address or a server that
	// offers SMTPUTF8.
	CodeSMTPUTF8Unsupported = "smtputf8_unsupported"
)

// Codes of alerts that report no error of their own.
const (
	// CodeMassFailure: more than half of a profile's mailboxes failed within
	// MassFailureWindow. Check the server and the profile.
	CodeMassFailure = "mass_failure"
	// CodeItemFailed: one incoming message could not be tracked; the alert names
	// the activity and says why.
	CodeItemFailed = "item_failed"
	// CodeTestAndEnableSucceeded: Test & Enable passed and enabled the mailbox.
	CodeTestAndEnableSucceeded = "test_and_enable_succeeded"
	// CodeTestAndEnableFailed: Test & Enable failed; the alert lists each
	// workload's problem.
	CodeTestAndEnableFailed = "test_and_enable_failed"
	// CodeCertificateExpiring: the profile's server-to-server certificate expires
	// within Config.CertificateExpiryWarning (a Warning to the profile's owner,
	// once a day). Register a new certificate with the application and save it
	// on the profile before it expires.
	CodeCertificateExpiring = "certificate_expiring"
	// CodeAllMailFiltered: a mailbox's first sync read mail but its IncomingFilter
	// tracked none of it (user mailboxes default to "responses to CRM email", which
	// only tracks replies to mail the CRM sent). Information only: change the
	// mailbox's filter with Admin.ChangeIncomingFilter (to FilterAll, say), which
	// also reads what was filtered out again.
	CodeAllMailFiltered = "all_mail_filtered"
)

// Codes of the ACT workload (appointments, contacts and tasks).
const (
	// CodeACTOwnedElsewhere: the mailbox's calendar and address book are marked
	// as synced by another deployment, so this one leaves them alone (two would
	// push each other's items back and forth). Stop ACT sync in the other
	// deployment, or turn on OrgSettings.SyncACTFromThisOrgOnly to take the
	// mailbox over, then run Test & Enable.
	CodeACTOwnedElsewhere = "act_owned_elsewhere"
	// CodeACTStoreMissing: the Store has no ACT records (it implements no
	// serversync.ACTStore), so ACT cannot run. Use a store of this module, or
	// implement ACTStore in yours.
	CodeACTStoreMissing = "act_store_missing"
	// CodeACTItemRefused: the server refused one appointment, contact or task the
	// host saved (invalid or too large for it: HTTP 400, 413, 415, 422). The others
	// sync on; that record stays pending and is tried again at every sync. Fix
	// the item in the host, or delete it.
	CodeACTItemRefused = "act_item_refused"
)
