package storetest

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/serversync/serversync"
)

// Benchmark measures what the Syncer asks of a store most, the same way for every
// store, as sub-benchmarks of b:
//
//   - SaveTracked: tracked activities of ~15 KB stored in batches of 100, as an
//     initial sync does (activities/s, and MB/s through SetBytes);
//   - Leases/hosts=N: one AcquireLeases of up to 100 mailboxes and a ReleaseLease of
//     each, among h.LeaseBenchMailboxes due ones, from one host and, with
//     h.NewDatabase, from three hosts at once, each its own handle as a separate
//     process would have (leases/s, leases/s/host);
//   - MessageKeyMiss: looking up a message key that is not stored among 10,000
//     activities, what the incoming pipeline pays for each new message;
//   - ConnectionSlots: one AcquireConnectionSlot and one ReleaseConnectionSlot while
//     8 callers each have a budget of their own or share one of 4 (slots/s), for a
//     serversync.ConnectionSlotStore.
//
// A store's benchmark is one line:
//
//	func BenchmarkStore(b *testing.B) { storetest.Benchmark(b, harness) }
func Benchmark(b *testing.B, h Harness) {
	b.Run("SaveTracked", func(b *testing.B) { benchSaveTracked(b, h) })
	b.Run("Leases", func(b *testing.B) { benchLeases(b, h) })
	b.Run("MessageKeyMiss", func(b *testing.B) { benchMessageKeyMiss(b, h) })
	b.Run("KnownMessageKeys", func(b *testing.B) { benchKnownMessageKeys(b, h) })
	b.Run("ConnectionSlots", func(b *testing.B) { benchConnectionSlots(b, h) })
}

// benchStore returns a fresh store closed when b ends.
func benchStore(b *testing.B, h Harness) serversync.Store {
	b.Helper()
	s := h.NewStore(b)
	if s == nil {
		b.Fatal("storetest: NewStore returned nil")
	}
	b.Cleanup(func() { _ = s.Close() })
	return s
}

