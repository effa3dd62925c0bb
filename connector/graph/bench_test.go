package graph_test

import (
	"context"
	"io"
	"strconv"
	"testing"
	"time"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/connector/graph"
	"github.com/serversync/serversync/connector/graph/graphtest"
	"github.com/serversync/serversync/internal/benchmail"
)

// benchMessages is the mailbox BenchmarkGraphFetch reads: a few hundred of
// internal/benchmail's varied messages (~20 KB on average).
const benchMessages = 300

// BenchmarkGraphFetch reads a mailbox of benchMessages messages from the fake
// Graph server (in process, over TLS on loopback) in one Fetch from the start,
// with MIME downloads in $batch of 20 and without $batch. It reports
// "msgs/s", "requests/msg" (HTTP requests the connector sent, a $batch
// counting once) and "graph-requests/msg" (as Graph counts them against its
// limits: each $batch item counts). bench/graphpipeline runs the whole pipeline.
func BenchmarkGraphFetch(b *testing.B) {
	srv, err := graphtest.NewServer(nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(srv.Close)
	srv.AddMailbox(alice, tenant)
	srv.AddToken(appToken, graphtest.Principal{AppOnly: true, TenantID: tenant, Permissions: []string{"Mail.ReadWrite", "Mail.Send"}})
	var total int64
	base := time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)
	for i := range benchMessages {
		mime := benchmail.Message(i, alice)
		total += int64(len(mime))
		if _, err := srv.Deliver(alice, "inbox", mime, base.Add(time.Duration(i)*time.Second)); err != nil {
			b.Fatal(err)
		}
	}
	target := fakeTarget(srv, alice, appToken)

	for _, batch := range []int{graph.BatchSizeDefault, 1} {
		b.Run("batch="+strconv.Itoa(batch), func(b *testing.B) {
			c := graph.New(&graph.Options{BatchSize: batch})
			b.SetBytes(total)
			serverBefore := srv.Requests(alice)
			var fetched int
			for b.Loop() {
				n, err := fetchCount(c, target)
				if err != nil {
					b.Fatal(err)
				}
				if n != benchMessages {
					b.Fatalf("fetched %d messages, want %d", n, benchMessages)
				}
				fetched += n
			}
			st := c.Stats()
			b.ReportMetric(float64(fetched)/b.Elapsed().Seconds(), "msgs/s")
			b.ReportMetric(float64(st.Requests)/float64(fetched), "requests/msg")
			b.ReportMetric(float64(srv.Requests(alice)-serverBefore)/float64(fetched), "graph-requests/msg")
			if st.Throttled > 0 {
				b.Fatalf("%d requests throttled: the figures would measure Retry-After", st.Throttled)
			}
		})
	}
}

// fetchCount reads the whole inbox from the start and counts the messages.
func fetchCount(c *graph.Connector, target *serversync.Target) (int, error) {
	s, err := c.OpenIncoming(context.Background(), target)
	if err != nil {
		return 0, err
	}
	defer s.Close()
	n := 0
	_, err = s.Fetch(context.Background(), serversync.FetchRequest{}, func(m *serversync.RemoteMessage) error {
		if _, err := io.Copy(io.Discard, m.Body); err != nil {
			return err
		}
		n++
		return nil
	})
	return n, err
}
