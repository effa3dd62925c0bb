package serversync_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/auth"
	imapconn "github.com/serversync/serversync/connector/imap"
	"github.com/serversync/serversync/connector/standard"
	"github.com/serversync/serversync/internal/demoserver"
	"github.com/serversync/serversync/internal/netfault"
	"github.com/serversync/serversync/internal/testclock"
	"github.com/serversync/serversync/store/memory"
	"github.com/serversync/serversync/store/storetest"
)

// syncEnv is a store, an admin, an in-process mail system and a profile for it.
type syncEnv struct {
	store   serversync.Store
	admin   *serversync.Admin
	demo    *demoserver.Server
	profile *serversync.Profile
	clock   *testclock.Clock
	imap    *imapconn.Options // for the Syncers e.syncer makes; nil: defaults

	mu     sync.Mutex
	events []serversync.Event
}

func newSyncEnv(t *testing.T, configure func(*serversync.Profile)) *syncEnv {
	t.Helper()
	demo, err := demoserver.Start(map[string]string{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = demo.Close() })
	e := &syncEnv{store: memory.New(), demo: demo, clock: testclock.New(time.Now())}
	e.admin = serversync.NewAdmin(e.store, &serversync.AdminConfig{
		CanApprove: func(context.Context, string, *serversync.Mailbox) error { return nil },
		Now:        e.clock.Now, Logger: slog.New(slog.DiscardHandler),
	})
	p := &serversync.Profile{
		Name: "demo", Owner: "admin-user", ServerType: serversync.ServerTypeIMAPSMTP,
		IncomingServer: demo.Host, IncomingPort: demo.IMAPPort,
		OutgoingServer: demo.Host, OutgoingPort: demo.SMTPPort, OutgoingTLS: serversync.TLSImplicit,
		ExtraRootCAsPEM: demo.CAPEM, ConnectionTimeout: 10 * time.Second,
	}
	if configure != nil {
		configure(p)
	}
	e.profile, err = e.admin.CreateProfile(context.Background(), p)
	require.NoError(t, err)
	return e
}

// throughProxy makes the profile's incoming connections go through a netfault
// proxy, which it stores in *proxy, so that a test can drop them.
func throughProxy(t *testing.T, proxy **netfault.Proxy) func(*serversync.Profile) {
	return func(p *serversync.Profile) {
		px, err := netfault.Start(net.JoinHostPort(p.IncomingServer, strconv.Itoa(p.IncomingPort)))
		require.NoError(t, err)
		t.Cleanup(func() { _ = px.Close() })
		p.IncomingPort = px.Port()
		*proxy = px
	}
}

// mailbox creates a user mailbox on the demo server and in the store, approved.
func (e *syncEnv) mailbox(t *testing.T, name string, configure func(*serversync.Mailbox)) *serversync.Mailbox {
	t.Helper()
	ctx := context.Background()
	email := name + "@example.test"
	require.NoError(t, e.demo.AddUser(email, name+"-pass"))
	m := &serversync.Mailbox{
		Name: name, EmailAddress: email, ProfileID: e.profile.ID, Owner: "owner-" + name,
		Regarding: serversync.Regarding{Type: serversync.RegardingUser, ID: "user-" + name},
		Password:  auth.NewSecret(name + "-pass"), IncomingFilter: serversync.FilterAll,
	}
	if configure != nil {
		configure(m)
	}
	m, err := e.admin.CreateMailbox(ctx, m)
	require.NoError(t, err)
	require.NoError(t, e.admin.Approve(ctx, "admin-user", m.ID))
	m, err = e.store.GetMailbox(ctx, m.ID)
	require.NoError(t, err)
	return m
}

func (e *syncEnv) onEvent(ev serversync.Event) {
	e.mu.Lock()
	e.events = append(e.events, ev)
	e.mu.Unlock()
}

func (e *syncEnv) countEvents(kind serversync.EventKind) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, ev := range e.events {
		if ev.Kind == kind {
			n++
		}
	}
	return n
}

// syncer returns a Syncer for tests: fast ticks, the test clock, no IDLE unless asked.
func (e *syncEnv) syncer(t *testing.T, cfg *serversync.Config) *serversync.Syncer {
	t.Helper()
	c := serversync.Config{}
	if cfg != nil {
		c = *cfg
	}
	c.Tick = 10 * time.Millisecond
	c.ScanInterval = 20 * time.Millisecond
	c.OutboxInterval = 20 * time.Millisecond
	if c.IdleConnections == 0 {
		c.IdleConnections = -1
	}
	c.Now = e.clock.Now
	c.Logger = testLogger()
	if c.OnEvent == nil {
		c.OnEvent = e.onEvent
	}
	s, err := serversync.NewSyncer(e.store, standard.Connectors(&standard.Options{IMAP: e.imap, Logger: slog.New(slog.DiscardHandler)}), &c)
	require.NoError(t, err)
	return s
}

// run starts s and stops it when the test ends.
func run(t *testing.T, s *serversync.Syncer) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- s.Run(context.Background()) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		assert.NoError(t, s.Stop(ctx))
		assert.ErrorIs(t, <-done, serversync.ErrSyncerStopped)
	})
}

func (e *syncEnv) activities(t *testing.T, f serversync.ActivityFilter) []*serversync.EmailActivity {
	return storetest.Collect(t, e.store.ListActivities(context.Background(), f))
}

