package storetest

import (
	"time"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/auth"
)

// BaseTime is the instant the fixtures are built around. Like every time the suite
// uses, it has whole microseconds: the precision a store must keep at least.
var BaseTime = time.Date(2025, time.March, 14, 9, 26, 53, 589793000, time.UTC)

// otherZone is a non-UTC location, to check that stores keep instants whatever the
// location they were given in.
var otherZone = time.FixedZone("UTC+2", 2*60*60)

// NewProfile returns a valid IMAP/SMTP profile with a new ID and the given name.
// Optional fields are left zero.
func NewProfile(name string) *serversync.Profile {
	return &serversync.Profile{
		ID:                       serversync.NewID(),
		Name:                     name,
		ServerType:               serversync.ServerTypeIMAPSMTP,
		IncomingServer:           "imap.example.com",
		OutgoingServer:           "smtp.example.com",
		IncomingPort:             993,
		OutgoingPort:             465,
		IncomingTLS:              serversync.TLSImplicit,
		OutgoingTLS:              serversync.TLSImplicit,
		IncomingCredentialSource: serversync.CredentialsMailbox,
		OutgoingCredentialSource: serversync.CredentialsMailbox,
		AuthProtocol:             serversync.AuthAuto,
		MaxConcurrentConnections: serversync.MaxConcurrentConnectionsDefault,
		ConnectionTimeout:        serversync.ConnectionTimeoutDefault,
		CreatedAt:                BaseTime,
		UpdatedAt:                BaseTime,
	}
}

// FullProfile returns a profile with every field set to a non-zero value, secrets
// included, to check that a store keeps all of them.
func FullProfile(name string) *serversync.Profile {
	p := NewProfile(name)
	p.Description = "all fields set"
	p.Owner = "user-owner"
	p.ServerType = serversync.ServerTypeExchangeOnlineHybrid
	p.AutoDiscover = true
	p.IncomingServer = "https://outlook.office365.com/EWS/Exchange.asmx"
	p.OutgoingServer = "https://outlook.office365.com/EWS/Exchange.asmx"
	p.IncomingPort = 443
	p.OutgoingPort = 8443
	p.IncomingTLS = serversync.TLSImplicit
	p.OutgoingTLS = serversync.TLSStartTLS
	p.IncomingCredentialSource = serversync.CredentialsProfile
	p.OutgoingCredentialSource = serversync.CredentialsServerToServer
	p.SeparateOutgoingSettings = true
	p.UseImpersonation = true
	p.ImpersonationStyle = auth.ImpersonateMasterUser
	p.MasterSeparator = "%"
	p.Username = "svc-sync"
	p.Password = auth.NewSecret("profile-password")
	p.AuthProtocol = serversync.AuthNTLM
	p.TenantID = "tenant-1"
	p.UseDefaultTenantID = true
	p.ClientID = "client-1"
	p.ClientSecret = auth.NewSecret("client-secret")
	p.CertificatePEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
	p.CertificateKey = auth.NewSecret("-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n")
	p.CertificateNotAfter = time.Date(2031, 7, 1, 12, 0, 0, 0, time.UTC)
	p.TokenURL = "https://login.example.com/token"
	p.Scopes = []string{"https://outlook.office365.com/.default", "offline_access"}
	p.ExtraRootCAsPEM = "-----BEGIN CERTIFICATE-----\nMIIC\n-----END CERTIFICATE-----\n"
	p.ACTServerURL = "https://dav.example.com/"
	p.ProcessEmailFrom = BaseTime.Add(-30 * 24 * time.Hour).In(otherZone)
	p.MaxConcurrentConnections = 42
	p.MinPollingInterval = 7 * time.Minute
	p.ConnectionTimeout = 55 * time.Second
	p.MoveFailedToUndeliverable = true
	p.SendAlertOnMassFailure = true
	p.CreatedAt = BaseTime.Add(-time.Hour)
	p.UpdatedAt = BaseTime.In(otherZone)
	return p
}

// NewMailbox returns a valid user mailbox with a new ID and the given address. With
// a profileID every workload uses server-side synchronization; without one every
// delivery method is None (the only state a mailbox may have no profile in).
// Optional fields are left zero.
func NewMailbox(profileID, email string) *serversync.Mailbox {
	m := &serversync.Mailbox{
		ID:             serversync.NewID(),
		Name:           email,
		EmailAddress:   email,
		Regarding:      serversync.Regarding{Type: serversync.RegardingUser, ID: "user-" + serversync.NewID()},
		ProfileID:      profileID,
		IncomingMethod: serversync.IncomingServerSideSync,
		OutgoingMethod: serversync.OutgoingServerSideSync,
		ACTMethod:      serversync.OutgoingNone,
		IncomingFilter: serversync.FilterResponsesToCRM,
		Approval:       serversync.ApprovalPending,
		IncomingStatus: serversync.TestNotRun,
		OutgoingStatus: serversync.TestNotRun,
		ACTStatus:      serversync.TestNotRun,
		Status:         serversync.TestNotRun,
		CreatedAt:      BaseTime,
		UpdatedAt:      BaseTime,
	}
	if profileID == "" {
		m.IncomingMethod = serversync.IncomingNone
		m.OutgoingMethod = serversync.OutgoingNone
	}
	m.Owner = m.Regarding.ID
	return m
}

