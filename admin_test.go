package serversync_test

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/store/memory"
)

func TestDeleteProfileInUse(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	admin, store := newAdmin(t)
	profile, err := admin.CreateProfile(ctx, imapProfile())
	require.NoError(t, err)
	mb, err := admin.CreateMailbox(ctx, userMailbox(profile.ID, "alice@contoso.test", "user-alice"))
	require.NoError(t, err)

	err = admin.DeleteProfile(ctx, profile.ID)
	require.ErrorIs(t, err, serversync.ErrProfileInUse)
	assert.Contains(t, err.Error(), "1 mailbox(es) use it")
	_, err = store.GetProfile(ctx, profile.ID)
	require.NoError(t, err, "the profile must survive a refused delete")

	require.NoError(t, admin.DeleteMailbox(ctx, mb.ID))
	require.NoError(t, admin.DeleteProfile(ctx, profile.ID))
	_, err = store.GetProfile(ctx, profile.ID)
	assert.ErrorIs(t, err, serversync.ErrNotFound)
}

func TestCreateMailboxAppliesOrgDefaults(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	admin, _ := newAdmin(t)
	profile, err := admin.CreateProfile(ctx, imapProfile())
	require.NoError(t, err)
	_, err = admin.UpdateOrgSettings(ctx, func(s *serversync.OrgSettings) {
		s.DefaultProfileID = profile.ID
		s.DefaultOutgoingMethod = serversync.OutgoingOutlook
	})
	require.NoError(t, err)

	mb, err := admin.CreateMailbox(ctx, &serversync.Mailbox{
		EmailAddress: "alice@contoso.test",
		Regarding:    serversync.Regarding{Type: serversync.RegardingUser, ID: "user-alice"},
	})
	require.NoError(t, err)
	assert.NotEmpty(t, mb.ID)
	assert.Equal(t, profile.ID, mb.ProfileID)
	assert.Equal(t, serversync.IncomingServerSideSync, mb.IncomingMethod)
	assert.Equal(t, serversync.OutgoingOutlook, mb.OutgoingMethod)
	assert.Equal(t, serversync.OutgoingNone, mb.ACTMethod)
	assert.Equal(t, serversync.ApprovalEmpty, mb.Approval)
	assert.Equal(t, serversync.TestNotRun, mb.Status)
	assert.Equal(t, serversync.FilterResponsesToCRM, mb.IncomingFilter)
	assert.Equal(t, "user-alice", mb.Owner, "a user's mailbox alerts go to the user")
	assert.True(t, mb.TestAndEnablePending)

	// The Admin's readers return what was stored.
	settings, err := admin.OrgSettings(ctx)
	require.NoError(t, err)
	assert.Equal(t, serversync.OutgoingOutlook, settings.DefaultOutgoingMethod)
	gotProfile, err := admin.Profile(ctx, profile.ID)
	require.NoError(t, err)
	assert.Equal(t, profile.Name, gotProfile.Name)
	gotMailbox, err := admin.Mailbox(ctx, mb.ID)
	require.NoError(t, err)
	assert.Equal(t, mb.EmailAddress, gotMailbox.EmailAddress)
}

func TestOrgSettingsValidation(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		change func(*serversync.OrgSettings)
		field  string
	}{
		{"missing default profile", func(s *serversync.OrgSettings) { s.DefaultProfileID = "nope" }, "DefaultProfileID"},
		{"empty token prefix", func(s *serversync.OrgSettings) { s.TrackingToken.Prefix = "" }, "TrackingToken.Prefix"},
		{"user digits", func(s *serversync.OrgSettings) { s.TrackingToken.UserDigits = 0 }, "TrackingToken.UserDigits"},
		{"counter digits", func(s *serversync.OrgSettings) { s.TrackingToken.CounterDigits = 10 }, "TrackingToken.CounterDigits"},
		{"deployment number", func(s *serversync.OrgSettings) { s.TrackingToken.DeploymentNumber = 100 }, "TrackingToken.DeploymentNumber"},
		{"attachment cap", func(s *serversync.OrgSettings) { s.MaxAttachmentSize = -1 }, "MaxAttachmentSize"},
		{"default method", func(s *serversync.OrgSettings) { s.DefaultIncomingMethod = "Fax" }, "DefaultIncomingMethod"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			admin, store := newAdmin(t)
			_, err := admin.UpdateOrgSettings(ctx, tt.change)
			requireValidationError(t, err, "OrgSettings", tt.field)
			got, err := store.GetOrgSettings(ctx)
			require.NoError(t, err)
			assert.Equal(t, serversync.DefaultOrgSettings(), got, "nothing saved")
		})
	}
}

func TestChangeMailboxesAllOrNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	admin, store := newAdmin(t)
	imap, err := admin.CreateProfile(ctx, imapProfile())
	require.NoError(t, err)
	other := imapProfile()
	other.Name = "Other"
	other2, err := admin.CreateProfile(ctx, other)
	require.NoError(t, err)

	alice, err := admin.CreateMailbox(ctx, userMailbox(imap.ID, "alice@contoso.test", "user-alice"))
	require.NoError(t, err)
	fwd, err := admin.CreateMailbox(ctx, &serversync.Mailbox{EmailAddress: "fwd@contoso.test", ProfileID: imap.ID, IsForwardMailbox: true})
	require.NoError(t, err)

	// Outgoing ServerSideSync is fine for alice but not for the forward mailbox: nothing changes.
	sss := serversync.OutgoingServerSideSync
	err = admin.ChangeMailboxes(ctx, []string{alice.ID, fwd.ID}, serversync.MailboxChange{ProfileID: &other2.ID, OutgoingMethod: &sss})
	requireValidationError(t, err, "Mailbox", "OutgoingMethod")
	got, err := store.GetMailbox(ctx, alice.ID)
	require.NoError(t, err)
	assert.Equal(t, imap.ID, got.ProfileID, "no mailbox may change when one is invalid")

	none := serversync.OutgoingOutlook
	require.NoError(t, admin.ChangeMailboxes(ctx, []string{alice.ID}, serversync.MailboxChange{ProfileID: &other2.ID, OutgoingMethod: &none}))
	got, err = store.GetMailbox(ctx, alice.ID)
	require.NoError(t, err)
	assert.Equal(t, other2.ID, got.ProfileID)
	assert.Equal(t, serversync.OutgoingOutlook, got.OutgoingMethod)
	assert.True(t, got.TestAndEnablePending, "a new profile must be tested again")
}

func TestApplyDefaultEmailSettings(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	admin, store := newAdmin(t)
	profile, err := admin.CreateProfile(ctx, imapProfile())
	require.NoError(t, err)
	mb, err := admin.CreateMailbox(ctx, &serversync.Mailbox{
		EmailAddress: "alice@contoso.test", Regarding: serversync.Regarding{Type: serversync.RegardingUser, ID: "u1"},
		IncomingMethod: serversync.IncomingNone, OutgoingMethod: serversync.OutgoingNone, ACTMethod: serversync.OutgoingNone,
	})
	require.NoError(t, err)
	require.False(t, mb.TestAndEnablePending)

	_, err = admin.UpdateOrgSettings(ctx, func(s *serversync.OrgSettings) { s.DefaultProfileID = profile.ID })
	require.NoError(t, err)
	require.NoError(t, admin.ApplyDefaultEmailSettings(ctx, []string{mb.ID}))

	got, err := store.GetMailbox(ctx, mb.ID)
	require.NoError(t, err)
	assert.Equal(t, profile.ID, got.ProfileID)
	assert.Equal(t, serversync.IncomingServerSideSync, got.IncomingMethod)
	assert.Equal(t, serversync.OutgoingServerSideSync, got.OutgoingMethod)
	assert.True(t, got.TestAndEnablePending, "Apply Default Email Settings marks the mailbox for Test & Enable")
	pending := true
	assert.Equal(t, 1, countMailboxes(t, store, serversync.MailboxFilter{TestAndEnablePending: &pending}))
}