func (e *syncEnv) alerts(t *testing.T, f serversync.AlertFilter) []*serversync.Alert {
	return storetest.Collect(t, e.store.ListAlerts(context.Background(), f))
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func message(from, to, subject, extraHeaders, body string) []byte {
	return []byte("From: " + from + "\r\nTo: " + to + "\r\nSubject: " + subject + "\r\n" + extraHeaders +
		"Date: Mon, 23 Nov 2026 09:00:00 +0000\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + body + "\r\n")
}

func testAndEnable(t *testing.T, s *serversync.Syncer, m *serversync.Mailbox) *serversync.Mailbox {
	t.Helper()
	m, err := s.TestAndEnable(context.Background(), m.ID)
	require.NoError(t, err)
	require.Equal(t, serversync.TestSuccess, m.Status, "Test & Enable: %+v", m.Stats.LastError)
	return m
}

func TestSyncTracksEachMessageOnce(t *testing.T) {
	e := newSyncEnv(t, nil)
	alice := e.mailbox(t, "alice", nil)
	msgs := [][]byte{
		message("Bob <bob@partner.test>", alice.EmailAddress, "=?UTF-8?Q?Caf=C3=A9_order?=", "Message-ID: <m1@partner.test>\r\n", "First."),
		message("carol@partner.test", alice.EmailAddress, "No Message-ID", "", "Second."),
		[]byte("From: broken\r\nSubject: truncated multipart\r\nContent-Type: multipart/mixed; boundary=xyz\r\n\r\n--xyz\r\nContent-Type: text/plain\r\n\r\ncut off here"),
	}
	for _, raw := range msgs {
		require.NoError(t, e.demo.Deliver(alice.EmailAddress, raw))
	}
	s := e.syncer(t, nil)
	testAndEnable(t, s, alice)
	run(t, s)
	eventually(t, "three activities", func() bool { return len(e.activities(t, serversync.ActivityFilter{MailboxID: alice.ID})) == 3 })

	got := e.activities(t, serversync.ActivityFilter{MailboxID: alice.ID})
	assert.Equal(t, "Café order", got[0].Subject, "subjects are decoded")
	assert.Equal(t, "m1@partner.test", got[0].MessageID)
	assert.Equal(t, "bob@partner.test", got[0].From.Email)
	assert.Contains(t, got[0].TextBody, "First.")
	assert.Equal(t, serversync.StatusTracked, got[2].Status, "a malformed message is still tracked")
	assert.NotEmpty(t, got[2].ParseError)
	assert.NotEmpty(t, got[2].Raw, "with its raw bytes kept")
	for _, a := range got {
		assert.Equal(t, serversync.Incoming, a.Direction)
		assert.NotEmpty(t, a.ServerRef)
	}
	eventually(t, "stats", func() bool {
		m, err := e.store.GetMailbox(context.Background(), alice.ID)
		return err == nil && m.Stats.ItemsProcessedLastSync == 3 && !m.Stats.LastSyncSucceededAt.IsZero()
	})

	// Offer everything again, as after a UIDVALIDITY change or a crash before the
	// cursor was saved: nothing is tracked twice.
	_, err := e.store.SaveTracked(context.Background(), &serversync.Cursor{MailboxID: alice.ID, Folder: "INBOX"}, nil)
	require.NoError(t, err)
	require.NoError(t, e.demo.Deliver(alice.EmailAddress, message("dan@partner.test", alice.EmailAddress, "Fourth", "", "new")))
	e.clock.Advance(time.Hour) // due again
	eventually(t, "the new message", func() bool { return len(e.activities(t, serversync.ActivityFilter{MailboxID: alice.ID})) == 4 })
	time.Sleep(100 * time.Millisecond)
	assert.Len(t, e.activities(t, serversync.ActivityFilter{MailboxID: alice.ID}), 4, "the re-offered messages were not tracked again")
	assert.Equal(t, 4, e.countEvents(serversync.EventMailTracked))
}

func TestSendReplyAndCorrelate(t *testing.T) {
	e := newSyncEnv(t, nil)
	alice := e.mailbox(t, "alice", nil)
	bob := e.mailbox(t, "bob", nil)
	s := e.syncer(t, nil)
	testAndEnable(t, s, alice)
	testAndEnable(t, s, bob)
	run(t, s)

	opportunity := serversync.RecordRef{Type: "opportunity", ID: "opp-42"}
	queued, err := s.QueueEmail(context.Background(), &serversync.EmailActivity{
		MailboxID: alice.ID, To: []serversync.Address{{Name: "Bob", Email: bob.EmailAddress}},
		Subject: "Proposal", TextBody: "Here is our proposal.", Regarding: opportunity,
	})
	require.NoError(t, err)
	eventually(t, "the email sent", func() bool {
		a, err := e.store.GetActivity(context.Background(), queued.ID)
		return err == nil && a.Status == serversync.StatusSent
	})
	sent, err := e.store.GetActivity(context.Background(), queued.ID)
	require.NoError(t, err)
	require.NotEmpty(t, sent.TrackingToken)
	assert.Contains(t, sent.Subject, sent.TrackingToken, "the tracking token is added to the subject")
	assert.Equal(t, 1, e.demo.Sent())

	// Bob's incoming pipeline tracks it, correlated to Alice's email by its token.
	e.clock.Advance(time.Hour)
	eventually(t, "bob tracks the email", func() bool { return len(e.activities(t, serversync.ActivityFilter{MailboxID: bob.ID})) == 1 })
	atBob := e.activities(t, serversync.ActivityFilter{MailboxID: bob.ID})[0]
	assert.Equal(t, sent.MessageID, atBob.MessageID)
	assert.Equal(t, sent.ID, atBob.CorrelatedTo)
	assert.Equal(t, opportunity, atBob.Regarding)

	// Bob replies from his mail client; Alice's incoming pipeline links the reply.
	reply := message(bob.EmailAddress, alice.EmailAddress, "Re: Proposal", "Message-ID: <reply-1@example.test>\r\nIn-Reply-To: <"+sent.MessageID+">\r\n", "Looks good.")
	require.NoError(t, e.demo.Deliver(alice.EmailAddress, reply))
	e.clock.Advance(time.Hour)
	eventually(t, "alice tracks the reply", func() bool {
		return len(e.activities(t, serversync.ActivityFilter{MailboxID: alice.ID, Direction: serversync.Incoming})) == 1
	})
	got := e.activities(t, serversync.ActivityFilter{MailboxID: alice.ID, Direction: serversync.Incoming})[0]
	assert.Equal(t, sent.ID, got.CorrelatedTo)
	assert.Equal(t, serversync.CorrelatedByHeaders, got.CorrelationMethod)
	assert.Equal(t, opportunity, got.Regarding)

	copies, err := e.demo.Messages(alice.EmailAddress, serversync.SentFolder)
	require.NoError(t, err)
	require.Len(t, copies, 1, "a copy is saved in Sent")
	assert.Contains(t, string(copies[0]), sent.MessageID)
}

func TestTrackingFailuresAreRecordedAndMoved(t *testing.T) {
	e := newSyncEnv(t, func(p *serversync.Profile) { p.MoveFailedToUndeliverable = true })
	alice := e.mailbox(t, "alice", nil)
	for _, subject := range []string{"fine", "refuse me", "panic please"} {
		require.NoError(t, e.demo.Deliver(alice.EmailAddress, message("x@partner.test", alice.EmailAddress, subject, "Message-ID: <"+strings.ReplaceAll(subject, " ", "-")+"@p>\r\n", "body")))
	}
	s := e.syncer(t, &serversync.Config{Track: func(_ context.Context, a *serversync.EmailActivity, _ *serversync.Mailbox) error {
		switch a.Subject {
		case "refuse me":
			return errors.New("no matching record")
		case "panic please":
			panic("host bug")
		}
		a.Regarding = serversync.RecordRef{Type: "case", ID: "c1"}
		return nil
	}})
	testAndEnable(t, s, alice)
	run(t, s)
	eventually(t, "three activities", func() bool { return len(e.activities(t, serversync.ActivityFilter{MailboxID: alice.ID})) == 3 })
	failed := e.activities(t, serversync.ActivityFilter{MailboxID: alice.ID, Status: serversync.StatusFailed})
	require.Len(t, failed, 2)
	assert.Contains(t, failed[0].LastError, "no matching record")
	assert.Contains(t, failed[1].LastError, "panicked")
	tracked := e.activities(t, serversync.ActivityFilter{MailboxID: alice.ID, Status: serversync.StatusTracked})
	require.Len(t, tracked, 1)
	assert.Equal(t, "c1", tracked[0].Regarding.ID, "the hook set the regarding link")

	eventually(t, "failed messages moved", func() bool {
		moved, err := e.demo.Messages(alice.EmailAddress, serversync.UndeliverableFolder)
		return err == nil && len(moved) == 2
	})
	inbox, err := e.demo.Messages(alice.EmailAddress, "INBOX")
	require.NoError(t, err)
	assert.Len(t, inbox, 1)
	assert.Len(t, e.alerts(t, serversync.AlertFilter{MailboxID: alice.ID, Level: serversync.AlertWarning}), 2, "an item alert per failure")
}

func TestBadPasswordDisablesOnlyThatMailbox(t *testing.T) {
	e := newSyncEnv(t, nil)
	alice := e.mailbox(t, "alice", nil)
	carol := e.mailbox(t, "carol", nil)
	s := e.syncer(t, nil)
	testAndEnable(t, s, alice)
	testAndEnable(t, s, carol)
	_, err := e.store.UpdateMailbox(context.Background(), carol.ID, func(m *serversync.Mailbox) error {
		m.Password = auth.NewSecret("expired-password")
		return nil
	})
	require.NoError(t, err)
	require.NoError(t, e.demo.Deliver(alice.EmailAddress, message("x@p.test", alice.EmailAddress, "still synced", "", "b")))
	run(t, s)

	eventually(t, "carol disabled", func() bool {
		m, err := e.store.GetMailbox(context.Background(), carol.ID)
		return err == nil && !m.IncomingEnabled
	})
	m, err := e.store.GetMailbox(context.Background(), carol.ID)
	require.NoError(t, err)
	assert.Equal(t, serversync.TestFailure, m.IncomingStatus)
	assert.Equal(t, "auth_failed", m.Stats.LastError.Code)
	assert.NotContains(t, m.Stats.LastError.Message, "expired-password")
	// The alert is raised just after the mailbox is disabled.
	eventually(t, "the alert", func() bool {
		return len(e.alerts(t, serversync.AlertFilter{MailboxID: carol.ID, Level: serversync.AlertError})) > 0
	})
	alerts := e.alerts(t, serversync.AlertFilter{MailboxID: carol.ID, Level: serversync.AlertError})
	require.Len(t, alerts, 1)
	assert.Equal(t, "owner-carol", alerts[0].Recipient)
	eventually(t, "alice keeps syncing", func() bool { return len(e.activities(t, serversync.ActivityFilter{MailboxID: alice.ID})) == 1 })
	assert.Equal(t, 1, e.countEvents(serversync.EventMailboxDisabled))
}

func TestTransientFailuresDisableAfterTenRetries(t *testing.T) {
	e := newSyncEnv(t, func(p *serversync.Profile) { p.SendAlertOnMassFailure = true })
	alice := e.mailbox(t, "alice", nil)
	s := e.syncer(t, nil)
	testAndEnable(t, s, alice)
	require.NoError(t, e.demo.Close()) // the server goes away: connection refused is transient
	run(t, s)
	for attempt := 1; attempt < serversync.MaxTransientFailuresDefault; attempt++ {
		eventually(t, fmt.Sprintf("attempt %d", attempt), func() bool {
			m, err := e.store.GetMailbox(context.Background(), alice.ID)
			return err == nil && m.Stats.TransientFailureCount == attempt
		})
		m, _ := e.store.GetMailbox(context.Background(), alice.ID)
		require.True(t, m.IncomingEnabled, "still enabled after %d transient failures", attempt)
		e.clock.Advance(serversync.RetryIntervalDefault)
	}
	eventually(t, "disabled after the tenth", func() bool {
		m, err := e.store.GetMailbox(context.Background(), alice.ID)
		return err == nil && !m.IncomingEnabled
	})
	// The alerts are raised just after the mailbox is disabled.
	eventually(t, "the alerts of the disabling", func() bool {
		return len(e.alerts(t, serversync.AlertFilter{Recipient: "owner-alice", Level: serversync.AlertError})) > 0 &&
			len(e.alerts(t, serversync.AlertFilter{Recipient: "admin-user", Level: serversync.AlertError})) > 1
	})
	assert.Len(t, e.alerts(t, serversync.AlertFilter{Recipient: "owner-alice", Level: serversync.AlertWarning}), 1, "one warning when retries start")
	assert.Len(t, e.alerts(t, serversync.AlertFilter{Recipient: "owner-alice", Level: serversync.AlertError}), 1, "one error when disabled")
	ownerAlerts := e.alerts(t, serversync.AlertFilter{Recipient: "admin-user", Level: serversync.AlertError})
	require.Len(t, ownerAlerts, 2, "the profile owner hears of the disabling (a profile-level error) and of the mass failure, once")
	assert.ElementsMatch(t, []string{"network", "mass_failure"}, []string{ownerAlerts[0].Code, ownerAlerts[1].Code})
}

func TestDroppedConnectionLosesNothing(t *testing.T) {
	var proxy *netfault.Proxy
	e := newSyncEnv(t, throughProxy(t, &proxy))
	ctx := context.Background()
	alice := e.mailbox(t, "alice", nil)
	const total = 40
	for i := range total {
		require.NoError(t, e.demo.Deliver(alice.EmailAddress, message("bob@partner.test", alice.EmailAddress,
			fmt.Sprintf("message %d", i), fmt.Sprintf("Message-ID: <drop-%d@partner.test>\r\n", i), strings.Repeat("body text ", 1000))))
	}
	s := e.syncer(t, &serversync.Config{SaveBatch: 4})
	testAndEnable(t, s, alice)
	proxy.DropAfter(150_000) // the sync's connection drops after about 14 of the 40 messages (10 KB each)
	run(t, s)

	mailbox := func() *serversync.Mailbox {
		m, err := e.store.GetMailbox(ctx, alice.ID)
		require.NoError(t, err)
		return m
	}
	eventually(t, "the dropped sync recorded as a transient failure", func() bool { return mailbox().Stats.TransientFailureCount == 1 })
	require.Positive(t, proxy.Drops())
	m := mailbox()
	assert.True(t, m.IncomingEnabled, "one dropped connection does not disable the mailbox")
	assert.NotEmpty(t, m.Stats.LastError.Code)
	kept := len(e.activities(t, serversync.ActivityFilter{MailboxID: alice.ID}))
	assert.Positive(t, kept, "what was read before the drop is kept")
	assert.Less(t, kept, total)

	proxy.DropAfter(0)
	e.clock.Advance(serversync.RetryIntervalDefault)
	eventually(t, "every message after the retry", func() bool {
		return len(e.activities(t, serversync.ActivityFilter{MailboxID: alice.ID})) >= total
	})
	seen := map[string]bool{}
	for _, a := range e.activities(t, serversync.ActivityFilter{MailboxID: alice.ID}) {
		assert.False(t, seen[a.MessageID], "%s tracked twice", a.MessageID)
		seen[a.MessageID] = true
	}
	assert.Len(t, seen, total)
	eventually(t, "the failure count cleared by the successful sync", func() bool { return mailbox().Stats.TransientFailureCount == 0 })
}

// What a sync must still do on the server for messages it stored (delete them from
// a queue mailbox, move refused ones to Undeliverable) is not lost when the
// connection drops before it is done: the cursor stays before those messages, and
// the retry finds them stored and does only the rest.
func TestServerFollowUpsSurviveADroppedConnection(t *testing.T) {
	var proxy *netfault.Proxy
	e := newSyncEnv(t, throughProxy(t, &proxy))
	support := e.mailbox(t, "support", func(m *serversync.Mailbox) {
		m.Regarding = serversync.Regarding{Type: serversync.RegardingQueue, ID: "queue-support"}
		m.DeleteAfterProcessing = true
	})
	const total = 40
	for i := range total {
		require.NoError(t, e.demo.Deliver(support.EmailAddress, message("customer@partner.test", support.EmailAddress,
			fmt.Sprintf("request %d", i), fmt.Sprintf("Message-ID: <req-%d@partner.test>\r\n", i), strings.Repeat("please help ", 850))))
	}
	s := e.syncer(t, &serversync.Config{SaveBatch: 4})
	testAndEnable(t, s, support)
	proxy.DropAfter(150_000) // the sync's connection drops after about 14 of the 40 messages (10 KB each)
	run(t, s)
	tracked := func() int { return len(e.activities(t, serversync.ActivityFilter{MailboxID: support.ID})) }
	eventually(t, "the dropped sync", func() bool {
		m, err := e.store.GetMailbox(context.Background(), support.ID)
		return err == nil && m.Stats.TransientFailureCount == 1
	})
	require.Positive(t, tracked(), "what was read before the drop is kept")

	proxy.DropAfter(0)
	e.clock.Advance(serversync.RetryIntervalDefault)
	eventually(t, "every message tracked", func() bool { return tracked() == total })
	eventually(t, "every message deleted from the server, the first ones too", func() bool {
		left, err := e.demo.Messages(support.EmailAddress, "INBOX")
		return err == nil && len(left) == 0
	})
	assert.Equal(t, total, tracked(), "each tracked once")
}

func TestOutgoingRetriesFailuresAndCrashReconciliation(t *testing.T) {
	e := newSyncEnv(t, nil)
	alice := e.mailbox(t, "alice", nil)
	bob := e.mailbox(t, "bob", nil)
	s := e.syncer(t, nil)
	testAndEnable(t, s, alice)
	var mu sync.Mutex
	replies := map[string]error{
		"busy":     &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try later"},
		"rejected": &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "policy"},
	}
	e.demo.SetSendHook(func(from string, to []string) error {
		mu.Lock()
		defer mu.Unlock()
		for key, err := range replies {
			if strings.HasPrefix(to[0], key) {
				delete(replies, key) // fail once
				return err
			}
		}
		return nil
	})
	require.NoError(t, e.demo.AddUser("busy@example.test", "x"))
	require.NoError(t, e.demo.AddUser("rejected@example.test", "x"))

	// An email whose sender died while the server had it: not sent again silently.
	interrupted := &serversync.EmailActivity{
		ID: serversync.NewID(), MailboxID: alice.ID, MessageKey: "out:interrupted", Direction: serversync.Outgoing,
		Status: serversync.StatusPendingSend, To: []serversync.Address{{Email: bob.EmailAddress}}, Subject: "interrupted",
	}
	require.NoError(t, e.store.QueueOutgoing(context.Background(), interrupted))
	claimed, err := e.store.ClaimOutgoing(context.Background(), serversync.ClaimRequest{Host: "dead-host", Now: e.clock.Now(), TTL: time.Minute, Limit: 1})
	require.NoError(t, err)
	require.Len(t, claimed, 1)
	_, err = e.store.UpdateActivity(context.Background(), interrupted.ID, func(a *serversync.EmailActivity) error {
		a.SendStartedAt = e.clock.Now()
		return nil
	})
	require.NoError(t, err)
	e.clock.Advance(2 * time.Minute) // the dead host's claim expired

	run(t, s)
	queue := func(to string) *serversync.EmailActivity {
		a, err := s.QueueEmail(context.Background(), &serversync.EmailActivity{MailboxID: alice.ID, To: []serversync.Address{{Email: to}}, Subject: "to " + to})
		require.NoError(t, err)
		return a
	}
	busy, rejected := queue("busy@example.test"), queue("rejected@example.test")
	status := func(a *serversync.EmailActivity) serversync.ActivityStatus {
		got, err := e.store.GetActivity(context.Background(), a.ID)
		require.NoError(t, err)
		return got.Status
	}
	eventually(t, "rejected fails", func() bool { return status(rejected) == serversync.StatusFailed })
	eventually(t, "interrupted reconciled", func() bool { return status(interrupted) == serversync.StatusFailed })
	eventually(t, "busy waits for a retry", func() bool {
		return status(busy) == serversync.StatusPendingSend && e.countEvents(serversync.EventEmailFailed) == 2
	})
	e.clock.Advance(2 * time.Minute)
	eventually(t, "busy sent on retry", func() bool { return status(busy) == serversync.StatusSent })

	got, err := e.store.GetActivity(context.Background(), interrupted.ID)
	require.NoError(t, err)
	assert.Contains(t, got.LastError, "may have been delivered")
	assert.Equal(t, 1, e.demo.Sent(), "only the retried email reached the server: nothing was sent twice")
	alerts := e.alerts(t, serversync.AlertFilter{MailboxID: alice.ID, Level: serversync.AlertWarning})
	require.Len(t, alerts, 1)
	assert.Equal(t, "send_outcome_unknown", alerts[0].Code)
	assert.Len(t, e.alerts(t, serversync.AlertFilter{MailboxID: alice.ID, Level: serversync.AlertError}), 1, "the rejected email")
}

// A sender whose claim ran out during a slow send must leave the email to the host
// that claimed it since: putting a refused attempt back in the queue would have it
// sent again while the new holder may be sending it. A delivered one is still
// recorded as sent: no one sends it again once the attempt is on record.
func TestOutcomeAfterTheClaimRanOut(t *testing.T) {
	for _, tc := range []struct {
		name  string
		reply error
		want  serversync.ActivityStatus
	}{
		{"Refused", &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try later"}, serversync.StatusSending},
		{"Delivered", nil, serversync.StatusSent},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			e := newSyncEnv(t, nil)
			alice := e.mailbox(t, "alice", nil)
			bob := e.mailbox(t, "bob", nil)
			s := e.syncer(t, &serversync.Config{Workers: 1}) // so this Syncer can't claim the email again itself
			testAndEnable(t, s, alice)
			inData, release := make(chan struct{}), make(chan struct{})
			e.demo.SetSendHook(func(string, []string) error {
				close(inData)
				<-release
				return tc.reply
			})
			done := make(chan error, 1)
			go func() { done <- s.Run(ctx) }()
			queued, err := s.QueueEmail(ctx, &serversync.EmailActivity{MailboxID: alice.ID, To: []serversync.Address{{Email: bob.EmailAddress}}, Subject: "slow"})
			require.NoError(t, err)

			select {
			case <-inData:
			case <-time.After(20 * time.Second):
				t.Fatal("the email never reached the server")
			}
			e.clock.Advance(serversync.OutboxClaimTTLDefault + time.Minute)
			taken, err := e.store.ClaimOutgoing(ctx, serversync.ClaimRequest{Host: "other-host", Now: e.clock.Now(), TTL: time.Hour, Limit: 1})
			require.NoError(t, err)
			require.Len(t, taken, 1, "the claim ran out")
			close(release)
			stopCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			require.NoError(t, s.Stop(stopCtx)) // waits for the send to finish
			require.ErrorIs(t, <-done, serversync.ErrSyncerStopped)

			got, err := e.store.GetActivity(ctx, queued.ID)
			require.NoError(t, err)
			assert.Equal(t, tc.want, got.Status)
			assert.False(t, got.SendStartedAt.IsZero(), "the attempt stays on record")
			if tc.want == serversync.StatusSending {
				assert.Equal(t, "other-host", got.ClaimedBy, "the new holder keeps its claim")
			}
		})
	}
}

