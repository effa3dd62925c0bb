package multiprocess_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/auth"
	"github.com/serversync/serversync/connector/standard"
	"github.com/serversync/serversync/internal/childtest"
	"github.com/serversync/serversync/internal/mailtest"
	"github.com/serversync/serversync/internal/pgtest"
	"github.com/serversync/serversync/store/postgres"
)

const (
	envSchema  = "SERVERSYNC_MULTIPROCESS_SCHEMA" // set for children only
	envKeyFile = "SERVERSYNC_MULTIPROCESS_KEY_FILE"
	envHost    = "SERVERSYNC_MULTIPROCESS_HOST"

	hosts     = 3
	mailboxes = 5
	seeded    = 100 // messages in the mailboxes before the Syncers start
	arriving  = 100 // messages appended while they run
	emails    = 20  // half queued before the Syncers start, half while they run
	leaseTTL  = 2 * time.Second
	victim    = "host-1"
	// connLimit is the profile's MaxConcurrentConnections. Its mailboxes log in
	// with the profile's service account (a Dovecot master user), so the limit
	// counts every IMAP and SMTP connection of the three hosts together.
	connLimit = 2
)

// firstUser is the first of the bulk users of scripts/mailservers behind the
// mailboxes: 21–25 belong to this test alone (other packages use 1–20), so it runs
// beside them against the same mail server.
const firstUser = 21

func user(i int) string { return fmt.Sprintf("user%04d", firstUser+i) }

