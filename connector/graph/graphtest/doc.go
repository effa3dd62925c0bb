// Package graphtest is a fake Microsoft Graph v1.0 mail server over TLS on
// loopback, holding real state: mailboxes with folders and messages, a change log
// per mailbox behind every delta token, and the documented failures of Exchange
// Online (throttling, unavailability, expired sync state, replayed pages).
//
// It speaks the subset of Graph that serversync's connector/graph uses, as
// Microsoft documents it: mail folders (get, list with $filter on
// displayName, create), messages delta with $skiptoken/$deltatoken paging,
// messages list, $value, move, PATCH isRead, DELETE, creating a message from
// base64 MIME, sendMail with base64 MIME, and $batch. Requests are
// authenticated with bearer tokens, either static ones ([Server.AddToken]) or
// through [Options.Authenticate], which can verify real JWTs.
//
//	srv, err := graphtest.NewServer(nil)
//	…
//	defer srv.Close()
//	srv.AddMailbox("alice@contoso.test", "tenant-1")
//	srv.AddToken("app-token", graphtest.Principal{AppOnly: true, TenantID: "tenant-1",
//		Permissions: []string{"Mail.ReadWrite", "Mail.Send"}})
//	srv.Deliver("alice@contoso.test", "inbox", mime, time.Now())
//	// A client that trusts srv.RootCAsPEM() talks to srv.URL()+"/v1.0".
//
// # State
//
// Every change to a mailbox (a message arriving, read, moved, deleted) takes
// the next number of the mailbox's change log. A delta round without a token
// lists the folder's messages (those received since the $filter's time, when
// there is one); its deltaLink remembers the log's position, and the next round
// lists exactly what changed in the folder since: new and changed messages in
// full, and messages that left it as {"id", "@removed": {"reason": "deleted"}}.
// A round's items are fixed when it starts, so a nextLink requested twice gives
// the same page. Tokens live until [Server.ExpireSyncState] or
// [Server.InvalidateSyncState]; an unknown token is 410 SyncStateNotFound.
//
// # Appointments, contacts and tasks
//
// Each mailbox also holds events of its default calendar (/events, /calendar,
// /calendarView/delta with startDateTime and endDateTime, /events/{id}/instances),
// contacts (/contacts, /contacts/delta) and Microsoft To Do lists (/todo/lists, the
// default one and "Flagged Emails") with tasks (/todo/lists/{id}/tasks, …/delta,
// open extensions). Items keep the JSON properties a client wrote (a PATCH replaces
// the top-level ones it names); the server adds id, @odata.etag and changeKey,
// created and modified times, iCalUId, type. Event times come back in UTC (or the
// zone of Prefer: outlook.timezone) with the zone as sent kept in
// originalStartTimeZone under its Windows name (IANA names are taken and mapped);
// To Do times come back in UTC. A series master with a patternedRecurrence is
// expanded into occurrences: calendarView delta lists single events, occurrences and
// exceptions in its window, never the master; deleting an occurrence cancels it,
// patching one makes it an exception, changing the master's recurrence drops both.
// Deltas share the change log and tokens of mail ([Server.ExpireSyncState] and
// [Server.InvalidateSyncState] expire them too; [Server.ReplayNextPage] and
// [Server.Throttle] apply). If-Match with another ETag is 412
// ErrorIrresolvableConflict. Single-value extended properties are kept, returned by
// $expand=singleValueExtendedProperties($filter=id eq '…') and filtered by
// $filter=singleValueExtendedProperties/Any(ep: ep/id eq '…' and ep/value eq '…').
// Routes need Calendars.*, Contacts.* or Tasks.* (Read or ReadWrite, .All for
// applications).
//
// # Catching careless clients
//
// The fake answers as Graph may, not as a client might hope:
//   - ids are immutable only with Prefer: IdType="ImmutableId"; without it a
//     message's id changes when it moves, and the old id is 404;
//   - links are absolute and in Graph's own form (mailfolders('id')/…), to be
//     followed as they are;
//   - a fifth concurrent request for a mailbox is 429 ApplicationThrottled with
//     Retry-After: 1; $batch runs four of its requests at a time, each
//     counted, authorized and throttled on its own, and its responses come
//     back shuffled;
//   - [Server.Throttle], [Server.Unavailable] and [Server.ReplayNextPage]
//     inject the failures Graph documents;
//   - request bodies are capped at 4 MB (sendMail: 413 ErrorMessageSizeExceeded).
//
// [Options.OnRequest] is called for every admitted request while it counts as
// in flight: a test blocks in it to make requests overlap without sleeping.
// The counters ([Server.Requests], [Server.MaxConcurrent], [Server.Throttled],
// [Server.Batches], [Server.Sent]) let a test check a client's manners.
//
// # Sending
//
// sendMail parses the recipients from the To, Cc and Bcc headers of the MIME.
// Recipients that are mailboxes of the fake get the message in their inbox;
// the others go to [Options.Deliver] (for example to a real Postfix), both
// without the Bcc header. The sender's copy in Sent Items keeps it, as
// Exchange's does.
//
// A Server is safe for concurrent use. It does not depend on package testing,
// so examples and demos can use it too.
package graphtest
