// Command quickstart runs serversync's main job end to end on the embedded
// default, with no setup:
//
//   - a SQLite database whose credentials are sealed with a generated key file;
//   - an in-process IMAP and SMTP server (implicit TLS, its own CA) seeded with 200
//     sample messages for alice@contoso.test and support@contoso.test;
//   - an email server profile for it and two mailboxes (user alice, queue
//     support), approved by "admin" and Test & Enabled;
//   - a Syncer that tracks the seeded mail (with a progress bar on a terminal),
//     sends an email from alice to support, and tracks it again when it arrives,
//     correlated to the sent email;
//   - an in-process CalDAV/CardDAV server for alice's appointments, contacts and
//     tasks (ACT): an appointment saved here reaches it, and an edit made there
//     comes back;
//   - a summary of the mailboxes and the email activities.
//
// It takes a second or two, and exits non-zero with a message when anything fails.
//
//	go run ./examples/quickstart              # in a temporary directory, removed at exit
//	go run ./examples/quickstart -data dir    # keep the database in dir; run again to reuse it
//
// Flags point it at real servers instead: no demo server is started, nothing is
// seeded, and one mailbox is created for -user (tracking its mail of the last 7
// days), which sends the test email to -to.
//
//	-imap host[:port]  IMAP server (port 993 unless given or -starttls)
//	-smtp host[:port]  SMTP submission server (default: the IMAP host, port 465 or with -starttls 587)
//	-starttls          use STARTTLS; otherwise it is inferred from the port (143, 587 and 25 use it)
//	-user address      the mailbox's email address, also its login
//	-password secret   its password (or SERVERSYNC_QUICKSTART_PASSWORD, which stays out of ps)
//	-ca file           PEM certificate authorities to trust besides the system's
//	-to address        where the test email goes (default: -user itself)
//
// Use a -data directory of its own for real servers: the Syncer works on every
// mailbox in the database, including the demo's from earlier runs.
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/auth"
	"github.com/serversync/serversync/connector/standard"
	"github.com/serversync/serversync/internal/demoserver"
	"github.com/serversync/serversync/store/sqlite"
)

// options are the command's flags.
type options struct {
	dataDir  string
	imap     string // empty: the demo server
	smtp     string
	startTLS bool
	user     string
	password string
	caFile   string
	to       string
}

func main() {
	var o options
	flag.StringVar(&o.dataDir, "data", "", "directory for the database and its key file (default: a temporary directory, removed at exit)")
	flag.StringVar(&o.imap, "imap", "", "host[:port] of a real IMAP server to use instead of the demo server")
	flag.StringVar(&o.smtp, "smtp", "", "host[:port] of the SMTP submission server (default: the -imap host)")
	flag.BoolVar(&o.startTLS, "starttls", false, "use STARTTLS (default: inferred from the port: 143, 587 and 25 use it)")
	flag.StringVar(&o.user, "user", "", "email address (and login) of the mailbox on the real servers")
	flag.StringVar(&o.password, "password", "", "its password (default: $SERVERSYNC_QUICKSTART_PASSWORD)")
	flag.StringVar(&o.caFile, "ca", "", "PEM file of extra certificate authorities to trust")
	flag.StringVar(&o.to, "to", "", "recipient of the test email (default: -user)")
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "quickstart: unexpected argument %q\n", flag.Arg(0))
		flag.Usage()
		os.Exit(2)
	}
	o.password = cmp.Or(o.password, os.Getenv("SERVERSYNC_QUICKSTART_PASSWORD"))

	// Ctrl-C stops the Syncer gracefully and still removes the temporary directory.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := runQuickstart(ctx, o, os.Stdout)
	if err != nil && ctx.Err() != nil {
		err = errors.New("interrupted")
	}
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "quickstart:", err)
		os.Exit(1)
	}
}

// mailSetup is what a run connects to: the demo server, or the flags' servers.
type mailSetup struct {
	profile   *serversync.Profile
	mailboxes []*serversync.Mailbox
	seeded    int      // messages put on the server before the sync; 0 when unknown
	from, to  string   // the test email's sender (a mailbox here) and recipient
	act       *actDemo // the demo's CalDAV/CardDAV server; nil with real servers
	close     func()
}

