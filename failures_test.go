package serversync_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/auth"
)

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