// TestMultiProcess runs three Syncer processes (this test binary re-run as
// TestChild) on one PostgreSQL schema and five Dovecot mailboxes, while mail
// arrives and email is queued and sent through Postfix. Mid-run the victim is told
// to stall: its syncs stop half way through a batch and its sends half way through
// the message, holding their leases and claims, and it is killed there with
// SIGKILL. The two others take over once the leases and claims expire. At the end:
//
//   - every message is tracked exactly once, in its own mailbox;
//   - no mailbox was synced by two sessions at once, judged from the record the
//     children keep of every session they open (a table in the test's schema), the
//     victim's open sessions lasting until it died;
//   - the victim's mailboxes were taken over (ForcedUnlockCount), and only after
//     its leases expired;
//   - every email sent reached its recipient's INBOX exactly once; one whose sender
//     died while the server had it is failed with the Syncer's honest "may have
//     been delivered", and reached it at most once;
//   - the mail server never had more of the profile's connections open at once
//     than its MaxConcurrentConnections, counted by relays in front of it, the
//     victim's included until it died.
func TestMultiProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("the multi-process test runs three Syncer processes for several seconds; skipped with -short")
	}
	url := pgtest.URL(t)
	mail := mailtest.Load(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	e := setUp(t, ctx, url, mail)

	seededIn := map[string]string{} // Message-ID → mailbox ID, for every message
	for n := range seeded + arriving {
		id, raw := e.message(n)
		seededIn[id] = e.boxes[n%mailboxes].ID
		if n < seeded {
			mailtest.Append(t, e.clients[n%mailboxes], serversync.InboxFolder, raw)
		}
	}
	queued := map[string]*serversync.EmailActivity{} // by Message-ID
	for n := range emails / 2 {
		a, err := e.queue(n)
		require.NoError(t, err)
		queued[a.MessageID] = a
	}

	// The Syncers start; for a few seconds mail keeps arriving and email is queued.
	e.conns.reset() // Test & Enable's connections are not the children's
	children := make([]*child, hosts)
	for i := range children {
		children[i] = startChild(t, fmt.Sprintf("host-%d", i+1), e.schema, e.keyFile)
	}
	started := time.Now()
	// Once every host syncs, mail starts arriving; a little later the victim stalls
	// and is killed. Mail is still arriving then, so the victim has some to stall on
	// however long the hosts took to start.
	waitFor(t, 30*time.Second, "every host to sync", func() (bool, string) {
		requireRunning(t, children...)
		var n int
		require.NoError(t, e.db.QueryRow(ctx, "SELECT count(DISTINCT host) FROM "+e.sessions+" WHERE fetched").Scan(&n))
		return n == hosts, fmt.Sprintf("%d of %d hosts synced a mailbox", n, hosts)
	})
	arrived := make(chan error, 1)
	queuedLater := map[string]*serversync.EmailActivity{} // the goroutine's until it sends on arrived
	victimStalled := make(chan struct{})
	go func() { arrived <- e.keepMailComing(ctx, queuedLater, victimStalled) }()
	running := time.Now()
	time.Sleep(1500 * time.Millisecond)
	killed, survivors := children[0], children[1:]
	_, err := fmt.Fprintln(killed.stdin, "stall")
	require.NoError(t, err)
	waitFor(t, 25*time.Second, "the victim to stall inside a sync", func() (bool, string) {
		requireRunning(t, children...)
		return len(e.readSessions(t, ctx, "kind = 'stalled-sync'")) > 0, "no stalled sync yet"
	})
	close(victimStalled)
	// Give it a chance to stall half way through sending an email too; whether it
	// does is up to the hosts' race for the queue.
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
		if len(e.readSessions(t, ctx, "kind = 'stalled-send'")) > 0 {
			break
		}
	}
	killStarted := time.Now()
	require.NoError(t, killed.cmd.Process.Kill()) // SIGKILL: no release, no cleanup
	<-killed.exited
	killedAt := time.Now()
	orphaned := map[string]time.Time{} // mailbox ID → when the victim's lease expires
	for m, err := range e.store.ListMailboxes(ctx, serversync.MailboxFilter{}) {
		require.NoError(t, err)
		if m.LeaseHost == victim {
			orphaned[m.ID] = m.LeaseExpiresAt
		}
	}
	require.NotEmpty(t, orphaned, "the victim was killed holding leases")
	stalledSyncs := len(e.readSessions(t, ctx, "kind = 'stalled-sync'"))
	stalledSends := len(e.readSessions(t, ctx, "kind = 'stalled-send'"))
	claims := 0
	for a, err := range e.store.ListActivities(ctx, serversync.ActivityFilter{Direction: serversync.Outgoing, Status: serversync.StatusSending}) {
		require.NoError(t, err)
		if a.ClaimedBy == victim {
			claims++
		}
	}

	// The survivors finish the work, then stop.
	require.NoError(t, <-arrived)
	maps.Copy(queued, queuedLater)
	require.Len(t, queued, emails)
	waitFor(t, 60*time.Second, "every message tracked, every email sent and the victim's mailboxes taken over", func() (bool, string) {
		requireRunning(t, survivors...)
		tracked, pending, kept := 0, 0, 0
		for a, err := range e.store.ListActivities(ctx, serversync.ActivityFilter{}) {
			require.NoError(t, err)
			switch {
			case a.Direction == serversync.Incoming && seededIn[a.MessageID] == a.MailboxID:
				tracked++
			case a.Status == serversync.StatusPendingSend || a.Status == serversync.StatusSending:
				pending++
			}
		}
		for m, err := range e.store.ListMailboxes(ctx, serversync.MailboxFilter{}) {
			require.NoError(t, err)
			if _, ok := orphaned[m.ID]; ok && m.ForcedUnlockCount == 0 {
				kept++
			}
		}
		return tracked >= len(seededIn) && pending == 0 && kept == 0,
			fmt.Sprintf("%d of %d messages tracked, %d emails pending, %d of the victim's mailboxes not taken over", tracked, len(seededIn), pending, kept)
	})
	sent, unknown := checkSentOnce(t, e, queued)
	for _, c := range survivors {
		c.stop(t)
	}
	elapsed := time.Since(started)

	checkTrackedOnce(t, e, seededIn)
	peak, total := e.conns.state()
	assert.Positive(t, total)
	assert.LessOrEqual(t, peak, connLimit, "the profile's connections open at once on the mail server, over all hosts")
	sessions := e.readSessions(t, ctx, "kind IN ('incoming', 'outgoing')")
	openAtKill := 0
	for i := range sessions {
		s := &sessions[i]
		switch {
		case s.closed != nil:
		case s.host == victim:
			s.closed = &killedAt // the process, and its connections, ended there
			if s.fetched {
				openAtKill++
			}
		default:
			t.Errorf("%s never closed its %s session %d on mailbox %s", s.host, s.kind, s.id, s.mailbox)
			s.closed = &killedAt
		}
	}
	assert.Positive(t, openAtKill, "the victim was killed in the middle of a sync")
	syncs := slices.DeleteFunc(slices.Clone(sessions), func(s session) bool { return s.kind != "incoming" || !s.fetched })
	for _, pair := range overlaps(syncs) {
		a, b := pair[0], pair[1]
		t.Errorf("mailbox %s synced twice at once: by %s from %s to %s and by %s from %s to %s", a.mailbox,
			a.host, a.opened.Format(time.StampMicro), a.closed.Format(time.StampMicro),
			b.host, b.opened.Format(time.StampMicro), b.closed.Format(time.StampMicro))
	}
	takeovers := checkTakeovers(t, e, syncs, orphaned, killStarted)

	perHost := map[string]int{}
	for _, s := range syncs {
		perHost[s.host]++
	}
	t.Logf("%d hosts, %d mailboxes, %v from start to stop; %s killed %v after every host synced, stalled in %d sync(s) "+
		"and %d send(s), holding %d lease(s) and %d email claim(s), with %d sync(s) open; %d takeover(s)",
		hosts, mailboxes, elapsed.Round(time.Millisecond), victim, killedAt.Sub(running).Round(time.Millisecond),
		stalledSyncs, stalledSends, len(orphaned), claims, openAtKill, takeovers)
	t.Logf("%d messages tracked once each (%d before start, %d while running); of %d emails, %d sent and delivered once, %d failed as outcome-unknown",
		len(seededIn), seeded, arriving, emails, sent, unknown)
	t.Logf("%d sessions recorded, %d of them syncs (by host: %v), none overlapping", len(sessions), len(syncs), perHost)
	t.Logf("%d IMAP and SMTP connections to the mail server, at most %d open at once (MaxConcurrentConnections %d)", total, peak, connLimit)
}