// FullMailbox returns a mailbox with every field set to a non-zero value, secrets
// included, except the lease fields the lease methods own (LeaseHost, LeaseExpiresAt,
// ForcedUnlockCount). NextSyncAt is set, in the future of BaseTime.
func FullMailbox(profileID, email string) *serversync.Mailbox {
	m := NewMailbox(profileID, email)
	m.Regarding = serversync.Regarding{Type: serversync.RegardingQueue, ID: "queue-" + serversync.NewID()}
	m.Owner = "team-owner"
	m.IsForwardMailbox = true
	m.IncomingMethod = serversync.IncomingForwardMailbox
	m.OutgoingMethod = serversync.OutgoingOutlook
	m.ACTMethod = serversync.OutgoingServerSideSync
	m.IncomingFilter = serversync.FilterAll
	m.Approval = serversync.ApprovalApproved
	m.IncomingEnabled = true
	m.OutgoingEnabled = true
	m.ACTEnabled = true
	m.IncomingStatus = serversync.TestSuccess
	m.OutgoingStatus = serversync.TestFailure
	m.ACTStatus = serversync.TestSuccess
	m.Status = serversync.TestFailure
	m.TestCompletedOn = BaseTime.Add(-2 * time.Hour)
	m.TestAndEnablePending = true
	m.TestHost, m.TestLockExpiresAt = "host-b", BaseTime.Add(time.Minute).In(otherZone)
	m.TestRun, m.TestRunStored = 7, 6
	m.Username = "queue@example.com"
	m.Password = auth.NewSecret("mailbox-password")
	m.OAuthToken = serversync.OAuthToken{
		AccessToken:  auth.NewSecret("access-token"),
		RefreshToken: auth.NewSecret("refresh-token"),
		TokenType:    "Bearer",
		Expiry:       BaseTime.Add(time.Hour).In(otherZone),
	}
	m.ProcessEmailFrom = BaseTime.Add(-7 * 24 * time.Hour)
	m.DeleteAfterProcessing = true
	m.IncomingResyncRequestedAt = BaseTime.Add(-90 * time.Second)
	m.DiscoveredServer = "https://mail.example.com/EWS/Exchange.asmx"
	m.DiscoveredServerAt = BaseTime.Add(-3 * time.Hour)
	m.Stats = serversync.MailboxStats{
		TransientFailureCount: 3,
		LastError: serversync.LastError{
			Workload: serversync.Incoming,
			Code:     "connect_timeout",
			Message:  "the server did not answer within 100s",
			Count:    2,
			Host:     "host-a",
			At:       BaseTime.Add(-4 * time.Minute),
		},
		LastSyncStartedAt:         BaseTime.Add(-5 * time.Minute),
		LastSyncSucceededAt:       BaseTime.Add(-10 * time.Minute),
		LastSyncDuration:          1234567891 * time.Nanosecond,
		ItemsProcessedLastSync:    17,
		ItemsFailedLastSync:       1,
		DuplicatesSkippedLastSync: 2,
		DuplicatesSkipped:         1 << 40,
		FilteredLastSync:          3,
		Filtered:                  1 << 41,
		InitialSyncTotal:          2004,
		LastMailAt:                BaseTime.Add(-30 * time.Minute),
		IncomingPostponedUntil:    BaseTime.Add(5 * time.Minute),
		OutgoingPostponedUntil:    BaseTime.Add(6 * time.Minute),
		ACTPostponedUntil:         BaseTime.Add(7 * time.Minute),
	}
	m.NextSyncAt = BaseTime.Add(time.Minute)
	m.CreatedAt = BaseTime.Add(-24 * time.Hour)
	m.UpdatedAt = BaseTime.In(otherZone)
	return m
}

// NewActivity returns a tracked incoming activity with a new ID for the given mailbox
// and message key. Optional fields are left zero.
func NewActivity(mailboxID, messageKey string) *serversync.EmailActivity {
	return &serversync.EmailActivity{
		ID:           serversync.NewID(),
		MailboxID:    mailboxID,
		MessageKey:   messageKey,
		Direction:    serversync.Incoming,
		Status:       serversync.StatusTracked,
		From:         serversync.Address{Name: "Sender", Email: "sender@example.org"},
		To:           []serversync.Address{{Email: "alice@example.com"}},
		Subject:      "Message " + messageKey,
		TextBody:     "Hello",
		MessageID:    messageKey + "@example.org",
		ServerFolder: "INBOX",
		ServerRef:    messageKey,
		ReceivedAt:   BaseTime,
		CreatedAt:    BaseTime,
		UpdatedAt:    BaseTime,
	}
}