// Each Syncer records a host ID in leases and claims: the configured one, or a
// default that differs between Syncers.
func TestSyncerHost(t *testing.T) {
	e := newSyncEnv(t, nil)
	assert.Equal(t, "host-a", e.syncer(t, &serversync.Config{Host: "host-a"}).Host())
	one, two := e.syncer(t, nil).Host(), e.syncer(t, nil).Host()
	assert.NotEmpty(t, one)
	assert.NotEqual(t, one, two)
}

// Test & Enable for a whole profile runs in the background: every mailbox of the
// profile is tested by the running Syncer and enabled.
func TestTestAndEnableProfile(t *testing.T) {
	e := newSyncEnv(t, nil)
	alice := e.mailbox(t, "alice", nil)
	bob := e.mailbox(t, "bob", nil)
	s := e.syncer(t, nil)
	run(t, s)
	n, err := s.TestAndEnableProfile(context.Background(), e.profile.ID)
	require.NoError(t, err)
	assert.Equal(t, 2, n)
	for _, m := range []*serversync.Mailbox{alice, bob} {
		eventually(t, m.EmailAddress+" tested and enabled", func() bool {
			got, err := e.store.GetMailbox(context.Background(), m.ID)
			return err == nil && got.Status == serversync.TestSuccess && got.IncomingEnabled && got.OutgoingEnabled && !got.TestAndEnablePending
		})
	}
	_, err = s.TestAndEnableProfile(context.Background(), serversync.NewID())
	assert.ErrorIs(t, err, serversync.ErrNotFound)
}

