package serversync

import (
	"time"

	"github.com/serversync/serversync/auth"
)

// RegardingType is what a mailbox belongs to.
type RegardingType string

// Mailboxes belong to a user or a queue; forward mailboxes belong to neither.
const (
	RegardingUser  RegardingType = "User"
	RegardingQueue RegardingType = "Queue"
)

// Regarding names the user or queue that owns a mailbox (one mailbox each).
type Regarding struct {
	Type RegardingType
	ID   string
}

// IsZero reports whether no user or queue is named.
func (r Regarding) IsZero() bool { return r.Type == "" && r.ID == "" }

// IncomingMethod is how a mailbox receives mail.
type IncomingMethod string

// Incoming delivery methods. IncomingForwardMailbox means the user's server rules
// forward mail to a forward mailbox, which tracks it on the user's behalf.
const (
	IncomingNone           IncomingMethod = "None"
	IncomingOutlook        IncomingMethod = "Outlook"
	IncomingServerSideSync IncomingMethod = "ServerSideSync"
	IncomingForwardMailbox IncomingMethod = "ForwardMailbox"
)

func (m IncomingMethod) valid() bool {
	switch m {
	case IncomingNone, IncomingOutlook, IncomingServerSideSync, IncomingForwardMailbox:
		return true
	}
	return false
}

// OutgoingMethod is how a mailbox sends mail. ACT (appointments, contacts, tasks)
// uses the same values.
type OutgoingMethod string

// Outgoing and ACT delivery methods.
const (
	OutgoingNone           OutgoingMethod = "None"
	OutgoingOutlook        OutgoingMethod = "Outlook"
	OutgoingServerSideSync OutgoingMethod = "ServerSideSync"
)

func (m OutgoingMethod) valid() bool {
	switch m {
	case OutgoingNone, OutgoingOutlook, OutgoingServerSideSync:
		return true
	}
	return false
}

// ApprovalStatus is whether an administrator approved the mailbox's email address.
type ApprovalStatus string

// Approval states. With OrgSettings.RequireApproval* on, nothing is processed until Approved.
const (
	ApprovalEmpty    ApprovalStatus = "Empty"
	ApprovalPending  ApprovalStatus = "Pending"
	ApprovalApproved ApprovalStatus = "Approved"
	ApprovalRejected ApprovalStatus = "Rejected"
)

// TestStatus is the outcome of the last Test & Enable of a workload.
type TestStatus string

// Test outcomes.
const (
	TestNotRun  TestStatus = "NotRun"
	TestSuccess TestStatus = "Success"
	TestFailure TestStatus = "Failure"
)

// IncomingFilter selects which incoming messages are tracked (DESIGN §4 step 4).
type IncomingFilter string

// The filtering options. The zero value is normalized on save: responses to CRM email
// for user mailboxes, all email for queues and forward mailboxes (the CRM defaults).
const (
	FilterAll                   IncomingFilter = "AllEmail"
	FilterResponsesToCRM        IncomingFilter = "ResponsesToCRMEmail"
	FilterLeadsContactsAccounts IncomingFilter = "FromLeadsContactsAccounts"
	FilterEmailEnabledRecords   IncomingFilter = "FromEmailEnabledRecords"
	FilterNone                  IncomingFilter = "None"
)

func (f IncomingFilter) valid() bool {
	switch f {
	case FilterAll, FilterResponsesToCRM, FilterLeadsContactsAccounts, FilterEmailEnabledRecords, FilterNone:
		return true
	}
	return false
}

// OAuthToken is a mailbox's delegated OAuth grant. The access token is refreshed with
// the refresh token through the profile's TokenURL.
type OAuthToken struct {
	AccessToken  auth.Secret
	RefreshToken auth.Secret
	TokenType    string
	Expiry       time.Time
}

// LastError is the most recent error a mailbox hit, for a monitoring view. It is
// cleared once the workload that hit it works again (a sync or a send succeeds) or
// a Test & Enable passes, so a set LastError always describes a problem still there.
type LastError struct {
	Workload Direction // the workload that hit it: Incoming, Outgoing or ACT
	Code     string    // stable, machine-readable: one of the Code… constants (e.g. CodeAuthFailed)
	Message  string    // what a person can act on; never contains secrets
	Count    int       // how many times in a row this error was seen
	Host     string    // the Syncer host that saw it
	At       time.Time
}

// MailboxStats are the counters and times a monitoring view shows (DESIGN §3).
type MailboxStats struct {
	TransientFailureCount  int
	LastError              LastError
	LastSyncStartedAt      time.Time
	LastSyncSucceededAt    time.Time
	LastSyncDuration       time.Duration
	ItemsProcessedLastSync int
	ItemsFailedLastSync    int
	// DuplicatesSkippedLastSync and DuplicatesSkipped (since the mailbox was created)
	// count messages the server offered again that were tracked already (a redelivery,
	// a resync from the start, a cursor the server invalidated): skipped, not lost.
	DuplicatesSkippedLastSync int
	DuplicatesSkipped         int64
	// FilteredLastSync and Filtered (since the mailbox was created) count messages
	// the mailbox's IncomingFilter left untracked. They are not stored anywhere
	// else: Admin.ResyncIncoming reads them again after the filter changed.
	FilteredLastSync int
	Filtered         int64
	// InitialSyncTotal is how many messages the inbox held when the first sync (or
	// a resync from the start) began, when the connector can count them (IMAP);
	// with the activities counted it gives that sync's progress. The initial sync
	// is done once LastSyncSucceededAt is set (see WaitInitialSync).
	InitialSyncTotal int
	// LastMailAt is when new mail was last tracked; the Syncer polls mailboxes with
	// recent mail more often and backs off on quiet ones.
	LastMailAt             time.Time
	IncomingPostponedUntil time.Time
	OutgoingPostponedUntil time.Time
	ACTPostponedUntil      time.Time
}

