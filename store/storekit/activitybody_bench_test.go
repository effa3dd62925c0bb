package storekit_test

import (
	"fmt"
	"testing"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/internal/benchmail"
	"github.com/serversync/serversync/internal/mailparse"
	"github.com/serversync/serversync/store/storekit"
)

// benchActivities parses n messages of the benchmark corpus into activities, as
// the incoming pipeline stores them.
func benchActivities(b *testing.B, n int) ([]*serversync.EmailActivity, int64) {
	b.Helper()
	var size int64
	out := make([]*serversync.EmailActivity, n)
	for i := range out {
		raw := benchmail.Message(i, "bench@example.test")
		msg, err := mailparse.ParseBytes(raw, nil)
		if err != nil {
			b.Fatal(err)
		}
		a := &serversync.EmailActivity{ID: fmt.Sprint(i), Subject: msg.Subject, TextBody: msg.TextBody, HTMLBody: msg.HTMLBody, Raw: msg.Raw}
		for _, att := range msg.Attachments {
			a.Attachments = append(a.Attachments, serversync.Attachment(att))
		}
		out[i] = a
		size += int64(len(raw))
	}
	return out, size
}

// BenchmarkEncodeActivity encodes the corpus' activities for storing, as a
// store's SaveTracked does (MB/s of the raw messages; stored is the bodies'
// size against the messages').
func BenchmarkEncodeActivity(b *testing.B) {
	activities, size := benchActivities(b, 200)
	b.SetBytes(size / int64(len(activities)))
	b.ReportAllocs()
	var stored int64
	for i := 0; b.Loop(); i++ {
		_, body, err := storekit.EncodeActivity(activities[i%len(activities)])
		if err != nil {
			b.Fatal(err)
		}
		stored += int64(len(body))
	}
	b.ReportMetric(float64(stored)/float64(int64(b.N)*size/int64(len(activities))), "stored/raw")
}