// ---- The test's world -------------------------------------------------------

// env is what the parent test set up: a fresh schema with the store and the
// sessions table, and five mailboxes on Dovecot and Postfix, tested and enabled,
// with an IMAP client each.
type env struct {
	mail     *mailtest.Env
	store    *postgres.Store
	db       *pgx.Conn
	schema   string
	sessions string // the sessions table, schema-qualified
	keyFile  string
	conns    *connCounter // the profile's connections, counted by relays in front of the mail server
	run      string       // in every Message-ID and subject of this run
	boxes    []*serversync.Mailbox
	clients  []*imapclient.Client
}

func setUp(t *testing.T, ctx context.Context, url string, mail *mailtest.Env) *env {
	t.Helper()
	e := &env{mail: mail, schema: pgtest.FreshSchema(t), run: serversync.NewID()}
	e.sessions = pgx.Identifier{e.schema, "sessions"}.Sanitize()
	e.keyFile = filepath.Join(t.TempDir(), "secret.key")
	require.NoError(t, auth.GenerateKeyFile(e.keyFile))
	keys, err := auth.KeysFromFile(e.keyFile)
	require.NoError(t, err)
	e.store, err = postgres.Open(ctx, pgtest.WithParam(url, "pool_max_conns=4"), &postgres.Options{Keys: keys, Schema: e.schema})
	require.NoError(t, err)
	t.Cleanup(func() { _ = e.store.Close() })
	e.db, err = pgx.Connect(ctx, url)
	require.NoError(t, err)
	t.Cleanup(func() { _ = e.db.Close(context.Background()) })
	_, err = e.db.Exec(ctx, `CREATE TABLE `+e.sessions+` (
		id         bigserial PRIMARY KEY,
		host       text NOT NULL,
		mailbox_id text NOT NULL,
		kind       text NOT NULL, -- incoming, outgoing, stalled-sync, stalled-send
		fetched    boolean NOT NULL DEFAULT false,
		opened_at  timestamptz NOT NULL,
		closed_at  timestamptz
	)`)
	require.NoError(t, err)

	admin := serversync.NewAdmin(e.store, &serversync.AdminConfig{
		CanApprove: func(context.Context, string, *serversync.Mailbox) error { return nil }, Logger: slog.New(slog.DiscardHandler),
	})
	// The mail server is reached through relays that count the connections open
	// at once, as the server sees them.
	e.conns = &connCounter{}
	imapRelay := startRelay(t, net.JoinHostPort(mail.Host, strconv.Itoa(mail.Port(mailtest.IMAPS))), e.conns)
	smtpRelay := startRelay(t, net.JoinHostPort(mail.Host, strconv.Itoa(mail.Port(mailtest.Submission))), e.conns)
	profile, err := admin.CreateProfile(ctx, &serversync.Profile{
		Name: "dovecot " + e.run, ServerType: serversync.ServerTypeIMAPSMTP,
		IncomingServer: mail.Host, IncomingPort: imapRelay, IncomingTLS: serversync.TLSImplicit,
		OutgoingServer: mail.Host, OutgoingPort: smtpRelay, OutgoingTLS: serversync.TLSStartTLS,
		ExtraRootCAsPEM: mail.CAPEM, ConnectionTimeout: 20 * time.Second,
		IncomingCredentialSource: serversync.CredentialsProfile, OutgoingCredentialSource: serversync.CredentialsProfile,
		UseImpersonation: true, ImpersonationStyle: auth.ImpersonateMasterUser,
		Username: mail.MasterUser, Password: auth.NewSecret(mail.MasterPassword),
		MaxConcurrentConnections: connLimit,
	})
	require.NoError(t, err)
	tester, err := serversync.NewSyncer(e.store, standard.Connectors(nil), &serversync.Config{Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	for i := range mailboxes {
		m, err := admin.CreateMailbox(ctx, &serversync.Mailbox{
			Name: user(i), EmailAddress: mail.Login(user(i)), ProfileID: profile.ID, IncomingFilter: serversync.FilterAll,
			Regarding: serversync.Regarding{Type: serversync.RegardingUser, ID: "crm-" + user(i)},
		})
		require.NoError(t, err)
		require.NoError(t, admin.Approve(ctx, "admin", m.ID))
		m, err = tester.TestAndEnable(ctx, m.ID)
		require.NoError(t, err)
		require.True(t, m.IncomingEnabled && m.OutgoingEnabled, "Test & Enable of %s: %+v", m.EmailAddress, m.Stats.LastError)
		e.boxes = append(e.boxes, m)
		c := mail.IMAPClient(t, user(i))
		mailtest.Empty(t, c, serversync.SentFolder)
		e.clients = append(e.clients, c)
	}
	return e
}

// message returns the Message-ID and bytes of the nth message, for mailbox n%mailboxes.
func (e *env) message(n int) (string, []byte) {
	id := fmt.Sprintf("mp-%s-%d@partner.test", e.run, n)
	raw := fmt.Sprintf("From: Partner %d <partner%d@partner.test>\r\nTo: <%s>\r\nSubject: multi-process %s message %d\r\n"+
		"Date: %s\r\nMessage-ID: <%s>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n%s\r\n",
		n, n, e.mail.Login(user(n%mailboxes)), e.run, n, time.Now().Format(time.RFC1123Z), id,
		strings.Repeat("Some text to track. ", 50))
	return id, []byte(raw)
}

// queue queues the nth email, from mailbox n%mailboxes to another.
func (e *env) queue(n int) (*serversync.EmailActivity, error) {
	from, to := e.boxes[n%mailboxes], e.boxes[(n+1+n/mailboxes)%mailboxes]
	return serversync.QueueEmail(context.Background(), e.store, &serversync.EmailActivity{
		MailboxID: from.ID, To: []serversync.Address{{Email: to.EmailAddress}},
		Subject: fmt.Sprintf("multi-process %s email %d", e.run, n), TextBody: "hello from " + from.EmailAddress,
	}, time.Now())
}

// keepMailComing appends the arriving messages, one every 40ms (the last
// lastArrivals every 500ms while victimStalled is open), and queues the second half
// of the emails among them, adding those to queued. It uses the IMAP clients until
// it returns.
func (e *env) keepMailComing(ctx context.Context, queued map[string]*serversync.EmailActivity, victimStalled <-chan struct{}) error {
	every := arriving / (emails - emails/2)
	for i := range arriving {
		n := seeded + i
		_, raw := e.message(n)
		if err := mailtest.AppendMessage(e.clients[n%mailboxes], serversync.InboxFolder, raw); err != nil {
			return fmt.Errorf("append message %d: %w", n, err)
		}
		if i%every == 0 {
			a, err := e.queue(emails/2 + i/every)
			if err != nil {
				return fmt.Errorf("queue an email: %w", err)
			}
			queued[a.MessageID] = a
		}
		pause := 40 * time.Millisecond
		select {
		case <-victimStalled:
		default:
			if i >= arriving-lastArrivals {
				// The victim has not stalled yet (on a loaded machine its next sync
				// can be seconds away): the last messages come slowly, so it still
				// finds new mail to stall on.
				pause = 500 * time.Millisecond
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(pause):
		}
	}
	return nil
}

// lastArrivals is how many of the arriving messages keepMailComing slows down for
// while the victim has not stalled: they stretch arrival by up to 10 s.
const lastArrivals = 20

// ---- The checks -------------------------------------------------------------

// checkTrackedOnce checks that every message is tracked once in its mailbox, and
// that no mailbox tracked any Message-ID twice (emails delivered between the
// mailboxes included).
func checkTrackedOnce(t *testing.T, e *env, seededIn map[string]string) {
	t.Helper()
	perMailbox := map[string]map[string]int{} // mailbox ID → Message-ID → activities
	for a, err := range e.store.ListActivities(context.Background(), serversync.ActivityFilter{Direction: serversync.Incoming}) {
		require.NoError(t, err)
		if perMailbox[a.MailboxID] == nil {
			perMailbox[a.MailboxID] = map[string]int{}
		}
		perMailbox[a.MailboxID][a.MessageID]++
	}
	for id, mailboxID := range seededIn {
		assert.Equal(t, 1, perMailbox[mailboxID][id], "message %s tracked once in its mailbox", id)
	}
	for mailboxID, ids := range perMailbox {
		for id, n := range ids {
			assert.LessOrEqual(t, n, 1, "mailbox %s tracked %s %d times", mailboxID, id, n)
		}
	}
}

// checkSentOnce waits for Postfix to deliver the sent emails, then checks that
// each reached its recipient's INBOX exactly once, and that an email failed as
// outcome-unknown reached it at most once. It returns how many were sent and how
// many failed as outcome-unknown.
func checkSentOnce(t *testing.T, e *env, queued map[string]*serversync.EmailActivity) (sent, unknown int) {
	t.Helper()
	var sentEmails, unknownEmails []*serversync.EmailActivity
	for a, err := range e.store.ListActivities(context.Background(), serversync.ActivityFilter{Direction: serversync.Outgoing}) {
		require.NoError(t, err)
		switch {
		case a.Status == serversync.StatusSent:
			sentEmails = append(sentEmails, a)
		case a.Status == serversync.StatusFailed && strings.Contains(a.LastError, "may have been delivered"):
			unknownEmails = append(unknownEmails, a)
		default:
			t.Errorf("email %s (%s) ended %s: %s", a.ID, a.Subject, a.Status, a.LastError)
		}
	}
	assert.Equal(t, emails, len(sentEmails)+len(unknownEmails), "every queued email ends sent or outcome-unknown")
	var delivered map[string]int
	waitFor(t, 30*time.Second, "Postfix to deliver every sent email", func() (bool, string) {
		delivered = countDeliveries(t, e.clients, queued)
		missing := 0
		for _, a := range sentEmails {
			if delivered[a.MessageID] == 0 {
				missing++
			}
		}
		return missing == 0, fmt.Sprintf("%d of %d sent emails not in their recipient's INBOX", missing, len(sentEmails))
	})
	// A second copy would have been submitted before the statuses settled; give
	// Postfix a moment to hand it to Dovecot, then count once more.
	time.Sleep(time.Second)
	delivered = countDeliveries(t, e.clients, queued)
	for _, a := range sentEmails {
		assert.Equal(t, 1, delivered[a.MessageID], "sent email %s (%s) delivered exactly once", a.MessageID, a.Subject)
	}
	for _, a := range unknownEmails {
		assert.LessOrEqual(t, delivered[a.MessageID], 1, "outcome-unknown email %s delivered at most once", a.MessageID)
	}
	return len(sentEmails), len(unknownEmails)
}

// checkTakeovers checks that every mailbox the victim was killed holding was taken
// over, and that no other host synced it before the victim's lease expired. It
// returns the sum of ForcedUnlockCount over the mailboxes.
func checkTakeovers(t *testing.T, e *env, syncs []session, orphaned map[string]time.Time, killStarted time.Time) int {
	t.Helper()
	takeovers := 0
	for m, err := range e.store.ListMailboxes(context.Background(), serversync.MailboxFilter{}) {
		require.NoError(t, err)
		takeovers += m.ForcedUnlockCount
		expires, ok := orphaned[m.ID]
		if !ok {
			continue
		}
		assert.Positive(t, m.ForcedUnlockCount, "the victim's lease on %s was taken over", m.EmailAddress)
		for _, s := range syncs {
			if s.mailbox == m.ID && s.host != victim && s.opened.After(killStarted) && s.opened.Before(expires) {
				t.Errorf("%s opened %s at %s, before the victim's lease expired at %s", s.host, m.EmailAddress,
					s.opened.Format(time.StampMicro), expires.Format(time.StampMicro))
			}
		}
	}
	assert.Positive(t, takeovers, "some mailbox was taken over (ForcedUnlockCount)")
	return takeovers
}

// session is a row of the sessions table.
type session struct {
	id                  int64
	host, mailbox, kind string
	fetched             bool
	opened              time.Time
	closed              *time.Time
}

func (e *env) readSessions(t *testing.T, ctx context.Context, where string) []session {
	t.Helper()
	rows, err := e.db.Query(ctx, "SELECT id, host, mailbox_id, kind, fetched, opened_at, closed_at FROM "+e.sessions+" WHERE "+where+" ORDER BY id")
	require.NoError(t, err)
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (session, error) {
		var s session
		err := row.Scan(&s.id, &s.host, &s.mailbox, &s.kind, &s.fetched, &s.opened, &s.closed)
		return s, err
	})
	require.NoError(t, err)
	return out
}

// overlaps returns the pairs of sessions on one mailbox whose intervals overlap.
func overlaps(sessions []session) [][2]session {
	byMailbox := map[string][]session{}
	for _, s := range sessions {
		byMailbox[s.mailbox] = append(byMailbox[s.mailbox], s)
	}
	var out [][2]session
	for _, list := range byMailbox {
		slices.SortFunc(list, func(a, b session) int { return a.opened.Compare(b.opened) })
		for i, a := range list {
			for _, b := range list[i+1:] {
				if !b.opened.Before(*a.closed) {
					break // sorted by opening: the later ones open later still
				}
				out = append(out, [2]session{a, b})
			}
		}
	}
	return out
}

// ---- The child processes ----------------------------------------------------

// TestChild is a Syncer process of TestMultiProcess; it does nothing when run on
// its own. It records every session it opens in the test's sessions table, stalls
// its syncs and sends when told "stall" on stdin (until it is killed), and stops
// gracefully when stdin ends.
func TestChild(t *testing.T) {
	schema := os.Getenv(envSchema)
	if schema == "" {
		t.Skip("child process of TestMultiProcess")
	}
	host, url := os.Getenv(envHost), os.Getenv(pgtest.EnvURL)
	ctx := context.Background()
	keys, err := auth.KeysFromFile(os.Getenv(envKeyFile))
	require.NoError(t, err)
	store, err := postgres.Open(ctx, pgtest.WithParam(url, "pool_max_conns=6"), &postgres.Options{Keys: keys, Schema: schema})
	require.NoError(t, err)
	defer store.Close()
	pool, err := pgxpool.New(ctx, pgtest.WithParam(url, "pool_max_conns=2"))
	require.NoError(t, err)
	defer pool.Close()

	stall, eof := make(chan struct{}), make(chan struct{})
	go func() {
		var once sync.Once
		for lines := bufio.NewScanner(os.Stdin); lines.Scan(); {
			if lines.Text() == "stall" {
				once.Do(func() { close(stall) })
			}
		}
		close(eof)
	}()
	rec := &recorder{pool: pool, host: host, table: pgx.Identifier{schema, "sessions"}.Sanitize(), stall: stall}
	conns := standard.Connectors(nil)
	for kind, c := range conns.Incoming {
		conns.Incoming[kind] = recordingIncoming{c, rec}
	}
	for kind, c := range conns.Outgoing {
		conns.Outgoing[kind] = recordingOutgoing{c, rec}
	}
	s, err := serversync.NewSyncer(store, conns, &serversync.Config{
		Host: host, LeaseTTL: leaseTTL, OutboxClaimTTL: leaseTTL, Tick: 20 * time.Millisecond,
		ActivePoll: 300 * time.Millisecond, OutboxInterval: 100 * time.Millisecond, RetryInterval: 500 * time.Millisecond,
		IdleConnections: -1, SaveBatch: 5, Track: rec.track,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	require.NoError(t, err)
	runCtx, cancel := context.WithTimeout(ctx, 2*time.Minute) // in case the parent is gone
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Run(runCtx) }()
	select {
	case err := <-done:
		t.Fatalf("syncer %s ended early: %v", host, err)
	case <-eof:
	}
	stopCtx, cancelStop := context.WithTimeout(ctx, 15*time.Second)
	defer cancelStop()
	require.NoError(t, s.Stop(stopCtx))
	require.ErrorIs(t, <-done, serversync.ErrSyncerStopped)
	require.NoError(t, rec.failure())
}

// child is a TestChild process; closing its stdin stops it gracefully.
type child struct {
	host   string
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	exited chan struct{}
	err    error // valid once exited is closed
}

func startChild(t *testing.T, host, schema, keyFile string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), envSchema+"="+schema, envKeyFile+"="+keyFile, envHost+"="+host)
	cmd.Stdout = childtest.Output(host)
	cmd.Stderr = cmd.Stdout
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	c := &child{host: host, cmd: cmd, stdin: stdin, exited: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		close(c.exited)
	}()
	t.Cleanup(func() { // a test that failed half way leaves no process behind
		select {
		case <-c.exited:
		default:
			_ = cmd.Process.Kill()
			<-c.exited
		}
	})
	return c
}

// requireRunning fails t at once when one of the children has ended.
func requireRunning(t *testing.T, children ...*child) {
	t.Helper()
	for _, c := range children {
		select {
		case <-c.exited:
			t.Fatalf("%s ended early: %v", c.host, c.err)
		default:
		}
	}
}

// stop ends stdin, which makes the child stop its Syncer, and waits for it to pass.
func (c *child) stop(t *testing.T) {
	t.Helper()
	require.NoError(t, c.stdin.Close())
	select {
	case <-c.exited:
		require.NoError(t, c.err, "%s stopped gracefully and passed", c.host)
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not stop within 30s", c.host)
	}
}

// ---- The record of sessions, kept by the children -------------------------------

// recorder writes a row per session to the test's sessions table: at open, with no
// closed_at, so a killed process's open sessions are known; fetched before the
// session first reads the inbox; closed_at once it is closed. The times are taken
// outside the connector calls (open before it, close after it), so the recorded
// interval holds the whole session.
type recorder struct {
	pool  *pgxpool.Pool
	host  string
	table string
	stall <-chan struct{} // closed: stall every sync and send from now on

	mu  sync.Mutex
	err error // the first close that could not be recorded
}

func (r *recorder) opened(ctx context.Context, mailboxID, kind string) (int64, error) {
	var id int64
	err := r.pool.QueryRow(ctx, "INSERT INTO "+r.table+" (host, mailbox_id, kind, opened_at) VALUES ($1, $2, $3, $4) RETURNING id",
		r.host, mailboxID, kind, time.Now()).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("record the session: %w", err)
	}
	return id, nil
}

