package interop_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/auth"
	"github.com/serversync/serversync/connector/imapconn"
	"github.com/serversync/serversync/connector/smtpconn"
	"github.com/serversync/serversync/connector/standard"
	"github.com/serversync/serversync/internal/mailtest"
	"github.com/serversync/serversync/internal/testclock"
	"github.com/serversync/serversync/store/sqlite"
	"github.com/serversync/serversync/store/storetest"
)

// Mail goes through Postfix and LMTP before Dovecot has it, which takes a second or
// two on a loaded CI machine: every wait polls for up to waitTimeout.
const waitTimeout = 30 * time.Second

// A (user0006) emails B (user0007) through the Syncer; B's incoming sync tracks the
// email correlated to A's; B answers through the Syncer and A's incoming sync links
// the answer to A's original email by its headers.
func TestSendTrackAndReply(t *testing.T) {
	h := newHarness(t)
	p := h.profile(t, serversync.ServerTypeIMAPSMTP, nil)
	a := h.mailbox(t, "user0006", p)
	b := h.mailbox(t, "user0007", p)
	s := h.syncer(t, nil)
	h.testAndEnable(t, s, a, b)
	h.run(t, s)

	opportunity := serversync.RecordRef{Type: "opportunity", ID: "opp-" + serversync.NewID()}
	queued, err := s.QueueEmail(context.Background(), &serversync.EmailActivity{
		MailboxID: a.ID, To: []serversync.Address{{Name: "B", Email: b.EmailAddress}},
		Subject: "Proposal", TextBody: "Here is our proposal.", Regarding: opportunity,
	})
	require.NoError(t, err)
	sent := h.waitSent(t, queued.ID)
	require.NotEmpty(t, sent.TrackingToken)
	assert.Contains(t, sent.Subject, sent.TrackingToken, "the tracking token is added to the subject")
	h.waitOnServer(t, "user0006", serversync.SentFolder, sent.MessageID, "a copy of A's email in A's Sent folder")
	h.waitOnServer(t, "user0007", "INBOX", sent.MessageID, "A's email delivered to B")

	h.pollAgain(t, b.ID)
	atB := h.waitTracked(t, b.ID, sent.MessageID)
	assert.Equal(t, serversync.StatusTracked, atB.Status)
	assert.Equal(t, sent.Subject, atB.Subject)
	assert.Equal(t, a.EmailAddress, atB.From.Email)
	assert.Contains(t, atB.TextBody, "Here is our proposal.")
	assert.Equal(t, serversync.InboxFolder, atB.ServerFolder)
	assert.NotEmpty(t, atB.ServerRef, "the IMAP UID, to move or delete the message later")
	assert.Equal(t, sent.ID, atB.CorrelatedTo, "B's copy is linked to A's email")
	assert.Equal(t, serversync.CorrelatedByTrackingToken, atB.CorrelationMethod, "a first email has no In-Reply-To: its token links it")
	assert.Equal(t, opportunity, atB.Regarding, "and takes A's regarding link")

	queuedReply, err := s.QueueEmail(context.Background(), &serversync.EmailActivity{
		MailboxID: b.ID, From: serversync.Address{Name: "B", Email: b.EmailAddress},
		To:      []serversync.Address{{Name: "A", Email: a.EmailAddress}},
		Subject: "Re: " + sent.Subject, TextBody: "Looks good.",
		InReplyTo: []string{sent.MessageID}, References: []string{sent.MessageID},
	})
	require.NoError(t, err)
	reply := h.waitSent(t, queuedReply.ID)
	h.waitOnServer(t, "user0007", serversync.SentFolder, reply.MessageID, "a copy of B's reply in B's Sent folder")
	h.waitOnServer(t, "user0006", "INBOX", reply.MessageID, "B's reply delivered to A")

	h.pollAgain(t, a.ID)
	atA := h.waitTracked(t, a.ID, reply.MessageID)
	assert.Equal(t, serversync.StatusTracked, atA.Status)
	assert.Equal(t, b.EmailAddress, atA.From.Email)
	assert.Equal(t, []string{sent.MessageID}, atA.InReplyTo)
	assert.Equal(t, sent.ID, atA.CorrelatedTo, "the reply is linked to A's original email, not to B's copy of it")
	assert.Equal(t, serversync.CorrelatedByHeaders, atA.CorrelationMethod)
	assert.Equal(t, opportunity, atA.Regarding)

	h.waitBetweenSyncs(t, a.ID) // events follow the stored activity
	assert.Len(t, h.activities(t, serversync.ActivityFilter{MailboxID: a.ID, Direction: serversync.Incoming}), 1,
		"A's Sent folder is not tracked: only its inbox is")
	assert.Equal(t, 2, h.countEvents(serversync.EventEmailSent))
	assert.Equal(t, 2, h.countEvents(serversync.EventMailTracked))
}

