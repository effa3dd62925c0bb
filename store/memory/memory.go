// Package memory is an in-memory [serversync.Store] for tests and single-process use.
//
// Nothing is persisted: everything is lost when the process exits. Secrets
// (auth.Secret fields) are held in memory as given, not sealed; the store implements
// no serversync.SecretRotator. It implements serversync.ConnectionSlotStore and
// serversync.AppTokenStore for the Syncers of one process. It passes
// store/storetest.
package memory

import (
	"cmp"
	"context"
	"fmt"
	"iter"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/store/storekit"
)

// ErrClosed is returned by every call made after Close. It is
// [serversync.ErrClosed], kept under this name for code that checks it here.
var ErrClosed = serversync.ErrClosed

// Store is an in-memory serversync.Store.
//
// It is safe for concurrent use: one read-write mutex guards all records, so every
// call is atomic with respect to the others. Records are deep-copied in and out.
//
// List methods take a snapshot of the matching records (at most Limit of them)
// under the lock and then yield from the snapshot without holding it: the caller
// may use the store inside the loop, and sees the records as they were when the
// loop started. Their memory is proportional to the number of matches, not
// bounded as a persistent store's stream is.
//
// Update callbacks (UpdateProfile, UpdateMailbox, UpdateOrgSettings,
// UpdateActivity) run with the store locked: they must not call the store.
type Store struct {
	mu     sync.RWMutex
	closed bool

	profiles     map[string]*serversync.Profile
	profileNames map[string]string // folded name → profile ID

	mailboxes      map[string]*mailboxRecord
	mailboxEmails  map[string]string // folded address → mailbox ID
	mailboxRegards map[string]string // Regarding.ID → mailbox ID

	settings *serversync.OrgSettings // nil until first stored

	activities    map[string]*serversync.EmailActivity
	activityOrder []*serversync.EmailActivity // storing order; same pointers as activities
	activityKeys  map[activityKey]string      // (MailboxID, MessageKey) → activity ID
	cursors       map[cursorKey]*serversync.Cursor

	alerts   []*serversync.Alert // storing order
	alertIDs map[string]bool

	connectionBudgets map[string]*connectionBudget // by ConnectionSlot.Key, while any slot or place is held

	appTokens map[string]serversync.AppToken // by key

	actRecords   map[string]*serversync.ACTRecord // by ID
	actConflicts []*serversync.ACTConflict        // storing order
}

type mailboxRecord struct {
	m          *serversync.Mailbox
	leaseToken int64 // incremented by every acquisition
}

type activityKey struct{ mailboxID, messageKey string }

type cursorKey struct{ mailboxID, folder string }

var (
	_ serversync.Store               = (*Store)(nil)
	_ serversync.ConnectionSlotStore = (*Store)(nil)
)

// New returns an empty store.
func New() *Store {
	return &Store{
		profiles:       map[string]*serversync.Profile{},
		profileNames:   map[string]string{},
		mailboxes:      map[string]*mailboxRecord{},
		mailboxEmails:  map[string]string{},
		mailboxRegards: map[string]string{},
		activities:     map[string]*serversync.EmailActivity{},
		activityKeys:   map[activityKey]string{},
		cursors:        map[cursorKey]*serversync.Cursor{},
		alertIDs:       map[string]bool{},
	}
}

// Close releases the records. Calls after Close fail with ErrClosed; closing again
// does nothing.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	s.profiles, s.profileNames = nil, nil
	s.mailboxes, s.mailboxEmails, s.mailboxRegards = nil, nil, nil
	s.settings = nil
	s.activities, s.activityOrder, s.activityKeys, s.cursors = nil, nil, nil, nil
	s.alerts, s.alertIDs = nil, nil
	s.connectionBudgets, s.appTokens = nil, nil
	s.actRecords, s.actConflicts = nil, nil
	return nil
}

// fold is the key unique-case-insensitively fields are indexed under.
func fold(s string) string { return strings.ToLower(s) }

// lock takes the write lock after checking ctx; on success the caller must unlock.
func (s *Store) lock(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	return nil
}

// rlock takes the read lock after checking ctx; on success the caller must RUnlock.
func (s *Store) rlock(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return ErrClosed
	}
	return nil
}