func (r *recorder) fetching(ctx context.Context, id int64) error {
	if _, err := r.pool.Exec(ctx, "UPDATE "+r.table+" SET fetched = true WHERE id = $1", id); err != nil {
		return fmt.Errorf("record the fetch: %w", err)
	}
	return nil
}

// closed records the end of a session, even while the Syncer stops. A failure
// fails the child, since an unclosed interval would read as a session still open.
func (r *recorder) closed(id int64) {
	at := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := r.pool.Exec(ctx, "UPDATE "+r.table+" SET closed_at = $1 WHERE id = $2", at, id); err != nil {
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.err == nil {
			r.err = fmt.Errorf("record the close of session %d: %w", id, err)
		}
	}
}

func (r *recorder) failure() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

func (r *recorder) stalled() bool {
	select {
	case <-r.stall:
		return true
	default:
		return false
	}
}

// track is the tracking hook: it tracks everything, and once stalled it blocks
// until the process dies: a sync stuck half way through a batch, its lease still
// renewed by the Syncer's heartbeat. Each stalled sync is recorded.
func (r *recorder) track(ctx context.Context, _ *serversync.EmailActivity, m *serversync.Mailbox) error {
	if !r.stalled() {
		return nil
	}
	if _, err := r.opened(ctx, m.ID, "stalled-sync"); err != nil {
		return err
	}
	<-ctx.Done()
	return ctx.Err()
}

