// Command monitor runs the quickstart's setup — an in-process IMAP and SMTP server
// seeded with sample mail, a SQLite database, a profile and two mailboxes approved
// and Test & Enabled by a running Syncer — and serves serversync's monitoring page
// on loopback, printing its URL:
//
//	go run ./examples/monitor                 # until Ctrl-C
//	go run ./examples/monitor -for 30s        # then stop
//	go run ./examples/monitor -addr 127.0.0.1:8080 -readonly
//
// Open the URL while the initial sync runs: the page follows it live. Every 20
// seconds one more message arrives and alice sends a reply, so the throughput
// chart moves. The page is mounted under /monitor/ as a host would mount it,
// behind its own authentication (this demo has none: it listens on loopback only).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/auth"
	"github.com/serversync/serversync/connector/standard"
	"github.com/serversync/serversync/internal/demoserver"
	"github.com/serversync/serversync/monitor"
	"github.com/serversync/serversync/store/sqlite"
)

type options struct {
	addr     string        // where the page listens; loopback only
	duration time.Duration // 0: until ctx ends
	readOnly bool
	messages int           // seeded per mailbox
	trickle  time.Duration // how often new mail arrives; 0: never
	ready    func(url string)
}

func main() {
	o := options{messages: 120, trickle: 20 * time.Second}
	flag.StringVar(&o.addr, "addr", "127.0.0.1:0", "loopback address for the page (port 0: any free port)")
	flag.DurationVar(&o.duration, "for", 0, "stop after this long (default: until Ctrl-C)")
	flag.BoolVar(&o.readOnly, "readonly", false, "serve the page without its actions")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "monitor:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options, out io.Writer) error {
	host, _, err := net.SplitHostPort(o.addr)
	if err != nil {
		return fmt.Errorf("-addr %q: %w", o.addr, err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("-addr %q: the demo page has no authentication, so it listens on loopback only", o.addr)
	}
	if o.duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.duration)
		defer cancel()
	}
	dir, err := os.MkdirTemp("", "serversync-monitor-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	keyFile := filepath.Join(dir, "secret.key")
	if err := auth.GenerateKeyFile(keyFile); err != nil {
		return err
	}
	keys, err := auth.KeysFromFile(keyFile)
	if err != nil {
		return err
	}
	store, err := sqlite.Open(ctx, filepath.Join(dir, "serversync.db"), &sqlite.Options{Keys: keys})
	if err != nil {
		return err
	}
	defer store.Close()

	const alice, support = "alice@contoso.test", "support@contoso.test"
	demo, err := demoserver.Start(map[string]string{alice: "alice-password", support: "support-password"})
	if err != nil {
		return err
	}
	defer demo.Close()
	for i := range o.messages {
		for _, to := range []string{alice, support} {
			if err := demo.Deliver(to, sample(i, to)); err != nil {
				return err
			}
		}
	}
	fmt.Fprintf(out, "demo      IMAP and SMTP on %s, %d messages in each of %s and %s\n", demo.Host, o.messages, alice, support)

	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	admin := serversync.NewAdmin(store, &serversync.AdminConfig{Logger: logger,
		CanApprove: func(context.Context, string, *serversync.Mailbox) error { return nil }})
	profile, err := admin.CreateProfile(ctx, &serversync.Profile{
		Name: "Contoso demo mail", Owner: "user-admin", ServerType: serversync.ServerTypeIMAPSMTP,
		IncomingServer: demo.Host, IncomingPort: demo.IMAPPort, OutgoingServer: demo.Host, OutgoingPort: demo.SMTPPort,
		OutgoingTLS: serversync.TLSImplicit, ExtraRootCAsPEM: demo.CAPEM,
	})
	if err != nil {
		return err
	}
	var boxes []*serversync.Mailbox
	for _, m := range []*serversync.Mailbox{
		{EmailAddress: alice, Regarding: serversync.Regarding{Type: serversync.RegardingUser, ID: "user-alice"},
			// A user's mailbox tracks only replies to CRM email by default: track all of it.
			IncomingFilter: serversync.FilterAll, Password: auth.NewSecret("alice-password")},
		{EmailAddress: support, Regarding: serversync.Regarding{Type: serversync.RegardingQueue, ID: "queue-support"},
			Password: auth.NewSecret("support-password")},
	} {
		m.ProfileID = profile.ID
		if m, err = admin.CreateMailbox(ctx, m); err != nil {
			return err
		}
		boxes = append(boxes, m)
	}

	rec := monitor.NewRecorder()
	syncer, err := serversync.NewSyncer(store, standard.Connectors(&standard.Options{Logger: logger}), &serversync.Config{
		ActivePoll: 5 * time.Second, MaxIdlePoll: 5 * time.Second, Tick: 100 * time.Millisecond,
		ScanInterval: time.Second, SaveBatch: 10, OnEvent: rec.Record, Logger: logger,
	})
	if err != nil {
		return err
	}
	page, err := monitor.New(store, monitor.Options{Admin: admin, Syncer: syncer, Recorder: rec,
		Prefix: "/monitor", ReadOnly: o.readOnly, Refresh: 2 * time.Second, Logger: logger,
		Actor: func(*http.Request) string { return "admin" }})
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("/monitor/", page)
	mux.Handle("/{$}", http.RedirectHandler("/monitor/", http.StatusFound))
	ln, err := net.Listen("tcp", o.addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	url := "http://" + ln.Addr().String() + "/monitor/"
	fmt.Fprintf(out, "monitor   %s\n", url)
	if o.ready != nil {
		o.ready(url)
	}

	// Approving starts it all: the Syncer tests approved mailboxes in the
	// background (Test & Enable), then syncs them.
	for _, m := range boxes {
		if err := admin.Approve(ctx, "admin", m.ID); err != nil {
			return errors.Join(err, srv.Close())
		}
	}
	syncDone := make(chan error, 1)
	go func() { syncDone <- syncer.Run(ctx) }()
	for _, m := range boxes {
		started := time.Now()
		got, err := serversync.WaitInitialSync(ctx, store, m.ID)
		if err != nil {
			break // stopped, or the mailbox failed: the page says why
		}
		fmt.Fprintf(out, "synced    %s: initial sync done in %s (%d messages on the server)\n",
			got.EmailAddress, time.Since(started).Round(time.Millisecond), got.Stats.InitialSyncTotal)
	}
	trickle(ctx, o, demo, syncer, boxes[0], out)

	<-ctx.Done()
	stopCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = syncer.Stop(stopCtx)
	if runErr := <-syncDone; !errors.Is(runErr, serversync.ErrSyncerStopped) && !errors.Is(runErr, context.Canceled) &&
		!errors.Is(runErr, context.DeadlineExceeded) {
		err = errors.Join(err, runErr)
	}
	err = errors.Join(err, srv.Shutdown(stopCtx))
	if serveErr := <-served; !errors.Is(serveErr, http.ErrServerClosed) {
		err = errors.Join(err, serveErr)
	}
	fmt.Fprintln(out, "stopped   the Syncer and the page")
	return err
}

// trickle delivers a message to support and has alice send one, every o.trickle,
// until ctx ends, so the page has something to show.
func trickle(ctx context.Context, o options, demo *demoserver.Server, syncer *serversync.Syncer, from *serversync.Mailbox, out io.Writer) {
	if o.trickle <= 0 {
		return
	}
	t := time.NewTicker(o.trickle)
	defer t.Stop()
	for i := o.messages; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := demo.Deliver("support@contoso.test", sample(i, "support@contoso.test")); err != nil {
			fmt.Fprintln(out, "deliver:", err)
		}
		_, err := syncer.QueueEmail(ctx, &serversync.EmailActivity{MailboxID: from.ID,
			To: []serversync.Address{{Email: "dana.fischer@fabrikam.test"}}, Subject: fmt.Sprintf("Your order %d", 1000+i),
			TextBody: "It has shipped."})
		if err != nil && ctx.Err() == nil {
			fmt.Fprintln(out, "queue:", err)
		}
	}
}

var subjects = []string{"Quote for 40 chairs", "Invoice overdue", "Delivery date", "Re: Order status", "Meeting next week", "Price list 2027"}

// sample is the i-th demo message for to.
func sample(i int, to string) []byte {
	date := time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC).Add(time.Duration(i) * 17 * time.Minute)
	return fmt.Appendf(nil, "From: Dana Fischer <dana.fischer@fabrikam.test>\r\nTo: %s\r\nSubject: %s #%d\r\n"+
		"Message-ID: <sample-%d-%s>\r\nDate: %s\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"+
		"Hello, this is sample message %d.\r\n", to, subjects[i%len(subjects)], i, i, to, date.Format(time.RFC1123Z), i)
}
