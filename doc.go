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
//		EmailAddress: "alice@contoso.com",
//		Regarding:    serversync.Regarding{Type: serversync.RegardingUser, ID: "user-42"},
//		ProfileID:    profile.ID,
//	})
//	err = admin.Approve(ctx, currentUserID, mb.ID)
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
// Connectors talk to mail servers: connector/imap (go-imap v2), connector/pop3 and
// connector/smtp (go-smtp). [ResolveTarget] turns a mailbox, its profile and the org
// settings into the endpoint and credentials a connector opens a session with; errors
// come back as a *[ConnectorError] classified transient, permanent or authentication,
// scoped to the mailbox or the whole profile. The TLS rules are checked there, against
// the org settings of the moment, not only when a profile is saved: a profile saved
// with TLS off is refused (code "tls_required_by_org") once AllowNonSSLEmail is turned
// off, and no connector sends credentials over an unencrypted connection unless
// AllowCredentialsOverNonSecureChannels is on. [Admin.UpdateOrgSettings] lists the
// profiles a change stops from connecting. [TestConnection] reports each step
// (connect, tls, authenticate, open the inbox / send a test envelope) with advice on
// the one that failed. A mailbox on OAuth credentials has its
// access token refreshed through the profile's TokenURL when it expires; the Syncer
// stores each refreshed token on the mailbox, sealed, for the next connection.
//
// # Synchronizing
//
// A [Syncer] is the engine a host embeds. It leases due mailboxes from the Store
// (so several processes can share one PostgreSQL database without processing a
// mailbox twice), runs each mailbox's incoming pipeline — approval gate, fetch after
// the cursor and ProcessEmailFrom, MIME parsing, the mailbox's filter, correlation
// by headers, tracking token or smart matching, the host's [TrackFunc], then the
// activities and the cursor stored in one transaction — and sends queued email with
// each attempt recorded before the message leaves:
//
//	syncer, err := serversync.NewSyncer(store, standard.Connectors(nil), &serversync.Config{
//		Track: func(ctx context.Context, a *serversync.EmailActivity, m *serversync.Mailbox) error {
//			a.Regarding = lookUpRecord(a) // or return an error to fail the item
//			return nil
//		},
//		OnEvent: func(e serversync.Event) { … },
//	})
//	go syncer.Run(ctx)
//	syncer.TestAndEnable(ctx, mailboxID)            // test the servers, enable what passed
//	syncer.QueueEmail(ctx, &serversync.EmailActivity{…}) // sent by whichever host claims it
//	syncer.Stop(shutdownCtx)
//
// Errors are classified (DESIGN §6): permanent ones (bad credentials, 5xx) disable
// the workload at once, transient ones are retried [MaxTransientFailures] times about
// five minutes apart; each raises an [Alert] for the mailbox owner and, when the
// whole profile is concerned, the profile owner.
//
// # Concurrency
//
// Admin, the Syncer, the stores and the connectors are safe for concurrent use. Records (Profile,
// Mailbox, EmailActivity…) are plain values: stores copy them in and out.
package serversync
