package serversync_test

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/auth"
	"github.com/serversync/serversync/connector/standard"
	"github.com/serversync/serversync/internal/childtest"
	"github.com/serversync/serversync/internal/demoserver"
	"github.com/serversync/serversync/store/sqlite"
)

// The crash test runs the Syncer in a child process (this test binary, running
// TestCrashChild) and kills it with SIGKILL many times in the middle of its work,
// then lets a last child finish. Every incoming message must end up tracked exactly
// once and no outgoing email may reach the server twice; an email whose sender died
// while the server had it is marked failed with a warning, never resent silently.
//
// Most kills aim at the send window, from the attempt being recorded to Sent being
// recorded: the SMTP server holds its reply to each message for crashReplyDelay,
// and the kill comes at a random point of that hold (or just after it) once the
// server has taken a message. The others come at a random time after the child
// starts, as likely to land in the middle of saving incoming mail. Before each child
// new mail arrives and the outbox is topped up, so every child has both to do.
const (
	crashKills            = 100
	crashRandomEvery      = 3 // one kill in three at a random time, the others aimed at the send window
	crashReplyDelay       = 150 * time.Millisecond
	crashFirstMessages    = 60
	crashMessagesPerChild = 2
	crashQueuedEmails     = 2 // emails waiting to be sent when each child starts
)

func TestCrashRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("the crash test kills child processes for a few seconds; skipped with -short")
	}
	ctx := context.Background()
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "secret.key")
	require.NoError(t, auth.GenerateKeyFile(keyFile))
	keys, err := auth.KeysFromFile(keyFile)
	require.NoError(t, err)
	dbPath := filepath.Join(dir, "crash.db")

	demo, err := demoserver.Start(map[string]string{"alice@example.test": "alice-pass", "bob@example.test": "bob-pass"})
	require.NoError(t, err)
	defer demo.Close()
	demo.SetReplyDelay(crashReplyDelay)
	// Tells the parent when the server has taken a message, so it can kill the child
	// while the reply is held back.
	taken := make(chan time.Time, 64)
	demo.SetSendHook(func(string, []string) error {
		select {
		case taken <- time.Now():
		default:
		}
		return nil
	})
	messages := 0
	deliverIncoming := func(n int) {
		for range n {
			raw := message(fmt.Sprintf("sender%d@partner.test", messages), "alice@example.test", fmt.Sprintf("message %d", messages),
				fmt.Sprintf("Message-ID: <crash-%d@partner.test>\r\n", messages), strings.Repeat("text ", 200))
			require.NoError(t, demo.Deliver("alice@example.test", raw))
			messages++
		}
	}
	deliverIncoming(crashFirstMessages)

	store, err := sqlite.Open(ctx, dbPath, &sqlite.Options{Keys: keys})
	require.NoError(t, err)
	defer store.Close()
	admin := serversync.NewAdmin(store, &serversync.AdminConfig{
		CanApprove: func(context.Context, string, *serversync.Mailbox) error { return nil }, Logger: slog.New(slog.DiscardHandler),
	})
	p, err := admin.CreateProfile(ctx, &serversync.Profile{
		Name: "demo", ServerType: serversync.ServerTypeIMAPSMTP,
		IncomingServer: demo.Host, IncomingPort: demo.IMAPPort,
		OutgoingServer: demo.Host, OutgoingPort: demo.SMTPPort, OutgoingTLS: serversync.TLSImplicit,
		ExtraRootCAsPEM: demo.CAPEM,
	})
	require.NoError(t, err)
	alice, err := admin.CreateMailbox(ctx, &serversync.Mailbox{
		Name: "alice", EmailAddress: "alice@example.test", ProfileID: p.ID, Password: auth.NewSecret("alice-pass"), IncomingFilter: serversync.FilterAll,
		Regarding: serversync.Regarding{Type: serversync.RegardingUser, ID: "user-alice"},
	})
	require.NoError(t, err)
	require.NoError(t, admin.Approve(ctx, "admin", alice.ID))
	s, err := serversync.NewSyncer(store, standard.Connectors(nil), &serversync.Config{Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	alice, err = s.TestAndEnable(ctx, alice.ID)
	require.NoError(t, err)
	require.True(t, alice.IncomingEnabled && alice.OutgoingEnabled)

	emails := 0
	outbox := func(status serversync.ActivityStatus) []*serversync.EmailActivity {
		var out []*serversync.EmailActivity
		for a, err := range store.ListActivities(ctx, serversync.ActivityFilter{MailboxID: alice.ID, Direction: serversync.Outgoing, Status: status}) {
			require.NoError(t, err)
			out = append(out, a)
		}
		return out
	}
	queueEmails := func() {
		for range crashQueuedEmails - len(outbox(serversync.StatusPendingSend)) {
			_, err := serversync.QueueEmail(ctx, store, &serversync.EmailActivity{
				MailboxID: alice.ID, To: []serversync.Address{{Email: "bob@example.test"}},
				Subject: fmt.Sprintf("outgoing %d", emails), TextBody: "hello",
			}, time.Now())
			require.NoError(t, err)
			emails++
		}
	}

	child := func(untilDone bool) *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), "SERVERSYNC_CRASH_DB="+dbPath, "SERVERSYNC_CRASH_KEY="+keyFile,
			"SERVERSYNC_CRASH_UNTIL_DONE="+strconv.FormatBool(untilDone), "SERVERSYNC_CRASH_MESSAGES="+strconv.Itoa(messages))
		cmd.Stdout = childtest.Output("crash child")
		cmd.Stderr = cmd.Stdout
		return cmd
	}
	// An email left Sending with its attempt recorded is one whose sender was killed
	// inside the send window.
	killedInWindow := map[string]bool{}
	windowKills := 0
	for i := range crashKills {
		deliverIncoming(crashMessagesPerChild)
		queueEmails()
		cmd := child(false)
		started := time.Now()
		require.NoError(t, cmd.Start())
		if i%crashRandomEvery == 0 {
			time.Sleep(time.Duration(100+rand.IntN(500)) * time.Millisecond)
		} else {
			waitForTaken(taken, started, 10*time.Second)
			// Spread over the held reply and past it, where the 250 has come back and
			// Sent is about to be recorded, or just was.
			time.Sleep(time.Duration(rand.Int64N(int64(crashReplyDelay * 3 / 2))))
		}
		require.NoError(t, cmd.Process.Kill()) // SIGKILL: no cleanup, no lease release
		_ = cmd.Wait()
		inWindow := false
		for _, a := range outbox(serversync.StatusSending) {
			if !a.SendStartedAt.IsZero() && !killedInWindow[a.ID] {
				killedInWindow[a.ID], inWindow = true, true
			}
		}
		if inWindow {
			windowKills++
		}
	}
	final := child(true)
	require.NoError(t, final.Run(), "the last child finishes the work")

	seen := map[string]int{}
	for a, err := range store.ListActivities(ctx, serversync.ActivityFilter{MailboxID: alice.ID, Direction: serversync.Incoming}) {
		require.NoError(t, err)
		seen[a.MessageID]++
	}
	require.Len(t, seen, messages, "every message tracked")
	for id, n := range seen {
		assert.Equal(t, 1, n, "message %s tracked once", id)
	}

	warnings := map[string]int{} // activity → outcome-unknown warnings about it
	for al, err := range store.ListAlerts(ctx, serversync.AlertFilter{MailboxID: alice.ID, Level: serversync.AlertWarning}) {
		require.NoError(t, err)
		if al.Code == serversync.CodeSendOutcomeUnknown {
			warnings[al.ActivityID]++
		}
	}
	delivered := demo.Deliveries()
	sentOnce, unknownDelivered, unknownNotDelivered, warnedTwice, deliveredTwice := 0, 0, 0, 0, 0
	for a, err := range store.ListActivities(ctx, serversync.ActivityFilter{MailboxID: alice.ID, Direction: serversync.Outgoing}) {
		require.NoError(t, err)
		switch a.Status {
		case serversync.StatusSent:
			assert.Equal(t, 1, delivered[a.MessageID], "sent email %s delivered exactly once", a.MessageID)
			if delivered[a.MessageID] == 1 {
				sentOnce++
			}
		case serversync.StatusFailed:
			assert.Contains(t, a.LastError, "may have been delivered", "a failure is only the honest 'outcome unknown'")
			if delivered[a.MessageID] > 0 {
				unknownDelivered++
			} else {
				unknownNotDelivered++
			}
			assert.Positive(t, warnings[a.ID], "email %s failed with its owner warned", a.ID)
			if warnings[a.ID] > 1 {
				warnedTwice++ // killed between the warning and recording the failure
			}
		default:
			t.Errorf("email %s left in status %s", a.ID, a.Status)
		}
		if killedInWindow[a.ID] {
			assert.Equal(t, serversync.StatusFailed, a.Status, "email %s, killed while being sent, is reported outcome-unknown", a.ID)
		}
	}
	assert.Equal(t, emails, sentOnce+unknownDelivered+unknownNotDelivered)
	for id, n := range delivered {
		if n > 1 {
			deliveredTwice++
			t.Errorf("email %s reached the server %d times", id, n)
		}
	}
	m, err := store.GetMailbox(ctx, alice.ID)
	require.NoError(t, err)
	t.Logf("%d of the kills landed inside an incoming sync (its lease was taken over)", m.ForcedUnlockCount)
	t.Logf("%d kills, %d of them inside the send window (%d emails caught there); %d messages tracked once each; "+
		"%d emails: %d sent once, %d failed outcome-unknown (%d of them delivered, %d not; %d warned twice), %d delivered twice",
		crashKills, windowKills, len(killedInWindow), len(seen), emails, sentOnce, unknownDelivered+unknownNotDelivered,
		unknownDelivered, unknownNotDelivered, warnedTwice, deliveredTwice)
	assert.Zero(t, deliveredTwice, "emails delivered twice")
	assert.Positive(t, windowKills, "kills inside the send window: the test no longer exercises it")
}