func notFound(entity, id string) error {
	return fmt.Errorf("memory: %s %q: %w", entity, id, serversync.ErrNotFound)
}

// snapshot yields the records collected under the lock, stopping early when the
// consumer breaks or ctx is cancelled.
func snapshot[T any](ctx context.Context, records []T, err error) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		var zero T
		if err != nil {
			yield(zero, err)
			return
		}
		for _, r := range records {
			if err := ctx.Err(); err != nil {
				yield(zero, err)
				return
			}
			if !yield(r, nil) {
				return
			}
		}
	}
}

// limitReached reports whether n results fill limit (0 meaning no limit).
func limitReached(n, limit int) bool { return limit > 0 && n >= limit }

// ---- Profiles ----------------------------------------------------------------

func cloneProfile(p *serversync.Profile) *serversync.Profile { return p.Clone() }

// CreateProfile implements serversync.ProfileStore.
func (s *Store) CreateProfile(ctx context.Context, p *serversync.Profile) error {
	if p.ID == "" {
		return storekit.Required("Profile", "ID")
	}
	if err := s.lock(ctx); err != nil {
		return err
	}
	defer s.mu.Unlock()
	if _, ok := s.profiles[p.ID]; ok {
		return serversync.DuplicateError("Profile", "ID")
	}
	if _, ok := s.profileNames[fold(p.Name)]; ok {
		return serversync.DuplicateError("Profile", "Name")
	}
	s.profiles[p.ID] = cloneProfile(p)
	s.profileNames[fold(p.Name)] = p.ID
	return nil
}

// GetProfile implements serversync.ProfileStore.
func (s *Store) GetProfile(ctx context.Context, id string) (*serversync.Profile, error) {
	if err := s.rlock(ctx); err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	p, ok := s.profiles[id]
	if !ok {
		return nil, notFound("profile", id)
	}
	return cloneProfile(p), nil
}

// UpdateProfile implements serversync.ProfileStore. The ID cannot change.
func (s *Store) UpdateProfile(ctx context.Context, id string, update func(*serversync.Profile) error) (*serversync.Profile, error) {
	if err := s.lock(ctx); err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	old, ok := s.profiles[id]
	if !ok {
		return nil, notFound("profile", id)
	}
	p := cloneProfile(old)
	if err := update(p); err != nil {
		return nil, err
	}
	if p.ID != id {
		return nil, storekit.Unchangeable("Profile", "ID")
	}
	if owner, ok := s.profileNames[fold(p.Name)]; ok && owner != id {
		return nil, serversync.DuplicateError("Profile", "Name")
	}
	delete(s.profileNames, fold(old.Name))
	s.profileNames[fold(p.Name)] = id
	s.profiles[id] = cloneProfile(p)
	return p, nil
}

// DeleteProfile implements serversync.ProfileStore.
func (s *Store) DeleteProfile(ctx context.Context, id string) error {
	if err := s.lock(ctx); err != nil {
		return err
	}
	defer s.mu.Unlock()
	p, ok := s.profiles[id]
	if !ok {
		return notFound("profile", id)
	}
	for _, r := range s.mailboxes {
		if r.m.ProfileID == id {
			return fmt.Errorf("memory: delete profile %q: %w", id, serversync.ErrProfileInUse)
		}
	}
	delete(s.profileNames, fold(p.Name))
	delete(s.profiles, id)
	return nil
}

// ListProfiles implements serversync.ProfileStore. Profiles are ordered by name
// case-insensitively, then by name and ID.
func (s *Store) ListProfiles(ctx context.Context) iter.Seq2[*serversync.Profile, error] {
	return func(yield func(*serversync.Profile, error) bool) {
		out, err := s.snapshotProfiles(ctx)
		snapshot(ctx, out, err)(yield)
	}
}

func (s *Store) snapshotProfiles(ctx context.Context) ([]*serversync.Profile, error) {
	if err := s.rlock(ctx); err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	out := make([]*serversync.Profile, 0, len(s.profiles))
	for _, p := range s.profiles {
		out = append(out, cloneProfile(p))
	}
	slices.SortFunc(out, func(a, b *serversync.Profile) int {
		return cmp.Or(cmp.Compare(fold(a.Name), fold(b.Name)), cmp.Compare(a.Name, b.Name), cmp.Compare(a.ID, b.ID))
	})
	return out, nil
}

