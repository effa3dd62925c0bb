package serversync

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"strings"
	"time"
)

// ApprovalCheck is the host's privilege check for approving or rejecting a mailbox's
// email address. It returns nil to allow; any error refuses the change.
type ApprovalCheck func(ctx context.Context, actor string, m *Mailbox) error

// AdminConfig configures an [Admin]. A nil *AdminConfig is equivalent to a zero one.
type AdminConfig struct {
	// CanApprove checks that actor may approve or reject m's email address. When nil,
	// every approval is refused with ErrPermissionDenied: approving is a privilege and
	// the library cannot know who holds it.
	CanApprove ApprovalCheck
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger receives one record per change; nil means slog.Default().
	Logger *slog.Logger
}

// Admin is the administrative API of DESIGN §3: profiles, mailboxes, org settings,
// approval, and the bulk operations of a CRM's settings pages. Every write goes
// through normalize-then-validate and saves nothing when validation fails.
//
// Admin tests nothing itself: it marks mailboxes for Test & Enable
// (TestAndEnablePending), which the running Syncers then test in the background.
// CreateMailbox, ApplyDefaultEmailSettings and changing a mailbox's profile or
// delivery methods mark them; a mailbox waiting for approval is tested once
// approved. To test one mailbox and wait for the answer, call
// Syncer.TestAndEnable; after changing a profile, Syncer.TestAndEnableProfile.
//
// Admin is safe for concurrent use by multiple goroutines.
type Admin struct {
	store      Store
	canApprove ApprovalCheck
	now        func() time.Time
	log        *slog.Logger
}

// NewAdmin returns an Admin over store. Every AdminConfig value is valid (nil
// fields have their documented meaning); a nil store is a programming error and
// panics here, with the fix, rather than at the Admin's first use.
func NewAdmin(store Store, cfg *AdminConfig) *Admin {
	if store == nil {
		panic("serversync: NewAdmin needs a Store: pass one of the stores under store/ (memory, sqlite, postgres) or your own")
	}
	if cfg == nil {
		cfg = &AdminConfig{}
	}
	a := &Admin{store: store, canApprove: cfg.CanApprove, now: cfg.Now, log: cmp.Or(cfg.Logger, slog.Default())}
	if a.now == nil {
		a.now = time.Now
	}
	if a.canApprove == nil {
		a.canApprove = func(context.Context, string, *Mailbox) error {
			return fmt.Errorf("%w: no approval check configured (AdminConfig.CanApprove)", ErrPermissionDenied)
		}
	}
	return a
}

// OrgSettings returns the stored organisation settings (DefaultOrgSettings when none).
func (a *Admin) OrgSettings(ctx context.Context) (*OrgSettings, error) {
	return a.store.GetOrgSettings(ctx)
}

// OrgSettingsUpdate is the outcome of [Admin.UpdateOrgSettings].
type OrgSettingsUpdate struct {
	// Settings are the settings as stored.
	Settings *OrgSettings
	// AffectedProfiles are the saved profiles that the stored settings forbid to
	// connect, one entry per profile and direction, ordered by profile name: each
	// says which profile field or org setting to change. Their mailboxes fail to
	// sync, send and Test & Enable (permanently, with the entry's Code) until then.
	// Empty when every profile can connect.
	AffectedProfiles []ProfileConflict
}

