// Package graph is the Microsoft Graph mail connector (Exchange Online): a small
// net/http client for the part of Graph v1.0 serversync needs, without the Graph
// SDK. It implements serversync.IncomingConnector (with FolderSession),
// OutgoingConnector, Prober, SentCopyKeeper and ACTConnector.
//
//	conn := graph.New(nil) // safe for concurrent use; one per process
//	sess, err := conn.OpenIncoming(ctx, target) // target.Endpoint.URL = "https://graph.microsoft.com"
//
// # Addressing and authentication
//
// Requests go to {Endpoint.URL}/v1.0 (https://Host:Port when URL is empty). App-only
// credentials (auth.KindAppOnly, server-to-server) address the mailbox as
// /users/{EmailAddress}; delegated OAuth credentials (auth.KindOAuth) as /me. Other
// credential kinds are refused (code "auth_unavailable"). A token is asked of
// Credentials.TokenSource for every request (the source caches it). 401 is an
// authentication failure (profile-wide for app-only tokens), 403 a missing
// permission or an application access policy that excludes the mailbox. Links Graph
// returns (nextLink, deltaLink) are only followed on the endpoint's own host, and
// redirects are not followed: the token never goes elsewhere.
//
// # Incoming mail
//
// Fetch reads a folder's message delta ("" is the inbox; other names are display
// names of top-level folders). The cursor is JSON,
// {"v":1,"folder":"inbox","link":"…","skip":3,"last":"…"}: link is the delta page to
// request (a nextLink, or the deltaLink once a round is complete), skip how many items
// of it were handed over and last the id of the last of them. A message's cursor names
// its own page, so a crash in the middle of a page resumes by requesting that page
// again (Graph answers the same link with the same page) and skipping what was handed
// over; a page that comes back otherwise (its item at skip is not last: a replay put
// items in front) is offered whole again, which loses nothing. A delta token Graph no longer
// knows (410 SyncStateNotFound, SyncStateInvalid, resyncRequired) restarts from a
// fresh delta and returns FetchResult.Reset: the Syncer's message keys keep the
// messages offered again from being tracked twice. Updated messages come again as
// whole items and are offered again too (the message keys catch them); removed ones
// are ignored. FetchRequest.Since becomes the delta's receivedDateTime filter.
//
// The MIME of a page's messages is downloaded through $batch (Options.BatchSize per
// batch, default 20), reordered into page order, items throttled inside a batch sent
// again after their Retry-After; a batch reply over Options.MaxBatchBytes is given up
// and its messages are streamed one by one with GET $value, as they are with
// BatchSize 1. Every JSON reply is held to MaxJSONBytes and every message to
// Options.MaxMessageBytes; replies are bounded in time like the other connectors'
// (the endpoint timeout plus a second per 64 KiB of body).
//
// No IdleSession: Graph pushes changes through webhooks, which need a public HTTPS
// endpoint for Graph to call; the Syncer polls.
//
// # Concurrency and throttling
//
// Graph allows 4 concurrent requests per application and mailbox. The connector keeps
// a budget of Options.MaxInFlight (default 4) per mailbox, shared by all its sessions.
// Graph evaluates the requests inside a $batch against that limit one by one and runs
// several of them at once, so a $batch of n requests holds min(n, MaxInFlight) slots of
// the budget while it is in flight: a batch of 20 takes the whole budget, which keeps
// the mailbox's concurrent requests (as Graph counts them) at MaxInFlight, and any
// batch item Graph still throttles is retried after its Retry-After.
//
// 429 and 503 answers with Retry-After are waited out (with a timer, ctx-aware) and
// the request sent again, up to Options.MaxRetryWait of waiting per request; past it
// the request fails with the transient code "throttled". Stats counts requests,
// batches, throttled answers and the time waited.
//
// Sessions hold no connection: requests go through an HTTP client per set of extra
// root CAs (or Options.HTTPClient), whose idle keep-alive connections close after
// 90 seconds or on Connector.CloseIdleConnections.
//
// # Appointments, contacts and tasks
//
// OpenACT opens an ACT session (serversync.ACTSession, with ACTOwnerMarker) on the
// mailbox's default calendar, default contacts folder and default Microsoft To Do
// list (wellknownListName defaultList). Changes follows /calendarView/delta (the
// window Options.CalendarPast..CalendarFuture around the session's opening, fixed in
// the delta link), /contacts/delta and /todo/lists/{id}/tasks/delta, reading every
// page of a round; the cursor is the round's deltaLink as JSON
// {"v":1,"kind":"task","link":"…"}, for appointments with the window and the ids of
// its series. A calendar window only grows: once the session's ends more than 30
// days past the cursor's, a round over both starts (a Reset that lists everything
// the old window did, so it deletes nothing), and a round after an expired token
// keeps the old window's start. calendarView delta lists single events,
// occurrences and exceptions, not series masters: an occurrence or exception stands
// for its series, which is read with its instances in the window. Each changed item
// is read with a GET of its own (several at once, within the mailbox's budget), to
// expand what this connector keeps on it. @removed entries are deletions (an
// occurrence deleted in Outlook also comes as the deletion of an id the caller never
// held, beside its changed series), except that calendarView also reports an event
// that left the window that way: removed events are looked up, and one still on the
// server is reported changed. Appointment changes carry their window
// (serversync.ACTChanges.Window), so that a Reset deletes nothing outside it. An expired or unknown delta token (410
// SyncStateNotFound, SyncStateInvalid, 400 resyncRequired), a 404 on a stored link or
// a cursor this connector did not make starts a fresh round reported as Reset.
//
// Writes are POST, PATCH and DELETE with If-Match: the caller's ChangeKey, which is
// Graph's @odata.etag (W/"…"); Graph's 412 becomes *serversync.ACTConflictError.
// ACTHeader.UID is kept in a single-value extended property on events and contacts
// (String {8a1c9e3e-…} Name serversync.uid), found by $filter before a create, and
// in an open extension (com.serversync.act) on To Do tasks, found by listing the
// list once per session with $expand=extensions: a create whose UID is already
// there returns *ACTConflictError naming that item. Items made elsewhere take
// iCalUId (events) or their Graph id (contacts, tasks) as UID. The ownership marker
// is a single-value extended property of the default calendar.
//
// Times are asked for in UTC (Prefer: outlook.timezone="UTC") and shown in the
// zone of originalStartTimeZone / originalEndTimeZone, which Exchange keeps under
// Windows names: internal/tzwin maps them to IANA (CLDR windowsZones). Writes send
// the Windows name of an IANA zone the table knows, the IANA name otherwise.
// Recurrence maps RRULE to patternedRecurrence and back (canonical order: FREQ,
// COUNT|UNTIL, INTERVAL, BYDAY, BYMONTHDAY, BYMONTH, BYSETPOS, WKST); occurrences
// in Recurrence.Exceptions are deleted and Overrides patched onto their occurrences
// after the series is written. Bodies are read as text (Prefer:
// outlook.body-content-type="text").
//
// What Graph cannot hold, or holds otherwise:
//   - RRULEs beyond patternedRecurrence (BYHOUR, several BYMONTHDAY, FREQ=HOURLY,
//     ordinals other than 1–4 and -1, ordinals in WEEKLY) are refused; UNTIL keeps
//     only its date (read back as the end of that day in the series' zone, a date
//     for an all-day series); DAILY with BYDAY comes back as WEEKLY; the RRULE text
//     comes back in the canonical order.
//   - A zone Exchange names neither by a Windows name the table knows nor by an
//     IANA name (a custom zone of desktop Outlook, tzone://Microsoft/Custom) reads
//     as UTC; the instant is right.
//   - EXDATEs are read as the occurrences the rule makes in the window that Graph no
//     longer lists (v1.0 has no list of deleted occurrences); outside the window
//     they are not seen, and an occurrence once deleted cannot be restored short of
//     changing the recurrence (Exchange then drops every exception).
//   - Attendee responses and the organizer are the server's: Exchange sets them
//     itself (the fake keeps what was written). ResponseDelegated has no Graph
//     value (written as none). Writing attendees makes Exchange send invitations.
//   - Sensitivity "personal" reads as normal.
//   - Contacts: three emails, one mobile phone, one business, home and other
//     address; labels and order of emails, phones and addresses are kept in a
//     second extended property (serversync.contactLayout) and used while they fit
//     what is on the server.
//   - Tasks: To Do has no percent complete, no 1–9 priority and no zone of a date:
//     the open extension keeps them (importance high/normal/low is the visible
//     part); status cancelled is written as deferred, waitingOnOthers reads as
//     in-process. Real To Do may keep only the date of dueDateTime.
//
// # Sending
//
// Send posts the MIME message to sendMail, base64-encoded (202 Accepted); Graph takes
// the recipients from the To, Cc and Bcc headers, so envelope recipients that none of
// them name get a Bcc header. Graph saves the copy in Sent Items itself
// (KeepsSentCopy). Messages over 3.5 MB of base64 are refused before sending (the API
// takes 4 MB request bodies); larger ones need an upload session, which this connector
// does not do.
package graph