// ---- Mailboxes ---------------------------------------------------------------

func cloneMailbox(m *serversync.Mailbox) *serversync.Mailbox { return m.Clone() }

// checkMailboxRefs checks m's unique fields against the other mailboxes and its
// profile reference. The lock must be held.
func (s *Store) checkMailboxRefs(m *serversync.Mailbox) error {
	if owner, ok := s.mailboxEmails[fold(m.EmailAddress)]; ok && owner != m.ID {
		return serversync.DuplicateError("Mailbox", "EmailAddress")
	}
	if m.Regarding.ID != "" {
		if owner, ok := s.mailboxRegards[m.Regarding.ID]; ok && owner != m.ID {
			return serversync.DuplicateError("Mailbox", "Regarding")
		}
	}
	if m.ProfileID != "" {
		if _, ok := s.profiles[m.ProfileID]; !ok {
			return &serversync.ValidationError{
				Entity: "Mailbox", Field: "ProfileID",
				Reason: fmt.Sprintf("no profile %q: create it first or leave ProfileID empty", m.ProfileID),
				Err:    serversync.ErrNotFound,
			}
		}
	}
	return nil
}

func (s *Store) indexMailbox(m *serversync.Mailbox) {
	s.mailboxEmails[fold(m.EmailAddress)] = m.ID
	if m.Regarding.ID != "" {
		s.mailboxRegards[m.Regarding.ID] = m.ID
	}
}

func (s *Store) unindexMailbox(m *serversync.Mailbox) {
	delete(s.mailboxEmails, fold(m.EmailAddress))
	if m.Regarding.ID != "" {
		delete(s.mailboxRegards, m.Regarding.ID)
	}
}

// CreateMailbox implements serversync.MailboxStore. The mailbox is stored as given,
// lease fields included.
func (s *Store) CreateMailbox(ctx context.Context, m *serversync.Mailbox) error {
	if m.ID == "" {
		return storekit.Required("Mailbox", "ID")
	}
	if err := s.lock(ctx); err != nil {
		return err
	}
	defer s.mu.Unlock()
	if _, ok := s.mailboxes[m.ID]; ok {
		return serversync.DuplicateError("Mailbox", "ID")
	}
	if err := s.checkMailboxRefs(m); err != nil {
		return err
	}
	c := cloneMailbox(m)
	s.mailboxes[m.ID] = &mailboxRecord{m: c}
	s.indexMailbox(c)
	return nil
}

// GetMailbox implements serversync.MailboxStore.
func (s *Store) GetMailbox(ctx context.Context, id string) (*serversync.Mailbox, error) {
	if err := s.rlock(ctx); err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	r, ok := s.mailboxes[id]
	if !ok {
		return nil, notFound("mailbox", id)
	}
	return cloneMailbox(r.m), nil
}

// UpdateMailbox implements serversync.MailboxStore. The ID cannot change.
func (s *Store) UpdateMailbox(ctx context.Context, id string, update func(*serversync.Mailbox) error) (*serversync.Mailbox, error) {
	if err := s.lock(ctx); err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	r, ok := s.mailboxes[id]
	if !ok {
		return nil, notFound("mailbox", id)
	}
	m := cloneMailbox(r.m)
	if err := update(m); err != nil {
		return nil, err
	}
	if m.ID != id {
		return nil, storekit.Unchangeable("Mailbox", "ID")
	}
	// The lease fields belong to the lease methods.
	m.LeaseHost, m.LeaseExpiresAt, m.ForcedUnlockCount = r.m.LeaseHost, r.m.LeaseExpiresAt, r.m.ForcedUnlockCount
	if err := s.checkMailboxRefs(m); err != nil {
		return nil, err
	}
	s.unindexMailbox(r.m)
	r.m = cloneMailbox(m)
	s.indexMailbox(r.m)
	return m, nil
}