// UpdateOrgSettings changes the organisation settings through update and validates
// the result; nothing is saved when validation fails. update may be called more than
// once and must only change the settings it is given.
//
// A change that forbids what saved profiles rely on (turning AllowNonSSLEmail or
// AllowCredentialsOverNonSecureChannels off while a profile has TLS off) is saved,
// as an administrator tightening security expects, and the profiles it now stops
// from connecting are listed in AffectedProfiles.
func (a *Admin) UpdateOrgSettings(ctx context.Context, update func(*OrgSettings)) (*OrgSettingsUpdate, error) {
	settings, err := retryOnChange(func() (*OrgSettings, error) {
		// Look up what validation needs before the store's update, which must not call the store.
		current, err := a.store.GetOrgSettings(ctx)
		if err != nil {
			return nil, err
		}
		update(current)
		if err := a.checkDefaultProfile(ctx, current.DefaultProfileID); err != nil {
			return nil, err
		}
		return a.store.UpdateOrgSettings(ctx, func(s *OrgSettings) error {
			update(s)
			if s.DefaultProfileID != current.DefaultProfileID {
				return errChangedMeanwhile
			}
			return validateOrgSettings(s)
		})
	})
	if err != nil {
		return nil, err
	}
	affected, err := a.profileConflicts(ctx, settings)
	if err != nil {
		// The settings are saved: report them with the error, so a caller can tell.
		return &OrgSettingsUpdate{Settings: settings}, fmt.Errorf("serversync: org settings saved, but listing the profiles they affect failed: %w", err)
	}
	if len(affected) > 0 {
		a.log.Warn("org settings forbid saved profiles to connect", "profiles", len(affected))
	}
	return &OrgSettingsUpdate{Settings: settings, AffectedProfiles: affected}, nil
}

// ProfileConflicts lists the saved profiles that the stored org settings forbid to
// connect (see [OrgSettingsUpdate.AffectedProfiles]).
func (a *Admin) ProfileConflicts(ctx context.Context) ([]ProfileConflict, error) {
	settings, err := a.store.GetOrgSettings(ctx)
	if err != nil {
		return nil, err
	}
	return a.profileConflicts(ctx, settings)
}

func (a *Admin) profileConflicts(ctx context.Context, settings *OrgSettings) ([]ProfileConflict, error) {
	var conflicts []ProfileConflict
	for p, err := range a.store.ListProfiles(ctx) {
		if err != nil {
			return nil, err
		}
		conflicts = append(conflicts, ProfileConflicts(p, settings)...)
	}
	return conflicts, nil
}

// errChangedMeanwhile makes an update start again when what was looked up for its
// validation no longer matches the record being updated.
var errChangedMeanwhile = errors.New("serversync: record changed during the update")

// retryOnChange runs an optimistic update a few times until its lookups hold.
func retryOnChange[T any](attempt func() (T, error)) (T, error) {
	for i := 0; ; i++ {
		v, err := attempt()
		if !errors.Is(err, errChangedMeanwhile) || i == 4 {
			return v, err
		}
	}
}

func (a *Admin) checkDefaultProfile(ctx context.Context, id string) error {
	if id == "" {
		return nil
	}
	_, err := a.store.GetProfile(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return &ValidationError{Entity: "OrgSettings", Field: "DefaultProfileID", Reason: "no such profile", Err: err}
	}
	return err
}

func validateOrgSettings(s *OrgSettings) error {
	bad := func(field, reason string) error { return invalid("OrgSettings", field, reason) }
	tt := s.TrackingToken
	switch {
	case tt.Enabled && (tt.Prefix == "" || len(tt.Prefix) > 20):
		return bad("TrackingToken.Prefix", "must be 1–20 characters when tracking tokens are on")
	case tt.DeploymentNumber < 0 || tt.DeploymentNumber > 99:
		return bad("TrackingToken.DeploymentNumber", "must be 0–99")
	case tt.UserDigits < 1 || tt.UserDigits > 9:
		return bad("TrackingToken.UserDigits", "must be 1–9")
	case tt.CounterDigits < 1 || tt.CounterDigits > 9:
		return bad("TrackingToken.CounterDigits", "must be 1–9")
	case s.MaxAttachmentSize < 0:
		return bad("MaxAttachmentSize", "cannot be negative (0 stores no attachment content)")
	case !s.DefaultIncomingMethod.valid():
		return bad("DefaultIncomingMethod", fmt.Sprintf("%q is not a delivery method", s.DefaultIncomingMethod))
	case !s.DefaultOutgoingMethod.valid():
		return bad("DefaultOutgoingMethod", fmt.Sprintf("%q is not a delivery method", s.DefaultOutgoingMethod))
	case !s.DefaultACTMethod.valid():
		return bad("DefaultACTMethod", fmt.Sprintf("%q is not a delivery method", s.DefaultACTMethod))
	case !s.ACTConflictPolicy.valid():
		return bad("ACTConflictPolicy", fmt.Sprintf("%q is not one of \"\" (LastModifiedWins), HostWins, ServerWins", s.ACTConflictPolicy))
	}
	return nil
}

