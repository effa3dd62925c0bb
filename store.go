package serversync

import (
	"context"
	"iter"
	"time"

	"github.com/serversync/serversync/auth"
)

// Store keeps everything the library persists. Implementations live under store/
// (memory, sqlite, postgres) and must pass store/storetest.
//
// It is split into small interfaces by concern; a Store implements all of them.
// Contracts for implementers, checked by storetest (store/storekit holds the rules
// every implementation applies the same way: the outbox claim, record sealing):
//   - every method is safe for concurrent use and honours ctx;
//   - records are copied in and out: mutating a returned value never changes the store;
//   - stores keep timestamps as given (callers set CreatedAt, UpdatedAt…) and read no
//     clock of their own: time-dependent calls take the caller's "now";
//   - "not found" errors satisfy errors.Is(err, ErrNotFound);
//   - a unique field already taken returns DuplicateError(entity, field);
//   - secrets (auth.Secret fields) are sealed at rest by persistent stores and come
//     back revealed;
//   - List methods stream: they hold bounded memory however many records match, and
//     stop when the caller breaks out of the loop;
//   - Update methods may run their callback under a lock or inside a transaction: the
//     callback must not call the store, and may be called again if the store retries.
type Store interface {
	ProfileStore
	MailboxStore
	SettingsStore
	ActivityStore
	OutboxStore
	AlertStore
	LeaseStore
	// Close releases the store's resources. Every call after Close, of this
	// interface or an optional one, fails with an error for which
	// errors.Is(err, ErrClosed).
	Close() error
}

// ProfileStore keeps email server profiles. Names are unique case-insensitively.
type ProfileStore interface {
	// CreateProfile stores a new profile. p.ID must be set and unused.
	CreateProfile(ctx context.Context, p *Profile) error
	GetProfile(ctx context.Context, id string) (*Profile, error)
	// UpdateProfile reads the profile, calls update on a copy and stores the result,
	// all atomically with respect to other updates of the same profile. If update
	// returns an error nothing is stored and that error is returned as is.
	UpdateProfile(ctx context.Context, id string, update func(*Profile) error) (*Profile, error)
	// DeleteProfile removes a profile. It fails with ErrProfileInUse while any mailbox
	// references it, checked atomically with the delete.
	DeleteProfile(ctx context.Context, id string) error
	// ListProfiles streams all profiles ordered by name.
	ListProfiles(ctx context.Context) iter.Seq2[*Profile, error]
}

// MailboxFilter selects mailboxes; zero fields match everything.
type MailboxFilter struct {
	ProfileID    string
	EmailAddress string // exact, case-insensitive
	RegardingID  string
	Approval     ApprovalStatus
	Status       TestStatus
	// Enabled, when set, matches mailboxes with (true) or without (false) any enabled workload.
	Enabled *bool
	// TestAndEnablePending, when set, matches on Mailbox.TestAndEnablePending.
	TestAndEnablePending *bool
	// Scheduled, when set, matches mailboxes with (true) or without (false) a
	// NextSyncAt. The Syncer looks for unscheduled ones every ScanInterval, so a
	// store should answer it without decoding every mailbox.
	Scheduled *bool
	// Limit caps the number of results; 0 means no limit.
	Limit int
}

// MailboxStore keeps mailboxes. EmailAddress is unique case-insensitively and a
// non-empty Regarding.ID has at most one mailbox; a mailbox's ProfileID, when set,
// must name an existing profile (ErrNotFound otherwise).
type MailboxStore interface {
	// CreateMailbox stores a new mailbox. m.ID must be set and unused.
	CreateMailbox(ctx context.Context, m *Mailbox) error
	GetMailbox(ctx context.Context, id string) (*Mailbox, error)
	// UpdateMailbox works like UpdateProfile. The lease fields LeaseHost, LeaseExpiresAt
	// and ForcedUnlockCount belong to the lease methods: changes update makes to them
	// are ignored. NextSyncAt is stored as update leaves it.
	UpdateMailbox(ctx context.Context, id string, update func(*Mailbox) error) (*Mailbox, error)
	// DeleteMailbox removes a mailbox with its cursors and lease; activities stay.
	DeleteMailbox(ctx context.Context, id string) error
	// ListMailboxes streams matching mailboxes ordered by email address.
	ListMailboxes(ctx context.Context, filter MailboxFilter) iter.Seq2[*Mailbox, error]
}