// DeleteMailbox implements serversync.MailboxStore.
func (s *Store) DeleteMailbox(ctx context.Context, id string) error {
	if err := s.lock(ctx); err != nil {
		return err
	}
	defer s.mu.Unlock()
	r, ok := s.mailboxes[id]
	if !ok {
		return notFound("mailbox", id)
	}
	s.unindexMailbox(r.m)
	delete(s.mailboxes, id)
	for k := range s.cursors {
		if k.mailboxID == id {
			delete(s.cursors, k)
		}
	}
	s.deleteACT(id)
	return nil
}

func matchMailbox(m *serversync.Mailbox, f *serversync.MailboxFilter) bool {
	switch {
	case f.ProfileID != "" && m.ProfileID != f.ProfileID,
		f.EmailAddress != "" && !strings.EqualFold(m.EmailAddress, f.EmailAddress),
		f.RegardingID != "" && m.Regarding.ID != f.RegardingID,
		f.Approval != "" && m.Approval != f.Approval,
		f.Status != "" && m.Status != f.Status,
		f.Enabled != nil && m.AnyEnabled() != *f.Enabled,
		f.TestAndEnablePending != nil && m.TestAndEnablePending != *f.TestAndEnablePending,
		f.Scheduled != nil && m.NextSyncAt.IsZero() == *f.Scheduled:
		return false
	}
	return true
}

// ListMailboxes implements serversync.MailboxStore. Mailboxes are ordered by
// address case-insensitively, then by ID.
func (s *Store) ListMailboxes(ctx context.Context, filter serversync.MailboxFilter) iter.Seq2[*serversync.Mailbox, error] {
	return func(yield func(*serversync.Mailbox, error) bool) {
		out, err := s.snapshotMailboxes(ctx, &filter)
		snapshot(ctx, out, err)(yield)
	}
}

func (s *Store) snapshotMailboxes(ctx context.Context, f *serversync.MailboxFilter) ([]*serversync.Mailbox, error) {
	if err := s.rlock(ctx); err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	var matches []*serversync.Mailbox // shared pointers, cloned below
	for _, r := range s.mailboxes {
		if matchMailbox(r.m, f) {
			matches = append(matches, r.m)
		}
	}
	slices.SortFunc(matches, func(a, b *serversync.Mailbox) int {
		return cmp.Or(cmp.Compare(fold(a.EmailAddress), fold(b.EmailAddress)), cmp.Compare(a.ID, b.ID))
	})
	if f.Limit > 0 && len(matches) > f.Limit {
		matches = matches[:f.Limit]
	}
	out := make([]*serversync.Mailbox, len(matches))
	for i, m := range matches {
		out[i] = cloneMailbox(m)
	}
	return out, nil
}

// ---- Org settings ------------------------------------------------------------

// GetOrgSettings implements serversync.SettingsStore.
func (s *Store) GetOrgSettings(ctx context.Context) (*serversync.OrgSettings, error) {
	if err := s.rlock(ctx); err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	if s.settings == nil {
		return serversync.DefaultOrgSettings(), nil
	}
	return s.settings.Clone(), nil
}

// UpdateOrgSettings implements serversync.SettingsStore.
func (s *Store) UpdateOrgSettings(ctx context.Context, update func(*serversync.OrgSettings) error) (*serversync.OrgSettings, error) {
	if err := s.lock(ctx); err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	cur := serversync.DefaultOrgSettings()
	if s.settings != nil {
		cur = s.settings.Clone()
	}
	if err := update(cur); err != nil {
		return nil, err
	}
	s.settings = cur.Clone()
	return cur, nil
}

// ---- Activities --------------------------------------------------------------

// cloneActivity copies a down to its byte slices, which EmailActivity.Clone shares.
func cloneActivity(a *serversync.EmailActivity) *serversync.EmailActivity {
	c := a.Clone()
	for i := range c.Attachments {
		c.Attachments[i].Content = slices.Clone(c.Attachments[i].Content)
	}
	c.Raw = slices.Clone(a.Raw)
	return c
}

func cloneCursor(c *serversync.Cursor) *serversync.Cursor {
	d := *c
	d.Data = slices.Clone(c.Data)
	return &d
}

func checkActivityKeys(a *serversync.EmailActivity) error {
	if a.ID == "" {
		return storekit.Required("EmailActivity", "ID")
	}
	if a.MessageKey == "" {
		return storekit.Required("EmailActivity", "MessageKey")
	}
	return nil
}