func runQuickstart(ctx context.Context, o options, out io.Writer) error {
	if o.imap == "" && (o.smtp != "" || o.startTLS || o.user != "" || o.caFile != "" || o.to != "") {
		return errors.New("-smtp, -starttls, -user, -ca and -to go with -imap; without it the demo server is used")
	}
	dataDir, note := o.dataDir, ""
	if dataDir == "" {
		dir, err := os.MkdirTemp("", "serversync-quickstart-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		dataDir, note = dir, " (temporary: -data DIR keeps it)"
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return err
	}
	keys, err := openKeys(filepath.Join(dataDir, "secret.key"))
	if err != nil {
		return err
	}
	dbPath := filepath.Join(dataDir, "serversync.db")
	store, err := sqlite.Open(ctx, dbPath, &sqlite.Options{Keys: keys})
	if err != nil {
		return err
	}
	defer store.Close()
	fmt.Fprintf(out, "database  %s%s\n", dbPath, note)

	var setup *mailSetup
	if o.imap == "" {
		setup, err = startDemo(out)
	} else {
		setup, err = realServers(o)
	}
	if err != nil {
		return err
	}
	defer setup.close()

	// Warnings and errors only: a normal run is quiet, a problem shows up on stderr.
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	// The host decides who may approve email addresses; this demo lets "admin" do it.
	admin := serversync.NewAdmin(store, &serversync.AdminConfig{
		Logger: logger,
		CanApprove: func(_ context.Context, actor string, _ *serversync.Mailbox) error {
			if actor != "admin" {
				return errors.New("only admin approves email addresses")
			}
			return nil
		},
	})
	profile, err := saveProfile(ctx, admin, setup.profile)
	if err != nil {
		return err
	}
	fmt.Fprintln(out)
	printProfile(out, profile)

	watch := newWatcher()
	syncer, err := serversync.NewSyncer(store, standard.Connectors(&standard.Options{Logger: logger}), &serversync.Config{
		// A demo wants new mail within a second: poll every mailbox that often (between
		// polls, IMAP IDLE reports new mail at once). The defaults poll far less.
		ActivePoll:  time.Second,
		MaxIdlePoll: time.Second,
		Tick:        100 * time.Millisecond,
		// Short leases: if a run is killed, the next one gets the mailboxes back soon.
		LeaseTTL: 15 * time.Second,
		// Store in batches of 25 rather than 100, so that the progress bar moves in
		// steps, and the sample thread's replies find the messages they answer
		// already stored (correlation looks in the store, not in the current batch).
		SaveBatch: 25,
		OnEvent:   watch.onEvent,
		Logger:    logger,
	})
	if err != nil {
		return err
	}

	byAddress := map[string]*serversync.Mailbox{}
	var boxes []*serversync.Mailbox
	for _, want := range setup.mailboxes {
		want.ProfileID = profile.ID
		m, err := saveMailbox(ctx, admin, want)
		if err != nil {
			return err
		}
		if err := admin.Approve(ctx, "admin", m.ID); err != nil {
			return err
		}
		if m, err = syncer.TestAndEnable(ctx, m.ID); err != nil {
			return err
		}
		if m.Status != serversync.TestSuccess {
			// One line per failed workload (incoming, outgoing).
			why := strings.ReplaceAll(fmt.Sprint(watch.testError(m.ID)), "\n", "\n  ")
			return fmt.Errorf("mailbox %s failed Test & Enable:\n  %s", m.EmailAddress, why)
		}
		fmt.Fprintf(out, "mailbox   %-21s %s %s, approved, Test & Enable: %s\n", m.EmailAddress, m.Regarding.Type, m.Regarding.ID, m.Status)
		byAddress[strings.ToLower(m.EmailAddress)] = m
		boxes = append(boxes, m)
		if setup.seeded > 0 {
			// Each run's demo server is brand new but numbers its INBOX from UIDVALIDITY 1
			// again, so the cursor saved against the previous run's server would make the
			// Syncer skip this one's first messages, this run's test email among them. A
			// real server that lost its mail changes UIDVALIDITY and the folder is read
			// again; forgetting the cursor does the same here. The Message-IDs keep what
			// an earlier run tracked from being tracked twice.
			if _, err := store.SaveTracked(ctx, &serversync.Cursor{MailboxID: m.ID, Folder: serversync.InboxFolder, UpdatedAt: time.Now()}, nil); err != nil {
				return err
			}
		}
	}

	runErr := make(chan error, 1)
	go func() { runErr <- syncer.Run(ctx) }()
	running := true
	stopSyncer := func() error {
		running = false
		// Stop waits for the work in flight, for at most 10 s; then cancels it.
		stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		err := syncer.Stop(stopCtx)
		if runErr := <-runErr; !errors.Is(runErr, serversync.ErrSyncerStopped) {
			err = errors.Join(err, runErr)
		}
		return err
	}
	defer func() {
		if running {
			_ = stopSyncer()
		}
	}()

	fmt.Fprintln(out)
	if err := initialSync(ctx, out, watch, boxes, setup.seeded); err != nil {
		return err
	}
	sender := byAddress[strings.ToLower(setup.from)]
	if err := sendAndWatch(ctx, out, watch, syncer, store, sender, setup.to, byAddress[strings.ToLower(setup.to)]); err != nil {
		return err
	}
	if setup.act != nil {
		if err := actRoundTrip(ctx, out, syncer, sender, setup.act, profile.ExtraRootCAsPEM); err != nil {
			return err
		}
	}
	if err := stopSyncer(); err != nil {
		return fmt.Errorf("stop the Syncer: %w", err)
	}
	fmt.Fprintln(out, "stopped   the Syncer, gracefully")

	fmt.Fprintln(out)
	if err := printMailboxes(ctx, out, admin); err != nil {
		return err
	}
	fmt.Fprintln(out)
	return printActivities(ctx, out, store)
}

// startDemo starts the in-process mail server and seeds it with sample mail.
func startDemo(out io.Writer) (*mailSetup, error) {
	const alice, support = "alice@contoso.test", "support@contoso.test"
	// The demo server's logins are the email addresses.
	demo, err := demoserver.Start(map[string]string{alice: "alice-password", support: "support-password"})
	if err != nil {
		return nil, fmt.Errorf("start the demo mail server: %w", err)
	}
	started := time.Now()
	samples := sampleMail(alice, support)
	perUser := map[string]int{}
	for _, s := range samples {
		perUser[s.to]++
	}
	// One delivering goroutine per user: twice as fast, and each inbox keeps the
	// samples' order, which the sample thread needs (replies after what they answer).
	var g errgroup.Group
	for user := range perUser {
		g.Go(func() error {
			for _, s := range samples {
				if s.to == user {
					if err := demo.Deliver(user, s.raw()); err != nil {
						return err
					}
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		_ = demo.Close()
		return nil, fmt.Errorf("seed the demo mail server: %w", err)
	}
	fmt.Fprintf(out, "demo      IMAP %s:%d and SMTP %s:%d on loopback, implicit TLS with a CA of its own\n",
		demo.Host, demo.IMAPPort, demo.Host, demo.SMTPPort)
	fmt.Fprintf(out, "seeded    %d messages for %s and %d for %s in %s\n",
		perUser[alice], alice, perUser[support], support, time.Since(started).Round(time.Millisecond))
	act, err := startACTDemo(alice, "alice-password")
	if err != nil {
		_ = demo.Close()
		return nil, fmt.Errorf("start the demo CalDAV/CardDAV server: %w", err)
	}
	fmt.Fprintf(out, "demo      CalDAV/CardDAV %s on loopback, TLS with a CA of its own, for %s's appointments, contacts and tasks\n", act.url, alice)
	return &mailSetup{
		profile: &serversync.Profile{
			Name:           "Contoso demo mail",
			Description:    "The quickstart's in-process IMAP and SMTP server",
			Owner:          "user-admin",
			ServerType:     serversync.ServerTypeIMAPSMTP,
			IncomingServer: demo.Host, IncomingPort: demo.IMAPPort,
			OutgoingServer: demo.Host, OutgoingPort: demo.SMTPPort,
			// TLS modes, credential sources and limits are left to the defaults,
			// filled in on save.
			// Appointments, contacts and tasks go to the CalDAV/CardDAV server.
			ACTServerURL:    act.url,
			ExtraRootCAsPEM: demo.CAPEM + act.caPEM,
		},
		mailboxes: []*serversync.Mailbox{
			{Name: "Alice", EmailAddress: alice, Password: auth.NewSecret("alice-password"),
				Regarding: serversync.Regarding{Type: serversync.RegardingUser, ID: "user-alice"},
				// A user mailbox tracks only replies to CRM email by default; the demo
				// tracks everything so that the seeded mail shows up.
				IncomingFilter: serversync.FilterAll,
				// Alice's appointments, contacts and tasks sync too.
				ACTMethod: serversync.OutgoingServerSideSync},
			{Name: "Support", EmailAddress: support, Password: auth.NewSecret("support-password"),
				Regarding: serversync.Regarding{Type: serversync.RegardingQueue, ID: "queue-support"},
				Owner:     "user-admin"}, // a queue tracks all email by default
		},
		seeded: sampleCount,
		from:   alice,
		to:     support,
		act:    act,
		close:  func() { act.close(); _ = demo.Close() },
	}, nil
}

// realServers describes the servers and mailbox the flags name.
func realServers(o options) (*mailSetup, error) {
	if !strings.Contains(o.user, "@") {
		return nil, errors.New("-imap needs -user, the mailbox's email address")
	}
	if o.password == "" {
		return nil, errors.New("-imap needs -password or SERVERSYNC_QUICKSTART_PASSWORD")
	}
	imapHost, imapPort, err := splitHostPort(o.imap)
	if err != nil {
		return nil, fmt.Errorf("-imap: %w", err)
	}
	smtpHost, smtpPort := imapHost, 0
	if o.smtp != "" {
		if smtpHost, smtpPort, err = splitHostPort(o.smtp); err != nil {
			return nil, fmt.Errorf("-smtp: %w", err)
		}
	}
	var caPEM []byte
	if o.caFile != "" {
		if caPEM, err = os.ReadFile(o.caFile); err != nil {
			return nil, fmt.Errorf("-ca: %w", err)
		}
	}
	local := o.user[:strings.IndexByte(o.user, '@')]
	return &mailSetup{
		profile: &serversync.Profile{
			Name:           "IMAP/SMTP " + imapHost,
			Owner:          "user-admin",
			ServerType:     serversync.ServerTypeIMAPSMTP,
			IncomingServer: imapHost, IncomingPort: imapPort, IncomingTLS: tlsMode(imapPort, o.startTLS),
			OutgoingServer: smtpHost, OutgoingPort: smtpPort, OutgoingTLS: tlsMode(smtpPort, o.startTLS),
			ExtraRootCAsPEM: string(caPEM),
		},
		mailboxes: []*serversync.Mailbox{{
			Name: local, EmailAddress: o.user, Password: auth.NewSecret(o.password),
			Regarding:      serversync.Regarding{Type: serversync.RegardingUser, ID: "user-" + local},
			IncomingFilter: serversync.FilterAll,
			// A real mailbox may hold years of mail; a quickstart needs only a little.
			ProcessEmailFrom: time.Now().AddDate(0, 0, -7),
		}},
		from:  o.user,
		to:    cmp.Or(o.to, o.user),
		close: func() {},
	}, nil
}

// splitHostPort splits "host" or "host:port"; a missing port is 0, which the
// profile fills in on save from the protocol and TLS mode.
func splitHostPort(addr string) (string, int, error) {
	host, portText, err := net.SplitHostPort(addr)
	if err != nil {
		if host, _, err := net.SplitHostPort(addr + ":0"); err == nil {
			return host, 0, nil // no port given
		}
		return "", 0, err
	}
	port, err := strconv.Atoi(portText)
	if err != nil || port <= 0 || port > 65535 {
		return "", 0, fmt.Errorf("bad port %q", portText)
	}
	return host, port, nil
}

// tlsMode uses STARTTLS when asked or on the ports that by convention expect it,
// and implicit TLS everywhere else (993, 465 and ports left to the default).
func tlsMode(port int, startTLS bool) serversync.TLSMode {
	if startTLS || port == 143 || port == 587 || port == 25 {
		return serversync.TLSStartTLS
	}
	return serversync.TLSImplicit
}

// openKeys reads the key that seals credentials in the database, creating it on the
// first run. Real deployments set SERVERSYNC_SECRET_KEY or SERVERSYNC_SECRET_KEY_FILE.
func openKeys(path string) (auth.KeyProvider, error) {
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		if err := auth.GenerateKeyFile(path); err != nil {
			return nil, err
		}
	}
	return auth.KeysFromFile(path)
}

// saveProfile creates the profile, or on a rerun updates the one of that name to
// what this run connects to (the demo server listens on new ports every run).
func saveProfile(ctx context.Context, admin *serversync.Admin, want *serversync.Profile) (*serversync.Profile, error) {
	for existing, err := range admin.Profiles(ctx) {
		if err != nil {
			return nil, err
		}
		if existing.Name == want.Name {
			return admin.UpdateProfile(ctx, existing.ID, func(p *serversync.Profile) {
				created := p.CreatedAt
				*p = *want.Clone()
				p.CreatedAt = created
			})
		}
	}
	return admin.CreateProfile(ctx, want)
}

// saveMailbox creates the mailbox, or on a rerun updates the one with that address.
func saveMailbox(ctx context.Context, admin *serversync.Admin, want *serversync.Mailbox) (*serversync.Mailbox, error) {
	for existing, err := range admin.Mailboxes(ctx, serversync.MailboxFilter{EmailAddress: want.EmailAddress, Limit: 1}) {
		if err != nil {
			return nil, err
		}
		return admin.UpdateMailbox(ctx, existing.ID, func(m *serversync.Mailbox) {
			m.ProfileID, m.Password, m.IncomingFilter, m.ProcessEmailFrom = want.ProfileID, want.Password, want.IncomingFilter, want.ProcessEmailFrom
			m.ACTMethod = cmp.Or(want.ACTMethod, serversync.OutgoingNone)
		})
	}
	return admin.CreateMailbox(ctx, want)
}