// SettingsStore keeps the organisation settings.
type SettingsStore interface {
	// GetOrgSettings returns the stored settings, or DefaultOrgSettings() when none
	// were ever stored.
	GetOrgSettings(ctx context.Context) (*OrgSettings, error)
	// UpdateOrgSettings applies update atomically to the current settings.
	UpdateOrgSettings(ctx context.Context, update func(*OrgSettings) error) (*OrgSettings, error)
}

// SaveResult reports what SaveTracked stored.
type SaveResult struct {
	Inserted int
	// Duplicates are the indexes (into the activities passed) of messages that were
	// already stored for their mailbox and were skipped.
	Duplicates []int
}

// ActivityFilter selects activities; zero fields match everything.
type ActivityFilter struct {
	MailboxID        string
	Direction        Direction
	Status           ActivityStatus
	MessageKey       string
	MessageID        string // the Message-ID header, for correlation
	TrackingToken    string
	ConversationHash string
	Limit            int // 0 means no limit
}

// ActivityStore keeps email activities and sync cursors.
type ActivityStore interface {
	// SaveTracked atomically stores activities and, when cursor is not nil, sets that
	// cursor: either all of it happens or none. An activity whose (MailboxID,
	// MessageKey) is already stored is skipped and reported in Duplicates, which is
	// what makes tracking exactly-once across crashes and retries. Each activity's ID
	// and MessageKey must be set; keys are opaque strings of up to
	// MessageKeyMaxLength bytes.
	SaveTracked(ctx context.Context, cursor *Cursor, activities []*EmailActivity) (SaveResult, error)
	// GetCursor returns the cursor of a mailbox's folder, or ErrNotFound.
	GetCursor(ctx context.Context, mailboxID, folder string) (*Cursor, error)
	GetActivity(ctx context.Context, id string) (*EmailActivity, error)
	// UpdateActivity works like UpdateProfile. MailboxID and MessageKey cannot change.
	UpdateActivity(ctx context.Context, id string, update func(*EmailActivity) error) (*EmailActivity, error)
	// ListActivities streams matching activities in the order they were stored.
	ListActivities(ctx context.Context, filter ActivityFilter) iter.Seq2[*EmailActivity, error]
	// KnownMessageKeys reports which of keys are stored for the mailbox: the
	// returned map holds exactly the stored ones, each mapped to true. It answers
	// a whole batch of incoming messages in one round trip (the incoming pipeline
	// asks it once per batch instead of once per message), so it must not cost a
	// query per key, and takes lists of any length (SaveBatch keys or more). Keys
	// may repeat; an empty list returns an empty map.
	KnownMessageKeys(ctx context.Context, mailboxID string, keys []string) (map[string]bool, error)
}

// ClaimRequest asks for outgoing emails to send.
type ClaimRequest struct {
	Host  string        // the claiming Syncer host
	Now   time.Time     // the caller's clock, so tests can inject one
	TTL   time.Duration // how long the claim holds before another host may take it
	Limit int
}

// OutboxStore is the outgoing queue: PendingSend → Sending → Sent / Failed.
type OutboxStore interface {
	// QueueOutgoing stores a new outgoing activity with status PendingSend (a zero
	// NextAttemptAt means "send now"). ID and MessageKey must be set.
	QueueOutgoing(ctx context.Context, a *EmailActivity) error
	// ClaimOutgoing atomically claims up to Limit activities that are either
	// PendingSend with NextAttemptAt <= Now, or Sending with an expired claim (their
	// sender died: the caller must reconcile before sending again). Each claimed
	// activity is set to Sending, ClaimedBy = Host, ClaimExpiresAt = Now+TTL, and
	// Attempts is incremented, and is returned as stored after the claim; the attempt
	// is therefore recorded before anything is sent. Two concurrent callers never
	// claim the same activity. Finish with UpdateActivity, checking in the update
	// that the claim is still yours (Status, ClaimedBy and Attempts as claimed): a
	// claim that ran out may have been taken by another host.
	ClaimOutgoing(ctx context.Context, req ClaimRequest) ([]*EmailActivity, error)
}

