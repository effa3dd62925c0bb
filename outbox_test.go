package serversync_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/auth"
)

// exchangeMailbox creates an approved mailbox on an Exchange Server profile, for
// which the environment's connectors have none.
func (e *syncEnv) exchangeMailbox(t *testing.T, name string) *serversync.Mailbox {
	t.Helper()
	ctx := context.Background()
	p, err := e.admin.CreateProfile(ctx, &serversync.Profile{
		Name: "exchange-" + name, Owner: "admin-user", ServerType: serversync.ServerTypeExchangeServer,
		IncomingServer: "https://exchange.contoso.test/EWS/Exchange.asmx", OutgoingServer: "https://exchange.contoso.test/EWS/Exchange.asmx",
	})
	require.NoError(t, err)
	m, err := e.admin.CreateMailbox(ctx, &serversync.Mailbox{
		Name: name, EmailAddress: name + "@contoso.test", ProfileID: p.ID, Owner: "owner-" + name,
		Regarding: serversync.Regarding{Type: serversync.RegardingUser, ID: "user-" + name},
		Password:  auth.NewSecret(name + "-pass"),
	})
	require.NoError(t, err)
	require.NoError(t, e.admin.Approve(ctx, "admin-user", m.ID))
	return m
}

func (e *syncEnv) changeMailbox(t *testing.T, id string, change func(*serversync.Mailbox)) {
	t.Helper()
	_, err := e.store.UpdateMailbox(context.Background(), id, func(m *serversync.Mailbox) error { change(m); return nil })
	require.NoError(t, err)
}

func (e *syncEnv) activity(t *testing.T, id string) *serversync.EmailActivity {
	t.Helper()
	a, err := e.store.GetActivity(context.Background(), id)
	require.NoError(t, err)
	return a
}

func emailFrom(m *serversync.Mailbox) *serversync.EmailActivity {
	return &serversync.EmailActivity{MailboxID: m.ID, To: []serversync.Address{{Email: "someone@example.test"}}, Subject: "from " + m.Name}
}

// QueueEmail refuses at once, with a code that says what to fix, an email its
// mailbox can never send as configured, rather than queuing it to wait forever.
func TestQueueEmailRefusesWhatCanNeverBeSent(t *testing.T) {
	ctx := context.Background()
	e := newSyncEnv(t, nil)
	s := e.syncer(t, nil)
	outlook := e.mailbox(t, "outlook", func(m *serversync.Mailbox) { m.OutgoingMethod = serversync.OutgoingOutlook })
	rejected := e.mailbox(t, "rejected", nil)
	require.NoError(t, e.admin.Reject(ctx, "admin-user", rejected.ID))
	exchange := e.exchangeMailbox(t, "exchange")

	for _, tc := range []struct {
		name    string
		mailbox *serversync.Mailbox
		code    string
		// byStore: the package function refuses it too; it does not know the
		// Syncers' connectors, so it queues an email for a server type without one.
		byStore bool
	}{
		{"UnknownMailbox", &serversync.Mailbox{ID: serversync.NewID(), Name: "nobody"}, "mailbox_not_found", true},
		{"OutgoingMethodOutlook", outlook, serversync.CodeNotServerSideSync, true},
		{"Rejected", rejected, serversync.CodeNotApproved, true},
		{"NoConnector", exchange, serversync.CodeNoConnector, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.QueueEmail(ctx, emailFrom(tc.mailbox))
			require.ErrorIs(t, err, serversync.ErrInvalidEmail)
			requireCode(t, err, tc.code)
			if tc.code == "mailbox_not_found" {
				assert.ErrorIs(t, err, serversync.ErrNotFound)
			}
			_, err = serversync.QueueEmail(ctx, e.store, emailFrom(tc.mailbox), e.clock.Now())
			if tc.byStore {
				require.ErrorIs(t, err, serversync.ErrInvalidEmail)
				requireCode(t, err, tc.code)
				assert.Empty(t, e.activities(t, serversync.ActivityFilter{MailboxID: tc.mailbox.ID}), "nothing queued")
			} else {
				require.NoError(t, err)
			}
		})
	}
}