// CreateProfile normalizes and validates p, then stores it. p.ID is assigned when
// empty. The stored profile is returned; p itself is not modified.
func (a *Admin) CreateProfile(ctx context.Context, p *Profile) (*Profile, error) {
	settings, err := a.store.GetOrgSettings(ctx)
	if err != nil {
		return nil, err
	}
	p = p.Clone()
	NormalizeProfile(p)
	if err := ValidateProfile(p, settings); err != nil {
		return nil, err
	}
	p.ID = cmp.Or(p.ID, NewID())
	p.CreatedAt, p.UpdatedAt = a.now(), a.now()
	if err := a.store.CreateProfile(ctx, p); err != nil {
		return nil, err
	}
	a.log.InfoContext(ctx, "serversync: profile created", "profile", p.ID, "name", p.Name)
	return p, nil
}

// UpdateProfile applies update to the stored profile, normalizes and validates the
// result, and stores it. Nothing is saved when validation fails.
func (a *Admin) UpdateProfile(ctx context.Context, id string, update func(*Profile)) (*Profile, error) {
	settings, err := a.store.GetOrgSettings(ctx)
	if err != nil {
		return nil, err
	}
	return a.store.UpdateProfile(ctx, id, func(p *Profile) error {
		update(p)
		p.ID = id
		NormalizeProfile(p)
		if err := ValidateProfile(p, settings); err != nil {
			return err
		}
		p.UpdatedAt = a.now()
		return nil
	})
}

// DeleteProfile removes a profile. It is refused with an error wrapping
// ErrProfileInUse while mailboxes use the profile, and nothing is deleted.
func (a *Admin) DeleteProfile(ctx context.Context, id string) error {
	err := a.store.DeleteProfile(ctx, id)
	if errors.Is(err, ErrProfileInUse) {
		n := 0
		for _, err := range a.store.ListMailboxes(ctx, MailboxFilter{ProfileID: id}) {
			if err == nil {
				n++
			}
		}
		return fmt.Errorf("serversync: cannot delete profile %s: %d mailbox(es) use it; move them to another profile first: %w", id, n, err)
	}
	if err == nil {
		a.forgetAppTokens(ctx, id)
	}
	return err
}

// forgetAppTokens removes the app-only tokens shared for a deleted profile: no
// secret outlives what it was issued for. A failure is only logged; the tokens
// expire within the hour anyway.
func (a *Admin) forgetAppTokens(ctx context.Context, profileID string) {
	if tokens, ok := a.store.(AppTokenStore); ok {
		if err := tokens.DeleteAppTokens(ctx, appTokenKeyPrefix(profileID)); err != nil {
			a.log.Warn("delete the shared app tokens of a deleted profile", "profile", profileID, "err", err)
		}
	}
}

// CreateMailbox creates the mailbox of a user, a queue, or a forward mailbox, with the
// organisation's default email settings applied to whatever m leaves empty: the
// default profile and delivery methods. The stored mailbox is returned.
func (a *Admin) CreateMailbox(ctx context.Context, m *Mailbox) (*Mailbox, error) {
	settings, err := a.store.GetOrgSettings(ctx)
	if err != nil {
		return nil, err
	}
	m = m.Clone()
	if m.ProfileID == "" {
		m.ProfileID = settings.DefaultProfileID
	}
	NormalizeMailbox(m, settings)
	profile, err := a.mailboxProfile(ctx, m.ProfileID)
	if err != nil {
		return nil, err
	}
	if err := ValidateMailbox(m, profile); err != nil {
		return nil, err
	}
	m.ID = cmp.Or(m.ID, NewID())
	m.CreatedAt, m.UpdatedAt = a.now(), a.now()
	m.TestAndEnablePending = m.UsesServerSideSync()
	// A copy of another mailbox must not bring its Test & Enable lock along.
	m.TestHost, m.TestLockExpiresAt, m.TestRun, m.TestRunStored = "", time.Time{}, 0, 0
	if err := a.store.CreateMailbox(ctx, m); err != nil {
		return nil, err
	}
	a.log.InfoContext(ctx, "serversync: mailbox created", "mailbox", m.ID, "email", m.EmailAddress)
	return m, nil
}