// A slow send keeps its claim: another host looking for work never gets it while
// the first is still at it, however long past the claim's first expiry.
func TestSlowSendKeepsItsClaim(t *testing.T) {
	ctx := context.Background()
	e := newSyncEnv(t, nil)
	alice := e.mailbox(t, "alice", nil)
	bob := e.mailbox(t, "bob", nil)
	const ttl = 600 * time.Millisecond // renewed every 200 ms of real time
	s := e.syncer(t, &serversync.Config{Workers: 1, OutboxClaimTTL: ttl})
	testAndEnable(t, s, alice)
	inData, release := make(chan struct{}), make(chan struct{})
	e.demo.SetSendHook(func(string, []string) error {
		close(inData)
		<-release
		return nil
	})
	run(t, s)
	queued, err := s.QueueEmail(ctx, &serversync.EmailActivity{MailboxID: alice.ID, To: []serversync.Address{{Email: bob.EmailAddress}}, Subject: "slow"})
	require.NoError(t, err)
	select {
	case <-inData:
	case <-time.After(20 * time.Second):
		t.Fatal("the email never reached the server")
	}
	// The Syncer's clock runs at half speed for 3 s: 1.5 s, well past the TTL.
	for range 150 {
		time.Sleep(20 * time.Millisecond)
		e.clock.Advance(10 * time.Millisecond)
		taken, err := e.store.ClaimOutgoing(ctx, serversync.ClaimRequest{Host: "other-host", Now: e.clock.Now(), TTL: time.Hour, Limit: 1})
		require.NoError(t, err)
		require.Empty(t, taken, "another host took an email that is being sent")
	}
	close(release)
	eventually(t, "sent", func() bool {
		got, err := e.store.GetActivity(ctx, queued.ID)
		return err == nil && got.Status == serversync.StatusSent
	})
}