// recordingIncoming records the sessions of an incoming connector. Its sessions do
// not offer IDLE (the children run with IdleConnections -1).
type recordingIncoming struct {
	serversync.IncomingConnector
	rec *recorder
}

func (c recordingIncoming) OpenIncoming(ctx context.Context, target *serversync.Target) (serversync.IncomingSession, error) {
	id, err := c.rec.opened(ctx, target.MailboxID, "incoming")
	if err != nil {
		return nil, err
	}
	s, err := c.IncomingConnector.OpenIncoming(ctx, target)
	if err != nil {
		c.rec.closed(id)
		return nil, err
	}
	return &recordedIncoming{IncomingSession: s, rec: c.rec, id: id}, nil
}

// recordedIncoming marks its row fetched before its first Fetch: a session that
// reads the inbox is a sync, which the mailbox's lease must cover. Sessions that
// only append a copy to Sent run outside the lease, on any host.
type recordedIncoming struct {
	serversync.IncomingSession
	rec     *recorder
	id      int64
	fetched bool
}

func (s *recordedIncoming) Fetch(ctx context.Context, req serversync.FetchRequest, fn func(*serversync.RemoteMessage) error) (serversync.FetchResult, error) {
	if !s.fetched {
		if err := s.rec.fetching(ctx, s.id); err != nil {
			return serversync.FetchResult{}, err
		}
		s.fetched = true
	}
	return s.IncomingSession.Fetch(ctx, req, fn)
}