// Mailbox is one user's or queue's mailbox (or a forward mailbox) linked to a profile.
// Create it through [Admin], which applies the org defaults and validates it.
//
// The lease fields (NextSyncAt, LeaseHost, LeaseExpiresAt, ForcedUnlockCount) are
// kept by the Store's lease operations; Store.UpdateMailbox leaves them alone except
// NextSyncAt. A Mailbox is a plain value, not safe for concurrent mutation.
type Mailbox struct {
	ID           string
	Name         string
	EmailAddress string // required, unique (case-insensitively)
	Regarding    Regarding
	Owner        string // principal that receives this mailbox's alerts; defaults to the regarding user

	// IsForwardMailbox marks a mailbox that receives mail users' server rules forward
	// to it; each forwarded message is attributed to the original user's mailbox.
	IsForwardMailbox bool

	ProfileID string // may be empty only while every method is None

	IncomingMethod IncomingMethod
	OutgoingMethod OutgoingMethod
	ACTMethod      OutgoingMethod
	IncomingFilter IncomingFilter

	Approval ApprovalStatus

	IncomingEnabled bool
	OutgoingEnabled bool
	ACTEnabled      bool

	IncomingStatus  TestStatus
	OutgoingStatus  TestStatus
	ACTStatus       TestStatus
	Status          TestStatus
	TestCompletedOn time.Time
	// TestAndEnablePending is set when the mailbox is created, by Apply Default Email
	// Settings and by changing the profile or methods; the Syncer runs Test & Enable for such mailboxes (once
	// approved, when approval is required). A stored test outcome clears it.
	TestAndEnablePending bool
	// The Test & Enable lock, kept by the Syncer through Store.UpdateMailbox so that
	// one test runs per mailbox at a time, whichever process runs it. TestHost is the
	// host testing the mailbox now (empty: none); its claim lapses at
	// TestLockExpiresAt unless renewed, so a host that dies blocks nothing for long.
	// TestRun increases with every test started; TestRunStored is the run whose
	// outcome the status fields hold.
	TestHost          string
	TestLockExpiresAt time.Time
	TestRun           int64
	TestRunStored     int64

	// Credentials used when the profile's credential source is Mailbox or OAuth.
	Username   string
	Password   auth.Secret
	OAuthToken OAuthToken

	ProcessEmailFrom      time.Time // overrides the profile's when set
	DeleteAfterProcessing bool      // forward and queue mailboxes only
	// IncomingResyncRequestedAt, when set, makes the next incoming sync read the
	// inbox from the start instead of from its cursor, fetching what
	// EffectiveProcessEmailFrom allows; message keys keep what is tracked already
	// from being tracked twice. Admin sets it when a change moves the effective
	// ProcessEmailFrom earlier (so the earlier mail is pulled, as the seeds say) and
	// on Admin.ResyncIncoming; the Syncer clears it when such a sync succeeded.
	IncomingResyncRequestedAt time.Time

	DiscoveredServer   string    // AutoDiscover cache
	DiscoveredServerAt time.Time //

	Stats MailboxStats

	// Lease state, kept by the Store.
	NextSyncAt        time.Time // when the mailbox is next due; zero means not scheduled
	LeaseHost         string    // host currently processing it, if any
	LeaseExpiresAt    time.Time
	ForcedUnlockCount int // leases taken over after their holder stopped renewing

	CreatedAt time.Time
	UpdatedAt time.Time
}

// AnyEnabled reports whether at least one workload is enabled.
func (m *Mailbox) AnyEnabled() bool { return m.IncomingEnabled || m.OutgoingEnabled || m.ACTEnabled }

// AllMethodsNone reports whether the mailbox uses no delivery method at all, the only
// state in which it may have no profile.
func (m *Mailbox) AllMethodsNone() bool {
	return m.IncomingMethod == IncomingNone && m.OutgoingMethod == OutgoingNone && m.ACTMethod == OutgoingNone
}

// UsesServerSideSync reports whether any workload is handled by this library.
func (m *Mailbox) UsesServerSideSync() bool {
	return m.IncomingMethod == IncomingServerSideSync || m.OutgoingMethod == OutgoingServerSideSync ||
		m.ACTMethod == OutgoingServerSideSync
}

// EffectiveProcessEmailFrom is the mailbox's override or else the profile's time.
func (m *Mailbox) EffectiveProcessEmailFrom(p *Profile) time.Time {
	if !m.ProcessEmailFrom.IsZero() || p == nil {
		return m.ProcessEmailFrom
	}
	return p.ProcessEmailFrom
}

// Clone returns a deep copy.
func (m *Mailbox) Clone() *Mailbox {
	c := *m
	return &c
}