// A large first fetch may open extra IMAP connections, but only as many as the
// profile's connection budget has room for.
func TestParallelFetchWithinTheConnectionBudget(t *testing.T) {
	e := newSyncEnv(t, func(p *serversync.Profile) { p.MaxConcurrentConnections = 2 })
	alice := e.mailbox(t, "alice", nil)
	const messages = 60 // 12 batches of 5
	for i := range messages {
		require.NoError(t, e.demo.Deliver(alice.EmailAddress, message("x@p.test", alice.EmailAddress, fmt.Sprintf("m%d", i), "", "b")))
	}
	e.imap = &imapconn.Options{FetchBatchSize: 5, MaxParallelFetch: 4}
	s := e.syncer(t, nil)
	testAndEnable(t, s, alice)
	eventually(t, "Test & Enable's connections closed", func() bool {
		e.demo.ResetPeakIMAPConnections()
		return e.demo.PeakIMAPConnections() == 0
	})
	run(t, s)
	eventually(t, "every message tracked", func() bool {
		return len(e.activities(t, serversync.ActivityFilter{MailboxID: alice.ID})) == messages
	})
	assert.Equal(t, 2, e.demo.PeakIMAPConnections(), "the session and one extra fetch connection, not four")
}

// newOAuthEnv makes a profile on OAuth credentials (IMAP and SMTP) refreshed at
// tokenURL, and the mailbox alice with an expired access token and refreshToken.
func newOAuthEnv(t *testing.T, tokenURL, refreshToken string) (*syncEnv, *serversync.Mailbox) {
	t.Helper()
	e := newSyncEnv(t, func(p *serversync.Profile) {
		p.IncomingCredentialSource, p.OutgoingCredentialSource = serversync.CredentialsOAuth, serversync.CredentialsOAuth
		p.ClientID, p.TokenURL = "serversync-test", tokenURL
	})
	alice := e.mailbox(t, "alice", func(m *serversync.Mailbox) {
		m.OAuthToken = serversync.OAuthToken{AccessToken: auth.NewSecret("access-1"), RefreshToken: auth.NewSecret(refreshToken),
			Expiry: time.Now().Add(-time.Minute)}
	})
	return e, alice
}

