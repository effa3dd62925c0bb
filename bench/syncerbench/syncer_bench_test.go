package syncerbench

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"testing"
	"time"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/connector/standard"
)

// The benchmarks run in this order (go test keeps source order): the ones that
// want IDLE off first, then the one that turns it on.

// BenchmarkNoChangePoll measures the CPU time of polling a mailbox that has
// nothing new: each iteration is a round in which every mailbox is polled once
// (lease, load, connect over TLS, LOGIN, SELECT, save the cursor and stats,
// release). "cpu-µs/poll" is the benchmark process's (the Syncer's, and the
// server's too with -inprocess), "server-cpu-µs/poll" the server process's.
func BenchmarkNoChangePoll(b *testing.B) {
	e := getEnv(b)
	e.start(b, -1)
	var cpu, serverCPU, wall time.Duration
	polls := 0
	for b.Loop() {
		before := cpuTime()
		elapsed, server, err := e.pollAll()
		if err != nil {
			b.Fatal(err)
		}
		cpu += cpuTime() - before
		serverCPU += server
		wall += elapsed
		polls += len(e.ids)
	}
	b.ReportMetric(float64(cpu.Microseconds())/float64(polls), "cpu-µs/poll")
	if !*inProcess {
		b.ReportMetric(float64(serverCPU.Microseconds())/float64(polls), "server-cpu-µs/poll")
	}
	b.ReportMetric(float64(polls)/wall.Seconds(), "polls/s")
}

// BenchmarkIdleMailboxHeap measures the heap the running Syncer holds per
// mailbox once every mailbox has been synced and is waiting for its next poll,
// with IDLE off, so no connection stays open. The store is SQLite: its memory is
// its page cache (outside the Go heap) and the file.
func BenchmarkIdleMailboxHeap(b *testing.B) {
	e := getEnv(b)
	e.start(b, -1)
	var delta int64
	for b.Loop() {
		delta = int64(heapInuse()) - int64(e.heapBefore)
	}
	b.ReportMetric(float64(delta)/float64(len(e.ids)), "B/idle-mailbox")
	b.ReportMetric(float64(delta)/(1<<20), "MB-heap-syncer")
}