// An email whose mailbox turns out unable to send when the Syncer claims it (queued
// from a process that does not know the connectors, or the mailbox changed since)
// fails at once with EmailFailed and an item alert that says why.
func TestEmailThatCanNeverBeSentFailsAtOnce(t *testing.T) {
	ctx := context.Background()
	e := newSyncEnv(t, nil)
	s := e.syncer(t, nil)
	exchange := e.exchangeMailbox(t, "exchange")
	outlook := e.mailbox(t, "outlook", nil)
	rejected := e.mailbox(t, "rejected", nil)
	type queuedEmail struct {
		activity *serversync.EmailActivity
		code     string
	}
	var emails []queuedEmail
	for _, tc := range []struct {
		mailbox *serversync.Mailbox
		code    string
	}{{exchange, serversync.CodeNoConnector}, {outlook, serversync.CodeNotServerSideSync}, {rejected, serversync.CodeNotApproved}} {
		a, err := serversync.QueueEmail(ctx, e.store, emailFrom(tc.mailbox), e.clock.Now())
		require.NoError(t, err)
		emails = append(emails, queuedEmail{a, tc.code})
	}
	// The Syncer's background Test & Enable would race the sends below: the
	// mailboxes wait for a person to run it.
	for _, m := range []*serversync.Mailbox{exchange, outlook, rejected} {
		e.changeMailbox(t, m.ID, func(m *serversync.Mailbox) { m.TestAndEnablePending = false })
	}
	e.changeMailbox(t, outlook.ID, func(m *serversync.Mailbox) { m.OutgoingMethod = serversync.OutgoingOutlook })
	require.NoError(t, e.admin.Reject(ctx, "admin-user", rejected.ID))
	run(t, s)

	for _, q := range emails {
		eventually(t, q.code+": the email fails", func() bool {
			return e.activity(t, q.activity.ID).Status == serversync.StatusFailed
		})
		assert.Contains(t, e.activity(t, q.activity.ID).LastError, q.code)
		itemAlerts := func() (found []*serversync.Alert) {
			for _, a := range e.alerts(t, serversync.AlertFilter{MailboxID: q.activity.MailboxID, Level: serversync.AlertError}) {
				if a.ActivityID == q.activity.ID {
					found = append(found, a)
				}
			}
			return found
		}
		eventually(t, q.code+": its item alert", func() bool { return len(itemAlerts()) > 0 })
		alerts := itemAlerts()
		require.Len(t, alerts, 1, q.code)
		assert.Equal(t, q.code, alerts[0].Code)
		assert.Equal(t, serversync.ScopeItem, alerts[0].Scope)
	}
	assert.Equal(t, len(emails), e.countEvents(serversync.EventEmailFailed))
	assert.Zero(t, e.countEvents(serversync.EventMailboxDisabled), "nothing was enabled to disable")
}