// insertActivity stores a copy of a. The lock must be held and a's ID and key free.
func (s *Store) insertActivity(a *serversync.EmailActivity) {
	c := cloneActivity(a)
	s.activities[c.ID] = c
	s.activityOrder = append(s.activityOrder, c)
	s.activityKeys[activityKey{c.MailboxID, c.MessageKey}] = c.ID
}

// SaveTracked implements serversync.ActivityStore. A batch holding an activity
// without ID or MessageKey, or with an ID already used by another message, fails
// as a whole.
func (s *Store) SaveTracked(ctx context.Context, cursor *serversync.Cursor, activities []*serversync.EmailActivity) (serversync.SaveResult, error) {
	for _, a := range activities {
		if err := checkActivityKeys(a); err != nil {
			return serversync.SaveResult{}, err
		}
	}
	if err := s.lock(ctx); err != nil {
		return serversync.SaveResult{}, err
	}
	defer s.mu.Unlock()

	var (
		res     serversync.SaveResult
		insert  []*serversync.EmailActivity
		newKeys = map[activityKey]bool{}
		newIDs  = map[string]bool{}
	)
	for i, a := range activities {
		k := activityKey{a.MailboxID, a.MessageKey}
		if _, stored := s.activityKeys[k]; stored || newKeys[k] {
			res.Duplicates = append(res.Duplicates, i)
			continue
		}
		if _, stored := s.activities[a.ID]; stored || newIDs[a.ID] {
			return serversync.SaveResult{}, serversync.DuplicateError("EmailActivity", "ID")
		}
		newKeys[k], newIDs[a.ID] = true, true
		insert = append(insert, a)
	}
	for _, a := range insert {
		s.insertActivity(a)
	}
	res.Inserted = len(insert)
	if cursor != nil {
		s.cursors[cursorKey{cursor.MailboxID, cursor.Folder}] = cloneCursor(cursor)
	}
	return res, nil
}

// KnownMessageKeys implements serversync.ActivityStore.
func (s *Store) KnownMessageKeys(ctx context.Context, mailboxID string, keys []string) (map[string]bool, error) {
	if err := s.rlock(ctx); err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	known := make(map[string]bool)
	for _, k := range keys {
		if _, ok := s.activityKeys[activityKey{mailboxID, k}]; ok {
			known[k] = true
		}
	}
	return known, nil
}

// GetCursor implements serversync.ActivityStore.
func (s *Store) GetCursor(ctx context.Context, mailboxID, folder string) (*serversync.Cursor, error) {
	if err := s.rlock(ctx); err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	c, ok := s.cursors[cursorKey{mailboxID, folder}]
	if !ok {
		return nil, fmt.Errorf("memory: cursor of mailbox %q folder %q: %w", mailboxID, folder, serversync.ErrNotFound)
	}
	return cloneCursor(c), nil
}

// GetActivity implements serversync.ActivityStore.
func (s *Store) GetActivity(ctx context.Context, id string) (*serversync.EmailActivity, error) {
	if err := s.rlock(ctx); err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	a, ok := s.activities[id]
	if !ok {
		return nil, notFound("activity", id)
	}
	return cloneActivity(a), nil
}

// UpdateActivity implements serversync.ActivityStore. Changing ID, MailboxID or
// MessageKey fails with a *serversync.ValidationError naming the field, and nothing
// is stored.
func (s *Store) UpdateActivity(ctx context.Context, id string, update func(*serversync.EmailActivity) error) (*serversync.EmailActivity, error) {
	if err := s.lock(ctx); err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	stored, ok := s.activities[id]
	if !ok {
		return nil, notFound("activity", id)
	}
	a := cloneActivity(stored)
	if err := update(a); err != nil {
		return nil, err
	}
	if err := storekit.CheckActivityUpdate(stored, a); err != nil {
		return nil, err
	}
	*stored = *cloneActivity(a) // in place: activityOrder shares the pointer
	return a, nil
}

