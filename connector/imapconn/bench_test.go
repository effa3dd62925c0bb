package imapconn_test

import (
	"context"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/connector/imapconn"
)

// BenchmarkFetch fetches a 2,000-message mailbox of ~15 KB messages from the
// in-process memserver, streaming every body to the callback.
func BenchmarkFetch(b *testing.B) {
	const messages, size = 2000, 15_000
	ts := newTestServer(b, serverConfig{noWireLog: true})
	helper := ts.client(b, "alice")
	body := testMessage(0, size)
	var cmds []*appendWait
	for range messages {
		cmd := helper.Append("INBOX", int64(len(body)), nil)
		if _, err := cmd.Write(body); err != nil {
			b.Fatal(err)
		}
		if err := cmd.Close(); err != nil {
			b.Fatal(err)
		}
		cmds = append(cmds, &appendWait{cmd.Wait})
	}
	for _, c := range cmds {
		if err := c.wait(); err != nil {
			b.Fatal(err)
		}
	}

	for _, parallel := range []int{1, 4} {
		b.Run(fmt.Sprintf("parallel=%d", parallel), func(b *testing.B) {
			sess, err := imapconn.New(&imapconn.Options{MaxParallelFetch: parallel}).OpenIncoming(context.Background(), ts.target("alice"))
			if err != nil {
				b.Fatal(err)
			}
			defer sess.Close()
			var total int64
			start := time.Now()
			for b.Loop() {
				n := 0
				_, err := sess.Fetch(context.Background(), serversync.FetchRequest{}, func(m *serversync.RemoteMessage) error {
					written, err := io.Copy(io.Discard, m.Body)
					total += written
					n++
					return err
				})
				if err != nil {
					b.Fatal(err)
				}
				if n != messages {
					b.Fatalf("fetched %d messages, want %d", n, messages)
				}
			}
			elapsed := time.Since(start).Seconds()
			b.ReportMetric(float64(b.N*messages)/elapsed, "msgs/s")
			b.ReportMetric(float64(total)/1e6/elapsed, "MB/s")
		})
	}
}

type appendWait struct {
	w func() (*imap.AppendData, error)
}

func (a *appendWait) wait() error {
	_, err := a.w()
	return err
}