// An email queued before its mailbox can send (not approved yet, not tested yet, or
// disabled after a failure) waits, and its mailbox's owner gets one warning however
// often the Syncer finds it still waiting; once the mailbox is approved and passes
// Test & Enable, it is sent.
func TestEmailWaitsForTestAndEnable(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setUp func(*serversync.Mailbox)
		code  string
	}{
		{"NotTestedYet", func(*serversync.Mailbox) {}, serversync.CodeOutgoingNotEnabled},
		{"DisabledAfterAFailure", func(m *serversync.Mailbox) {
			m.OutgoingStatus, m.Status = serversync.TestFailure, serversync.TestFailure
		}, serversync.CodeOutgoingNotEnabled},
		{"NotApprovedYet", func(m *serversync.Mailbox) { m.Approval = serversync.ApprovalPending }, serversync.CodeNotApproved},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			e := newSyncEnv(t, nil)
			alice := e.mailbox(t, "alice", nil)
			bob := e.mailbox(t, "bob", nil)
			e.changeMailbox(t, alice.ID, func(m *serversync.Mailbox) {
				m.TestAndEnablePending = false // waiting for a person to run it
				tc.setUp(m)
			})
			s := e.syncer(t, nil)
			run(t, s)
			queued, err := s.QueueEmail(ctx, &serversync.EmailActivity{MailboxID: alice.ID, To: []serversync.Address{{Email: bob.EmailAddress}}, Subject: "early"})
			require.NoError(t, err)

			for range 3 { // three passes of the outbox find it waiting
				e.clock.Advance(time.Minute)
				now := e.clock.Now()
				eventually(t, "the email looked at and put back", func() bool {
					a := e.activity(t, queued.ID)
					return a.Status == serversync.StatusPendingSend && !a.UpdatedAt.Before(now)
				})
			}
			waiting := e.activity(t, queued.ID)
			assert.Contains(t, waiting.LastError, tc.code)
			assert.Zero(t, waiting.Attempts, "waiting is not a failed attempt")
			warnings := e.alerts(t, serversync.AlertFilter{MailboxID: alice.ID, Level: serversync.AlertWarning})
			require.Len(t, warnings, 1, "one warning per mailbox")
			assert.Equal(t, tc.code, warnings[0].Code)
			assert.Equal(t, "owner-alice", warnings[0].Recipient)
			assert.Zero(t, e.countEvents(serversync.EventEmailFailed))

			e.changeMailbox(t, alice.ID, func(m *serversync.Mailbox) { m.Approval = serversync.ApprovalApproved })
			testAndEnable(t, s, alice)
			e.clock.Advance(time.Minute)
			eventually(t, "sent once the mailbox passed Test & Enable", func() bool {
				return e.activity(t, queued.ID).Status == serversync.StatusSent
			})
			assert.Equal(t, 1, e.demo.Sent())
		})
	}
}

// An email whose mailbox never gets enabled fails once Config.MaxSendWait has
// passed since it was queued, with the reason, EmailFailed and an item alert.
func TestEmailFailsAfterMaxSendWait(t *testing.T) {
	ctx := context.Background()
	e := newSyncEnv(t, nil)
	alice := e.mailbox(t, "alice", nil)
	e.changeMailbox(t, alice.ID, func(m *serversync.Mailbox) { m.TestAndEnablePending = false })
	s := e.syncer(t, &serversync.Config{MaxSendWait: time.Hour})
	run(t, s)
	queued, err := s.QueueEmail(ctx, emailFrom(alice))
	require.NoError(t, err)
	e.clock.Advance(time.Minute)
	eventually(t, "the warning", func() bool {
		return len(e.alerts(t, serversync.AlertFilter{MailboxID: alice.ID, Level: serversync.AlertWarning})) == 1
	})
	assert.Equal(t, serversync.StatusPendingSend, e.activity(t, queued.ID).Status)

	e.clock.Advance(time.Hour)
	eventually(t, "the email fails", func() bool { return e.activity(t, queued.ID).Status == serversync.StatusFailed })
	failed := e.activity(t, queued.ID)
	assert.Contains(t, failed.LastError, serversync.CodeOutgoingNotEnabled)
	assert.Contains(t, failed.LastError, "MaxSendWait")
	eventually(t, "the item alert", func() bool {
		return len(e.alerts(t, serversync.AlertFilter{MailboxID: alice.ID, Level: serversync.AlertError})) == 1
	})
	alert := e.alerts(t, serversync.AlertFilter{MailboxID: alice.ID, Level: serversync.AlertError})[0]
	assert.Equal(t, queued.ID, alert.ActivityID)
	assert.Equal(t, serversync.CodeOutgoingNotEnabled, alert.Code)
	assert.Equal(t, 1, e.countEvents(serversync.EventEmailFailed))
	assert.Zero(t, e.demo.Sent())
}
