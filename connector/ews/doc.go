// Package ews is the Exchange Web Services connector (Exchange Server
// on-premises): a small SOAP client over net/http and encoding/xml for the
// operations serversync needs, without a SOAP library. It implements
// serversync.IncomingConnector (with FolderSession), OutgoingConnector, Prober,
// SentCopyKeeper and Discoverer (Autodiscover).
//
//	conn := ews.New(nil) // safe for concurrent use; one per process
//	sess, err := conn.OpenIncoming(ctx, target) // target.Endpoint.URL = "https://mail.contoso.com/EWS/Exchange.asmx"
//
// # Addressing and authentication
//
// Requests are POSTed to Endpoint.URL (a URL naming only a host gets
// /EWS/Exchange.asmx) with RequestServerVersion Exchange2013_SP1
// (Options.ServerVersion). Credentials decide how the mailbox is reached:
// auth.KindPassword logs in as the mailbox's user; auth.KindImpersonation logs in
// as the service account and adds an ExchangeImpersonation header with the
// mailbox's PrimarySmtpAddress; auth.KindDelegation logs in as the service
// account and names the mailbox in every DistinguishedFolderId;
// auth.KindIntegrated (Windows-integrated) logs in as the process's own Kerberos
// identity and impersonates the mailbox, as a Windows service account with the
// ApplicationImpersonation role does. Authentication is
// Options.Authenticator's: [BasicAuth] by default (HTTP Basic, refused over
// plain http unless Endpoint.AllowPlaintextAuth; a bearer token for OAuth
// credentials); [HTTPAuth] (what connector/standard uses) adds Negotiate (SPNEGO
// with Kerberos) and NTLM as the credentials' Protocol says, and Auto answers
// what the server offers. Negotiate is tested against a real MIT KDC with the
// ewstest fake validating tickets with gokrb5's service side. Redirects are never
// followed: the password goes to the configured URL only.
//
// # Incoming mail
//
// Fetch runs SyncFolderItems on the inbox with MaxChangesReturned 512 until
// IncludesLastItemInRange, and downloads new items' MimeContent with GetItem,
// Options.BatchSize at a time. The cursor is JSON,
// {"v":1,"folder":"inbox","state":"…","skip":3,"last":"…"}: the SyncState the
// message's round was asked with, how many of the round's created items were
// handed over and the id of the last of them (the round's last message carries
// the state after the round instead). Exchange answers a state with the same
// changes, so a crash part way asks for the round again and skips what was
// handed over; a round that comes back otherwise is offered whole, and the
// Store's message keys skip what was tracked already.
// ErrorInvalidSyncStateData starts over without a state and sets
// FetchResult.Reset. Moves go to a folder found with FindFolder (under
// msgfolderroot, then the inbox) or made with CreateFolder; Delete moves to
// Deleted Items.
//
// # Outgoing mail
//
// Send is CreateItem with MessageDisposition SendAndSaveCopy and the MIME content:
// Exchange sends it and keeps the Sent Items copy (KeepsSentCopy). Envelope
// recipients missing from the headers are added as Bcc (connector.AddBcc).
//
// # Errors
//
// SOAP faults and response messages of class Error come back as a
// *serversync.ConnectorError wrapping a *[ResponseError] with EWS's ResponseCode.
// ErrorServerBusy is waited out as its BackOffMilliseconds says
// (Options.MaxBusyRetries, MaxRetryWait), then fails as serversync.CodeThrottled,
// transient. ErrorImpersonateUserDenied and ErrorAccessDenied are
// CodeNoPermission, ErrorNonExistentMailbox CodeMailboxNotFound, all permanent;
// HTTP 401 is CodeAuthFailed (profile-wide for a service account).
//
// # Autodiscover
//
// [Connector.Discover] finds a mailbox's EWS URL: see it for the order of the
// endpoints and the rules that keep credentials on the organisation's hosts.
package ews