// AlertFilter selects alerts; zero fields match everything.
type AlertFilter struct {
	Recipient string
	MailboxID string
	ProfileID string
	Level     AlertLevel
	Since     time.Time // CreatedAt >= Since
	Limit     int       // 0 means no limit
}

// AlertStore keeps alerts.
type AlertStore interface {
	// AddAlert stores an alert; ID must be set.
	AddAlert(ctx context.Context, a *Alert) error
	// ListAlerts streams matching alerts, most recently stored first.
	ListAlerts(ctx context.Context, filter AlertFilter) iter.Seq2[*Alert, error]
}

// LeaseRequest asks for due mailboxes to process.
type LeaseRequest struct {
	Host  string        // who takes the leases; recorded as Mailbox.LeaseHost
	Now   time.Time     // the caller's clock, so tests can inject one
	TTL   time.Duration // lease length; renew before it runs out
	Limit int
}

// Lease is one host's exclusive right to process one mailbox until ExpiresAt.
type Lease struct {
	MailboxID string
	Host      string
	ExpiresAt time.Time
	// Token increases with every acquisition of the mailbox, so a stale holder's
	// renew or release is told apart from the current holder's.
	Token int64
	// TakenOver reports that the previous holder's lease had expired without a release
	// (it died or stalled); the mailbox's ForcedUnlockCount was incremented.
	TakenOver bool
}

// LeaseStore hands out mailboxes to Syncer hosts so no mailbox is processed by two at once.
type LeaseStore interface {
	// AcquireLeases leases up to Limit mailboxes whose NextSyncAt is set and <= Now and
	// that are not leased (or whose lease expired), most overdue first. Two
	// concurrent callers never get the same mailbox.
	AcquireLeases(ctx context.Context, req LeaseRequest) ([]Lease, error)
	// RenewLease extends a lease to now+ttl. It fails with ErrLeaseLost when the
	// lease is no longer held (expired and taken, or released).
	RenewLease(ctx context.Context, lease Lease, now time.Time, ttl time.Duration) (Lease, error)
	// ReleaseLease gives the mailbox back and schedules it at nextSync (zero: not
	// scheduled). It fails with ErrLeaseLost when the lease is no longer held.
	ReleaseLease(ctx context.Context, lease Lease, nextSync time.Time) error
}

// SecretRotator is implemented by stores that seal secrets at rest. RotateSecrets
// re-encrypts every sealed value that is not under the key provider's current key
// and reports how many values it rewrote.
type SecretRotator interface {
	RotateSecrets(ctx context.Context) (int, error)
}

// ConnectionSlotRequest asks for one connection slot of a budget.
type ConnectionSlotRequest struct {
	// ID names this request and the slot it gets; the caller sets it (NewID) and
	// passes the same ID when it asks again, after an error or while waiting in
	// line, so a slot granted by a call whose reply was lost is not granted twice.
	ID string
	// Key names the budget: what MaxConcurrentConnections counts, a profile or a
	// mailbox ("profile:<id>", "mailbox:<id>").
	Key   string
	Limit int           // how many slots the budget has now, at least 1
	Host  string        // who takes the slot; recorded as ConnectionSlot.Host
	Now   time.Time     // the caller's clock, so tests can inject one
	TTL   time.Duration // how long the slot is held unless renewed
	// WaitTTL is how long a place in line is kept when no slot is free (0: TTL); a
	// caller that waits asks again before it runs out.
	WaitTTL time.Duration
}