// mailboxProfile returns the profile a mailbox names (nil for none), as a validation
// error on the mailbox when it does not exist.
func (a *Admin) mailboxProfile(ctx context.Context, id string) (*Profile, error) {
	if id == "" {
		return nil, nil
	}
	p, err := a.store.GetProfile(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return nil, &ValidationError{Entity: "Mailbox", Field: "ProfileID", Reason: "no such profile", Err: err}
	}
	return p, err
}

// UpdateMailbox applies update to the stored mailbox, normalizes and validates the
// result, and stores it. Changing the email address clears its approval; changing
// the profile or a delivery method disables the workloads and marks the mailbox for
// Test & Enable, since what was tested no longer applies. update may be called more
// than once and must only change the mailbox it is given.
func (a *Admin) UpdateMailbox(ctx context.Context, id string, update func(*Mailbox)) (*Mailbox, error) {
	settings, err := a.store.GetOrgSettings(ctx)
	if err != nil {
		return nil, err
	}
	return a.changeMailbox(ctx, id, settings, update)
}

// changeMailbox is the one way Admin changes a stored mailbox: it applies change to a
// copy to find and check the profile the result names, then applies it again inside
// the store's update, where the store may not be called.
func (a *Admin) changeMailbox(ctx context.Context, id string, settings *OrgSettings, change func(*Mailbox)) (*Mailbox, error) {
	return retryOnChange(func() (*Mailbox, error) {
		probe, err := a.prepareMailboxChange(ctx, id, settings, change)
		if err != nil {
			return nil, err
		}
		return a.store.UpdateMailbox(ctx, id, func(m *Mailbox) error {
			before := m.Clone()
			change(m)
			m.ID = id
			NormalizeMailbox(m, settings)
			if m.ProfileID != probe.mailbox.ProfileID || before.ProfileID != probe.before.ProfileID {
				return errChangedMeanwhile
			}
			if err := a.finishMailboxChange(before, m, probe.profile); err != nil {
				return err
			}
			a.resyncIfEarlier(before, probe.beforeProfile, m, probe.profile)
			return nil
		})
	})
}

type preparedChange struct {
	mailbox *Mailbox
	profile *Profile
	// The mailbox and its profile before the change.
	before        *Mailbox
	beforeProfile *Profile
}

// prepareMailboxChange applies change to a copy of the stored mailbox and validates
// the result, without storing anything.
func (a *Admin) prepareMailboxChange(ctx context.Context, id string, settings *OrgSettings, change func(*Mailbox)) (preparedChange, error) {
	m, err := a.store.GetMailbox(ctx, id)
	if err != nil {
		return preparedChange{}, err
	}
	before := m.Clone()
	change(m)
	m.ID = id
	NormalizeMailbox(m, settings)
	profile, err := a.mailboxProfile(ctx, m.ProfileID)
	if err != nil {
		return preparedChange{}, err
	}
	beforeProfile := profile
	if before.ProfileID != m.ProfileID {
		if beforeProfile, err = a.store.GetProfile(ctx, before.ProfileID); errors.Is(err, ErrNotFound) || before.ProfileID == "" {
			beforeProfile, err = nil, nil
		}
		if err != nil {
			return preparedChange{}, err
		}
	}
	return preparedChange{m, profile, before, beforeProfile}, a.finishMailboxChange(before, m, profile)
}

// resyncIfEarlier asks for the inbox to be read again from the start when a change
// moved the mailbox's effective ProcessEmailFrom earlier: by its own value, by its
// profile's once the override is cleared, or by a newly associated profile. The
// cursor has already passed the mail between the two times, which must be pulled.
func (a *Admin) resyncIfEarlier(before *Mailbox, beforeProfile *Profile, m *Mailbox, profile *Profile) {
	was, is := before.EffectiveProcessEmailFrom(beforeProfile), m.EffectiveProcessEmailFrom(profile)
	if was.IsZero() || !(is.IsZero() || is.Before(was)) {
		return // nothing was held back, or nothing more is let in
	}
	m.IncomingResyncRequestedAt = a.now()
	a.log.Info("serversync: ProcessEmailFrom moved earlier: the next sync reads the inbox from the start",
		"mailbox", m.ID, "from", is, "was", was)
}

