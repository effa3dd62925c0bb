package sqlite_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/store/sqlite"
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

// BenchmarkSaveTracked stores tracked activities in batches, as an initial sync does.
func BenchmarkSaveTracked(b *testing.B) {
	ctx := context.Background()
	s, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "bench.db"), &sqlite.Options{Keys: keys(b, 1)})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	p := storetest.NewProfile("Bench")
	if err := s.CreateProfile(ctx, p); err != nil {
		b.Fatal(err)
	}
	m := storetest.NewMailbox(p.ID, "bench@contoso.test")
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

// BenchmarkAcquireLeases leases and releases mailboxes over 10,000 due ones.
func BenchmarkAcquireLeases(b *testing.B) {
	ctx := context.Background()
	s, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "bench.db"), &sqlite.Options{Keys: keys(b, 1)})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	p := storetest.NewProfile("Bench")
	if err := s.CreateProfile(ctx, p); err != nil {
		b.Fatal(err)
	}
	now := storetest.BaseTime
	for i := range 10_000 {
		m := storetest.NewMailbox(p.ID, fmt.Sprintf("user%05d@contoso.test", i))
		m.NextSyncAt = now.Add(-time.Duration(i) * time.Second)
		if err := s.CreateMailbox(ctx, m); err != nil {
			b.Fatal(err)
		}
	}
	const perCall = 100
	start := time.Now()
	leased := 0
	for b.Loop() {
		leases, err := s.AcquireLeases(ctx, serversync.LeaseRequest{Host: "bench", Now: now, TTL: time.Minute, Limit: perCall})
		if err != nil {
			b.Fatal(err)
		}
		for _, l := range leases { // due again a little later, so the pool never runs dry
			if err := s.ReleaseLease(ctx, l, now.Add(-time.Millisecond)); err != nil {
				b.Fatal(err)
			}
		}
		leased += len(leases)
	}
	b.ReportMetric(float64(leased)/time.Since(start).Seconds(), "leases/s")
}

// BenchmarkMessageKeyMiss looks up a message key that is not stored, among 10,000
// activities: what the incoming pipeline pays for each new message, twice (its key,
// then the key earlier releases gave it).
func BenchmarkMessageKeyMiss(b *testing.B) {
	ctx := context.Background()
	s, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "bench.db"), &sqlite.Options{Keys: keys(b, 1)})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	for n := 0; n < 10_000; n += 100 {
		batch := make([]*serversync.EmailActivity, 100)
		for i := range batch {
			batch[i] = storetest.NewActivity("mb-1", fmt.Sprintf("mid:msg-%d@bench.test#%064d", n+i, n+i))
		}
		if _, err := s.SaveTracked(ctx, nil, batch); err != nil {
			b.Fatal(err)
		}
	}
	i := 0
	for b.Loop() {
		i++
		for _, err := range s.ListActivities(ctx, serversync.ActivityFilter{MailboxID: "mb-1", MessageKey: fmt.Sprintf("mid:new-%d@bench.test", i), Limit: 1}) {
			if err != nil {
				b.Fatal(err)
			}
		}
	}
}
