package serversync_test

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/mail"
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
// TestCrashChild) and kills it with SIGKILL at random points, many times, then lets
// a last child finish. Every incoming message must end up tracked exactly once and
// no outgoing email may reach the server twice; an email whose sender died while
// the server had it is marked failed with a warning, never resent silently.
const (
	crashMessages = 300
	crashEmails   = 30
	crashKills    = 15
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
	for i := range crashMessages {
		raw := message(fmt.Sprintf("sender%d@partner.test", i), "alice@example.test", fmt.Sprintf("message %d", i),
			fmt.Sprintf("Message-ID: <crash-%d@partner.test>\r\n", i), strings.Repeat("text ", 200))
		require.NoError(t, demo.Deliver("alice@example.test", raw))
	}

	store, err := sqlite.Open(ctx, dbPath, &sqlite.Options{Keys: keys})
	require.NoError(t, err)
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
	for i := range crashEmails {
		_, err := serversync.QueueEmail(ctx, store, &serversync.EmailActivity{
			MailboxID: alice.ID, To: []serversync.Address{{Email: "bob@example.test"}},
			Subject: fmt.Sprintf("outgoing %d", i), TextBody: "hello",
		}, time.Now())
		require.NoError(t, err)
	}
	require.NoError(t, store.Close())

	child := func(untilDone bool) *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), "SERVERSYNC_CRASH_DB="+dbPath, "SERVERSYNC_CRASH_KEY="+keyFile,
			"SERVERSYNC_CRASH_UNTIL_DONE="+strconv.FormatBool(untilDone))
		cmd.Stdout = childtest.Output("crash child")
		cmd.Stderr = cmd.Stdout
		return cmd
	}
	for range crashKills {
		cmd := child(false)
		require.NoError(t, cmd.Start())
		time.Sleep(time.Duration(100+rand.IntN(500)) * time.Millisecond)
		require.NoError(t, cmd.Process.Kill()) // SIGKILL: no cleanup, no lease release
		_ = cmd.Wait()
	}
	final := child(true)
	require.NoError(t, final.Run(), "the last child finishes the work")

	store, err = sqlite.Open(ctx, dbPath, &sqlite.Options{Keys: keys})
	require.NoError(t, err)
	defer store.Close()
	seen := map[string]int{}
	for a, err := range store.ListActivities(ctx, serversync.ActivityFilter{MailboxID: alice.ID, Direction: serversync.Incoming}) {
		require.NoError(t, err)
		seen[a.MessageID]++
	}
	require.Len(t, seen, crashMessages, "every message tracked")
	for id, n := range seen {
		assert.Equal(t, 1, n, "message %s tracked once", id)
	}

	delivered := map[string]int{}
	inbox, err := demo.Messages("bob@example.test", "INBOX")
	require.NoError(t, err)
	for _, raw := range inbox {
		msg, err := mail.ReadMessage(strings.NewReader(string(raw)))
		require.NoError(t, err)
		delivered[strings.Trim(msg.Header.Get("Message-Id"), "<>")]++
	}
	sent, unknown := 0, 0
	for a, err := range store.ListActivities(ctx, serversync.ActivityFilter{MailboxID: alice.ID, Direction: serversync.Outgoing}) {
		require.NoError(t, err)
		switch a.Status {
		case serversync.StatusSent:
			sent++
			assert.Equal(t, 1, delivered[a.MessageID], "sent email %s delivered exactly once", a.MessageID)
		case serversync.StatusFailed:
			unknown++
			assert.Contains(t, a.LastError, "may have been delivered", "a failure is only the honest 'outcome unknown'")
			assert.LessOrEqual(t, delivered[a.MessageID], 1)
		default:
			t.Errorf("email %s left in status %s", a.ID, a.Status)
		}
	}
	assert.Equal(t, crashEmails, sent+unknown)
	for id, n := range delivered {
		assert.Equal(t, 1, n, "email %s reached the server %d times", id, n)
	}
	t.Logf("%d kills: %d messages tracked once each; %d emails sent, %d flagged outcome-unknown", crashKills, len(seen), sent, unknown)
}

// TestCrashChild is the child process of TestCrashRecovery; it does nothing when
// run on its own.
func TestCrashChild(t *testing.T) {
	dbPath := os.Getenv("SERVERSYNC_CRASH_DB")
	if dbPath == "" {
		t.Skip("child process of TestCrashRecovery")
	}
	ctx := context.Background()
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
		if tracked == crashMessages && pending == 0 {
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