func matchActivity(a *serversync.EmailActivity, f *serversync.ActivityFilter) bool {
	switch {
	case f.MailboxID != "" && a.MailboxID != f.MailboxID,
		f.Direction != "" && a.Direction != f.Direction,
		f.Status != "" && a.Status != f.Status,
		f.MessageKey != "" && a.MessageKey != f.MessageKey,
		f.MessageID != "" && a.MessageID != f.MessageID,
		f.TrackingToken != "" && a.TrackingToken != f.TrackingToken,
		f.ConversationHash != "" && a.ConversationHash != f.ConversationHash:
		return false
	}
	return true
}

// ListActivities implements serversync.ActivityStore.
func (s *Store) ListActivities(ctx context.Context, filter serversync.ActivityFilter) iter.Seq2[*serversync.EmailActivity, error] {
	return func(yield func(*serversync.EmailActivity, error) bool) {
		out, err := s.snapshotActivities(ctx, &filter)
		snapshot(ctx, out, err)(yield)
	}
}

func (s *Store) snapshotActivities(ctx context.Context, f *serversync.ActivityFilter) ([]*serversync.EmailActivity, error) {
	if err := s.rlock(ctx); err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	var out []*serversync.EmailActivity
	for _, a := range s.activityOrder {
		if limitReached(len(out), f.Limit) {
			break
		}
		if matchActivity(a, f) {
			out = append(out, cloneActivity(a))
		}
	}
	return out, nil
}

// ---- Outbox ------------------------------------------------------------------

// QueueOutgoing implements serversync.OutboxStore. The activity is stored with
// status PendingSend whatever a.Status says.
func (s *Store) QueueOutgoing(ctx context.Context, a *serversync.EmailActivity) error {
	if err := checkActivityKeys(a); err != nil {
		return err
	}
	if err := s.lock(ctx); err != nil {
		return err
	}
	defer s.mu.Unlock()
	if _, ok := s.activities[a.ID]; ok {
		return serversync.DuplicateError("EmailActivity", "ID")
	}
	if _, ok := s.activityKeys[activityKey{a.MailboxID, a.MessageKey}]; ok {
		return serversync.DuplicateError("EmailActivity", "MessageKey")
	}
	c := cloneActivity(a)
	c.Status = serversync.StatusPendingSend
	s.insertActivity(c)
	return nil
}

// ClaimOutgoing implements serversync.OutboxStore. The longest-waiting activities
// are claimed first; a Limit of 0 or less claims every claimable one.
func (s *Store) ClaimOutgoing(ctx context.Context, req serversync.ClaimRequest) ([]*serversync.EmailActivity, error) {
	if err := s.lock(ctx); err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	type candidate struct {
		a     *serversync.EmailActivity
		since time.Time
	}
	var due []candidate
	for _, a := range s.activityOrder {
		if since, ok := storekit.Claimable(a, req.Now); ok {
			due = append(due, candidate{a, since})
		}
	}
	slices.SortStableFunc(due, func(x, y candidate) int { return x.since.Compare(y.since) })
	if req.Limit > 0 && len(due) > req.Limit {
		due = due[:req.Limit]
	}
	out := make([]*serversync.EmailActivity, len(due))
	for i, c := range due {
		storekit.Claim(c.a, req)
		out[i] = cloneActivity(c.a)
	}
	return out, nil
}

// ---- Alerts ------------------------------------------------------------------

// AddAlert implements serversync.AlertStore.
func (s *Store) AddAlert(ctx context.Context, a *serversync.Alert) error {
	if a.ID == "" {
		return storekit.Required("Alert", "ID")
	}
	if err := s.lock(ctx); err != nil {
		return err
	}
	defer s.mu.Unlock()
	if s.alertIDs[a.ID] {
		return serversync.DuplicateError("Alert", "ID")
	}
	c := *a
	s.alerts = append(s.alerts, &c)
	s.alertIDs[a.ID] = true
	return nil
}

func matchAlert(a *serversync.Alert, f *serversync.AlertFilter) bool {
	switch {
	case f.Recipient != "" && a.Recipient != f.Recipient,
		f.MailboxID != "" && a.MailboxID != f.MailboxID,
		f.ProfileID != "" && a.ProfileID != f.ProfileID,
		f.Level != "" && a.Level != f.Level,
		!f.Since.IsZero() && a.CreatedAt.Before(f.Since):
		return false
	}
	return true
}