// The receiving side of TestSendTrackAndReply over POP3: B's profile reads Dovecot
// with POP3, which has no folders and no UIDs to search by, only UIDLs; B's mail
// stays on the server and polling again tracks nothing twice.
func TestPOP3MailboxTracksSentEmail(t *testing.T) {
	h := newHarness(t)
	a := h.mailbox(t, "user0006", h.profile(t, serversync.ServerTypeIMAPSMTP, nil))
	b := h.mailbox(t, "user0007", h.profile(t, serversync.ServerTypePOP3SMTP, nil))
	s := h.syncer(t, nil)
	h.testAndEnable(t, s, a, b)
	h.run(t, s)

	opportunity := serversync.RecordRef{Type: "opportunity", ID: "opp-" + serversync.NewID()}
	queued, err := s.QueueEmail(context.Background(), &serversync.EmailActivity{
		MailboxID: a.ID, To: []serversync.Address{{Email: b.EmailAddress}},
		Subject: "Quote", TextBody: "Our quote.", Regarding: opportunity,
	})
	require.NoError(t, err)
	sent := h.waitSent(t, queued.ID)
	h.waitOnServer(t, "user0007", "INBOX", sent.MessageID, "A's email delivered to B")

	h.pollAgain(t, b.ID)
	atB := h.waitTracked(t, b.ID, sent.MessageID)
	assert.Equal(t, serversync.StatusTracked, atB.Status)
	assert.Equal(t, sent.Subject, atB.Subject)
	assert.NotEmpty(t, atB.ServerRef, "the POP3 UIDL")
	assert.Equal(t, sent.ID, atB.CorrelatedTo)
	assert.Equal(t, serversync.CorrelatedByTrackingToken, atB.CorrelationMethod)
	assert.Equal(t, opportunity, atB.Regarding)

	h.waitSynced(t, b.ID, h.pollAgain(t, b.ID))
	assert.Len(t, h.activities(t, serversync.ActivityFilter{MailboxID: b.ID}), 1, "polling again tracks nothing twice")
	assert.True(t, h.onServer(t, "user0007", "INBOX", sent.MessageID), "tracking leaves POP3 mail on the server")
}

