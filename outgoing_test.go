package serversync_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/serversync/serversync"
)

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