// ResyncIncoming makes the next incoming sync of the mailbox read its inbox from
// the start (from ProcessEmailFrom) instead of from where the last sync stopped;
// already tracked mail is recognised by its message key and not tracked again.
// UpdateMailbox does this by itself when ProcessEmailFrom moves earlier.
func (a *Admin) ResyncIncoming(ctx context.Context, id string) error {
	_, err := a.store.UpdateMailbox(ctx, id, func(m *Mailbox) error {
		m.IncomingResyncRequestedAt = a.now()
		return nil
	})
	return err
}

// finishMailboxChange validates a normalized change and applies its consequences.
func (a *Admin) finishMailboxChange(before, m *Mailbox, profile *Profile) error {
	if err := ValidateMailbox(m, profile); err != nil {
		return err
	}
	if !strings.EqualFold(before.EmailAddress, m.EmailAddress) && m.Approval == before.Approval {
		m.Approval = ApprovalEmpty
	}
	if before.ProfileID != m.ProfileID || before.IncomingMethod != m.IncomingMethod ||
		before.OutgoingMethod != m.OutgoingMethod || before.ACTMethod != m.ACTMethod {
		resetTests(m)
	}
	m.UpdatedAt = a.now()
	return nil
}

func resetTests(m *Mailbox) {
	m.IncomingEnabled, m.OutgoingEnabled, m.ACTEnabled = false, false, false
	m.IncomingStatus, m.OutgoingStatus, m.ACTStatus, m.Status = TestNotRun, TestNotRun, TestNotRun, TestNotRun
	m.TestAndEnablePending = m.UsesServerSideSync()
	m.NextSyncAt = time.Time{}
}

// MailboxChange is a change applied to many mailboxes at once; nil fields are left as they are.
type MailboxChange struct {
	ProfileID      *string
	IncomingMethod *IncomingMethod
	OutgoingMethod *OutgoingMethod
	ACTMethod      *OutgoingMethod
}

func (c MailboxChange) apply(m *Mailbox) {
	if c.ProfileID != nil {
		m.ProfileID = *c.ProfileID
	}
	if c.IncomingMethod != nil {
		m.IncomingMethod = *c.IncomingMethod
	}
	if c.OutgoingMethod != nil {
		m.OutgoingMethod = *c.OutgoingMethod
	}
	if c.ACTMethod != nil {
		m.ACTMethod = *c.ACTMethod
	}
}

// ChangeMailboxes applies one change (profile and delivery methods) to many
// mailboxes. Every mailbox is checked first; if any would be invalid, none is changed
// and the error names that mailbox.
func (a *Admin) ChangeMailboxes(ctx context.Context, ids []string, change MailboxChange) error {
	return a.changeMany(ctx, ids, change.apply)
}

// ApplyDefaultEmailSettings sets the organisation's default profile and delivery
// methods on the mailboxes and marks them for Test & Enable: the running Syncers
// test them in the background (within Config.ScanInterval, or at once after
// Syncer.ScheduleReady), one test per mailbox at a time. Like ChangeMailboxes, it
// changes all of them or none.
func (a *Admin) ApplyDefaultEmailSettings(ctx context.Context, ids []string) error {
	settings, err := a.store.GetOrgSettings(ctx)
	if err != nil {
		return err
	}
	return a.changeMany(ctx, ids, func(m *Mailbox) {
		m.ProfileID = settings.DefaultProfileID
		m.IncomingMethod = settings.DefaultIncomingMethod
		m.OutgoingMethod = settings.DefaultOutgoingMethod
		m.ACTMethod = settings.DefaultACTMethod
		if m.IsForwardMailbox {
			m.IncomingMethod, m.OutgoingMethod = IncomingServerSideSync, OutgoingNone
		}
		resetTests(m)
	})
}