// waitForTaken waits until the demo server has taken a message since the child
// started, or gives up after timeout (the child may have nothing to send yet).
func waitForTaken(taken <-chan time.Time, since time.Time, timeout time.Duration) {
	deadline := time.After(timeout)
	for {
		select {
		case at := <-taken:
			if at.After(since) {
				return
			}
		case <-deadline:
			return
		}
	}
}

// TestCrashChild is the child process of TestCrashRecovery; it does nothing when
// run on its own.
func TestCrashChild(t *testing.T) {
	dbPath := os.Getenv("SERVERSYNC_CRASH_DB")
	if dbPath == "" {
		t.Skip("child process of TestCrashRecovery")
	}
	ctx := context.Background()
	messages, err := strconv.Atoi(os.Getenv("SERVERSYNC_CRASH_MESSAGES"))
	require.NoError(t, err)
	keys, err := auth.KeysFromFile(os.Getenv("SERVERSYNC_CRASH_KEY"))
	require.NoError(t, err)
	store, err := sqlite.Open(ctx, dbPath, &sqlite.Options{Keys: keys})
	require.NoError(t, err)
	defer store.Close()
	s, err := serversync.NewSyncer(store, standard.Connectors(nil), &serversync.Config{
		LeaseTTL: 2 * time.Second, OutboxClaimTTL: 2 * time.Second, Tick: 20 * time.Millisecond,
		OutboxInterval: 100 * time.Millisecond, ActivePoll: 500 * time.Millisecond, SaveBatch: 7,
		IdleConnections: -1, Logger: testLogger(),
	})
	require.NoError(t, err)
	runCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Run(runCtx) }()
	if os.Getenv("SERVERSYNC_CRASH_UNTIL_DONE") != "true" {
		<-done // until killed
		return
	}
	for {
		tracked, pending := 0, 0
		for a, err := range store.ListActivities(ctx, serversync.ActivityFilter{}) {
			require.NoError(t, err)
			switch {
			case a.Direction == serversync.Incoming:
				tracked++
			case a.Status == serversync.StatusPendingSend || a.Status == serversync.StatusSending:
				pending++
			}
		}
		if tracked == messages && pending == 0 {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("syncer ended early: %v (%d tracked, %d pending)", err, tracked, pending)
		case <-time.After(100 * time.Millisecond):
		}
	}
	stopCtx, cancelStop := context.WithTimeout(ctx, 10*time.Second)
	defer cancelStop()
	require.NoError(t, s.Stop(stopCtx))
}

