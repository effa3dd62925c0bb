package serversync_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/auth"
	"github.com/serversync/serversync/connector/standard"
	"github.com/serversync/serversync/internal/demoserver"
	"github.com/serversync/serversync/store/memory"
)

// Saving a profile fills what was left to defaults, and refuses what breaks a rule
// with an error that names the field.
func ExampleAdmin_CreateProfile() {
	ctx := context.Background()
	admin := serversync.NewAdmin(memory.New(), &serversync.AdminConfig{Logger: slog.New(slog.DiscardHandler)})

	p, err := admin.CreateProfile(ctx, &serversync.Profile{
		Name:           "Contoso IMAP",
		ServerType:     serversync.ServerTypeIMAPSMTP,
		IncomingServer: "imap.contoso.com",
		OutgoingServer: "smtp.contoso.com",
		OutgoingTLS:    serversync.TLSStartTLS,
		Password:       auth.NewSecret("never printed"),
	})
	if err != nil {
		panic(err)
	}
	fmt.Println(p.IncomingPort, p.OutgoingPort, p.MaxConcurrentConnections, p.ConnectionTimeout)
	fmt.Printf("%v\n", p.Password)

	_, err = admin.CreateProfile(ctx, &serversync.Profile{
		Name:           "Plaintext",
		ServerType:     serversync.ServerTypeIMAPSMTP,
		IncomingServer: "imap.contoso.com",
		OutgoingServer: "smtp.contoso.com",
		IncomingTLS:    serversync.TLSNone,
	})
	var verr *serversync.ValidationError
	if errors.As(err, &verr) {
		fmt.Println(verr.Field+":", verr.Reason)
	}
	// Output:
	// 993 587 10 1m40s
	// [REDACTED]
	// IncomingTLS: TLS can only be turned off when the organisation setting AllowNonSSLEmail is on
}

// The whole loop: a profile for a mail system, a mailbox on it, approved and
// passed through Test & Enable; the Syncer tracks the mail already in the inbox
// and sends a reply. The mail system is the in-process demo server the quickstart
// uses, and the store is in memory; a host would open store/sqlite or
// store/postgres and point the profile at its own servers.
func Example() {
	// Generous: this runs on loaded test machines. Nothing below waits on a timer;
	// everything waits on an event, or on ctx when something went wrong.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	const alice, bob = "alice@contoso.test", "bob@fabrikam.test"
	demo, err := demoserver.Start(map[string]string{alice: "alice-password", bob: "bob-password"})
	if err != nil {
		panic(err)
	}
	defer demo.Close()
	err = demo.Deliver(alice, []byte("From: Bob <bob@fabrikam.test>\r\nTo: alice@contoso.test\r\n"+
		"Subject: Quote for 40 chairs\r\nMessage-ID: <quote-40@fabrikam.test>\r\n"+
		"Date: Mon, 23 Nov 2026 09:00:00 +0000\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"+
		"Could you send us your price for 40 chairs?\r\n"))
	if err != nil {
		panic(err)
	}

	store := memory.New()
	quiet := slog.New(slog.DiscardHandler)
	admin := serversync.NewAdmin(store, &serversync.AdminConfig{
		// The host decides who may approve an email address.
		CanApprove: func(ctx context.Context, actor string, m *serversync.Mailbox) error { return nil },
		Logger:     quiet,
	})
	profile, err := admin.CreateProfile(ctx, &serversync.Profile{
		Name:           "Contoso mail",
		ServerType:     serversync.ServerTypeIMAPSMTP,
		IncomingServer: demo.Host, IncomingPort: demo.IMAPPort,
		OutgoingServer: demo.Host, OutgoingPort: demo.SMTPPort,
		ExtraRootCAsPEM: demo.CAPEM, // the demo server's own CA
	})
	if err != nil {
		panic(err)
	}
	mailbox, err := admin.CreateMailbox(ctx, &serversync.Mailbox{
		EmailAddress: alice,
		Regarding:    serversync.Regarding{Type: serversync.RegardingUser, ID: "user-alice"},
		ProfileID:    profile.ID,
		Password:     auth.NewSecret("alice-password"),
		// A user's mailbox tracks only replies to CRM email by default.
		IncomingFilter: serversync.FilterAll,
	})
	if err != nil {
		panic(err)
	}
	if err := admin.Approve(ctx, "user-admin", mailbox.ID); err != nil {
		panic(err)
	}

	// OnEvent runs on the Syncer's goroutines: hand events over, never block them.
	tracked := make(chan string, 16)
	sent := make(chan string, 16)
	syncer, err := serversync.NewSyncer(store, standard.Connectors(nil), &serversync.Config{
		Logger: quiet,
		OnEvent: func(e serversync.Event) {
			switch e.Kind {
			case serversync.EventMailTracked:
				select {
				case tracked <- e.ActivityID:
				default:
				}
			case serversync.EventEmailSent:
				select {
				case sent <- e.ActivityID:
				default:
				}
			}
		},
	})
	if err != nil {
		panic(err)
	}
	stopped := make(chan error, 1)
	go func() { stopped <- syncer.Run(ctx) }()
	defer func() {
		// Stop waits for the work in flight; the host may close the store after it.
		stopCtx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := syncer.Stop(stopCtx); err != nil {
			fmt.Println("stop:", err)
		}
		if err := <-stopped; !errors.Is(err, serversync.ErrSyncerStopped) {
			fmt.Println("run:", err)
		}
	}()

	// Test & Enable tests the servers with the mailbox's credentials and enables
	// the workloads that passed; the Syncer then syncs the mailbox.
	mailbox, err = syncer.TestAndEnable(ctx, mailbox.ID)
	if err != nil {
		panic(err)
	}
	fmt.Println("Test & Enable:", mailbox.Status, "incoming:", mailbox.IncomingEnabled, "outgoing:", mailbox.OutgoingEnabled)

	var activity *serversync.EmailActivity
	select {
	case id := <-tracked:
		if activity, err = store.GetActivity(ctx, id); err != nil {
			panic(err)
		}
	case <-ctx.Done():
		fmt.Println("nothing tracked:", ctx.Err())
		return
	}
	fmt.Printf("tracked: %q from %s, %s\n", activity.Subject, activity.From.Email, activity.Status)

	reply, err := syncer.QueueEmail(ctx, &serversync.EmailActivity{
		MailboxID: mailbox.ID,
		To:        []serversync.Address{activity.From},
		Subject:   "Re: " + activity.Subject,
		InReplyTo: []string{activity.MessageID},
		TextBody:  "40 chairs come to 2,400 EUR.",
	})
	if err != nil {
		panic(err)
	}
	select {
	case <-sent:
	case <-ctx.Done():
		fmt.Println("nothing sent:", ctx.Err())
		return
	}
	if reply, err = store.GetActivity(ctx, reply.ID); err != nil {
		panic(err)
	}
	inbox, err := demo.Messages(bob, "INBOX")
	if err != nil {
		panic(err)
	}
	fmt.Printf("sent: %s, %d message in Bob's inbox\n", reply.Status, len(inbox))
	// Output:
	// Test & Enable: Success incoming: true outgoing: true
	// tracked: "Quote for 40 chairs" from bob@fabrikam.test, Tracked
	// sent: Sent, 1 message in Bob's inbox
}