// BenchmarkScheduleReady measures the process CPU of one ScheduleReady call, which
// the Syncer makes every Config.ScanInterval (a minute by default) whatever the
// mailboxes' state: with every mailbox scheduled it finds nothing to do.
func BenchmarkScheduleReady(b *testing.B) {
	e := getEnv(b)
	// A Syncer of its own, not running: the scan needs no poll round first, so it
	// is measured on 100,000 mailboxes in the time it takes to create them.
	syncer, err := serversync.NewSyncer(e.store, standard.Connectors(&standard.Options{Logger: slog.New(slog.DiscardHandler)}),
		&serversync.Config{Now: e.clock.Now, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	var cpu time.Duration
	scans := 0
	for b.Loop() {
		before := cpuTime()
		if _, err := syncer.ScheduleReady(context.Background()); err != nil {
			b.Fatal(err)
		}
		cpu += cpuTime() - before
		scans++
	}
	b.ReportMetric(float64(cpu.Microseconds())/1000/float64(scans), "cpu-ms/scan")
}

// BenchmarkNewMailLatency measures, with a few mailboxes that just had mail
// waiting in IMAP IDLE among all the others, the time from an APPEND of a new
// message by another client (logged in beforehand) to the Syncer's
// EventMailTracked for it. The clock does not move: only IDLE brings mail in.
func BenchmarkNewMailLatency(b *testing.B) {
	e := getEnv(b)
	k := min(*idleCount, len(e.ids))
	e.start(b, *idleCount)
	ctx := context.Background()

	// Give k mailboxes recent mail and make them due: they sync it, then wait in IDLE.
	deliverers := make([]*deliverer, k)
	tracked := make([]chan struct{}, k)
	finished := make([]chan struct{}, k)
	for i := range k {
		d, err := e.dialDeliverer(i)
		if err != nil {
			b.Fatal(err)
		}
		defer d.close()
		deliverers[i] = d
		tracked[i], finished[i] = make(chan struct{}, 8), make(chan struct{}, 8)
		e.tracked.Store(e.ids[i], tracked[i])
		e.finished.Store(e.ids[i], finished[i])
		defer e.tracked.Delete(e.ids[i])
		defer e.finished.Delete(e.ids[i])
		if err := d.deliver(message(address(i), fmt.Sprintf("warm-%d-%d", i, time.Now().UnixNano()), "warm-up")); err != nil {
			b.Fatal(err)
		}
	}
	for i := range k {
		// Make it due until it syncs: the release of a lease still under way
		// would overwrite its next sync time.
		var synced error
		for range 30 {
			now := e.clock.Now()
			if _, err := e.store.UpdateMailbox(ctx, e.ids[i], func(m *serversync.Mailbox) error {
				m.NextSyncAt = now
				return nil
			}); err != nil {
				b.Fatal(err)
			}
			if synced = waitFor(tracked[i], 2*time.Second, "the warm-up message"); synced == nil {
				break
			}
		}
		if synced != nil {
			b.Fatal(synced)
		}
		if err := waitFor(finished[i], time.Minute, "the warm-up sync"); err != nil {
			b.Fatal(err)
		}
	}
	// The Syncer's start-up work (its first scan of every mailbox) is done and
	// the mailboxes have sent IDLE.
	settle()

	var total, worst time.Duration
	n := 0
	for b.Loop() {
		i := n % k // round robin: each mailbox has long been back in IDLE when its turn comes
		started := time.Now()
		if err := deliverers[i].deliver(message(address(i), fmt.Sprintf("new-%d-%d", i, time.Now().UnixNano()), "new mail")); err != nil {
			b.Fatal(err)
		}
		if err := waitFor(tracked[i], 30*time.Second, "the new message to be tracked"); err != nil {
			b.Fatal(err)
		}
		latency := time.Since(started)
		total, worst, n = total+latency, max(worst, latency), n+1
		// The sync that tracked it ends before the mailbox goes back to IDLE.
		if err := waitFor(finished[i], 30*time.Second, "the sync to finish"); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(total.Microseconds())/1000/float64(n), "ms/new-mail")
	b.ReportMetric(float64(worst.Microseconds())/1000, "ms-max/new-mail")
}

// BenchmarkIdleConnectionHeap measures what a mailbox waiting in IMAP IDLE costs
// the Syncer: every mailbox has had mail lately (so the Syncer keeps its
// connection open after a poll) and IdleConnections lets all of them wait at once.
// After a round of polls, once every connection is open and idle, it reports the
// live heap and the goroutines per open connection, counted as the process's
// sockets ("B/idle-conn", "goroutines/idle-conn", "idle-conns"), against the
// baseline before the Syncer was created.
func BenchmarkIdleConnectionHeap(b *testing.B) {
	e := getEnv(b)
	e.stop()
	ctx := context.Background()
	// The time the clock will show once pollAll has made every mailbox due: mail
	// then counts as recent (Config.IdleWindow).
	recent := e.clock.Now().Add(serversync.MaxIdlePollDefault + time.Minute)
	for _, id := range e.ids {
		if _, err := e.store.UpdateMailbox(ctx, id, func(m *serversync.Mailbox) error {
			m.Stats.LastMailAt = recent
			return nil
		}); err != nil {
			b.Fatal(err)
		}
	}
	socketsBefore := openSockets()
	e.start(b, len(e.ids))
	if e.polled && e.idle >= 0 {
		// start skips the round when mailboxes were polled before with IDLE on.
		if _, _, err := e.pollAll(); err != nil {
			b.Fatal(err)
		}
	}
	// Every sync has finished; each mailbox then opens IDLE on its connection.
	deadline := time.Now().Add(2 * time.Minute)
	for openSockets()-socketsBefore < len(e.ids) && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
	settle()
	var conns, goroutines int
	var delta int64
	for b.Loop() {
		conns = openSockets() - socketsBefore
		goroutines = runtime.NumGoroutine() - e.goroutinesBefore
		delta = int64(heapInuse()) - int64(e.heapBefore)
	}
	e.stop() // the others measure with IDLE off or on a few mailboxes
	if conns <= 0 {
		b.Fatalf("no connection stayed open in IDLE")
	}
	b.ReportMetric(float64(conns), "idle-conns")
	b.ReportMetric(float64(delta)/float64(conns), "B/idle-conn")
	b.ReportMetric(float64(goroutines)/float64(conns), "goroutines/idle-conn")
	b.ReportMetric(float64(delta)/(1<<20), "MB-heap-syncer")
}
