package fakeconn_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/auth"
	"github.com/serversync/serversync/connector/fakeconn"
	"github.com/serversync/serversync/store/memory"
)

// A host tests its TrackFunc against a real Syncer and Store, with the fake in
// place of the mail server: no network, no credentials. The same test can make
// the server fail (Inject) or hold a call (Hold) to see what the host's
// configuration does then.
func Example_trackFunc() {
	ctx := context.Background()
	store := memory.New()
	defer store.Close()
	admin := serversync.NewAdmin(store, &serversync.AdminConfig{
		CanApprove: func(context.Context, string, *serversync.Mailbox) error { return nil },
		Logger:     slog.New(slog.DiscardHandler),
	})
	profile, err := admin.CreateProfile(ctx, &serversync.Profile{Name: "Test", ServerType: serversync.ServerTypeIMAPSMTP,
		IncomingServer: "imap.example.test", OutgoingServer: "smtp.example.test"})
	if err != nil {
		panic(err)
	}
	mailbox, err := admin.CreateMailbox(ctx, &serversync.Mailbox{Name: "Alice", EmailAddress: "alice@example.test",
		ProfileID: profile.ID, Password: auth.NewSecret("any password will do"), IncomingFilter: serversync.FilterAll,
		Regarding: serversync.Regarding{Type: serversync.RegardingUser, ID: "user-alice"}})
	if err != nil {
		panic(err)
	}
	if err := admin.Approve(ctx, "admin", mailbox.ID); err != nil {
		panic(err)
	}

	fake := fakeconn.New(nil)
	fake.Deliver("alice@example.test", []byte("From: Bob <bob@partner.test>\r\nTo: alice@example.test\r\nSubject: Order 1234\r\n\r\nPlease ship it.\r\n"))
	fake.Deliver("alice@example.test", []byte("From: news@partner.test\r\nTo: alice@example.test\r\nSubject: Newsletter\r\n\r\nNews.\r\n"))

	synced := make(chan struct{}, 1)
	s, err := serversync.NewSyncer(store, fake.Connectors(), &serversync.Config{
		// The host's hook under test: it links orders to a record and refuses the rest.
		Track: func(_ context.Context, a *serversync.EmailActivity, _ *serversync.Mailbox) error {
			order, ok := strings.CutPrefix(a.Subject, "Order ")
			if !ok {
				return errors.New("not an order")
			}
			a.Regarding = serversync.RecordRef{Type: "salesorder", ID: order}
			return nil
		},
		OnEvent: func(e serversync.Event) {
			if e.Kind == serversync.EventSyncFinished {
				select {
				case synced <- struct{}{}:
				default:
				}
			}
		},
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		panic(err)
	}
	if _, err := s.TestAndEnable(ctx, mailbox.ID); err != nil {
		panic(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	<-synced
	_ = s.Stop(ctx)
	<-done

	var lines []string
	for a, err := range store.ListActivities(ctx, serversync.ActivityFilter{MailboxID: mailbox.ID}) {
		if err != nil {
			panic(err)
		}
		line := fmt.Sprintf("%s: %s", a.Subject, a.Status)
		if a.Regarding.ID != "" {
			line += ", regarding " + a.Regarding.Type + " " + a.Regarding.ID
		}
		if a.LastError != "" {
			line += " (" + a.LastError + ")"
		}
		lines = append(lines, line)
	}
	slices.Sort(lines)
	fmt.Println(strings.Join(lines, "\n"))
	fmt.Println("fetches:", len(fake.CallsOf(fakeconn.OpFetch)), "sessions left open:", fake.OpenSessions())
	// Output:
	// Newsletter: Failed (not an order)
	// Order 1234: Tracked, regarding salesorder 1234
	// fetches: 1 sessions left open: 0
}