// ConnectionSlot is one host's hold on one of a budget's connection slots until
// ExpiresAt, or, with Slot -1, its place in line for one.
type ConnectionSlot struct {
	ID        string // the request's ID
	Key       string
	Slot      int // 0 ≤ Slot < the Limit it was acquired with; -1 for a place in line
	Host      string
	ExpiresAt time.Time
}

// ConnectionSlotStore is implemented by stores that count connections for every
// process sharing them, so MaxConcurrentConnections holds across processes (a
// Syncer without it counts only its own connections). Store implementations that
// several processes share should implement it; store/storetest checks it when
// they do. A slot is identified by ID, Key and Host.
type ConnectionSlotStore interface {
	// AcquireConnectionSlot atomically takes a slot of budget Key for request ID,
	// first come first served: a slot is granted when fewer than Limit are held and
	// every place in line ahead of the request's has been served (a new request
	// queues behind them all). Otherwise it reports ok false, with no error, and
	// the request's place in line (Slot -1), kept until Now+WaitTTL. Asking again
	// with the ID of a slot already granted returns that slot, extended to Now+TTL.
	// A slot or place whose ExpiresAt <= Now is no longer held: the next
	// acquisition of the budget frees it, and its holder's renew and release then
	// fail. Two concurrent callers never get the same slot, nor more than Limit
	// between them.
	AcquireConnectionSlot(ctx context.Context, req ConnectionSlotRequest) (slot ConnectionSlot, ok bool, err error)
	// RenewConnectionSlot extends a slot to now+ttl. It fails with ErrLeaseLost
	// when the slot is no longer held (released, or expired and freed).
	RenewConnectionSlot(ctx context.Context, slot ConnectionSlot, now time.Time, ttl time.Duration) (ConnectionSlot, error)
	// ReleaseConnectionSlot gives the slot, or the place in line, back. It fails
	// with ErrLeaseLost when it is no longer held.
	ReleaseConnectionSlot(ctx context.Context, slot ConnectionSlot) error
}

// AppTokenKeyMaxLength is the longest AppTokenStore key, in bytes, every store
// accepts.
const AppTokenKeyMaxLength = 512

// AppToken is an application's access token for one profile and resource (an
// app-only token from the identity provider, such as Entra ID's client
// credentials grant), shared by every mailbox of the profile and every process of
// the deployment. It is a value: copying it is safe.
type AppToken struct {
	AccessToken auth.Secret // sealed at rest by persistent stores
	TokenType   string      // "Bearer"
	Expiry      time.Time
	// UpdatedAt is when the token was obtained, by the caller's clock: like every
	// timestamp, the store keeps it as given.
	UpdatedAt time.Time
}

// AppTokenStore is implemented by stores that share app-only tokens between
// processes. The Syncer keeps one token per profile and resource in memory and,
// with this interface, in the store, so that N processes ask the identity
// provider once per token lifetime rather than N times. Store implementations that
// several processes share should implement it; store/storetest checks it when
// they do.
//
// A key is any string of 1 to AppTokenKeyMaxLength bytes of valid UTF-8 without
// NUL, such as "<profile ID>/<resource>"; it is opaque to the store, which
// matches it exactly and case-sensitively. Any other key is refused with a
// *ValidationError (Entity "AppToken", Field "Key"), and a token without an
// AccessToken or an Expiry with one naming that field. The store reads no clock:
// an expired token is returned like any other, and the caller decides.
type AppTokenStore interface {
	// AppToken returns the token stored under key, or an error matching ErrNotFound.
	AppToken(ctx context.Context, key string) (AppToken, error)
	// PutAppToken stores t under key unless the token stored there expires later
	// (a slower process must not replace a fresher token), atomically with respect
	// to every other call, and returns the token now stored: t, or the later one.
	// Of two tokens with the same Expiry the one put last is kept.
	PutAppToken(ctx context.Context, key string, t AppToken) (AppToken, error)
	// DeleteAppTokens removes the tokens whose key starts with prefix, byte for
	// byte (a profile whose credentials changed); "" removes them all. Removing
	// none is not an error.
	DeleteAppTokens(ctx context.Context, prefix string) error
}
