package postgres_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/internal/pgtest"
	"github.com/serversync/serversync/store/postgres"
	"github.com/serversync/serversync/store/storetest"
)

// activityOfSize builds a realistic tracked message of about 15 KB: text and HTML
// bodies, headers, and a small attachment.
func activityOfSize(mailboxID string, i int) *serversync.EmailActivity {
	a := storetest.NewActivity(mailboxID, fmt.Sprintf("<msg-%d@bench.test>", i))
	a.Subject = fmt.Sprintf("Quarterly numbers, part %d", i)
	a.From = serversync.Address{Name: "Bob", Email: "bob@contoso.test"}
	a.To = []serversync.Address{{Name: "Alice", Email: "alice@contoso.test"}}
	a.MessageID = fmt.Sprintf("msg-%d@bench.test", i)
	a.TextBody = strings.Repeat("Plain text line of a typical business email. ", 130)  // ~6 KB
	a.HTMLBody = strings.Repeat("<p>HTML paragraph of a typical email body.</p>", 170) // ~8 KB
	a.Attachments = []serversync.Attachment{{Filename: "note.txt", ContentType: "text/plain", Size: 1024, Content: make([]byte, 1024)}}
	a.Size = 15 << 10
	return a
}

// BenchmarkSaveTracked stores tracked activities in batches of 100, as an initial
// sync does.
func BenchmarkSaveTracked(b *testing.B) {
	ctx := context.Background()
	s := open(b, pgtest.FreshSchema(b), keys(b, 1))
	defer s.Close()
	m := storetest.NewMailbox("", "bench@contoso.test")
	if err := s.CreateMailbox(ctx, m); err != nil {
		b.Fatal(err)
	}
	const batch = 100
	b.SetBytes(15 << 10)
	start := time.Now()
	n := 0
	for b.Loop() {
		if n%batch == 0 {
			activities := make([]*serversync.EmailActivity, batch)
			for i := range activities {
				activities[i] = activityOfSize(m.ID, n+i)
			}
			cursor := &serversync.Cursor{MailboxID: m.ID, Folder: "INBOX", Data: []byte(fmt.Sprint(n + batch))}
			if _, err := s.SaveTracked(ctx, cursor, activities); err != nil {
				b.Fatal(err)
			}
		}
		n++
	}
	b.ReportMetric(float64(n)/time.Since(start).Seconds(), "activities/s")
}

// BenchmarkLeases acquires and releases leases over 100,000 due mailboxes, from one
// host and from three hosts at once, each host a Store with its own pool as a
// separate process would have. An operation is one AcquireLeases of up to 100
// mailboxes followed by a ReleaseLease of each.
func BenchmarkLeases(b *testing.B) {
	const mailboxes, perCall = 100_000, 100
	ctx := context.Background()
	schema := pgtest.FreshSchema(b)
	now := storetest.BaseTime

	seed := open(b, schema, keys(b, 1))
	started := time.Now()
	for chunk := 0; chunk < mailboxes; chunk += 10_000 {
		batch := make([]*serversync.Mailbox, 0, 10_000)
		for i := chunk; i < chunk+10_000; i++ {
			m := storetest.NewMailbox("", fmt.Sprintf("user%06d@contoso.test", i))
			m.NextSyncAt = now.Add(-time.Duration(i) * time.Second)
			batch = append(batch, m)
		}
		if err := seed.CopyMailboxes(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	if err := seed.Close(); err != nil {
		b.Fatal(err)
	}
	// Vacuum now rather than have autovacuum wake up for the new rows mid-measurement.
	conn, err := pgx.Connect(ctx, pgtest.URL(b))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "VACUUM (ANALYZE) "+table(schema, "mailboxes")); err != nil {
		b.Fatal(err)
	}
	b.Logf("seeded %d mailboxes in %v", mailboxes, time.Since(started).Round(time.Millisecond))

	for _, hosts := range []int{1, 3} {
		b.Run(fmt.Sprintf("hosts=%d", hosts), func(b *testing.B) {
			stores := make([]*postgres.Store, hosts)
			for h := range stores {
				stores[h] = open(b, schema, keys(b, 1))
				defer stores[h].Close()
			}
			var (
				leased atomic.Int64
				wg     sync.WaitGroup
			)
			b.ResetTimer()
			start := time.Now()
			for h, s := range stores {
				wg.Go(func() {
					for i := h; i < b.N; i += hosts {
						leases, err := s.AcquireLeases(ctx, serversync.LeaseRequest{Host: fmt.Sprint("host-", h), Now: now, TTL: time.Minute, Limit: perCall})
						if err != nil {
							b.Error(err)
							return
						}
						for _, l := range leases { // due again a little later, so the mailboxes never run out
							if err := s.ReleaseLease(ctx, l, now.Add(-time.Millisecond)); err != nil {
								b.Error(err)
								return
							}
						}
						leased.Add(int64(len(leases)))
					}
				})
			}
			wg.Wait()
			elapsed := time.Since(start).Seconds()
			b.StopTimer()
			b.ReportMetric(float64(leased.Load())/elapsed, "leases/s")
			b.ReportMetric(float64(leased.Load())/elapsed/float64(hosts), "leases/s/host")
		})
	}
}

// BenchmarkConnectionSlots measures what MaxConcurrentConnections across processes
// costs a connection: one AcquireConnectionSlot and one ReleaseConnectionSlot, each
// one statement in one round trip, while 8 callers share a budget of 4 (so some
// wait in line) or each has a budget of its own.
func BenchmarkConnectionSlots(b *testing.B) {
	for _, shared := range []bool{false, true} {
		b.Run(map[bool]string{false: "own budget", true: "shared budget of 4"}[shared], func(b *testing.B) {
			s := open(b, pgtest.FreshSchema(b), keys(b, 1))
			ctx := context.Background()
			var acquired atomic.Int64
			start := time.Now()
			b.SetParallelism(8)
			b.RunParallel(func(pb *testing.PB) {
				key := "mailbox:" + serversync.NewID()
				if shared {
					key = "profile:p1"
				}
				for pb.Next() {
					req := serversync.ConnectionSlotRequest{ID: serversync.NewID(), Key: key, Limit: 4, Host: "host", TTL: time.Minute}
					for {
						req.Now = time.Now()
						slot, ok, err := s.AcquireConnectionSlot(ctx, req)
						if err != nil {
							b.Error(err)
							return
						}
						if ok {
							acquired.Add(1)
							if err := s.ReleaseConnectionSlot(ctx, slot); err != nil {
								b.Error(err)
								return
							}
							break
						}
					}
				}
			})
			b.ReportMetric(float64(acquired.Load())/time.Since(start).Seconds(), "slots/s")
		})
	}
}
