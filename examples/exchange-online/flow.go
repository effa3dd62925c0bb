package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/auth"
	"github.com/serversync/serversync/connector/graph"
	"github.com/serversync/serversync/connector/standard"
	"github.com/serversync/serversync/store/sqlite"
)

// setup is what a run connects to: the fakes, or a real tenant.
type setup struct {
	profile   *serversync.Profile
	mailboxes []*serversync.Mailbox
	from, to  string // the test email's sender (a mailbox here) and recipient; to "" sends none
	fakes     *fakes // nil for a real tenant
	close     func()
}

// outcome is what a run did, for its test.
type outcome struct {
	status  map[string]serversync.TestStatus       // Test & Enable, by address
	tracked map[string][]*serversync.EmailActivity // incoming activities after the first sync, by address
	sent    *serversync.EmailActivity              // nil when no email was sent
	arrived *serversync.EmailActivity              // the sent email tracked by its recipient; nil when not a mailbox here
	reply   *serversync.EmailActivity              // the recipient's answer tracked by the sender; nil when none was sent
	onFake  bool                                   // the fake Graph delivered the sent email to the recipient's inbox
	tokens  int                                    // token requests the fake identity provider answered; -1 for a real tenant
	stats   graph.Stats                            // the Graph connector's counters
}

// run runs the whole flow and prints what happens.
func run(ctx context.Context, o options, out io.Writer) (*outcome, error) {
	var su *setup
	var err error
	if o.real() {
		su, err = realTenant(o)
	} else {
		su, err = startFakes(out)
	}
	if err != nil {
		return nil, err
	}
	defer su.close()

	dir, err := os.MkdirTemp("", "serversync-exchange-online-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	keyFile := filepath.Join(dir, "secret.key")
	if err := auth.GenerateKeyFile(keyFile); err != nil {
		return nil, err
	}
	keys, err := auth.KeysFromFile(keyFile)
	if err != nil {
		return nil, err
	}
	dbPath := filepath.Join(dir, "serversync.db")
	store, err := sqlite.Open(ctx, dbPath, &sqlite.Options{Keys: keys})
	if err != nil {
		return nil, err
	}
	defer store.Close()
	fmt.Fprintf(out, "database  %s (temporary)\n", dbPath)

	// Warnings and errors only: a normal run is quiet, a problem shows up on stderr.
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	admin := serversync.NewAdmin(store, &serversync.AdminConfig{
		Logger: logger,
		// The host decides who may approve email addresses; here "admin" does.
		CanApprove: func(_ context.Context, actor string, _ *serversync.Mailbox) error {
			if actor != "admin" {
				return errors.New("only admin approves email addresses")
			}
			return nil
		},
	})
	profile, err := admin.CreateProfile(ctx, su.profile)
	if err != nil {
		return nil, err
	}
	// %v on the key shows what logs show: [REDACTED].
	fmt.Fprintf(out, "profile   %q: %s, credentials %s (tenant %s, client %s, key %v)\n          Graph %s, certificate valid until %s\n",
		profile.Name, profile.ServerType, profile.IncomingCredentialSource, profile.TenantID, profile.ClientID,
		profile.CertificateKey, profile.IncomingServer, profile.CertificateNotAfter.UTC().Format(time.DateOnly))

	conns := standard.Connectors(&standard.Options{Logger: logger})
	// One Graph connector serves both directions of Exchange Online profiles.
	graphConn := conns.Incoming[serversync.ServerTypeExchangeOnline].(*graph.Connector)
	defer graphConn.CloseIdleConnections()
	watch := newWatcher()
	syncer, err := serversync.NewSyncer(store, conns, &serversync.Config{
		// Graph has no IDLE here (its push notifications need a public webhook), so
		// the Syncer polls; a demo wants new mail within a second. The defaults poll
		// far less (5 minutes for active mailboxes), well within Graph's limits.
		ActivePoll:  500 * time.Millisecond,
		MaxIdlePoll: time.Second,
		Tick:        50 * time.Millisecond,
		LeaseTTL:    15 * time.Second,
		OnEvent:     watch.onEvent,
		Logger:      logger,
	})
	if err != nil {
		return nil, err
	}

	res := &outcome{status: map[string]serversync.TestStatus{}, tracked: map[string][]*serversync.EmailActivity{}, tokens: -1}
	byAddress := map[string]*serversync.Mailbox{}
	var boxes []*serversync.Mailbox
	for _, want := range su.mailboxes {
		want.ProfileID = profile.ID
		m, err := admin.CreateMailbox(ctx, want)
		if err != nil {
			return nil, err
		}
		if err := admin.Approve(ctx, "admin", m.ID); err != nil {
			return nil, err
		}
		if m, err = syncer.TestAndEnable(ctx, m.ID); err != nil {
			return nil, err
		}
		res.status[m.EmailAddress] = m.Status
		if m.Status != serversync.TestSuccess {
			return nil, testFailure(ctx, store, profile, m, conns, watch.testError(m.ID))
		}
		fmt.Fprintf(out, "mailbox   %-18s approved, Test & Enable: %s (incoming %s, outgoing %s)\n",
			m.EmailAddress, m.Status, m.IncomingStatus, m.OutgoingStatus)
		byAddress[strings.ToLower(m.EmailAddress)] = m
		boxes = append(boxes, m)
	}

	runErr := make(chan error, 1)
	go func() { runErr <- syncer.Run(ctx) }()
	running := true
	stopSyncer := func() error {
		running = false
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

	started := time.Now()
	if err := watch.wait(ctx, "the first sync of every mailbox", func() (bool, error) {
		for _, m := range boxes {
			done, err := watch.firstSync(m.ID)
			if err != nil {
				return false, fmt.Errorf("first sync of %s: %w", m.EmailAddress, err)
			}
			if !done {
				return false, nil
			}
		}
		return true, nil
	}); err != nil {
		return nil, err
	}
	fmt.Fprintf(out, "\nfirst sync done in %s\n", time.Since(started).Round(time.Millisecond))
	for _, m := range boxes {
		list, err := incoming(ctx, store, m.ID, "")
		if err != nil {
			return nil, err
		}
		res.tracked[m.EmailAddress] = list
		fmt.Fprintf(out, "tracked   %d messages in %s\n", len(list), m.EmailAddress)
		for _, a := range list {
			fmt.Fprintf(out, "          %s  %-22s %s\n", a.ReceivedAt.Local().Format("Jan 02 15:04"), shorten(a.From.Email, 22), shorten(a.Subject, 50))
		}
	}

	if su.to != "" {
		if err := sendAndWatch(ctx, out, watch, syncer, store, su, byAddress, res); err != nil {
			return nil, err
		}
	}
	if err := stopSyncer(); err != nil {
		return nil, fmt.Errorf("stop the Syncer: %w", err)
	}
	fmt.Fprintln(out, "\nstopped   the Syncer, gracefully")

	res.stats = graphConn.Stats()
	if su.fakes != nil {
		res.tokens = su.fakes.aad.TokenRequests()
		// Both directions use the Graph resource: one token for the profile, however
		// many mailboxes, until it is about to expire (an hour).
		fmt.Fprintf(out, "tokens    %d issued by the identity provider for %d mailboxes (one per profile and resource, shared)\n",
			res.tokens, len(boxes))
	}
	fmt.Fprintf(out, "graph     %d requests, %d of them $batch, %d throttled (waited %s)\n",
		res.stats.Requests, res.stats.BatchRequests, res.stats.Throttled, res.stats.RetryWait.Round(time.Millisecond))
	if su.fakes != nil && res.tokens > 2 {
		return res, fmt.Errorf("the identity provider answered %d token requests: the app token was not shared", res.tokens)
	}
	return res, nil
}

// sendAndWatch queues an email from su.from to su.to, waits until it is sent and,
// when the recipient is a mailbox here, until that mailbox tracks it. When the
// recipient is another mailbox here, it answers, and the answer is tracked by the
// sender correlated by its In-Reply-To header.
func sendAndWatch(ctx context.Context, out io.Writer, watch *watcher, syncer *serversync.Syncer, store serversync.Store,
	su *setup, byAddress map[string]*serversync.Mailbox, res *outcome) error {
	from, recipient := byAddress[strings.ToLower(su.from)], byAddress[strings.ToLower(su.to)]
	m := mail{ctx: ctx, out: out, watch: watch, syncer: syncer, store: store, fakes: su.fakes}
	sent, err := m.send(from, su.to, &serversync.EmailActivity{
		Subject:  orderSubject,
		TextBody: "Hello,\n\nthe order 1042 left our warehouse today.\n\nSent by serversync's exchange-online example.\n",
		// The host record the email is about: what comes back is linked to it too.
		Regarding: serversync.RecordRef{Type: "case", ID: "CAS-01042"},
	})
	if err != nil {
		return err
	}
	res.sent = sent
	if su.fakes != nil {
		res.onFake = true // send checked that the fake delivered it
	}
	if recipient == nil {
		fmt.Fprintf(out, "          %s is not a mailbox here: not waiting for it to be tracked\n", su.to)
		return nil
	}
	if res.arrived, err = m.tracked(recipient, sent); err != nil || recipient.ID == from.ID {
		return err
	}

	// The recipient answers: a reply names the email it answers in In-Reply-To.
	// (Its subject is the host's, without the first email's tracking token: the
	// reply gets a token of its own.)
	reply, err := m.send(recipient, from.EmailAddress, &serversync.EmailActivity{
		Subject:    "Re: " + orderSubject,
		TextBody:   "Thanks, we will be there to receive it.\n",
		InReplyTo:  []string{res.arrived.MessageID},
		References: []string{res.arrived.MessageID},
	})
	if err != nil {
		return err
	}
	res.reply, err = m.tracked(from, reply)
	return err
}

// orderSubject is the subject of the example's email, before the tracking token.
const orderSubject = "Order 1042 has shipped"

// mail sends email through the Syncer and watches it arrive.
type mail struct {
	ctx    context.Context
	out    io.Writer
	watch  *watcher
	syncer *serversync.Syncer
	store  serversync.Store
	fakes  *fakes
}

// send queues a from mailbox's email to one address and waits until it is sent
// (and, on the fakes, delivered).
func (m *mail) send(from *serversync.Mailbox, to string, a *serversync.EmailActivity) (*serversync.EmailActivity, error) {
	a.MailboxID = from.ID
	a.To = []serversync.Address{{Email: to}}
	queued, err := m.syncer.QueueEmail(m.ctx, a)
	if err != nil {
		return nil, err
	}
	var sent *serversync.EmailActivity
	if err := m.watch.wait(m.ctx, "the email to be sent", func() (bool, error) {
		a, err := m.store.GetActivity(m.ctx, queued.ID)
		if err != nil {
			return false, err
		}
		switch a.Status {
		case serversync.StatusSent:
			sent = a
			return true, nil
		case serversync.StatusFailed:
			return false, fmt.Errorf("sending the email failed: %s", a.LastError)
		}
		return false, nil // a transient failure is retried later
	}); err != nil {
		return nil, err
	}
	fmt.Fprintf(m.out, "\nsent      %q from %s to %s through sendMail\n          Message-ID <%s>\n",
		sent.Subject, sent.From.Email, to, sent.MessageID)
	if m.fakes != nil {
		delivered := false
		for _, msg := range m.fakes.graph.Messages(to, "inbox") {
			delivered = delivered || strings.Trim(msg.InternetMessageID, "<>") == sent.MessageID
		}
		if !delivered {
			return nil, fmt.Errorf("the sent email is not in %s's inbox on the fake Graph", to)
		}
		fmt.Fprintf(m.out, "delivered by the fake Graph into %s's Inbox\n", to)
	}
	return sent, nil
}

// tracked waits until the recipient mailbox tracks the sent email, and says what
// it was correlated to.
func (m *mail) tracked(recipient *serversync.Mailbox, sent *serversync.EmailActivity) (*serversync.EmailActivity, error) {
	var a *serversync.EmailActivity
	if err := m.watch.wait(m.ctx, "the email to be tracked in "+recipient.EmailAddress, func() (bool, error) {
		list, err := incoming(m.ctx, m.store, recipient.ID, sent.MessageID)
		if len(list) > 0 {
			a = list[0]
		}
		return a != nil, err
	}); err != nil {
		return nil, err
	}
	how := "not correlated to an email sent here"
	if a.CorrelatedTo != "" {
		to, err := m.store.GetActivity(m.ctx, a.CorrelatedTo)
		if err != nil {
			return nil, err
		}
		what := fmt.Sprintf("%s's sent email %q", to.From.Email, to.Subject)
		if to.ID == sent.ID {
			what = "the sent email"
		}
		switch a.CorrelationMethod {
		case serversync.CorrelatedByTrackingToken:
			how = fmt.Sprintf("correlated to %s by its tracking token %s (in the subject)", what, a.TrackingToken)
		case serversync.CorrelatedByHeaders:
			how = fmt.Sprintf("correlated to %s by its In-Reply-To header", what)
		default:
			how = fmt.Sprintf("correlated to %s by %s", what, a.CorrelationMethod)
		}
		how += fmt.Sprintf(", so regarding %s %s too", a.Regarding.Type, a.Regarding.ID)
	}
	fmt.Fprintf(m.out, "tracked   in %s: %q\n          %s\n", recipient.EmailAddress, a.Subject, how)
	return a, nil
}

// incoming lists a mailbox's incoming activities, those of one Message-ID when
// messageID is set, oldest first, without their bodies.
func incoming(ctx context.Context, store serversync.Store, mailboxID, messageID string) ([]*serversync.EmailActivity, error) {
	var list []*serversync.EmailActivity
	for a, err := range store.ListActivities(ctx, serversync.ActivityFilter{MailboxID: mailboxID, Direction: serversync.Incoming, MessageID: messageID}) {
		if err != nil {
			return nil, err
		}
		a.TextBody, a.HTMLBody, a.Attachments, a.Raw = "", "", nil, nil
		list = append(list, a)
	}
	return list, nil
}

// testFailure says why a mailbox failed Test & Enable, with the steps of Test
// Connection, which say what to change.
func testFailure(ctx context.Context, store serversync.Store, p *serversync.Profile, m *serversync.Mailbox, conns serversync.Connectors, why error) error {
	var b strings.Builder
	fmt.Fprintf(&b, "mailbox %s failed Test & Enable (incoming %s, outgoing %s)", m.EmailAddress, m.IncomingStatus, m.OutgoingStatus)
	if why != nil {
		fmt.Fprintf(&b, ":\n  %s", strings.ReplaceAll(why.Error(), "\n", "\n  "))
	}
	settings, err := store.GetOrgSettings(ctx)
	if err != nil {
		return errors.New(b.String())
	}
	report := serversync.TestConnection(ctx, p, m, settings, conns.Incoming[p.ServerType], conns.Outgoing[p.ServerType])
	for _, dir := range []struct {
		name  string
		steps []serversync.TestStep
	}{{"incoming", report.Incoming}, {"outgoing", report.Outgoing}} {
		fmt.Fprintf(&b, "\n  %s:", dir.name)
		for _, s := range dir.steps {
			state := "ok"
			if !s.OK {
				state = "FAILED"
			}
			fmt.Fprintf(&b, "\n    %-16s %-6s %s", s.Name, state, s.Detail)
		}
	}
	return errors.New(b.String())
}

// shorten cuts s to at most n characters, marking the cut.
func shorten(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