// ListAlerts implements serversync.AlertStore.
func (s *Store) ListAlerts(ctx context.Context, filter serversync.AlertFilter) iter.Seq2[*serversync.Alert, error] {
	return func(yield func(*serversync.Alert, error) bool) {
		out, err := s.snapshotAlerts(ctx, &filter)
		snapshot(ctx, out, err)(yield)
	}
}

func (s *Store) snapshotAlerts(ctx context.Context, f *serversync.AlertFilter) ([]*serversync.Alert, error) {
	if err := s.rlock(ctx); err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	var out []*serversync.Alert
	for _, a := range slices.Backward(s.alerts) {
		if limitReached(len(out), f.Limit) {
			break
		}
		if matchAlert(a, f) {
			c := *a
			out = append(out, &c)
		}
	}
	return out, nil
}

// ---- Leases ------------------------------------------------------------------

// AcquireLeases implements serversync.LeaseStore. Mailboxes due at the same time
// are taken in ID order; a Limit of 0 or less takes every due mailbox.
func (s *Store) AcquireLeases(ctx context.Context, req serversync.LeaseRequest) ([]serversync.Lease, error) {
	if err := s.lock(ctx); err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	var due []*mailboxRecord
	for _, r := range s.mailboxes {
		m := r.m
		if m.NextSyncAt.IsZero() || m.NextSyncAt.After(req.Now) {
			continue
		}
		if m.LeaseHost != "" && m.LeaseExpiresAt.After(req.Now) {
			continue // held
		}
		due = append(due, r)
	}
	slices.SortFunc(due, func(a, b *mailboxRecord) int {
		return cmp.Or(a.m.NextSyncAt.Compare(b.m.NextSyncAt), cmp.Compare(a.m.ID, b.m.ID))
	})
	if req.Limit > 0 && len(due) > req.Limit {
		due = due[:req.Limit]
	}
	leases := make([]serversync.Lease, len(due))
	for i, r := range due {
		takenOver := r.m.LeaseHost != ""
		if takenOver {
			r.m.ForcedUnlockCount++
		}
		r.leaseToken++
		r.m.LeaseHost = req.Host
		r.m.LeaseExpiresAt = req.Now.Add(req.TTL)
		leases[i] = serversync.Lease{
			MailboxID: r.m.ID,
			Host:      req.Host,
			ExpiresAt: r.m.LeaseExpiresAt,
			Token:     r.leaseToken,
			TakenOver: takenOver,
		}
	}
	return leases, nil
}

// held returns the record of the mailbox lease names while lease is its current
// lease: neither released nor taken over. A lease past its expiry that nobody took
// is still held. The lock must be held.
func (s *Store) held(lease serversync.Lease) (*mailboxRecord, error) {
	r, ok := s.mailboxes[lease.MailboxID]
	if !ok || r.m.LeaseHost == "" || r.m.LeaseHost != lease.Host || r.leaseToken != lease.Token {
		return nil, fmt.Errorf("memory: lease on mailbox %q (token %d): %w", lease.MailboxID, lease.Token, serversync.ErrLeaseLost)
	}
	return r, nil
}

// RenewLease implements serversync.LeaseStore.
func (s *Store) RenewLease(ctx context.Context, lease serversync.Lease, now time.Time, ttl time.Duration) (serversync.Lease, error) {
	if err := s.lock(ctx); err != nil {
		return serversync.Lease{}, err
	}
	defer s.mu.Unlock()
	r, err := s.held(lease)
	if err != nil {
		return serversync.Lease{}, err
	}
	r.m.LeaseExpiresAt = now.Add(ttl)
	lease.ExpiresAt = r.m.LeaseExpiresAt
	lease.TakenOver = false
	return lease, nil
}

// ReleaseLease implements serversync.LeaseStore.
func (s *Store) ReleaseLease(ctx context.Context, lease serversync.Lease, nextSync time.Time) error {
	if err := s.lock(ctx); err != nil {
		return err
	}
	defer s.mu.Unlock()
	r, err := s.held(lease)
	if err != nil {
		return err
	}
	r.m.LeaseHost = ""
	r.m.LeaseExpiresAt = time.Time{}
	r.m.NextSyncAt = nextSync
	return nil
}
