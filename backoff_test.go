package serversync_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/connector/fakeconn"
)

// A server that stays unreachable is retried every RetryInterval, with one
// warning when the retries start; the tenth failure in a row disables incoming
// mail, alerts the mailbox's owner and, for a profile-level error and a mass
// failure, the profile's owner; then nothing more is tried.
func TestTransientFailuresBackOffThenDisable(t *testing.T) {
	inBubble(t, func(t *testing.T) {
		e := newFakeEnv(t, nil, func(p *serversync.Profile) { p.SendAlertOnMassFailure = true })
		alice := e.mailbox(t, "alice", nil)
		s := e.syncer(t, nil)
		testAndEnable(t, s, alice)
		e.fake.Inject(fakeconn.Fault{Op: fakeconn.OpOpenIncoming, Times: fakeconn.Always,
			Err: fakeconn.Error(serversync.ErrorTransient, serversync.ScopeProfile, "network")})
		e.run(t, s)

		for attempt := 1; attempt < serversync.MaxTransientFailuresDefault; attempt++ {
			settle()
			m := e.get(t, alice.ID)
			require.Equal(t, attempt, m.Stats.TransientFailureCount)
			require.True(t, m.IncomingEnabled, "still enabled after %d transient failures", attempt)
			time.Sleep(serversync.RetryIntervalDefault)
		}
		settle()
		m := e.get(t, alice.ID)
		assert.False(t, m.IncomingEnabled, "disabled after the tenth")
		assert.Equal(t, serversync.TestFailure, m.IncomingStatus)

		opens := e.callsFor(fakeconn.OpOpenIncoming, alice)
		require.Len(t, opens, serversync.MaxTransientFailuresDefault)
		for i, gap := range gaps(opens) {
			assert.GreaterOrEqual(t, gap, serversync.RetryIntervalDefault, "retry %d", i+1)
			assert.LessOrEqual(t, gap, serversync.RetryIntervalDefault+serversync.TickDefault, "retry %d", i+1)
		}

		assert.Len(t, e.alerts(t, serversync.AlertFilter{Recipient: "owner-alice", Level: serversync.AlertWarning}), 1, "one warning when retries start")
		assert.Len(t, e.alerts(t, serversync.AlertFilter{Recipient: "owner-alice", Level: serversync.AlertError}), 1, "one error when disabled")
		ownerAlerts := e.alerts(t, serversync.AlertFilter{Recipient: "admin-user", Level: serversync.AlertError})
		require.Len(t, ownerAlerts, 2, "the profile owner hears of the disabling (a profile-level error) and of the mass failure, once")
		assert.ElementsMatch(t, []string{"network", "mass_failure"}, []string{ownerAlerts[0].Code, ownerAlerts[1].Code})
		assert.Equal(t, 1, e.countEvents(serversync.EventMailboxDisabled))

		time.Sleep(serversync.MaxIdlePollDefault)
		settle()
		assert.Len(t, e.callsFor(fakeconn.OpOpenIncoming, alice), serversync.MaxTransientFailuresDefault, "a disabled mailbox is left alone")
	})
}

// A failure that is not the mail server's (the store, say) is retried every
// RetryInterval for as long as it lasts, without counting towards disabling.
func TestStoreOutageIsRetriedWithoutCounting(t *testing.T) {
	inBubble(t, func(t *testing.T) {
		e := newFakeEnv(t, nil, nil)
		alice := e.mailbox(t, "alice", nil)
		e.fake.Deliver(alice.EmailAddress, message("x@p.test", alice.EmailAddress, "during the outage", "", "b"))
		store := &flakySaves{Store: e.store, failFirst: 3 * serversync.MaxTransientFailuresDefault}
		e.store = store
		s := e.syncer(t, &serversync.Config{IdleConnections: -1})
		testAndEnable(t, s, alice)
		e.run(t, s)
		time.Sleep(3*serversync.MaxTransientFailuresDefault*serversync.RetryIntervalDefault + time.Minute)
		settle()

		assert.Len(t, e.activities(t, serversync.ActivityFilter{MailboxID: alice.ID}), 1, "tracked once the store is back")
		fetches := e.callsFor(fakeconn.OpFetch, alice)
		require.Len(t, fetches, 3*serversync.MaxTransientFailuresDefault+1, "one sync per RetryInterval")
		for _, gap := range gaps(fetches) {
			assert.GreaterOrEqual(t, gap, serversync.RetryIntervalDefault)
			assert.LessOrEqual(t, gap, serversync.RetryIntervalDefault+serversync.TickDefault)
		}
		m := e.get(t, alice.ID)
		assert.True(t, m.IncomingEnabled)
		assert.Zero(t, m.Stats.TransientFailureCount)
		assert.Empty(t, e.alerts(t, serversync.AlertFilter{Recipient: "owner-alice", Level: serversync.AlertWarning}))
		assert.Empty(t, e.alerts(t, serversync.AlertFilter{Recipient: "owner-alice", Level: serversync.AlertError}))
	})
}

