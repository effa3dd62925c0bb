package graph_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"golang.org/x/oauth2"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/auth"
	"github.com/serversync/serversync/connector/graph"
	"github.com/serversync/serversync/connector/graph/graphtest"
)

// Example reads a mailbox through Graph with an app-only token, here from the
// fake Graph server; in production the target comes from
// serversync.ResolveTarget and the token from the profile's certificate.
func Example() {
	srv, err := graphtest.NewServer(nil)
	if err != nil {
		panic(err)
	}
	defer srv.Close()
	srv.AddMailbox("alice@contoso.test", "tenant-1")
	srv.AddToken("app-token", graphtest.Principal{AppOnly: true, TenantID: "tenant-1", Permissions: []string{"Mail.ReadWrite"}})
	_, _ = srv.Deliver("alice@contoso.test", "inbox", []byte("Subject: hello\r\n\r\nHi Alice\r\n"), time.Now())

	conn := graph.New(&graph.Options{Logger: slog.New(slog.DiscardHandler)})
	target := &serversync.Target{
		EmailAddress: "alice@contoso.test",
		Endpoint:     serversync.Endpoint{URL: srv.URL(), RootCAsPEM: srv.RootCAsPEM(), Timeout: 30 * time.Second},
		Credentials: auth.Credentials{Kind: auth.KindAppOnly, Username: "alice@contoso.test",
			TokenSource: oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "app-token"})},
	}
	sess, err := conn.OpenIncoming(context.Background(), target)
	if err != nil {
		panic(err)
	}
	defer sess.Close()
	res, err := sess.Fetch(context.Background(), serversync.FetchRequest{}, func(m *serversync.RemoteMessage) error {
		body, err := io.ReadAll(m.Body)
		fmt.Printf("%s: %q\n", m.Folder, body)
		return err // then store m.Cursor with what was tracked
	})
	if err != nil {
		panic(err)
	}
	fmt.Println(len(res.Cursor) > 0, res.Reset)
	// Output:
	// inbox: "Subject: hello\r\n\r\nHi Alice\r\n"
	// true false
}

// ExampleConnector_OpenACT pushes an appointment to the mailbox's calendar and
// reads the calendar's changes, here on the fake Graph server. The cursor goes
// with the host's record of what it synced; a create retried with the same UID
// names the item the first attempt made.
func ExampleConnector_OpenACT() {
	srv, err := graphtest.NewServer(nil)
	if err != nil {
		panic(err)
	}
	defer srv.Close()
	srv.AddMailbox("alice@contoso.test", "tenant-1")
	srv.AddToken("app-token", graphtest.Principal{AppOnly: true, TenantID: "tenant-1",
		Permissions: []string{"Calendars.ReadWrite", "Contacts.ReadWrite", "Tasks.ReadWrite.All"}})

	conn := graph.New(&graph.Options{Logger: slog.New(slog.DiscardHandler)})
	target := &serversync.Target{
		EmailAddress: "alice@contoso.test",
		Endpoint:     serversync.Endpoint{URL: srv.URL(), RootCAsPEM: srv.RootCAsPEM(), Timeout: 30 * time.Second},
		Credentials: auth.Credentials{Kind: auth.KindAppOnly, Username: "alice@contoso.test",
			TokenSource: oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "app-token"})},
	}
	ctx := context.Background()
	sess, err := conn.OpenACT(ctx, target)
	if err != nil {
		panic(err)
	}
	defer sess.Close()

	berlin, _ := time.LoadLocation("Europe/Berlin")
	start := time.Now().In(berlin).Truncate(24*time.Hour).AddDate(0, 0, 7)
	meeting := &serversync.Appointment{ACTHeader: serversync.ACTHeader{UID: "crm-meeting-42"}, Subject: "Quarterly review",
		Start: serversync.DateTime{Time: start, TZID: "Europe/Berlin"}, End: serversync.DateTime{Time: start.Add(time.Hour), TZID: "Europe/Berlin"}}
	if err := sess.Put(ctx, meeting, ""); err != nil {
		panic(err)
	}
	res, err := sess.Changes(ctx, serversync.KindAppointment, nil)
	if err != nil {
		panic(err)
	}
	for _, ch := range res.Changes {
		a := ch.Item.(*serversync.Appointment)
		fmt.Println(a.Subject, a.UID, a.Start.TZID, a.Start.Time.Equal(start))
	}

	retry := &serversync.Appointment{ACTHeader: serversync.ACTHeader{UID: "crm-meeting-42"}, Subject: "Quarterly review",
		Start: meeting.Start, End: meeting.End}
	var conflict *serversync.ACTConflictError
	if err := sess.Put(ctx, retry, ""); errors.As(err, &conflict) {
		fmt.Println("already there:", conflict.ServerID == meeting.ServerID)
	}
	// Output:
	// Quarterly review crm-meeting-42 Europe/Berlin true
	// already there: true
}