// NewOutgoing returns an outgoing activity to queue, with a new ID, for the given
// mailbox and message key.
func NewOutgoing(mailboxID, messageKey string) *serversync.EmailActivity {
	a := NewActivity(mailboxID, messageKey)
	a.Direction = serversync.Outgoing
	a.Status = serversync.StatusPendingSend
	a.From = serversync.Address{Name: "Alice", Email: "alice@example.com"}
	a.To = []serversync.Address{{Name: "Customer", Email: "customer@example.org"}}
	a.ServerFolder = ""
	a.ServerRef = ""
	a.ReceivedAt = time.Time{}
	return a
}

// FullActivity returns an activity with every field set to a non-zero value,
// attachments (with content) and raw bytes included.
func FullActivity(mailboxID, messageKey string) *serversync.EmailActivity {
	a := NewActivity(mailboxID, messageKey)
	a.ViaMailbox = "forward-" + mailboxID
	a.Regarding = serversync.RecordRef{Type: "incident", ID: "case-7"}
	a.CorrelatedTo = serversync.NewID()
	a.CorrelationMethod = "headers"
	a.To = []serversync.Address{{Name: "Alice", Email: "alice@example.com"}, {Email: "bob@example.com"}}
	a.Cc = []serversync.Address{{Name: "Carol", Email: "carol@example.com"}}
	a.Bcc = []serversync.Address{{Name: "Dave", Email: "dave@example.com"}}
	a.ReplyTo = []serversync.Address{{Name: "Support", Email: "support@example.org"}}
	a.HTMLBody = "<p>Hello</p>"
	a.InReplyTo = []string{"parent@example.com"}
	a.References = []string{"root@example.com", "parent@example.com"}
	a.TrackingToken = "CRM:0001001002"
	a.ConversationHash = "c0ffee"
	a.Attachments = []serversync.Attachment{
		{Filename: "report.pdf", ContentType: "application/pdf", ContentID: "cid-1", Size: 5, Content: []byte{0, 1, 2, 0xfe, 0xff}, Omitted: false},
		{Filename: "huge.iso", ContentType: "application/octet-stream", Size: 10 << 20, Omitted: true},
	}
	a.Size = 4096
	a.SentAt = BaseTime.Add(-time.Minute).In(otherZone)
	a.Raw = []byte("Subject: broken\r\n\r\n\x00\xff")
	a.ParseError = "malformed MIME boundary"
	a.ParseWarnings = []string{"header: no Date", `body: unknown charset "x-klingon"; bytes kept`}
	a.Attempts = 2
	a.NextAttemptAt = BaseTime.Add(time.Hour)
	a.ClaimedBy = "host-a"
	a.ClaimExpiresAt = BaseTime.Add(2 * time.Minute)
	a.SendStartedAt = BaseTime.Add(time.Minute)
	a.LastError = "451 try again later"
	a.CreatedAt = BaseTime.Add(-time.Hour)
	a.UpdatedAt = BaseTime.In(otherZone)
	return a
}

// NewCursor returns a cursor of a mailbox's folder holding data.
func NewCursor(mailboxID, folder, data string) *serversync.Cursor {
	return &serversync.Cursor{MailboxID: mailboxID, Folder: folder, Data: []byte(data), UpdatedAt: BaseTime}
}

// NewAlert returns a mailbox-level error alert with a new ID for recipient.
func NewAlert(recipient string) *serversync.Alert {
	return &serversync.Alert{
		ID:        serversync.NewID(),
		Level:     serversync.AlertError,
		Scope:     serversync.ScopeMailbox,
		Recipient: recipient,
		ProfileID: "profile-1",
		MailboxID: "mailbox-1",
		Code:      "auth_failed",
		Message:   "The mailbox password was rejected.",
		CreatedAt: BaseTime,
	}
}

// FullOrgSettings returns settings that differ from DefaultOrgSettings in every field.
func FullOrgSettings() *serversync.OrgSettings {
	return &serversync.OrgSettings{
		DefaultProfileID:                      "profile-default",
		DefaultIncomingMethod:                 serversync.IncomingForwardMailbox,
		DefaultOutgoingMethod:                 serversync.OutgoingOutlook,
		DefaultACTMethod:                      serversync.OutgoingServerSideSync,
		AllowNonSSLEmail:                      true,
		AllowCredentialsOverNonSecureChannels: true,
		TrackingToken: serversync.TrackingTokenFormat{
			Enabled:          false,
			Prefix:           "TKT",
			DeploymentNumber: 7,
			UserDigits:       4,
			CounterDigits:    5,
		},
		SmartMatching:          true,
		MaxAttachmentSize:      1 << 20,
		SaveCopyToSentFolder:   false,
		DefaultTenantID:        "tenant-default",
		ACTConflictPolicy:      serversync.ACTHostWins,
		ACTOwnerID:             "deployment-owner",
		SyncACTFromThisOrgOnly: true,
	}
}
