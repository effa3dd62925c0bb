// Package syncerbench holds benchmarks of one Syncer with many mailboxes (10,000 by
// default) against the demo mail system of internal/demoserver (one user per
// mailbox), with the embedded SQLite store, so the store's own memory lives on
// disk and outside the Go heap that is measured:
//
//	go test -run '^$' -bench . ./bench/syncerbench/
//	go test -run '^$' -bench . ./bench/syncerbench/ -mailboxes 2000 -workers 64
//
// The demo server runs in a child process (this test binary again), so the CPU
// time and heap measured are the Syncer's alone and the server's CPU is reported
// on its own; -inprocess runs it inside the benchmark's process instead. Flags:
// -mailboxes (or SYNCERBENCH_MAILBOXES), -workers (Config.Workers, default 128),
// -idle (mailboxes in IDLE for the latency benchmark, default 10), -inprocess,
// -postgres URL (the store in a fresh schema of that PostgreSQL database instead
// of SQLite; the openSockets count of BenchmarkIdleConnectionHeap then includes
// the pool's few connections).
//
// They measure, with b.ReportMetric:
//
//   - BenchmarkNoChangePoll: CPU time (user+system, getrusage) per poll of a
//     mailbox with nothing new, over rounds in which every mailbox is polled once
//     ("cpu-µs/poll"; "server-cpu-µs/poll" for the server process).
//   - BenchmarkIdleMailboxHeap: live heap (HeapInuse after GC) per mailbox while
//     the Syncer runs, every mailbox synced and waiting for its next poll, IDLE
//     off, minus the heap before the Syncer was created ("B/idle-mailbox").
//   - BenchmarkScheduleReady: CPU time of one ScheduleReady call, which the
//     Syncer makes every Config.ScanInterval ("cpu-ms/scan"), on a Syncer of its
//     own that does not run: it needs no round of polls first, so
//     -bench ScheduleReady -mailboxes 100000 takes the time to create them.
//   - BenchmarkIdleConnectionHeap: every mailbox with recent mail and IDLE
//     allowed for all of them at once (Config.IdleConnections), after a round of
//     polls: live heap and goroutines per connection left open in IDLE, counted
//     as the process's open sockets ("B/idle-conn", "goroutines/idle-conn").
//   - BenchmarkNewMailLatency: with a few mailboxes waiting in IMAP IDLE, the
//     time from another client's APPEND of a new message to the Syncer's
//     EventMailTracked for it ("ms/new-mail", and the worst one seen).
//
// The mailboxes are set up once per test binary (the first benchmark that needs
// them pays for it) and shared; a settable clock makes rounds of polls due at once
// instead of waiting for them. Nothing here asserts on time: the figures are
// reported, not checked.
package syncerbench