func (s *recordedIncoming) Close() error {
	err := s.IncomingSession.Close()
	s.rec.closed(s.id)
	return err
}

// recordingOutgoing records the sessions of an outgoing connector.
type recordingOutgoing struct {
	serversync.OutgoingConnector
	rec *recorder
}

func (c recordingOutgoing) OpenOutgoing(ctx context.Context, target *serversync.Target) (serversync.OutgoingSession, error) {
	id, err := c.rec.opened(ctx, target.MailboxID, "outgoing")
	if err != nil {
		return nil, err
	}
	s, err := c.OutgoingConnector.OpenOutgoing(ctx, target)
	if err != nil {
		c.rec.closed(id)
		return nil, err
	}
	return &recordedOutgoing{OutgoingSession: s, rec: c.rec, id: id, mailboxID: target.MailboxID}, nil
}

type recordedOutgoing struct {
	serversync.OutgoingSession
	rec       *recorder
	id        int64
	mailboxID string
}

// Send, once stalled, passes the first bytes of the message to the server and then
// blocks until the process dies: the server holds part of the message, and the
// Syncer has recorded the attempt. Each stalled send is recorded.
func (s *recordedOutgoing) Send(ctx context.Context, env serversync.Envelope, msg io.Reader) error {
	if s.rec.stalled() {
		if _, err := s.rec.opened(ctx, s.mailboxID, "stalled-send"); err != nil {
			return err
		}
		msg = io.MultiReader(io.LimitReader(msg, 100), blockingReader{ctx})
	}
	return s.OutgoingSession.Send(ctx, env, msg)
}