// A transient send failure puts the email back with exponential back-off (one
// minute, doubling, at most 64), picked up at the next outbox scan after it; the
// MaxSendAttempts-th failure fails it with one alert. A permanent one fails it at
// once.
func TestSendRetriesBackOff(t *testing.T) {
	inBubble(t, func(t *testing.T) {
		ctx := context.Background()
		e := newFakeEnv(t, nil, nil)
		alice := e.mailbox(t, "alice", nil)
		s := e.syncer(t, &serversync.Config{IdleConnections: -1})
		testAndEnable(t, s, alice)
		busy := fakeconn.Error(serversync.ErrorTransient, serversync.ScopeItem, "smtp_451")
		e.fake.Inject(fakeconn.Fault{Op: fakeconn.OpSend, Mailbox: alice.EmailAddress, Err: busy, Times: fakeconn.Always})
		e.run(t, s)
		queued, err := s.QueueEmail(ctx, &serversync.EmailActivity{MailboxID: alice.ID, To: []serversync.Address{{Email: "bob@partner.test"}}, Subject: "busy"})
		require.NoError(t, err)

		time.Sleep(12 * time.Hour)
		settle()
		sends := e.callsFor(fakeconn.OpSend, alice)
		require.Len(t, sends, serversync.MaxSendAttemptsDefault)
		for i, gap := range gaps(sends) {
			backoff := time.Minute << min(i, 6)
			assert.GreaterOrEqual(t, gap, backoff, "retry %d", i+1)
			assert.Less(t, gap, backoff+serversync.OutboxIntervalDefault, "retry %d waits for the next scan at most", i+1)
		}
		a, err := e.store.GetActivity(ctx, queued.ID)
		require.NoError(t, err)
		assert.Equal(t, serversync.StatusFailed, a.Status)
		assert.Equal(t, serversync.MaxSendAttemptsDefault, a.Attempts)
		alerts := e.alerts(t, serversync.AlertFilter{MailboxID: alice.ID, Level: serversync.AlertError})
		require.Len(t, alerts, 1, "one alert, when the email fails for good")
		assert.Equal(t, queued.ID, alerts[0].ActivityID)
		assert.Equal(t, 1, e.countEvents(serversync.EventEmailFailed))

		e.fake.Heal()
		e.fake.Inject(fakeconn.Fault{Op: fakeconn.OpSend, Err: fakeconn.Error(serversync.ErrorPermanent, serversync.ScopeItem, "smtp_554")})
		refused, err := s.QueueEmail(ctx, &serversync.EmailActivity{MailboxID: alice.ID, To: []serversync.Address{{Email: "bob@partner.test"}}, Subject: "refused"})
		require.NoError(t, err)
		settle()
		a, err = e.store.GetActivity(ctx, refused.ID)
		require.NoError(t, err)
		assert.Equal(t, serversync.StatusFailed, a.Status, "failed at once, without waiting")
		assert.Len(t, e.callsFor(fakeconn.OpSend, alice), serversync.MaxSendAttemptsDefault+1)
		assert.Empty(t, e.fake.Sent(), "nothing was delivered")
	})
}

// A slow send keeps its claim: another host looking for work never gets the
// email while the first is still at it, however long past the claim's first
// expiry.
func TestSlowSendIsNeverTakenOver(t *testing.T) {
	inBubble(t, func(t *testing.T) {
		ctx := context.Background()
		e := newFakeEnv(t, nil, nil)
		alice := e.mailbox(t, "alice", nil)
		s := e.syncer(t, &serversync.Config{IdleConnections: -1})
		testAndEnable(t, s, alice)
		gate := e.fake.Hold(fakeconn.OpSend, alice.EmailAddress)
		e.run(t, s)
		queued, err := s.QueueEmail(ctx, &serversync.EmailActivity{MailboxID: alice.ID, To: []serversync.Address{{Email: "bob@partner.test"}}, Subject: "slow"})
		require.NoError(t, err)
		within(t, time.Minute, "the send", gate.Reached())
		for minute := range 3 * int(serversync.OutboxClaimTTLDefault/time.Minute) {
			time.Sleep(time.Minute)
			taken, err := e.store.ClaimOutgoing(ctx, serversync.ClaimRequest{Host: "other-host", Now: time.Now(), TTL: time.Hour, Limit: 1})
			require.NoError(t, err)
			require.Empty(t, taken, fmt.Sprintf("another host took an email being sent, %d minutes in", minute+1))
		}
		gate.Release()
		settle()
		a, err := e.store.GetActivity(ctx, queued.ID)
		require.NoError(t, err)
		assert.Equal(t, serversync.StatusSent, a.Status)
		assert.Len(t, e.fake.Sent(), 1)
	})
}