func TestApproval(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := memory.New()
	defer store.Close()
	var allowed = map[string]bool{"admin": true}
	admin := serversync.NewAdmin(store, &serversync.AdminConfig{
		Logger: quietLogger,
		CanApprove: func(_ context.Context, actor string, m *serversync.Mailbox) error {
			if actor == "crash" {
				panic("hook bug")
			}
			if !allowed[actor] {
				return errors.New("needs the Approve Email Addresses privilege")
			}
			return nil
		},
	})
	profile, err := admin.CreateProfile(ctx, imapProfile())
	require.NoError(t, err)
	mb, err := admin.CreateMailbox(ctx, userMailbox(profile.ID, "alice@contoso.test", "user-alice"))
	require.NoError(t, err)

	for _, actor := range []string{"intern", "crash"} {
		err = admin.Approve(ctx, actor, mb.ID)
		require.ErrorIs(t, err, serversync.ErrPermissionDenied, actor)
		got, err := store.GetMailbox(ctx, mb.ID)
		require.NoError(t, err)
		assert.Equal(t, serversync.ApprovalEmpty, got.Approval, "refused approval must change nothing")
	}

	require.NoError(t, admin.Approve(ctx, "admin", mb.ID))
	approved := countMailboxes(t, store, serversync.MailboxFilter{Approval: serversync.ApprovalApproved})
	assert.Equal(t, 1, approved)

	require.NoError(t, admin.Reject(ctx, "admin", mb.ID))
	got, err := store.GetMailbox(ctx, mb.ID)
	require.NoError(t, err)
	assert.Equal(t, serversync.ApprovalRejected, got.Approval)

	// Changing the address clears the approval: the new address was never approved.
	require.NoError(t, admin.Approve(ctx, "admin", mb.ID))
	got, err = admin.UpdateMailbox(ctx, mb.ID, func(m *serversync.Mailbox) { m.EmailAddress = "alice.new@contoso.test" })
	require.NoError(t, err)
	assert.Equal(t, serversync.ApprovalEmpty, got.Approval)
}

func TestApprovalRefusedWithoutHook(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	admin, _ := newAdmin(t)
	profile, err := admin.CreateProfile(ctx, imapProfile())
	require.NoError(t, err)
	mb, err := admin.CreateMailbox(ctx, userMailbox(profile.ID, "alice@contoso.test", "user-alice"))
	require.NoError(t, err)
	assert.ErrorIs(t, admin.Approve(ctx, "anyone", mb.ID), serversync.ErrPermissionDenied)
}

func TestListMailboxesFilters(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	admin, store := newAdmin(t)
	p1, err := admin.CreateProfile(ctx, imapProfile())
	require.NoError(t, err)
	second := imapProfile()
	second.Name = "Second"
	p2, err := admin.CreateProfile(ctx, second)
	require.NoError(t, err)
	for i, email := range []string{"a@contoso.test", "b@contoso.test", "c@contoso.test"} {
		profileID := p1.ID
		if i == 2 {
			profileID = p2.ID
		}
		_, err := admin.CreateMailbox(ctx, userMailbox(profileID, email, email))
		require.NoError(t, err)
	}
	var b *serversync.Mailbox
	for m, err := range admin.Mailboxes(ctx, serversync.MailboxFilter{EmailAddress: "B@contoso.test"}) {
		require.NoError(t, err)
		b = m
	}
	require.NotNil(t, b)
	_, err = store.UpdateMailbox(ctx, b.ID, func(m *serversync.Mailbox) error {
		m.IncomingEnabled, m.Status = true, serversync.TestSuccess
		return nil
	})
	require.NoError(t, err)

	yes, no := true, false
	assert.Equal(t, 2, countMailboxes(t, store, serversync.MailboxFilter{ProfileID: p1.ID}))
	assert.Equal(t, 1, countMailboxes(t, store, serversync.MailboxFilter{ProfileID: p2.ID}))
	assert.Equal(t, 1, countMailboxes(t, store, serversync.MailboxFilter{Enabled: &yes}))
	assert.Equal(t, 2, countMailboxes(t, store, serversync.MailboxFilter{Enabled: &no}))
	assert.Equal(t, 1, countMailboxes(t, store, serversync.MailboxFilter{Status: serversync.TestSuccess}))
	assert.Equal(t, 3, countMailboxes(t, store, serversync.MailboxFilter{Approval: serversync.ApprovalEmpty}))
}