func (s *recordedOutgoing) Close() error {
	err := s.OutgoingSession.Close()
	s.rec.closed(s.id)
	return err
}

// blockingReader blocks every read until ctx ends.
type blockingReader struct{ ctx context.Context }

func (b blockingReader) Read([]byte) (int, error) {
	<-b.ctx.Done()
	return 0, b.ctx.Err()
}

// ---- Counting the connections the mail server sees ------------------------------

// connCounter counts connections open at once, and their peak.
type connCounter struct {
	mu                sync.Mutex
	open, peak, total int
}

func (c *connCounter) add(n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.open += n
	c.peak = max(c.peak, c.open)
	if n > 0 {
		c.total += n
	}
}

func (c *connCounter) state() (peak, total int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.peak, c.total
}

// reset starts a new peak and total from the connections open now.
func (c *connCounter) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.peak, c.total = c.open, 0
}

// startRelay relays loopback connections to target until the test ends, counting
// each in c from its accept until either side closes it: a client that closes (or
// dies, or is killed) stops counting at once, before its connection slot can pass
// to another host. It returns the port to connect to.
func startRelay(t *testing.T, target string, c *connCounter) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var (
		relays sync.WaitGroup
		mu     sync.Mutex
		conns  = map[net.Conn]struct{}{}
		ending bool
	)
	track := func(conn net.Conn) { // so that the clean-up can end every relay
		mu.Lock()
		defer mu.Unlock()
		if ending {
			_ = conn.Close()
		}
		conns[conn] = struct{}{}
	}
	relays.Go(func() {
		for {
			client, err := ln.Accept()
			if err != nil {
				return
			}
			c.add(1)
			track(client)
			relays.Go(func() {
				defer client.Close()
				server, err := net.Dial("tcp", target)
				if err != nil {
					c.add(-1)
					return
				}
				defer server.Close()
				track(server)
				var once sync.Once
				closed := func() { once.Do(func() { c.add(-1); _ = client.Close(); _ = server.Close() }) }
				var pipes sync.WaitGroup
				pipes.Go(func() { _, _ = io.Copy(server, client); closed() })
				pipes.Go(func() { _, _ = io.Copy(client, server); closed() })
				pipes.Wait()
			})
		}
	})
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		ending = true
		for conn := range conns {
			_ = conn.Close()
		}
		mu.Unlock()
		relays.Wait()
	})
	return ln.Addr().(*net.TCPAddr).Port
}

// ---- Mail, PostgreSQL and polling ---------------------------------------------

// countDeliveries counts the queued emails in the mailboxes' INBOXes by Message-ID.
func countDeliveries(t *testing.T, clients []*imapclient.Client, queued map[string]*serversync.EmailActivity) map[string]int {
	t.Helper()
	counts := map[string]int{}
	for _, c := range clients {
		selected, err := c.Select(serversync.InboxFolder, &imap.SelectOptions{ReadOnly: true}).Wait()
		require.NoError(t, err)
		if selected.NumMessages > 0 {
			all := imap.SeqSet{}
			all.AddRange(1, 0)
			msgs, err := c.Fetch(all, &imap.FetchOptions{Envelope: true}).Collect()
			require.NoError(t, err)
			for _, m := range msgs {
				if m.Envelope != nil && queued[m.Envelope.MessageID] != nil {
					counts[m.Envelope.MessageID]++
				}
			}
		}
		require.NoError(t, c.Unselect().Wait())
	}
	return counts
}

// waitFor polls done until it reports true, failing t with done's last state
// after timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, done func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, state := done()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s: %s", timeout, what, state)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