// activityOfSize builds a realistic tracked message of about 15 KB: text and HTML
// bodies, headers, and a small attachment.
func activityOfSize(mailboxID string, i int) *serversync.EmailActivity {
	a := NewActivity(mailboxID, fmt.Sprintf("<msg-%d@bench.test>", i))
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

func benchSaveTracked(b *testing.B, h Harness) {
	ctx := context.Background()
	s := benchStore(b, h)
	p := NewProfile("Bench")
	if err := s.CreateProfile(ctx, p); err != nil {
		b.Fatal(err)
	}
	m := NewMailbox(p.ID, "bench@contoso.test")
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

func benchLeases(b *testing.B, h Harness) {
	const perCall = 100
	count := h.LeaseBenchMailboxes
	if count == 0 {
		count = 10_000
	}
	ctx := context.Background()
	now := BaseTime

	// Every host is a handle on the same data when the harness can open several;
	// otherwise the one store serves the one host.
	var open func() serversync.Store
	if h.NewDatabase != nil {
		openKeyed := h.NewDatabase(b)
		keys := testKeys(b, 1)
		open = func() serversync.Store {
			s := openKeyed(keys)
			if s == nil {
				b.Fatal("storetest: Harness.NewDatabase's open returned nil")
			}
			return s
		}
	}
	var seed serversync.Store
	if open != nil {
		seed = open()
		b.Cleanup(func() { _ = seed.Close() })
	} else {
		seed = benchStore(b, h)
	}
	started := time.Now()
	mailboxes := make([]*serversync.Mailbox, count)
	for i := range mailboxes {
		m := NewMailbox("", fmt.Sprintf("user%06d@contoso.test", i))
		m.NextSyncAt = now.Add(-time.Duration(i) * time.Second)
		mailboxes[i] = m
	}
	if h.SeedMailboxes != nil {
		h.SeedMailboxes(b, seed, mailboxes)
	} else {
		for _, m := range mailboxes {
			if err := seed.CreateMailbox(ctx, m); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Logf("seeded %d mailboxes in %v", count, time.Since(started).Round(time.Millisecond))

	hostCounts := []int{1}
	if open != nil {
		hostCounts = append(hostCounts, 3)
	}
	for _, hosts := range hostCounts {
		b.Run(fmt.Sprintf("hosts=%d", hosts), func(b *testing.B) {
			stores := []serversync.Store{seed}
			if open != nil {
				stores = make([]serversync.Store, hosts)
				for i := range stores {
					stores[i] = open()
					defer stores[i].Close()
				}
			}
			var (
				leased atomic.Int64
				wg     sync.WaitGroup
			)
			b.ResetTimer()
			start := time.Now()
			for host, s := range stores {
				wg.Go(func() {
					for i := host; i < b.N; i += hosts {
						leases, err := s.AcquireLeases(ctx, serversync.LeaseRequest{Host: fmt.Sprint("host-", host), Now: now, TTL: time.Minute, Limit: perCall})
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

func benchMessageKeyMiss(b *testing.B, h Harness) {
	ctx := context.Background()
	s, m := benchKeyedStore(b, h)
	i := 0
	for b.Loop() {
		i++
		for _, err := range s.ListActivities(ctx, serversync.ActivityFilter{MailboxID: m.ID, MessageKey: fmt.Sprintf("mid:new-%d@bench.test", i), Limit: 1}) {
			if err != nil {
				b.Fatal(err)
			}
		}
	}
}

// benchKnownMessageKeys asks for batches of 100 keys (one stored, 99 new), as the
// incoming pipeline does once per SaveBatch, among 10,000 stored: compare its
// ns/key with MessageKeyMiss's ns/op, one lookup per key.
func benchKnownMessageKeys(b *testing.B, h Harness) {
	ctx := context.Background()
	s, m := benchKeyedStore(b, h)
	keys := make([]string, 100)
	i := 0
	for b.Loop() {
		for j := range keys {
			i++
			keys[j] = fmt.Sprintf("mid:new-%d@bench.test#%064d", i, i)
		}
		keys[0] = fmt.Sprintf("mid:msg-%d@bench.test#%064d", i%10_000, i%10_000)
		known, err := s.KnownMessageKeys(ctx, m.ID, keys)
		if err != nil {
			b.Fatal(err)
		}
		if len(known) != 1 {
			b.Fatalf("%d keys known, want 1", len(known))
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(keys)), "ns/key")
}

// benchKeyedStore is a store holding 10,000 activities of one mailbox, keyed
// "mid:msg-N@bench.test#<N on 64 digits>".
func benchKeyedStore(b *testing.B, h Harness) (serversync.Store, *serversync.Mailbox) {
	ctx := context.Background()
	s := benchStore(b, h)
	m := NewMailbox("", "bench@contoso.test")
	if err := s.CreateMailbox(ctx, m); err != nil {
		b.Fatal(err)
	}
	for n := 0; n < 10_000; n += 100 {
		batch := make([]*serversync.EmailActivity, 100)
		for i := range batch {
			batch[i] = NewActivity(m.ID, fmt.Sprintf("mid:msg-%d@bench.test#%064d", n+i, n+i))
		}
		if _, err := s.SaveTracked(ctx, nil, batch); err != nil {
			b.Fatal(err)
		}
	}
	return s, m
}

func benchConnectionSlots(b *testing.B, h Harness) {
	for _, shared := range []bool{false, true} {
		b.Run(map[bool]string{false: "own budget", true: "shared budget of 4"}[shared], func(b *testing.B) {
			cs, ok := benchStore(b, h).(serversync.ConnectionSlotStore)
			if !ok {
				b.Skip("storetest: the store implements no serversync.ConnectionSlotStore")
			}
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
						slot, ok, err := cs.AcquireConnectionSlot(ctx, req)
						if err != nil {
							b.Error(err)
							return
						}
						if ok {
							acquired.Add(1)
							if err := cs.ReleaseConnectionSlot(ctx, slot); err != nil {
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