// A message the host's Track hook refuses is stored as failed, with a warning to
// the mailbox's owner, and moved to Undeliverable on Dovecot; the message the hook
// accepts stays in the inbox, and polling again offers neither to the hook twice.
func TestRefusedMailMovesToUndeliverable(t *testing.T) {
	h := newHarness(t)
	p := h.profile(t, serversync.ServerTypeIMAPSMTP, func(p *serversync.Profile) { p.MoveFailedToUndeliverable = true })
	c := h.mailbox(t, "user0008", p)
	fine := h.submit(t, "user0008", "user0008", "Order 17")
	refused := h.submit(t, "user0008", "user0008", "please refuse me")
	// Delivered before the first sync, so that sync sees both.
	h.waitOnServer(t, "user0008", "INBOX", fine, "the accepted message delivered")
	h.waitOnServer(t, "user0008", "INBOX", refused, "the refused message delivered")

	var mu sync.Mutex
	offered := map[string]int{} // Message-ID → calls of the hook
	s := h.syncer(t, &serversync.Config{Track: func(_ context.Context, a *serversync.EmailActivity, _ *serversync.Mailbox) error {
		mu.Lock()
		offered[a.MessageID]++
		mu.Unlock()
		if strings.Contains(a.Subject, "refuse") {
			return errors.New("no record matches this message")
		}
		return nil
	}})
	h.testAndEnable(t, s, c)
	h.run(t, s)

	tracked := h.waitTracked(t, c.ID, fine)
	assert.Equal(t, serversync.StatusTracked, tracked.Status)
	failed := h.waitTracked(t, c.ID, refused)
	assert.Equal(t, serversync.StatusFailed, failed.Status)
	assert.Contains(t, failed.LastError, "no record matches this message")

	h.waitOnServer(t, "user0008", serversync.UndeliverableFolder, refused, "the refused message moved to Undeliverable")
	assert.False(t, h.onServer(t, "user0008", "INBOX", refused), "moved, not copied")
	assert.True(t, h.onServer(t, "user0008", "INBOX", fine), "the tracked message stays in the inbox")
	assert.False(t, h.onServer(t, "user0008", serversync.UndeliverableFolder, fine))

	warnings := h.alerts(t, serversync.AlertFilter{MailboxID: c.ID, Level: serversync.AlertWarning})
	require.Len(t, warnings, 1, "one item alert, for the refused message")
	assert.Equal(t, serversync.ScopeItem, warnings[0].Scope)
	assert.Equal(t, failed.ID, warnings[0].ActivityID)
	assert.Equal(t, "owner-user0008", warnings[0].Recipient)

	h.waitSynced(t, c.ID, h.pollAgain(t, c.ID))
	mu.Lock()
	assert.Equal(t, map[string]int{fine: 1, refused: 1}, offered, "each message was offered to the hook once")
	mu.Unlock()
	assert.Len(t, h.activities(t, serversync.ActivityFilter{MailboxID: c.ID}), 2)
	assert.Equal(t, 1, h.countEvents(serversync.EventItemFailed))
}

// A mailbox whose password stopped working (user0009) is disabled at its first
// sync with an Error alert to its owner alone, while another mailbox of the same
// profile (user0010) keeps tracking new mail in the same Syncer run.
func TestBadPasswordDisablesOnlyThatMailbox(t *testing.T) {
	h := newHarness(t)
	p := h.profile(t, serversync.ServerTypeIMAPSMTP, nil)
	bad := h.mailbox(t, "user0009", p)
	good := h.mailbox(t, "user0010", p)
	s := h.syncer(t, nil)
	h.testAndEnable(t, s, bad, good)
	// The password is changed on the server after Test & Enable passed: the stored
	// one no longer works.
	const wrong = "not-the-password-any-more"
	_, err := h.store.UpdateMailbox(context.Background(), bad.ID, func(m *serversync.Mailbox) error {
		m.Password = auth.NewSecret(wrong)
		return nil
	})
	require.NoError(t, err)
	first := h.submit(t, "user0006", "user0010", "before")
	h.waitOnServer(t, "user0010", "INBOX", first, "the first message delivered to user0010")
	h.run(t, s)

	h.waitTracked(t, good.ID, first)
	eventually(t, "user0009 disabled", func() bool { return !h.getMailbox(t, bad.ID).IncomingEnabled })
	h.waitBetweenSyncs(t, bad.ID) // the failed sync has raised its alert and released the mailbox
	m := h.getMailbox(t, bad.ID)
	assert.Equal(t, serversync.TestFailure, m.IncomingStatus)
	assert.Equal(t, serversync.TestFailure, m.Status)
	assert.Equal(t, "auth_failed", m.Stats.LastError.Code)
	assert.NotContains(t, m.Stats.LastError.Message, wrong)
	assert.True(t, m.NextSyncAt.IsZero(), "a disabled mailbox is not polled again")
	errs := h.alerts(t, serversync.AlertFilter{MailboxID: bad.ID, Level: serversync.AlertError})
	require.Len(t, errs, 1)
	assert.Equal(t, "owner-user0009", errs[0].Recipient)
	assert.Equal(t, "auth_failed", errs[0].Code)
	assert.NotContains(t, errs[0].Message, wrong)
	assert.Empty(t, h.alerts(t, serversync.AlertFilter{Recipient: "admin-user"}),
		"a mailbox's own password is its owner's business, not the profile owner's")

	second := h.submit(t, "user0006", "user0010", "after")
	h.waitOnServer(t, "user0010", "INBOX", second, "the second message delivered to user0010")
	h.pollAgain(t, good.ID, bad.ID)
	h.waitTracked(t, good.ID, second)
	assert.True(t, h.getMailbox(t, good.ID).IncomingEnabled)
	assert.False(t, h.getMailbox(t, bad.ID).IncomingEnabled)
	assert.Len(t, h.alerts(t, serversync.AlertFilter{MailboxID: bad.ID, Level: serversync.AlertError}), 1, "no second alert")
	assert.Equal(t, 1, h.countEvents(serversync.EventMailboxDisabled))
}

