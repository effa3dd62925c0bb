// Package ews is the Exchange Web Services connector (Exchange Server
// on-premises): a small SOAP client over net/http and encoding/xml for the
// operations serversync needs, without a SOAP library. It implements
// serversync.IncomingConnector (with FolderSession), OutgoingConnector, Prober,
// SentCopyKeeper, Discoverer (Autodiscover) and ACTConnector (appointments,
// contacts and tasks).
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
// # Appointments, contacts and tasks
//
// [Connector.OpenACT] works on the mailbox's distinguished calendar, contacts
// and tasks folders, reached as mail is (own login, impersonation, delegation).
// Changes runs SyncFolderItems (IdOnly) until IncludesLastItemInRange and reads
// the created and updated items with GetItem (AllProperties, text bodies, the
// extended properties below), Options.BatchSize at a time; the cursor is
// "ews-act1:<kind>:<SyncState>". A cursor of another kind or connector, or
// ErrorInvalidSyncStateData, starts over without a state and sets Reset. An
// item changed several times between two calls is reported once, as it is now.
//
// Put creates with CreateItem (SendMeetingInvitations SendToNone) and updates
// with UpdateItem: SetItemField for every field with a value and
// DeleteItemField for every one without, ConflictResolution NeverOverwrite with
// the ChangeKey ifMatch (AlwaysOverwrite when ifMatch is ""). A stale ChangeKey
// (ErrorIrresolvableConflict) is a *serversync.ACTConflictError. The item's UID
// is kept in a named extended property (ServersyncUID in serversync's property
// set); before a create, FindItem restricted on it looks for the UID and a
// holder is refused as an *serversync.ACTConflictError naming its ItemId, so a
// retried create adopts instead of duplicating. Delete is DeleteItem
// MoveToDeletedItems (SendMeetingCancellations SendToNone); EWS's DeleteItem
// takes no ChangeKey, so a conditional delete compares it with GetItem first.
//
// Times travel as UTC instants with StartTimeZone/EndTimeZone named by their
// Windows zone (internal/tzwin), and read back in the IANA zone. A recurring
// series is its master's Recurrence (daily, weekly with days, absolute monthly,
// absolute yearly; numbered, end date or no end; relative monthly is read);
// its exceptions are deleted occurrences and its overrides modified ones, both
// addressed by OccurrenceItemId InstanceIndex (the occurrence's place in the
// RRULE's expansion) and read back from DeletedOccurrences and
// ModifiedOccurrences.
//
// What does not survive a round trip through Exchange:
//   - RRULEs EWS has no pattern for (BYSETPOS, several BYMONTHDAY, BYHOUR,
//     HOURLY, yearly with INTERVAL, relative patterns on write) are refused,
//     not changed; UNTIL keeps only its date. Removing an exception or
//     override from a series on update is not undone on the server (EWS
//     cannot restore an occurrence), and an override carries only subject,
//     body, location, start and end.
//   - A zone without a Windows name is written as UTC instants (the wall time
//     after a DST change may drift); all-day events are written in UTC.
//   - The organizer is kept in an extended property (Exchange makes the
//     mailbox the organizer); attendees' order in another (EWS splits required
//     and optional); ResponseDelegated becomes no response, and real Exchange
//     sets ResponseType from replies rather than from what is written.
//   - Contacts: at most three emails (EmailAddress1 is read back as "work", 2
//     as "home", 3 as "other"), one address each for work, home and other,
//     one phone per EWS key (work, home, cell, fax, pager, other); the prefix
//     is PidTagDisplayNamePrefix; the birthday is a day.
//   - Tasks: priority is Importance (1–4 High, 5 and 0 Normal read back as 0,
//     6–9 Low read back as 9); cancelled is Deferred; the time zone of start
//     and due is an extended property, and Exchange itself may keep only the
//     dates of StartDate and DueDate.
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
