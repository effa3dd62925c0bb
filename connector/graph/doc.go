// Package graph is the Microsoft Graph mail connector (Exchange Online): a small
// net/http client for the part of Graph v1.0 serversync needs, without the Graph
// SDK. It implements serversync.IncomingConnector (with FolderSession),
// OutgoingConnector, Prober and SentCopyKeeper.
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
// # Sending
//
// Send posts the MIME message to sendMail, base64-encoded (202 Accepted); Graph takes
// the recipients from the To, Cc and Bcc headers, so envelope recipients that none of
// them name get a Bcc header. Graph saves the copy in Sent Items itself
// (KeepsSentCopy). Messages over 3.5 MB of base64 are refused before sending (the API
// takes 4 MB request bodies); larger ones need an upload session, which this connector
// does not do.
package graph