// A token the Syncer refreshes is stored on its mailbox: the next connection uses it
// instead of asking the provider again, and a rotated refresh token is kept.
func TestRefreshedOAuthTokenIsStored(t *testing.T) {
	var refreshes atomic.Int32
	provider := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ParseForm() != nil || r.Form.Get("grant_type") != "refresh_token" || r.Form.Get("refresh_token") != "refresh-1" {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, `{"error":"invalid_grant"}`)
			return
		}
		refreshes.Add(1)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"access_token":"access-2","token_type":"Bearer","expires_in":3600,"refresh_token":"refresh-2"}`)
	}))
	defer provider.Close()
	e, alice := newOAuthEnv(t, provider.URL, "refresh-1")
	e.demo.AllowToken(alice.EmailAddress, "access-2")
	require.NoError(t, e.demo.Deliver(alice.EmailAddress, message("x@p.test", alice.EmailAddress, "first", "", "b")))
	s := e.syncer(t, nil)
	testAndEnable(t, s, alice) // connects with a refreshed token
	run(t, s)
	eventually(t, "first tracked", func() bool { return len(e.activities(t, serversync.ActivityFilter{MailboxID: alice.ID})) == 1 })
	require.NoError(t, e.demo.AddUser("bob@example.test", "x"))
	sent, err := s.QueueEmail(context.Background(), &serversync.EmailActivity{MailboxID: alice.ID,
		To: []serversync.Address{{Email: "bob@example.test"}}, Subject: "over SMTP with the same token"})
	require.NoError(t, err)
	eventually(t, "sent", func() bool {
		a, err := e.store.GetActivity(context.Background(), sent.ID)
		return err == nil && a.Status == serversync.StatusSent
	})
	require.NoError(t, e.demo.Deliver(alice.EmailAddress, message("x@p.test", alice.EmailAddress, "second", "", "b")))
	eventually(t, "second tracked at the next poll", func() bool {
		e.clock.Advance(time.Minute)
		return len(e.activities(t, serversync.ActivityFilter{MailboxID: alice.ID, Direction: serversync.Incoming})) == 2
	})

	assert.Equal(t, int32(1), refreshes.Load(), "IMAP and SMTP connections, one refresh")
	got, err := e.store.GetMailbox(context.Background(), alice.ID)
	require.NoError(t, err)
	assert.Equal(t, "access-2", got.OAuthToken.AccessToken.Reveal())
	assert.Equal(t, "refresh-2", got.OAuthToken.RefreshToken.Reveal(), "the rotated refresh token")
	assert.True(t, got.OAuthToken.Expiry.After(time.Now()))
}

// A refresh token the provider no longer accepts is an authentication failure of
// that mailbox: Test & Enable fails with an error its owner can act on.
func TestRevokedOAuthGrantFailsTestAndEnable(t *testing.T) {
	provider := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprint(w, `{"error":"invalid_grant","error_description":"the refresh token was revoked"}`)
	}))
	defer provider.Close()
	e, alice := newOAuthEnv(t, provider.URL, "revoked-refresh-token")
	s := e.syncer(t, nil)
	m, err := s.TestAndEnable(context.Background(), alice.ID)
	require.NoError(t, err)
	assert.Equal(t, serversync.TestFailure, m.IncomingStatus)
	assert.Equal(t, serversync.TestFailure, m.OutgoingStatus)
	assert.False(t, m.IncomingEnabled || m.OutgoingEnabled)
	assert.Equal(t, "auth_failed", m.Stats.LastError.Code)
	assert.Contains(t, m.Stats.LastError.Message, "invalid_grant")
	assert.NotContains(t, m.Stats.LastError.Message, "revoked-refresh-token")
	errs := e.alerts(t, serversync.AlertFilter{MailboxID: alice.ID, Level: serversync.AlertError})
	require.NotEmpty(t, errs)
	assert.Equal(t, "owner-alice", errs[0].Recipient)
}

// flakySaves fails one SaveTracked call, the failOn-th, as a database would.
// flakySaves fails the store's SaveTracked calls number failOn and 1 to failFirst.
type flakySaves struct {
	serversync.Store
	mu        sync.Mutex
	calls     int
	failOn    int
	failFirst int
}

func (f *flakySaves) SaveTracked(ctx context.Context, c *serversync.Cursor, a []*serversync.EmailActivity) (serversync.SaveResult, error) {
	f.mu.Lock()
	f.calls++
	fail := f.calls == f.failOn || f.calls <= f.failFirst
	f.mu.Unlock()
	if fail {
		return serversync.SaveResult{}, errors.New("database is locked")
	}
	return f.Store.SaveTracked(ctx, c, a)
}

// Batches are stored while the next is parsed. When one fails to store, no later
// save may write a cursor past its messages: they are tracked all the same.
func TestFailedSaveLosesNothing(t *testing.T) {
	e := newSyncEnv(t, nil)
	alice := e.mailbox(t, "alice", nil)
	const messages = 23
	for i := range messages {
		require.NoError(t, e.demo.Deliver(alice.EmailAddress, message("x@p.test", alice.EmailAddress, fmt.Sprintf("m%d", i), "", "b")))
	}
	store := &flakySaves{Store: e.store, failOn: 2}
	e.store = store
	s := e.syncer(t, &serversync.Config{SaveBatch: 5})
	testAndEnable(t, s, alice)
	run(t, s)
	eventually(t, "every message tracked", func() bool {
		e.clock.Advance(time.Minute) // the failed sync is retried a few minutes later
		return len(e.activities(t, serversync.ActivityFilter{MailboxID: alice.ID})) == messages
	})
	store.mu.Lock()
	defer store.mu.Unlock()
	assert.Greater(t, store.calls, 2, "the failed save happened")
}

// A store that keeps failing (the host's database is down) is not the mailbox's
// fault: the sync is retried for as long as it takes, and the mailbox is neither
// disabled nor its owner alerted.
func TestStoreOutageDoesNotDisableMailboxes(t *testing.T) {
	e := newSyncEnv(t, nil)
	alice := e.mailbox(t, "alice", nil)
	require.NoError(t, e.demo.Deliver(alice.EmailAddress, message("x@p.test", alice.EmailAddress, "during the outage", "", "b")))
	store := &flakySaves{Store: e.store, failFirst: 2 * serversync.MaxTransientFailuresDefault}
	e.store = store
	s := e.syncer(t, nil)
	testAndEnable(t, s, alice)
	run(t, s)
	eventually(t, "the message tracked once the store is back", func() bool {
		e.clock.Advance(serversync.RetryIntervalDefault)
		return len(e.activities(t, serversync.ActivityFilter{MailboxID: alice.ID})) == 1
	})
	store.mu.Lock()
	assert.Greater(t, store.calls, 2*serversync.MaxTransientFailuresDefault, "every failed save was a retried sync")
	store.mu.Unlock()
	m, err := e.store.GetMailbox(context.Background(), alice.ID)
	require.NoError(t, err)
	assert.True(t, m.IncomingEnabled)
	assert.Zero(t, m.Stats.TransientFailureCount)
	assert.Empty(t, e.alerts(t, serversync.AlertFilter{Recipient: "owner-alice", Level: serversync.AlertWarning}))
	assert.Empty(t, e.alerts(t, serversync.AlertFilter{Recipient: "owner-alice", Level: serversync.AlertError}))
}

func TestForwardMailboxAttributesAndDeletes(t *testing.T) {
	e := newSyncEnv(t, nil)
	dave := e.mailbox(t, "dave", func(m *serversync.Mailbox) { m.IncomingMethod = serversync.IncomingForwardMailbox })
	fwd := e.mailbox(t, "forward", func(m *serversync.Mailbox) {
		m.IsForwardMailbox, m.DeleteAfterProcessing = true, true
		m.Regarding = serversync.Regarding{}
		m.OutgoingMethod = serversync.OutgoingNone
	})
	original := message("customer@partner.test", dave.EmailAddress, "Original question", "Message-ID: <orig-1@partner.test>\r\n", "Can you help?")
	forwarded := []byte("From: " + dave.EmailAddress + "\r\nTo: " + fwd.EmailAddress + "\r\nSubject: FW: Original question\r\n" +
		"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b1\r\n\r\n--b1\r\nContent-Type: text/plain\r\n\r\nforwarded by rule\r\n" +
		"--b1\r\nContent-Type: message/rfc822\r\n\r\n" + string(original) + "\r\n--b1--\r\n")
	require.NoError(t, e.demo.Deliver(fwd.EmailAddress, forwarded))
	s := e.syncer(t, nil)
	testAndEnable(t, s, fwd)
	run(t, s)
	eventually(t, "attributed to dave", func() bool { return len(e.activities(t, serversync.ActivityFilter{MailboxID: dave.ID})) == 1 })
	a := e.activities(t, serversync.ActivityFilter{MailboxID: dave.ID})[0]
	assert.Equal(t, "Original question", a.Subject)
	assert.Equal(t, "customer@partner.test", a.From.Email)
	assert.Equal(t, fwd.ID, a.ViaMailbox)
	eventually(t, "deleted from the forward mailbox", func() bool {
		left, err := e.demo.Messages(fwd.EmailAddress, "INBOX")
		return err == nil && len(left) == 0
	})
}

func TestIdleTracksNewMailWithinSeconds(t *testing.T) {
	e := newSyncEnv(t, nil)
	alice := e.mailbox(t, "alice", nil)
	require.NoError(t, e.demo.Deliver(alice.EmailAddress, message("x@p.test", alice.EmailAddress, "first", "", "b")))
	s := e.syncer(t, &serversync.Config{IdleConnections: 10})
	testAndEnable(t, s, alice)
	run(t, s)
	eventually(t, "first message", func() bool { return len(e.activities(t, serversync.ActivityFilter{MailboxID: alice.ID})) == 1 })
	// The clock does not move: only IDLE can bring the next message in.
	time.Sleep(200 * time.Millisecond)
	require.NoError(t, e.demo.Deliver(alice.EmailAddress, message("x@p.test", alice.EmailAddress, "second", "", "b")))
	eventually(t, "second message through IDLE", func() bool { return len(e.activities(t, serversync.ActivityFilter{MailboxID: alice.ID})) == 2 })
}

// An IDLE connection that breaks after a while (a restarted server, a NAT that
// forgot it) is redialed at once, so new mail still comes in within seconds.
func TestBrokenIdleConnectionIsRedialed(t *testing.T) {
	var proxy *netfault.Proxy
	e := newSyncEnv(t, throughProxy(t, &proxy))
	alice := e.mailbox(t, "alice", nil)
	count := func() int { return len(e.activities(t, serversync.ActivityFilter{MailboxID: alice.ID})) }
	require.NoError(t, e.demo.Deliver(alice.EmailAddress, message("x@p.test", alice.EmailAddress, "first", "", "b")))
	s := e.syncer(t, &serversync.Config{IdleConnections: 10})
	testAndEnable(t, s, alice)
	run(t, s)
	eventually(t, "first message", func() bool { return count() == 1 })
	time.Sleep(200 * time.Millisecond) // the connection is now waiting in IDLE

	// Two minutes on the Syncer's clock pass in IDLE, then the connection breaks.
	// The clock stands still after that: only a redial brings the next message in.
	e.clock.Advance(2 * time.Minute)
	proxy.DropAll()
	require.Positive(t, proxy.Drops())
	require.NoError(t, e.demo.Deliver(alice.EmailAddress, message("x@p.test", alice.EmailAddress, "second", "", "b")))
	eventually(t, "second message after the redial", func() bool { return count() == 2 })
}

type resolver map[string]serversync.PartyKind

func (r resolver) ResolveAddress(_ context.Context, email string) (serversync.Party, error) {
	return serversync.Party{Kind: r[email], Ref: serversync.RecordRef{Type: string(r[email]), ID: email}}, nil
}

func TestIncomingFilters(t *testing.T) {
	e := newSyncEnv(t, nil)
	filters := map[string]serversync.IncomingFilter{
		"all": serversync.FilterAll, "responses": serversync.FilterResponsesToCRM,
		"contacts": serversync.FilterLeadsContactsAccounts, "records": serversync.FilterEmailEnabledRecords, "none": serversync.FilterNone,
	}
	boxes := map[string]*serversync.Mailbox{}
	for name, f := range filters {
		boxes[name] = e.mailbox(t, name, func(m *serversync.Mailbox) { m.IncomingFilter = f })
		for _, from := range []string{"contact@p.test", "user@p.test", "stranger@p.test"} {
			require.NoError(t, e.demo.Deliver(boxes[name].EmailAddress, message(from, boxes[name].EmailAddress, "hello from "+from, "", "b")))
		}
	}
	s := e.syncer(t, &serversync.Config{Resolver: resolver{"contact@p.test": serversync.PartyContact, "user@p.test": serversync.PartyUser}})
	for _, m := range boxes {
		testAndEnable(t, s, m)
	}
	run(t, s)
	want := map[string]int{"all": 3, "responses": 0, "contacts": 1, "records": 2, "none": 0}
	for name, n := range want {
		eventually(t, name+" synced", func() bool {
			m, err := e.store.GetMailbox(context.Background(), boxes[name].ID)
			return err == nil && !m.Stats.LastSyncSucceededAt.IsZero()
		})
		assert.Len(t, e.activities(t, serversync.ActivityFilter{MailboxID: boxes[name].ID}), n, name)
	}
	contact := e.activities(t, serversync.ActivityFilter{MailboxID: boxes["contacts"].ID})[0]
	assert.Equal(t, "contact@p.test", contact.Regarding.ID, "the resolved record becomes the regarding link")
}

func TestApplyDefaultSettingsTestsAndEnablesInTheBackground(t *testing.T) {
	e := newSyncEnv(t, nil)
	_, err := e.admin.UpdateOrgSettings(context.Background(), func(s *serversync.OrgSettings) { s.DefaultProfileID = e.profile.ID })
	require.NoError(t, err)
	alice := e.mailbox(t, "alice", nil)
	wrong := e.mailbox(t, "wrong", func(m *serversync.Mailbox) { m.Password = auth.NewSecret("nope") })
	unapproved := e.mailbox(t, "unapproved", nil)
	require.NoError(t, e.admin.Reject(context.Background(), "admin-user", unapproved.ID))
	require.NoError(t, e.admin.ApplyDefaultEmailSettings(context.Background(), []string{alice.ID, wrong.ID, unapproved.ID}))
	s := e.syncer(t, &serversync.Config{SendTestMessage: true})
	run(t, s)
	tested := func(id string) *serversync.Mailbox {
		var m *serversync.Mailbox
		eventually(t, "tested", func() bool {
			var err error
			m, err = e.store.GetMailbox(context.Background(), id)
			return err == nil && !m.TestAndEnablePending && !m.TestCompletedOn.IsZero()
		})
		return m
	}
	a := tested(alice.ID)
	assert.True(t, a.IncomingEnabled && a.OutgoingEnabled)
	assert.Equal(t, serversync.TestSuccess, a.Status)
	w := tested(wrong.ID)
	assert.False(t, w.IncomingEnabled || w.OutgoingEnabled)
	assert.Equal(t, serversync.TestFailure, w.Status)
	u := tested(unapproved.ID)
	assert.Equal(t, serversync.TestFailure, u.Status)

	// The alerts are raised just after the results are stored.
	eventually(t, "the alerts", func() bool {
		return len(e.alerts(t, serversync.AlertFilter{MailboxID: alice.ID, Level: serversync.AlertInformation})) > 0 &&
			len(e.alerts(t, serversync.AlertFilter{MailboxID: wrong.ID, Level: serversync.AlertError})) > 0
	})
	info := e.alerts(t, serversync.AlertFilter{MailboxID: alice.ID, Level: serversync.AlertInformation})
	require.Len(t, info, 1)
	assert.Equal(t, "test_and_enable_succeeded", info[0].Code)
	assert.Len(t, e.alerts(t, serversync.AlertFilter{MailboxID: wrong.ID, Level: serversync.AlertError}), 1)
	eventually(t, "the test message arrives and is tracked", func() bool {
		return len(e.activities(t, serversync.ActivityFilter{MailboxID: alice.ID})) == 1
	})
}

// testLogger discards logs unless SERVERSYNC_TEST_LOG is set.
func testLogger() *slog.Logger {
	if os.Getenv("SERVERSYNC_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// A host that loses its lease (it stalled past the lease and another host took the
// mailbox) stops working on that mailbox at once and stores nothing.
func TestLostLeaseStopsWorkAtOnce(t *testing.T) {
	e := newSyncEnv(t, nil)
	alice := e.mailbox(t, "alice", nil)
	require.NoError(t, e.demo.Deliver(alice.EmailAddress, message("x@p.test", alice.EmailAddress, "slow", "", "b")))
	hookEntered, hookCanceled := make(chan struct{}), make(chan struct{})
	s := e.syncer(t, &serversync.Config{LeaseTTL: 300 * time.Millisecond, Track: func(ctx context.Context, _ *serversync.EmailActivity, _ *serversync.Mailbox) error {
		close(hookEntered)
		<-ctx.Done() // a slow host hook
		close(hookCanceled)
		return ctx.Err()
	}})
	testAndEnable(t, s, alice)
	run(t, s)
	<-hookEntered

	e.clock.Advance(time.Second) // the lease expires while the hook runs…
	stolen, err := e.store.AcquireLeases(context.Background(), serversync.LeaseRequest{Host: "other-host", Now: e.clock.Now(), TTL: time.Hour, Limit: 1})
	require.NoError(t, err)
	require.Len(t, stolen, 1, "…and another host takes the mailbox")
	assert.True(t, stolen[0].TakenOver)

	select {
	case <-hookCanceled:
	case <-time.After(5 * time.Second):
		t.Fatal("the job went on after its lease was lost")
	}
	time.Sleep(100 * time.Millisecond)
	assert.Empty(t, e.activities(t, serversync.ActivityFilter{MailboxID: alice.ID}), "nothing stored by the host that lost the lease")
	m, err := e.store.GetMailbox(context.Background(), alice.ID)
	require.NoError(t, err)
	assert.Equal(t, "other-host", m.LeaseHost, "the new holder's lease is untouched")
	assert.Equal(t, 1, m.ForcedUnlockCount)
}

// Malformed mail is tracked with what could be read, or recorded as an item
// failure; nothing is lost and nothing panics.
func TestMalformedMailIsTracked(t *testing.T) {
	e := newSyncEnv(t, nil)
	alice := e.mailbox(t, "alice", nil)
	malformed := map[string]string{
		"truncated multipart": "From: a@p.test\r\nSubject: truncated\r\nMessage-ID: <m-trunc@p>\r\nContent-Type: multipart/mixed; boundary=zz\r\n\r\n--zz\r\nContent-Type: text/plain\r\n\r\nhalf a part",
		"bad charset":         "From: a@p.test\r\nSubject: =?x-unknown?Q?caf=E9?=\r\nMessage-ID: <m-charset@p>\r\nContent-Type: text/plain; charset=x-klingon\r\n\r\ncaf\xe9\r\n",
		"missing headers":     "\r\njust a body, no headers at all\r\n",
		"huge header line":    "From: a@p.test\r\nX-Long: " + strings.Repeat("h", 2<<20) + "\r\nMessage-ID: <m-huge@p>\r\nSubject: huge\r\n\r\nbody\r\n",
		"8-bit garbage":       "From: \xff\xfe <a@p.test>\r\nSubject: \x00\x01\x80\x81\r\nMessage-ID: <m-8bit@p>\r\n\r\n\xc3\x28\xa0\xa1\r\n",
		"bad base64":          "From: a@p.test\r\nSubject: b64\r\nMessage-ID: <m-b64@p>\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!not base64***\r\n",
	}
	for _, raw := range malformed {
		require.NoError(t, e.demo.Deliver(alice.EmailAddress, []byte(raw)))
	}
	s := e.syncer(t, nil)
	testAndEnable(t, s, alice)
	run(t, s)
	eventually(t, "every malformed message stored", func() bool {
		return len(e.activities(t, serversync.ActivityFilter{MailboxID: alice.ID})) == len(malformed)
	})
	for _, a := range e.activities(t, serversync.ActivityFilter{MailboxID: alice.ID}) {
		assert.Equal(t, serversync.StatusTracked, a.Status, a.Subject)
		if a.ParseError != "" {
			assert.NotEmpty(t, a.Raw, "raw kept for %q", a.Subject)
		}
	}
}

// Sending and saving the Sent copy share the mailbox's connection budget: with a
// budget of one, emails are still sent, copied, and the mailbox still syncs.
// flakyUpdates fails the store's next few UpdateActivity calls once when() holds,
// as a database blip would.
type flakyUpdates struct {
	serversync.Store
	when     func() bool
	failures atomic.Int32
}

func (f *flakyUpdates) UpdateActivity(ctx context.Context, id string, fn func(*serversync.EmailActivity) error) (*serversync.EmailActivity, error) {
	if f.when() && f.failures.Add(-1) >= 0 {
		return nil, errors.New("connection reset by peer")
	}
	return f.Store.UpdateActivity(ctx, id, fn)
}

// The store failing for a moment just before a send (recording the attempt) must
// not hold the email back until its claim runs out, and just after the server
// accepted it (recording the outcome) must not turn a delivered email into a
// failed "may have been delivered" one.
func TestSendSurvivesAStoreBlip(t *testing.T) {
	for name, after := range map[string]bool{"before the send": false, "after the send": true} {
		t.Run(name, func(t *testing.T) {
			e := newSyncEnv(t, nil)
			alice := e.mailbox(t, "alice", nil)
			bob := e.mailbox(t, "bob", nil)
			s := e.syncer(t, nil)
			testAndEnable(t, s, alice)
			queued, err := s.QueueEmail(context.Background(), &serversync.EmailActivity{
				MailboxID: alice.ID, To: []serversync.Address{{Email: bob.EmailAddress}}, Subject: "through the blip",
			})
			require.NoError(t, err)
			store := &flakyUpdates{Store: e.store, when: func() bool { return !after || e.demo.Sent() > 0 }}
			store.failures.Store(3)
			e.store = store
			s = e.syncer(t, nil)
			run(t, s)
			eventually(t, "recorded as sent", func() bool {
				a, err := e.store.GetActivity(context.Background(), queued.ID)
				return err == nil && a.Status == serversync.StatusSent
			})
			assert.Negative(t, store.failures.Load(), "the blip happened")
			assert.Equal(t, 1, e.demo.Sent())
		})
	}
}

func TestSendingWithinAConnectionBudgetOfOne(t *testing.T) {
	e := newSyncEnv(t, func(p *serversync.Profile) { p.MaxConcurrentConnections = 1 })
	alice := e.mailbox(t, "alice", nil)
	bob := e.mailbox(t, "bob", nil)
	s := e.syncer(t, nil)
	testAndEnable(t, s, alice)
	var queued []*serversync.EmailActivity
	for i := range 3 {
		a, err := s.QueueEmail(context.Background(), &serversync.EmailActivity{
			MailboxID: alice.ID, To: []serversync.Address{{Email: bob.EmailAddress}}, Subject: fmt.Sprintf("email %d", i),
		})
		require.NoError(t, err)
		queued = append(queued, a)
	}
	require.NoError(t, e.demo.Deliver(alice.EmailAddress, message("x@p.test", alice.EmailAddress, "incoming", "", "b")))
	run(t, s)
	for _, q := range queued {
		eventually(t, "sent", func() bool {
			a, err := e.store.GetActivity(context.Background(), q.ID)
			return err == nil && a.Status == serversync.StatusSent
		})
	}
	eventually(t, "incoming tracked", func() bool {
		return len(e.activities(t, serversync.ActivityFilter{MailboxID: alice.ID, Direction: serversync.Incoming})) == 1
	})
	eventually(t, "Sent copies", func() bool {
		copies, err := e.demo.Messages(alice.EmailAddress, serversync.SentFolder)
		return err == nil && len(copies) == 3
	})
}

// A reply fetched in the same batch as the message it answers is still linked to it.
func TestReplyInTheSameBatchIsCorrelated(t *testing.T) {
	e := newSyncEnv(t, nil)
	alice := e.mailbox(t, "alice", nil)
	require.NoError(t, e.demo.Deliver(alice.EmailAddress, message("c@p.test", alice.EmailAddress, "Question", "Message-ID: <q1@p.test>\r\n", "?")))
	require.NoError(t, e.demo.Deliver(alice.EmailAddress, message("d@p.test", alice.EmailAddress, "Re: Question", "Message-ID: <r1@p.test>\r\nIn-Reply-To: <q1@p.test>\r\n", "!")))
	s := e.syncer(t, nil)
	testAndEnable(t, s, alice)
	run(t, s)
	eventually(t, "both tracked", func() bool { return len(e.activities(t, serversync.ActivityFilter{MailboxID: alice.ID})) == 2 })
	got := e.activities(t, serversync.ActivityFilter{MailboxID: alice.ID})
	assert.Equal(t, got[0].ID, got[1].CorrelatedTo)
	assert.Equal(t, serversync.CorrelatedByHeaders, got[1].CorrelationMethod)
}

// With a MeterProvider installed, the Syncer's work shows in its metrics.
func TestMetrics(t *testing.T) {
	e := newSyncEnv(t, nil)
	alice := e.mailbox(t, "alice", nil)
	for i := range 3 {
		require.NoError(t, e.demo.Deliver(alice.EmailAddress, message("x@p.test", alice.EmailAddress, fmt.Sprintf("m%d", i), "", "b")))
	}
	reader := sdkmetric.NewManualReader()
	s := e.syncer(t, &serversync.Config{MeterProvider: sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))})
	testAndEnable(t, s, alice)
	run(t, s)
	eventually(t, "tracked", func() bool { return len(e.activities(t, serversync.ActivityFilter{MailboxID: alice.ID})) == 3 })

	var rm metricdata.ResourceMetrics
	require.NoError(t, reader.Collect(context.Background(), &rm))
	found := map[string]bool{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			found[m.Name] = true
			if sum, ok := m.Data.(metricdata.Sum[int64]); ok && m.Name == "serversync.messages.tracked" {
				require.Len(t, sum.DataPoints, 1)
				assert.Equal(t, int64(3), sum.DataPoints[0].Value)
			}
		}
	}
	assert.True(t, found["serversync.messages.tracked"], "metrics: %v", found)
	assert.True(t, found["serversync.sync.duration"])
}

// ProcessEmailFrom skips older mail; a mailbox's own, earlier value pulls it in.
func TestProcessEmailFrom(t *testing.T) {
	future := time.Now().Add(time.Hour)
	e := newSyncEnv(t, func(p *serversync.Profile) { p.ProcessEmailFrom = future })
	alice := e.mailbox(t, "alice", nil)
	bob := e.mailbox(t, "bob", func(m *serversync.Mailbox) { m.ProcessEmailFrom = time.Now().Add(-time.Hour) })
	for _, m := range []*serversync.Mailbox{alice, bob} {
		require.NoError(t, e.demo.Deliver(m.EmailAddress, message("x@p.test", m.EmailAddress, "received now", "", "b")))
	}
	s := e.syncer(t, nil)
	testAndEnable(t, s, alice)
	testAndEnable(t, s, bob)
	run(t, s)
	eventually(t, "bob's mail tracked", func() bool { return len(e.activities(t, serversync.ActivityFilter{MailboxID: bob.ID})) == 1 })
	eventually(t, "alice synced", func() bool {
		m, err := e.store.GetMailbox(context.Background(), alice.ID)
		return err == nil && !m.Stats.LastSyncSucceededAt.IsZero()
	})
	assert.Empty(t, e.activities(t, serversync.ActivityFilter{MailboxID: alice.ID}), "mail received before the profile's ProcessEmailFrom is skipped")
}
