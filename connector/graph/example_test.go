package graph_test

import (
	"context"
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