// UpdateOrgSettings saves a change that forbids saved profiles to connect, and
// lists them: which profile, which direction, which field or setting to change.
func TestUpdateOrgSettingsListsAffectedProfiles(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	admin, _ := newAdmin(t)
	_, err := admin.UpdateOrgSettings(ctx, func(s *serversync.OrgSettings) {
		s.AllowNonSSLEmail, s.AllowCredentialsOverNonSecureChannels = true, true
	})
	require.NoError(t, err)
	secure, err := admin.CreateProfile(ctx, imapProfile())
	require.NoError(t, err)
	plainIn := imapProfile()
	plainIn.Name, plainIn.IncomingTLS = "B plain incoming", serversync.TLSNone
	plainIn, err = admin.CreateProfile(ctx, plainIn)
	require.NoError(t, err)
	relay := imapProfile() // TLS off both ways, but the outgoing relay needs no credentials
	relay.Name, relay.IncomingTLS, relay.OutgoingTLS = "A relay", serversync.TLSNone, serversync.TLSNone
	relay.SeparateOutgoingSettings, relay.OutgoingCredentialSource = true, serversync.CredentialsAnonymous
	relay, err = admin.CreateProfile(ctx, relay)
	require.NoError(t, err)

	update, err := admin.UpdateOrgSettings(ctx, func(s *serversync.OrgSettings) { s.AlertInformation = false })
	require.NoError(t, err)
	assert.Empty(t, update.AffectedProfiles, "a change unrelated to security affects nothing")
	assert.False(t, update.Settings.AlertInformation)

	update, err = admin.UpdateOrgSettings(ctx, func(s *serversync.OrgSettings) { s.AllowCredentialsOverNonSecureChannels = false })
	require.NoError(t, err)
	assert.Equal(t, []serversync.ProfileConflict{
		{ProfileID: relay.ID, Name: relay.Name, Direction: serversync.Incoming, Field: "IncomingTLS",
			Setting: "AllowCredentialsOverNonSecureChannels", Code: serversync.CodePlaintextAuthRefused,
			Reason: update.AffectedProfiles[0].Reason},
		{ProfileID: plainIn.ID, Name: plainIn.Name, Direction: serversync.Incoming, Field: "IncomingTLS",
			Setting: "AllowCredentialsOverNonSecureChannels", Code: serversync.CodePlaintextAuthRefused,
			Reason: update.AffectedProfiles[1].Reason},
	}, update.AffectedProfiles, "the anonymous relay sends no credentials: not listed")
	assert.Contains(t, update.AffectedProfiles[0].Reason, "set the profile's IncomingTLS to Implicit or STARTTLS")

	update, err = admin.UpdateOrgSettings(ctx, func(s *serversync.OrgSettings) { s.AllowNonSSLEmail = false })
	require.NoError(t, err)
	var got []string
	for _, c := range update.AffectedProfiles {
		assert.Equal(t, serversync.CodeTLSRequiredByOrg, c.Code)
		assert.Equal(t, "AllowNonSSLEmail", c.Setting)
		assert.NotEqual(t, secure.ID, c.ProfileID)
		got = append(got, c.Name+" "+c.Field)
	}
	assert.Equal(t, []string{"A relay IncomingTLS", "A relay OutgoingTLS", "B plain incoming IncomingTLS"}, got)

	now, err := admin.ProfileConflicts(ctx)
	require.NoError(t, err)
	assert.Equal(t, update.AffectedProfiles, now, "the same list, asked again later")
}
