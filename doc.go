// Package serversync brings CRM-style server-side synchronization to a Go
// application: email server profiles and mailboxes connected to real mail servers,
// incoming mail tracked as email activities exactly once, outgoing mail sent
// reliably, mailboxes tested and enabled, alerts raised.
//
// # The model
//
// A [Profile] (an "email server profile") says where and how to reach a mail system:
// the server type (IMAP/SMTP, POP3/SMTP, Exchange), incoming and outgoing locations,
// ports and TLS, whose credentials to use, and limits such as
// MaxConcurrentConnections. Many mailboxes share one profile.
//
// A [Mailbox] belongs to one user or queue (its "regarding"), or is a forward mailbox
// that receives mail users' server rules forward to it. It links to a profile and has
// a delivery method per workload (incoming, outgoing, and ACT: appointments, contacts
// and tasks), an approval state, per-workload enabled flags and test statuses, its own
// credentials when the profile says so, and the statistics a monitoring view shows.
//
// [OrgSettings] are deployment-wide: the default profile and delivery methods applied
// to new mailboxes, whether TLS may be turned off (AllowNonSSLEmail), whether mailboxes
// must be approved before anything is processed, alert levels, the tracking-token
// format and the correlation switches.
//
// Tracked and sent mail becomes an [EmailActivity]; problems become an [Alert] for the
// mailbox owner or, for profile-wide trouble, the profile owner.
//
// # Saving
//
// Every write goes through [Admin], which normalizes a record (fills ports from the
// server type and TLS mode, copies outgoing credential settings, applies defaults)
// and then validates it. An invalid record comes back as a *[ValidationError] naming
// the field and the reason, and nothing is saved:
//
//	admin := serversync.NewAdmin(store, &serversync.AdminConfig{CanApprove: myPrivilegeCheck})
//	profile, err := admin.CreateProfile(ctx, &serversync.Profile{
//		Name:           "Contoso IMAP",
//		ServerType:     serversync.ServerTypeIMAPSMTP,
//		IncomingServer: "imap.contoso.com",
//		OutgoingServer: "smtp.contoso.com",
//	}) // IncomingPort 993, OutgoingPort 465, TLS on, 10 connections, 100 s timeout
//	var verr *serversync.ValidationError
//	if errors.As(err, &verr) {
//		fmt.Println(verr.Field, verr.Reason)
//	}
//
// Mailboxes are created for a user or queue with the org's defaults applied, then
// approved (a privilege the host checks through AdminConfig.CanApprove):
//
//	mb, err := admin.CreateMailbox(ctx, &serversync.Mailbox{
//		EmailAddress:   "alice@contoso.com",
//		Regarding:      serversync.Regarding{Type: serversync.RegardingUser, ID: "user-42"},
//		ProfileID:      profile.ID,
//		Password:       auth.NewSecret(password), // the profile uses the mailbox's credentials by default
//		IncomingFilter: serversync.FilterAll,     // see below
//	})
//	err = admin.Approve(ctx, currentUserID, mb.ID)
//
// A user's mailbox saved without an IncomingFilter gets the CRM default,
// [FilterResponsesToCRM]: only replies to email the CRM sent are tracked, so the
// first sync of an ordinary inbox tracks nothing (queues and forward mailboxes
// default to [FilterAll]). Such a first sync raises an Information alert
// ([CodeAllMailFiltered]) saying so; [Admin.ChangeIncomingFilter] changes the filter
// and reads the inbox again from the start, tracking nothing twice.
//
// # Storage
//
// A [Store] persists everything. store/sqlite is the embedded default (one process,
// pure Go, no server); store/memory is for tests; store/storetest is the conformance
// suite every implementation passes, importable by third parties. Credentials
// ([auth.Secret]) never print in logs, errors or %v, and persistent stores seal them
// with AES-256-GCM under a key from an [auth.KeyProvider].
//
// # Connecting
//
// Connectors talk to mail servers: connector/imapconn (go-imap v2), connector/pop3conn,
// connector/smtpconn (go-smtp), connector/graph (Microsoft Graph, both ways, for
// Exchange Online) and connector/ews (EWS, both ways, for Exchange Server, with
// Autodiscover through the optional [Discoverer]); connector/standard wires them by
// server type. [ResolveTarget] turns a mailbox, its profile and the org
// settings into the endpoint and credentials a connector opens a session with; errors
// come back as a *[ConnectorError] classified transient, permanent or authentication,
// scoped to the mailbox or the whole profile. The TLS rules are checked there, against
// the org settings of the moment, not only when a profile is saved: a profile saved
// with TLS off is refused (code "tls_required_by_org") once AllowNonSSLEmail is turned
// off, and no connector sends credentials over an unencrypted connection unless
// AllowCredentialsOverNonSecureChannels is on. [Admin.UpdateOrgSettings] lists the
// profiles a change stops from connecting. [TestConnection] reports each step (for
// IMAP: connect, tls, greeting, authenticate, open-inbox; for SMTP: connect, tls,
// ehlo, authenticate, mail-from with a test envelope never sent) with advice on the
// one that failed. A mailbox on OAuth credentials has its access token refreshed
// through the profile's TokenURL when it expires; the Syncer stores each refreshed
// token on the mailbox, sealed, for the next connection.
//
// Exchange Online profiles default to server-to-server authentication
// ([CredentialsServerToServer]): OAuth 2.0 client credentials with a certificate,
// the application (ClientID) of a tenant (TenantID) signing a client assertion with
// CertificateKey. One app-only token per profile and resource serves every mailbox,
// and every process when the Store is an [AppTokenStore]; its owner is warned
// before the certificate expires:
//
//	profile, err := admin.CreateProfile(ctx, &serversync.Profile{
//		Name:           "Contoso Exchange Online",
//		ServerType:     serversync.ServerTypeExchangeOnline, // Graph, at https://graph.microsoft.com
//		TenantID:       "contoso.onmicrosoft.com",
//		ClientID:       "00000000-0000-0000-0000-000000000000",
//		CertificatePEM: certPEM,
//		CertificateKey: auth.NewSecret(keyPEM), // sealed at rest
//	})
//
// The same credentials on an IMAPSMTP profile log in to Exchange Online's IMAP and
// SMTP with XOAUTH2 as each mailbox.
//
// # Synchronizing
//
// A [Syncer] is the engine a host embeds. It leases due mailboxes from the Store
// (so several processes can share one PostgreSQL database without processing a
// mailbox twice) and runs each mailbox's incoming pipeline: approval gate, fetch after
// the cursor and ProcessEmailFrom, MIME parsing, the mailbox's filter, correlation
// by headers, tracking token or smart matching, the host's [TrackFunc], then the
// activities and the cursor stored in one transaction:
//
//	syncer, err := serversync.NewSyncer(store, standard.Connectors(nil), &serversync.Config{
//		Track: func(ctx context.Context, a *serversync.EmailActivity, m *serversync.Mailbox) error {
//			a.Regarding = lookUpRecord(a) // or return an error to fail the item
//			return nil
//		},
//		OnEvent: func(e serversync.Event) { … }, // keep it quick: it runs on the Syncer's goroutines
//	})
//	go syncer.Run(ctx)
//	mb, err = syncer.TestAndEnable(ctx, mb.ID) // test the servers, enable what passed
//	…
//	syncer.Stop(shutdownCtx) // once it returns, the store may be closed
//
// Nothing is fetched or sent for a mailbox until Test & Enable has passed.
// [Syncer.TestAndEnable] is for a person waiting on one mailbox;
// [Admin.ApplyDefaultEmailSettings] and [Syncer.TestAndEnableProfile] leave many to
// the running Syncers. One test runs per mailbox at a time, whichever process runs
// it, and its outcome is stored only if the settings it tested are still the saved
// ones.
//
// Each tracked message becomes an [EmailActivity] with [StatusTracked] (or
// [StatusFailed] when the Track hook refused it), and the [EventMailTracked] event
// carries its ID. It is stored once per mailbox under its MessageKey (built from
// the Message-ID and a digest of the content), so a redelivery, a resync, a retry
// or a crash never tracks it twice. A broken message is tracked with what could be
// read, ParseError set and its raw bytes kept; one that is merely odd (no Date, an
// unknown charset…) lists that in ParseWarnings. The Store's ListActivities and
// GetActivity read activities back. The package's runnable Example runs the whole
// loop against an in-process mail server.
//
// [WaitInitialSync] waits until a mailbox's first sync has succeeded, reading the
// store, so a host or a test can wait for it from any process; meanwhile
// [EventSyncProgress] events report how many of the messages on the server
// ([SyncProgress].Total, from IMAP STATUS) have been read, and
// Mailbox.Stats counts what the filter left out and what was skipped as already
// tracked.
//
// # Sending
//
// [Syncer.QueueEmail] (or the function [QueueEmail], from a process without a
// Syncer) stores an outgoing email; whichever Syncer claims it sends it through the
// mailbox's profile, adds the tracking token, marks it [StatusSent] and appends a copy
// to the server's Sent folder (IMAP):
//
//	email, err := syncer.QueueEmail(ctx, &serversync.EmailActivity{
//		MailboxID: mb.ID,
//		To:        []serversync.Address{{Email: "bob@fabrikam.com"}},
//		Subject:   "Your quote",
//		TextBody:  "…",
//	}) // then EventEmailSent, or EventEmailFailed with the reason
//
// An email its mailbox can never send is refused at once (see Errors). One queued
// before the mailbox is approved or has passed Test & Enable (or after a failure
// disabled its outgoing mail) waits for that, up to Config.MaxSendWait. Each attempt is recorded before the message leaves, so an
// email whose sender died while the server had it is marked failed with a warning
// that it may have been delivered: never sent twice without a person deciding to.
//
// # Appointments, contacts and tasks
//
// The ACT workload keeps a mailbox owner's appointments, contacts and tasks in step
// between the host and the server (CalDAV/CardDAV at Profile.ACTServerURL for IMAP
// and POP3 profiles, through connector/dav). The host's side is kept by a Store that
// implements [ACTStore]: each item is an [ACTRecord], and the records with Pending
// set are the queue of host changes, as queued emails are the outbox:
//
//	rec, err := syncer.SaveACTItem(ctx, "", &serversync.Appointment{
//		ACTHeader: serversync.ACTHeader{MailboxID: mailbox.ID},
//		Subject:   "Contract review",
//		Start:     serversync.DateTime{Time: start, TZID: "Europe/Berlin"},
//		End:       serversync.DateTime{Time: start.Add(time.Hour), TZID: "Europe/Berlin"},
//	})
//
// The Syncer pushes it at the mailbox's next ACT sync and brings the server's
// changes in as records, telling Config.OnACTChange after each is stored; deletes go
// both ways ([Syncer.DeleteACTItem]). Only records the host saved are written to the
// server, each exactly once across crashes (its UID is fixed when the host creates
// it). Items changed on both sides are settled by OrgSettings.ACTConflictPolicy
// (last modified wins by default) and recorded ([Syncer.ACTConflicts]). A mailbox
// another deployment marked as its own is left alone unless
// OrgSettings.SyncACTFromThisOrgOnly takes it over. Test & Enable tests ACT for real
// (a probe item of each kind written and deleted) and sets Mailbox.ACTStatus.
//
// # Errors
//
// Check errors with errors.Is and errors.As; their text is for people and never
// holds a secret.
//
// Admin returns a *[ValidationError] when a record breaks a rule: Entity and Field
// name what to fix, Reason says how, and nothing was saved (a name or address
// already taken also wraps [ErrAlreadyExists]). Other Admin and Store errors wrap
// [ErrNotFound], [ErrProfileInUse] (a profile that mailboxes still use) or
// [ErrPermissionDenied] (AdminConfig.CanApprove said no); every store fails with
// [ErrClosed] once closed.
//
// What goes wrong between a mailbox and its mail servers is a *[ConnectorError]: the
// connectors' errors, [ResolveTarget]'s, and what the Syncer finds before any server
// is involved. Kind says whether retrying can help: [ErrorTransient] (network trouble,
// timeouts, 4xx replies, a busy server) may work later; [ErrorPermanent] (5xx, a
// missing folder, TLS unavailable) and [ErrorAuth] (credentials refused or expired)
// will not. Scope is [ScopeMailbox], [ScopeProfile] (every mailbox of the profile is
// hit: the server down, TLS broken) or [ScopeItem] (one email). Code is stable and
// machine-readable ([CodeAuthFailed], [CodeTLSUnavailable], [CodeNoProfile]…, all
// listed in codes.go with what fixes each), the one Mailbox.Stats.LastError and
// alerts carry. Err keeps the protocol's own error:
//
//	var ce *serversync.ConnectorError
//	if errors.As(err, &ce) && ce.Kind == serversync.ErrorAuth {
//		// ask the mailbox's owner for a new password
//	}
//
// Some wrap a sentinel as well: [ErrConnectionForbidden] when the org's security
// settings forbid the profile to connect (Code [CodeTLSRequiredByOrg],
// [CodeTLSRequired] or [CodePlaintextAuthRefused]), [ErrUnsupportedCredentials] for a
// credential source no connector implements, and [ErrInvalidEmail] when QueueEmail
// refuses an email (Code [CodeNotServerSideSync], [CodeNoProfile], [CodeNotApproved],
// [CodeNoConnector]…; a malformed email, without recipients say, wraps it without a
// ConnectorError). [Syncer.TestAndEnable] returns an error wrapping
// [ErrSettingsChanged] when the settings changed while it tested (call it again), or
// [ErrLeaseLost] when it stalled past its lock. [Syncer.Run] returns
// [ErrSyncerStopped] after Stop. A panic in a host hook becomes a *[HookPanicError],
// and the Syncer goes on.
//
// A host rarely handles a sync or send failure itself: the Syncer does (DESIGN §6).
// It keeps a mailbox's failure in Mailbox.Stats.LastError until that workload works
// again or Test & Enable passes, and raises an [Alert] for the mailbox owner and,
// for profile-wide trouble, the profile owner:
//   - Incoming, permanent or authentication: the workload is disabled at once
//     ([EventMailboxDisabled], an Error alert) until Test & Enable passes again.
//   - Incoming, transient: retried Config.RetryInterval (5 minutes) later, with a
//     Warning alert at the first; the tenth in a row disables the workload like a
//     permanent failure.
//   - Failures that are not a mail server's (the Store unreachable, the
//     AddressResolver failing): retried for as long as it takes, never counted
//     towards disabling the mailbox.
//   - Outgoing: a transient failure is retried with back-off until the email has had
//     Config.MaxSendAttempts attempts; then, or at once for a permanent failure, the
//     email fails ([EventEmailFailed], an Error alert about it), and an
//     authentication or profile-wide failure also disables outgoing mail for the
//     mailbox. An email that may have been delivered ([CodeSendOutcomeUnknown]) is
//     failed with a Warning, never sent again.
//   - An error from the Track hook fails that message only; the sync goes on.
//   - ACT follows the incoming rules, with its own ACTEnabled, ACTStatus and
//     Stats.ACTPostponedUntil ([EventACTSynced] reports each sync).
//
// # Monitoring
//
// Package monitor is an http.Handler a host mounts under a path prefix behind its
// own authentication: an overview of every profile and mailbox, a page per profile
// and per mailbox (statuses, the last error with [CodeAdvice], counts, progress,
// recent activities, alerts, lease holders), and the admin actions with CSRF
// protection or a read-only mode. Its counts come from the Store through
// [CountActivities] and [RecentActivities], one query each on the stores of this
// module ([ActivityCountStore], [RecentActivityStore]). Test & Enable outcomes,
// syncs that read mail, and disabled workloads are logged at Info or above.
//
// # Concurrency
//
// Admin, the Syncer, the stores and the connectors are safe for concurrent use. Records (Profile,
// Mailbox, EmailActivity…) are plain values: stores copy them in and out.
package serversync