// changeMany validates change on every mailbox before storing any of it.
func (a *Admin) changeMany(ctx context.Context, ids []string, change func(*Mailbox)) error {
	settings, err := a.store.GetOrgSettings(ctx)
	if err != nil {
		return err
	}
	for _, id := range ids { // dry run: nothing is written until every mailbox passes
		if _, err := a.prepareMailboxChange(ctx, id, settings, change); err != nil {
			return fmt.Errorf("serversync: mailbox %s: %w", id, err)
		}
	}
	for _, id := range ids {
		if _, err := a.changeMailbox(ctx, id, settings, change); err != nil {
			return fmt.Errorf("serversync: mailbox %s: %w", id, err)
		}
	}
	return nil
}

// Approve approves the email address of each mailbox after the host's privilege
// check (AdminConfig.CanApprove) allows actor to. A refused check wraps
// ErrPermissionDenied and leaves that mailbox and the ones after it unchanged.
//
// A mailbox marked for Test & Enable is not tested in the background while it
// waits for approval; once approved, the Syncers test it within
// Config.ScanInterval (Syncer.ScheduleReady starts that at once). A host that
// calls Syncer.TestAndEnable right after approving gets one test: a background
// test that started meanwhile answers it, and none starts after it.
func (a *Admin) Approve(ctx context.Context, actor string, ids ...string) error {
	return a.setApproval(ctx, actor, ApprovalApproved, ids)
}

// Reject rejects the email address of each mailbox, with the same check as Approve.
// A rejected mailbox is not processed.
func (a *Admin) Reject(ctx context.Context, actor string, ids ...string) error {
	return a.setApproval(ctx, actor, ApprovalRejected, ids)
}

func (a *Admin) setApproval(ctx context.Context, actor string, status ApprovalStatus, ids []string) error {
	for _, id := range ids {
		m, err := a.store.GetMailbox(ctx, id)
		if err == nil {
			// The host's hook runs outside the store's update: it may take its time or
			// look things up, and the store must not be held meanwhile.
			err = a.checkApproval(ctx, actor, m)
		}
		if err == nil {
			_, err = a.store.UpdateMailbox(ctx, id, func(m *Mailbox) error {
				m.Approval = status
				m.UpdatedAt = a.now()
				return nil
			})
		}
		if err != nil {
			return fmt.Errorf("serversync: %s mailbox %s: %w", status, id, err)
		}
		a.log.InfoContext(ctx, "serversync: mailbox approval changed", "mailbox", id, "approval", status, "actor", actor)
	}
	return nil
}

// checkApproval runs the host's hook, turning a panic into an error so a faulty
// hook can't take the process down.
func (a *Admin) checkApproval(ctx context.Context, actor string, m *Mailbox) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: approval check panicked: %v", ErrPermissionDenied, r)
		}
	}()
	if err := a.canApprove(ctx, actor, m.Clone()); err != nil {
		if errors.Is(err, ErrPermissionDenied) {
			return err
		}
		return fmt.Errorf("%w: %w", ErrPermissionDenied, err)
	}
	return nil
}

// Profile returns one profile.
func (a *Admin) Profile(ctx context.Context, id string) (*Profile, error) {
	return a.store.GetProfile(ctx, id)
}

// Mailbox returns one mailbox.
func (a *Admin) Mailbox(ctx context.Context, id string) (*Mailbox, error) {
	return a.store.GetMailbox(ctx, id)
}

// Profiles streams all profiles ordered by name.
func (a *Admin) Profiles(ctx context.Context) iter.Seq2[*Profile, error] {
	return a.store.ListProfiles(ctx)
}

// Mailboxes streams the mailboxes that match filter (by profile, status, approval,
// enabled…), ordered by email address.
func (a *Admin) Mailboxes(ctx context.Context, filter MailboxFilter) iter.Seq2[*Mailbox, error] {
	return a.store.ListMailboxes(ctx, filter)
}

// DeleteMailbox removes a mailbox; its tracked activities stay.
func (a *Admin) DeleteMailbox(ctx context.Context, id string) error {
	return a.store.DeleteMailbox(ctx, id)
}
