// Package postgres is the serversync.Store for many processes: PostgreSQL, reached
// through pgx v5 and its connection pool (pgxpool). Several Syncer hosts share one
// database and split the mailboxes between them through leases; the embedded
// store/sqlite is the default for a single process.
//
// # Opening a store
//
//	store, err := postgres.Open(ctx, "postgres://sync@db.example.com:5432/crm?sslmode=verify-full",
//		&postgres.Options{Schema: "serversync"})
//	if err != nil {
//		return err
//	}
//	defer store.Close()
//
// The connection string is a postgres:// URL or a keyword/value string
// ("host=db.example.com user=sync dbname=crm sslmode=verify-full"), with everything
// pgx accepts: the PG* environment variables fill what it leaves out, and a
// password is best kept in PGPASSWORD or a .pgpass file rather than in the string.
// Errors never show the password.
//
// Open migrates the schema, so its role needs to create tables (and the schema, if
// it is missing) the first time and after an upgrade; a role with only SELECT,
// INSERT, UPDATE and DELETE on the tables can run the store once they exist.
//
// Credentials in profiles and mailboxes, and shared app-only access tokens
// (serversync.AppTokenStore), are sealed with AES-256-GCM before they are written,
// as in store/sqlite; Options.Keys gives the keys (by default
// auth.KeysFromEnv reads SERVERSYNC_SECRET_KEY). Every process sharing a database
// needs the same keys. RotateSecrets re-seals what an older key sealed.
//
// # Schema
//
// Options.Schema names the PostgreSQL schema that holds the store's tables. Open
// creates it when it is missing and sets it as the search_path of every pooled
// connection. Give the store a schema of its own ("serversync"): its tables
// (profiles, mailboxes, activities…) then never meet an application's tables of the
// same name, and tests can give every test a fresh schema and drop it afterwards.
// With Schema empty, the tables go where the connection's search_path points,
// normally "public".
//
// # Migrations
//
// The schema is versioned by the migrations embedded in the binary; the table
// serversync_migrations records which ones ran. Open applies the missing ones in a
// single transaction that first takes an advisory lock on the schema's name, so
// processes starting together (a rolling deploy, a fleet restarting) queue behind
// the first, which migrates, and then find nothing left to do. A database migrated
// by a newer serversync is refused with a *SchemaTooNewError rather than misread.
//
// # Pool settings
//
// pgxpool reads its settings from the connection string:
//
//   - pool_max_conns: the most connections the store opens (default: 4 or the number
//     of CPUs, whichever is more);
//   - pool_min_conns: connections kept open while idle (default 0);
//   - pool_max_conn_lifetime, pool_max_conn_idle_time: when connections are
//     recycled (defaults 1h and 30m);
//   - pool_health_check_period: how often idle connections are checked (default 1m).
//
// Every store call holds a connection for one statement or one short transaction
// (Update callbacks run inside it, which is one reason they must not call the
// store). A List method holds one while it reads a page of at most 100 rows, the
// caller's loop body included, so store calls made from that loop take a second.
// Size pool_max_conns to the Syncer's concurrency, and the server's max_connections
// to the sum over all hosts.
//
// # Leasing across processes
//
// A mailbox is due once its next_sync_at (Mailbox.NextSyncAt) has come. AcquireLeases takes due
// mailboxes, most overdue first, in one statement: it selects them FOR UPDATE SKIP
// LOCKED, so a host never waits for rows another host is leasing at that moment and
// two hosts never get the same mailbox; each leased row records the host, the expiry
// (the caller's Now+TTL) and a token incremented by every acquisition. A mailbox
// whose holder neither renewed nor released it before the expiry is due to be taken
// over: the next AcquireLeases takes it, reports Lease.TakenOver and increments the
// mailbox's ForcedUnlockCount. RenewLease and ReleaseLease succeed only while the
// row still names the lease's host and token, and fail with serversync.ErrLeaseLost
// once the mailbox was released or taken over, so a host that stalled finds out
// before it does more work. Expiry is judged by the callers' clocks (the Now they
// pass), so the hosts' clocks should agree to well within a lease's TTL.
//
// ReleaseLease commits without waiting for its write-ahead log record to reach disk
// (synchronous_commit off for that one transaction). A release that a crash of the
// database server loses leaves the lease as it was: it expires and is taken over,
// counted in ForcedUnlockCount, and no mailbox is held twice. Anything that depends
// on a release (another host acquiring the mailbox) commits synchronously, which
// flushes the log, the release included, first. Acquiring and renewing, which a
// lost commit could turn into two holders, commit synchronously.
//
// ClaimOutgoing claims outgoing emails the same way, FOR UPDATE SKIP LOCKED, so no
// email is claimed by two hosts; a claim whose sender died expires and is claimed
// again.
//
// # Listing
//
// List methods stream: they read 100 rows a page, each page one query resuming
// after the last row of the previous one, and yield rows as they arrive, so memory
// holds one record however many match, and breaking out of the loop stops the
// stream within a page. A listing is not a snapshot: records written while it runs
// may or may not be seen.
//
// A Store is safe for concurrent use by many goroutines, and any number of
// processes may share a database.
package postgres