// harness is one test's world: the real mail servers, a SQLite store sealed with a
// key of its own, an Admin to fill it, the clock the Syncer reads, and plain IMAP
// clients to look at the servers independently of the code under test.
type harness struct {
	mail  *mailtest.Env
	store serversync.Store
	admin *serversync.Admin
	clock *testclock.Clock
	log   *slog.Logger
	imap  map[string]*imapclient.Client // by user

	mu     sync.Mutex
	events []serversync.Event
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	mail := mailtest.Load(t)
	h := newStoreHarness(t)
	h.mail = mail
	return h
}

// newStoreHarness is a harness without the mail servers, for tests against other
// servers (the EWS fake with the real KDC).
func newStoreHarness(t *testing.T) *harness {
	t.Helper()
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "secret.key")
	require.NoError(t, auth.GenerateKeyFile(keyFile))
	keys, err := auth.KeysFromFile(keyFile)
	require.NoError(t, err)
	store, err := sqlite.Open(context.Background(), filepath.Join(dir, "serversync.db"), &sqlite.Options{Keys: keys})
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, store.Close()) })
	h := &harness{store: store, clock: testclock.New(time.Now()), log: testLogger(t), imap: map[string]*imapclient.Client{}}
	h.admin = serversync.NewAdmin(store, &serversync.AdminConfig{
		CanApprove: func(context.Context, string, *serversync.Mailbox) error { return nil },
		Now:        h.clock.Now, Logger: h.log,
	})
	return h
}

// profile stores a profile for the test servers: IMAP or POP3 with implicit TLS for
// incoming mail, submission with STARTTLS for outgoing, each mailbox logging in
// with its own credentials.
func (h *harness) profile(t *testing.T, serverType serversync.ServerType, configure func(*serversync.Profile)) *serversync.Profile {
	t.Helper()
	incoming := mailtest.IMAPS
	if serverType == serversync.ServerTypePOP3SMTP {
		incoming = mailtest.POP3S
	}
	p := &serversync.Profile{
		Name: "Dovecot and Postfix " + string(serverType), Owner: "admin-user", ServerType: serverType,
		IncomingServer: h.mail.Host, IncomingPort: h.mail.Port(incoming), IncomingTLS: serversync.TLSImplicit,
		OutgoingServer: h.mail.Host, OutgoingPort: h.mail.Port(mailtest.Submission), OutgoingTLS: serversync.TLSStartTLS,
		ExtraRootCAsPEM: h.mail.CAPEM, ConnectionTimeout: 20 * time.Second,
	}
	if configure != nil {
		configure(p)
	}
	p, err := h.admin.CreateProfile(context.Background(), p)
	require.NoError(t, err)
	return p
}

// mailbox empties user's mail on Dovecot (left over from an earlier run, which would
// be tracked again by a new store) and stores an approved mailbox for user.
func (h *harness) mailbox(t *testing.T, user string, p *serversync.Profile) *serversync.Mailbox {
	t.Helper()
	mailtest.Empty(t, h.client(t, user), serversync.UndeliverableFolder, serversync.SentFolder)
	ctx := context.Background()
	m, err := h.admin.CreateMailbox(ctx, &serversync.Mailbox{
		Name: user, EmailAddress: h.mail.Login(user), ProfileID: p.ID, Owner: "owner-" + user,
		Regarding: serversync.Regarding{Type: serversync.RegardingUser, ID: "user-" + user},
		Username:  h.mail.Login(user), Password: auth.NewSecret(mailtest.Password(user)),
		IncomingFilter: serversync.FilterAll,
	})
	require.NoError(t, err)
	require.NoError(t, h.admin.Approve(ctx, "admin-user", m.ID))
	return h.getMailbox(t, m.ID)
}

