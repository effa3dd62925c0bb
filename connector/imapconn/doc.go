// Package imapconn is the IMAP connector: it receives mail for serversync from any
// IMAP4rev1/IMAP4rev2 server (Dovecot, Cyrus, Exchange, Gmail, …) using
// go-imap v2.
//
//	conn := imapconn.New(nil) // safe for concurrent use; one per process is enough
//	sess, err := conn.OpenIncoming(ctx, target)
//	if err != nil { … } // a *serversync.ConnectorError: see its Kind, Scope and Code
//	defer sess.Close()
//	res, err := sess.Fetch(ctx, serversync.FetchRequest{Cursor: saved}, func(m *serversync.RemoteMessage) error {
//		// parse m.Body (valid only during this call), track it, store m.Cursor with it
//		return nil
//	})
//
// # Connecting
//
// Endpoint.TLS says how: implicit TLS (993), STARTTLS (143) or none. STARTTLS is
// mandatory when asked for: a server that refuses it gets the permanent error code
// "tls_unavailable", and no credentials are sent. Certificates are verified against
// the system roots plus Endpoint.RootCAsPEM. Credentials are never sent over an
// unencrypted connection unless Endpoint.AllowPlaintextAuth says so.
//
// Authentication follows auth.Credentials: SASL PLAIN (or LOGIN when PLAIN is not
// offered) for passwords; SASL PLAIN with the mailbox as authorization identity,
// or a master-user login ("alice@example.test*master"), for impersonation;
// XOAUTH2 or OAUTHBEARER for OAuth; SASL GSSAPI with a Kerberos ticket for
// imap/<host> when the protocol is Negotiate, or Auto with a Kerberos identity and
// GSSAPI offered (Windows-integrated credentials act for the mailbox as its
// authorization identity). A refused login is ErrorAuth, scoped to the mailbox for
// its own credentials and to the profile for a service account; so is a login the
// KDC refuses.
//
// # Folders and delegation
//
// Folder names are logical: "" and "INBOX" are the inbox, "Sent",
// "Undeliverable"… are created when Move or Append needs them. With delegation the
// service account logs in as itself and every folder of mailbox M is opened in the
// server's other-users namespace (from NAMESPACE): folder F becomes
// <prefix>M<delimiter>F, e.g. "shared/alice@example.test/INBOX" for Dovecot with
// "prefix = shared/%%u/". Without such a namespace, opening fails with
// "delegation_unavailable". A non-empty personal namespace prefix (Courier's
// "INBOX.") is put in front of folders other than the inbox. RemoteMessage.Folder
// is always the logical name.
//
// # Cursor
//
// A cursor is versioned JSON, {"v":1,"uidvalidity":U,"uid":N,"modseq":M}: the
// folder's UIDVALIDITY, the highest UID already offered (or skipped) and the
// folder's HIGHESTMODSEQ when the server has CONDSTORE (RFC 7162). Fetch resumes
// with the UIDs above N. When the folder's UIDVALIDITY is no longer U, every message
// is offered again from UID 1 and FetchResult.Reset is true; the store's
// per-mailbox message keys keep them from being tracked twice.
//
// # Fetching
//
// Fetch SELECTs the folder (with CONDSTORE when offered). If UIDNEXT-1 is not
// above N and HIGHESTMODSEQ is unchanged, nothing is new and Fetch returns after
// that one command. Otherwise it lists the new UIDs with UID SEARCH (adding SINCE
// when FetchRequest.Since is set; SINCE is a date in the server's time zone, so
// INTERNALDATE is also compared exactly here) — or, for a range no longer than
// one batch, fetches the range directly — and downloads them with UID FETCH (UID
// RFC822.SIZE INTERNALDATE BODY.PEEK[]) in batches of Options.FetchBatchSize,
// keeping the next batch's command in flight. BODY.PEEK leaves \Seen alone. Each
// body streams from the connection to the callback: memory does not grow with the
// mailbox. (Servers that run pipelined commands concurrently, like Dovecot, may
// send some of the next batch early; those messages are held in memory until
// their turn, at most 16 MiB of them: beyond that they are let go and their
// batch is fetched again in its turn.) The callback should not hold a message for minutes, since the server
// is waiting to send the rest; it must not use the session.
//
// With Options.MaxParallelFetch > 1, a fetch of more than four batches also opens
// up to MaxParallelFetch-1 extra connections for the same mailbox that EXAMINE the
// folder and download batches into memory ahead of the callback, each one only when
// FetchRequest.ExtraConnection (the Syncer's connection budget) has room for it.
// Delivery stays one message at a time in UID order; at most MaxParallelFetch+1
// batches are held, so memory is bounded by (MaxParallelFetch+1) × FetchBatchSize ×
// the message size (at most Options.MaxMessageBytes). An extra connection the
// server refuses is simply not used.
//
// # Waiting for mail
//
// Sessions implement serversync.IdleSession: WaitForChange waits with IDLE (RFC
// 2177), restarted every 25 minutes, and returns when the server reports EXISTS,
// EXPUNGE or FETCH for the folder. Servers without IDLE yield ErrIdleUnsupported,
// which also matches errors.ErrUnsupported.
//
// # Contexts, timeouts and errors
//
// go-imap takes no context, so every command runs with the session's connection
// bound to ctx: when ctx ends, the command is aborted at once, an error wrapping
// ctx.Err() is returned, and the session is broken (ErrSessionBroken): close it and
// open another. WaitForChange is the exception: it ends IDLE cleanly. While a
// command runs, the server must answer every read within Endpoint.Timeout.
//
// Whatever the server sends, what it costs is bounded: each response must
// arrive whole within Endpoint.Timeout of its first byte (plus a second per
// 64 KiB of message body), hold at most Options.MaxReplyBytes (1 MiB) outside
// message bodies, and each FETCH body at most Options.MaxMessageBytes (256 MiB,
// refused as soon as announced). Endless lines, atoms and lists, bodies over the
// limit and replies dripping a byte at a time end with "reply_too_long"
// (permanent) or "reply_too_slow" (transient). A server that greets in another
// protocol (POP3's "+OK", SMTP's "220") is a permanent, profile-wide
// "protocol_mismatch": the port or server type is wrong.
//
// Errors are *serversync.ConnectorError: network trouble, timeouts and
// [UNAVAILABLE]/[SERVERBUG]/[INUSE] replies are transient; other NO/BAD replies
// are permanent ("folder_not_found" for [NONEXISTENT]); the server's *imap.Error
// stays reachable with errors.As.
//
// # Concurrency
//
// A [Connector] is safe for concurrent use. A session is not: use it from one
// goroutine at a time, and not from inside a Fetch callback.
package imapconn
