package serversync

// Defaults of organisation-wide settings.
const (
	TrackingTokenPrefixDefault        = "CRM"
	TrackingTokenUserDigitsDefault    = 3
	TrackingTokenCounterDigitsDefault = 3
	MaxAttachmentSizeDefault          = 5 << 20 // 5 MB per attachment
)

// TrackingTokenFormat describes the token added to outgoing subjects so replies can be
// correlated: the prefix, the deployment number, then the user number and a per-user
// counter with the configured digit counts (e.g. "CRM:0001001002").
type TrackingTokenFormat struct {
	Enabled          bool
	Prefix           string // default "CRM"
	DeploymentNumber int    // distinguishes deployments sharing mailboxes (0–99)
	UserDigits       int    // digits of the per-user number, default 3
	CounterDigits    int    // digits of the per-user counter, default 3
}

// OrgSettings are deployment-wide defaults and switches (DESIGN §1, §3, §4, §8).
//
// Several switches default to on, so the zero value is not the default: start from
// [DefaultOrgSettings], or change the stored settings with Admin.UpdateOrgSettings.
type OrgSettings struct {
	// Defaults applied to new mailboxes and by Apply Default Email Settings.
	DefaultProfileID      string
	DefaultIncomingMethod IncomingMethod
	DefaultOutgoingMethod OutgoingMethod
	DefaultACTMethod      OutgoingMethod

	// AllowNonSSLEmail lets profiles turn TLS off (never for Exchange Online). It is
	// checked on every connection too: turned off, it stops the profiles saved with
	// TLS off from connecting (see [ResolveTarget], [OrgSettingsUpdate]).
	AllowNonSSLEmail bool
	// AllowCredentialsOverNonSecureChannels lets connectors send plaintext credentials
	// over an unencrypted connection. Off by default; independent of AllowNonSSLEmail,
	// and checked on every connection like it.
	AllowCredentialsOverNonSecureChannels bool

	// With these on (the default), nothing is processed for a user or queue mailbox
	// until its email address is Approved.
	RequireApprovalForUsers  bool
	RequireApprovalForQueues bool

	// Which alert levels are raised.
	AlertErrors      bool
	AlertWarnings    bool
	AlertInformation bool

	TrackingToken TrackingTokenFormat

	// Correlation switches, applied in this order (DESIGN §4 step 5).
	CorrelateByHeaders       bool // In-Reply-To / References
	CorrelateByTrackingToken bool
	SmartMatching            bool // subject + recipients hash

	MaxAttachmentSize    int64 // bytes per attachment; larger ones are recorded, not stored
	SaveCopyToSentFolder bool  // append sent mail to the server's Sent folder where the protocol allows

	DefaultTenantID string // for server-to-server profiles with UseDefaultTenantID

	// ACTConflictPolicy decides an item changed on both sides since the last ACT
	// sync; the default is ACTLastModifiedWins. Every conflict is recorded
	// (Syncer.ACTConflicts).
	ACTConflictPolicy ACTConflictPolicy
	// ACTOwnerID names this deployment in the marker on each mailbox whose ACT it
	// syncs (the seed's "Sync items with Exchange from this org only"); the Syncer
	// sets it to a new ID the first time ACT runs, when it is empty. Two
	// deployments sharing one store are one deployment.
	ACTOwnerID string
	// SyncACTFromThisOrgOnly lets this deployment take over the ACT sync of a
	// mailbox another deployment marked as its own. Off, such a mailbox is not
	// synced (its ACT fails with CodeACTOwnedElsewhere), so two deployments never
	// push each other's items back and forth.
	SyncACTFromThisOrgOnly bool
}

// DefaultOrgSettings returns the settings a new deployment starts with.
func DefaultOrgSettings() *OrgSettings {
	return &OrgSettings{
		DefaultIncomingMethod:    IncomingServerSideSync,
		DefaultOutgoingMethod:    OutgoingServerSideSync,
		DefaultACTMethod:         OutgoingNone,
		RequireApprovalForUsers:  true,
		RequireApprovalForQueues: true,
		AlertErrors:              true,
		AlertWarnings:            true,
		AlertInformation:         true,
		TrackingToken: TrackingTokenFormat{
			Enabled:       true,
			Prefix:        TrackingTokenPrefixDefault,
			UserDigits:    TrackingTokenUserDigitsDefault,
			CounterDigits: TrackingTokenCounterDigitsDefault,
		},
		CorrelateByHeaders:       true,
		CorrelateByTrackingToken: true,
		MaxAttachmentSize:        MaxAttachmentSizeDefault,
		SaveCopyToSentFolder:     true,
	}
}

// Clone returns a copy.
func (s *OrgSettings) Clone() *OrgSettings {
	c := *s
	return &c
}

// RequiresApproval reports whether m must be Approved before it is processed.
func (s *OrgSettings) RequiresApproval(m *Mailbox) bool {
	if m.Regarding.Type == RegardingQueue {
		return s.RequireApprovalForQueues
	}
	return s.RequireApprovalForUsers
}