// syncer returns a Syncer on the test clock with loops fast enough that the tests
// wait on the mail servers, not on the Syncer. IDLE is off: the tests decide when a
// mailbox is polled again, by moving the clock.
func (h *harness) syncer(t *testing.T, cfg *serversync.Config) *serversync.Syncer {
	t.Helper()
	c := serversync.Config{}
	if cfg != nil {
		c = *cfg
	}
	c.Tick = 10 * time.Millisecond
	c.ScanInterval = 20 * time.Millisecond
	c.OutboxInterval = 20 * time.Millisecond
	c.IdleConnections = -1
	c.Now = h.clock.Now
	c.Logger = h.log
	c.OnEvent = h.record
	conns := standard.Connectors(&standard.Options{IMAP: &imapconn.Options{Logger: h.log}, Logger: h.log})
	s, err := serversync.NewSyncer(h.store, conns, &c)
	require.NoError(t, err)
	return s
}

// testAndEnable runs Test & Enable against the servers, which must pass: it is what
// enables the mailboxes and makes them due for their first sync.
func (h *harness) testAndEnable(t *testing.T, s *serversync.Syncer, boxes ...*serversync.Mailbox) {
	t.Helper()
	for _, m := range boxes {
		got, err := s.TestAndEnable(context.Background(), m.ID)
		require.NoError(t, err)
		require.Equal(t, serversync.TestSuccess, got.Status, "Test & Enable of %s: %+v", m.EmailAddress, got.Stats.LastError)
		require.True(t, got.IncomingEnabled && got.OutgoingEnabled)
	}
}

// run starts s and stops it when the test ends.
func (h *harness) run(t *testing.T, s *serversync.Syncer) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- s.Run(context.Background()) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		assert.NoError(t, s.Stop(ctx))
		assert.ErrorIs(t, <-done, serversync.ErrSyncerStopped)
	})
}

// pollAgain makes mailboxes due again, as if an hour had passed, and returns the
// new time. It first waits until none of them is being synced: moving the clock
// past a lease in progress would let the Syncer take the mailbox over from itself.
func (h *harness) pollAgain(t *testing.T, ids ...string) time.Time {
	t.Helper()
	h.waitBetweenSyncs(t, ids...)
	h.clock.Advance(time.Hour)
	return h.clock.Now()
}

// waitBetweenSyncs waits until none of the mailboxes is leased or due: whatever
// their last sync does after storing activities (events, alerts, moves on the
// server, the next poll time) is done.
func (h *harness) waitBetweenSyncs(t *testing.T, ids ...string) {
	t.Helper()
	eventually(t, "the mailboxes between syncs", func() bool {
		now := h.clock.Now()
		for _, id := range ids {
			m := h.getMailbox(t, id)
			if m.LeaseHost != "" || !m.NextSyncAt.IsZero() && !m.NextSyncAt.After(now) {
				return false
			}
		}
		return true
	})
}

// waitSynced waits for a sync of the mailbox that succeeded at or after since.
func (h *harness) waitSynced(t *testing.T, id string, since time.Time) {
	t.Helper()
	eventually(t, "a sync", func() bool { return !h.getMailbox(t, id).Stats.LastSyncSucceededAt.Before(since) })
}

// waitSent waits until the outgoing email was accepted by Postfix, and fails at once
// if it failed for good.
func (h *harness) waitSent(t *testing.T, id string) *serversync.EmailActivity {
	t.Helper()
	var a *serversync.EmailActivity
	eventually(t, "the email sent", func() bool {
		var err error
		a, err = h.store.GetActivity(context.Background(), id)
		require.NoError(t, err)
		if a.Status == serversync.StatusFailed {
			t.Fatalf("sending %q failed: %s", a.Subject, a.LastError)
		}
		return a.Status == serversync.StatusSent
	})
	return a
}