// warnedWhenFailed notes, each time an email is stored as Failed, whether its
// outcome-unknown warning was already stored: a crash just after that write would
// leave it failed with nobody told otherwise.
type warnedWhenFailed struct {
	serversync.Store
	mu     sync.Mutex
	warned []bool
}

func (s *warnedWhenFailed) UpdateActivity(ctx context.Context, id string, update func(*serversync.EmailActivity) error) (*serversync.EmailActivity, error) {
	a, err := s.Store.UpdateActivity(ctx, id, update)
	if err != nil || a.Status != serversync.StatusFailed {
		return a, err
	}
	warned := false
	for al, err := range s.ListAlerts(ctx, serversync.AlertFilter{MailboxID: a.MailboxID, Level: serversync.AlertWarning}) {
		if err != nil {
			return nil, err
		}
		warned = warned || (al.ActivityID == id && al.Code == serversync.CodeSendOutcomeUnknown)
	}
	s.mu.Lock()
	s.warned = append(s.warned, warned)
	s.mu.Unlock()
	return a, nil
}

// The warning about an email that may have been delivered is stored before the email
// is recorded as failed: a Syncer killed between the two writes (the crash test's
// kills landed there) left it failed without the warning, and nothing looks at a
// failed email again.
func TestOutcomeUnknownIsWarnedBeforeTheFailureIsRecorded(t *testing.T) {
	e := newSyncEnv(t, nil)
	alice := e.mailbox(t, "alice", nil)
	store := &warnedWhenFailed{Store: e.store}
	e.store = store
	ctx := context.Background()
	interrupted := &serversync.EmailActivity{
		ID: serversync.NewID(), MailboxID: alice.ID, MessageKey: "out:interrupted", Direction: serversync.Outgoing,
		Status: serversync.StatusPendingSend, To: []serversync.Address{{Email: "bob@example.test"}}, Subject: "interrupted",
	}
	require.NoError(t, store.QueueOutgoing(ctx, interrupted))
	claimed, err := store.ClaimOutgoing(ctx, serversync.ClaimRequest{Host: "dead-host", Now: e.clock.Now(), TTL: time.Minute, Limit: 1})
	require.NoError(t, err)
	require.Len(t, claimed, 1)
	_, err = store.UpdateActivity(ctx, interrupted.ID, func(a *serversync.EmailActivity) error {
		a.SendStartedAt = e.clock.Now() // the dead host had handed it to the server
		return nil
	})
	require.NoError(t, err)
	e.clock.Advance(2 * time.Minute) // its claim ran out

	s := e.syncer(t, nil)
	testAndEnable(t, s, alice)
	run(t, s)
	eventually(t, "the interrupted email reconciled", func() bool {
		store.mu.Lock()
		defer store.mu.Unlock()
		return len(store.warned) > 0
	})
	store.mu.Lock()
	assert.Equal(t, []bool{true}, store.warned, "the warning was stored when the email became Failed")
	store.mu.Unlock()
	alerts := e.alerts(t, serversync.AlertFilter{MailboxID: alice.ID, Level: serversync.AlertWarning})
	require.Len(t, alerts, 1, "warned once")
	assert.Equal(t, serversync.CodeSendOutcomeUnknown, alerts[0].Code)
	assert.Equal(t, interrupted.ID, alerts[0].ActivityID)
}