// waitTracked waits for the mailbox's incoming activity of the message messageID.
func (h *harness) waitTracked(t *testing.T, mailboxID, messageID string) *serversync.EmailActivity {
	t.Helper()
	var a *serversync.EmailActivity
	eventually(t, "message "+messageID+" tracked", func() bool {
		got := h.activities(t, serversync.ActivityFilter{MailboxID: mailboxID, Direction: serversync.Incoming, MessageID: messageID})
		require.LessOrEqual(t, len(got), 1, "tracked more than once")
		if len(got) == 1 {
			a = got[0]
		}
		return a != nil
	})
	return a
}

// submit sends a message through Postfix with user's credentials, not through the
// Syncer, and returns its Message-ID.
func (h *harness) submit(t *testing.T, user, to, subject string) string {
	t.Helper()
	ctx := context.Background()
	id := serversync.NewID() + "@interop.serversync.test"
	raw := "From: " + h.mail.Login(user) + "\r\nTo: " + h.mail.Login(to) + "\r\nSubject: " + subject + "\r\n" +
		"Message-ID: <" + id + ">\r\nDate: " + time.Now().Format(time.RFC1123Z) + "\r\n" +
		"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + subject + ".\r\n"
	out, err := smtpconn.New(nil).OpenOutgoing(ctx, h.mail.Target(mailtest.Submission, user))
	require.NoError(t, err)
	defer out.Close()
	require.NoError(t, out.Send(ctx, serversync.Envelope{From: h.mail.Login(user), To: []string{h.mail.Login(to)}}, strings.NewReader(raw)))
	return id
}

// client is a plain IMAP client logged in as user, for looking at the server.
func (h *harness) client(t *testing.T, user string) *imapclient.Client {
	t.Helper()
	if h.imap[user] == nil {
		h.imap[user] = h.mail.IMAPClient(t, user)
	}
	return h.imap[user]
}

// onServer reports whether user's folder on Dovecot holds the message messageID;
// a missing folder holds nothing.
func (h *harness) onServer(t *testing.T, user, folder, messageID string) bool {
	t.Helper()
	c := h.client(t, user)
	if _, err := c.Select(folder, &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		var imapErr *imap.Error
		require.ErrorAs(t, err, &imapErr, "select %s of %s", folder, user)
		return false
	}
	data, err := c.UIDSearch(&imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Message-ID", Value: messageID}}}, nil).Wait()
	require.NoError(t, err)
	return len(data.AllUIDs()) > 0
}

func (h *harness) waitOnServer(t *testing.T, user, folder, messageID, what string) {
	t.Helper()
	eventually(t, what, func() bool { return h.onServer(t, user, folder, messageID) })
}

func (h *harness) getMailbox(t *testing.T, id string) *serversync.Mailbox {
	t.Helper()
	m, err := h.store.GetMailbox(context.Background(), id)
	require.NoError(t, err)
	return m
}

func (h *harness) activities(t *testing.T, f serversync.ActivityFilter) []*serversync.EmailActivity {
	return storetest.Collect(t, h.store.ListActivities(context.Background(), f))
}

func (h *harness) alerts(t *testing.T, f serversync.AlertFilter) []*serversync.Alert {
	return storetest.Collect(t, h.store.ListAlerts(context.Background(), f))
}

func (h *harness) record(e serversync.Event) {
	h.mu.Lock()
	h.events = append(h.events, e)
	h.mu.Unlock()
}

func (h *harness) countEvents(kind serversync.EventKind) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, e := range h.events {
		if e.Kind == kind {
			n++
		}
	}
	return n
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", waitTimeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// testLogger shows the Syncer's warnings and errors in a failing test's output (all
// its logs with SERVERSYNC_TEST_LOG set): against real servers they are the first
// clue. The Syncer is stopped before the test ends, so nothing logs after.
func testLogger(t *testing.T) *slog.Logger {
	level := slog.LevelWarn
	if os.Getenv("SERVERSYNC_TEST_LOG") != "" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: level}))
}
