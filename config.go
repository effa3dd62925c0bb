package serversync

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"go.opentelemetry.io/otel/metric"

	"github.com/serversync/serversync/auth"
)

// minLeaseTTL is the shortest LeaseTTL and OutboxClaimTTL: a lease (a claim) is
// renewed every third of it, and a renewal is a store write that must come back
// within that third (a PostgreSQL round trip under load takes milliseconds), or
// leases lapse while their work runs and another host starts the same mailbox
// (sends the same email).
const minLeaseTTL = 30 * time.Millisecond

// validate refuses values no default can stand for, saying how to fix each. Zero
// values are fine: they take the defaults.
func (c *Config) validate() error {
	invalidConfig := func(field, reason string) error { return invalid("Config", field, reason) }
	for _, d := range []struct {
		field string
		value time.Duration
	}{
		{"LeaseTTL", c.LeaseTTL}, {"ShutdownLeaseGrace", c.ShutdownLeaseGrace}, {"ConnectionSlotTTL", c.ConnectionSlotTTL},
		{"ActivePoll", c.ActivePoll}, {"MaxIdlePoll", c.MaxIdlePoll},
		{"RetryInterval", c.RetryInterval}, {"MassFailureWindow", c.MassFailureWindow},
		{"CertificateExpiryWarning", c.CertificateExpiryWarning},
		{"IdleWindow", c.IdleWindow}, {"OutboxInterval", c.OutboxInterval}, {"OutboxClaimTTL", c.OutboxClaimTTL},
		{"MaxSendWait", c.MaxSendWait}, {"ScanInterval", c.ScanInterval}, {"Tick", c.Tick},
		{"DiscoveryTTL", c.DiscoveryTTL},
	} {
		if d.value < 0 {
			return invalidConfig(d.field, fmt.Sprintf("%v is negative: use 0 for the default or a positive duration", d.value))
		}
	}
	for _, n := range []struct {
		field string
		value int64
	}{
		{"Workers", int64(c.Workers)}, {"LeaseBatch", int64(c.LeaseBatch)},
		{"MaxTransientFailures", int64(c.MaxTransientFailures)}, {"MaxSendAttempts", int64(c.MaxSendAttempts)},
		{"SaveBatch", int64(c.SaveBatch)}, {"SaveBatchBytes", c.SaveBatchBytes}, {"MaxMessageSize", c.MaxMessageSize},
	} {
		if n.value < 0 {
			return invalidConfig(n.field, fmt.Sprintf("%d is negative: use 0 for the default or a positive number", n.value))
		}
	}
	for _, ttl := range []struct {
		field         string
		value, preset time.Duration
	}{{"LeaseTTL", c.LeaseTTL, LeaseTTLDefault}, {"OutboxClaimTTL", c.OutboxClaimTTL, OutboxClaimTTLDefault}} {
		if ttl.value != 0 && ttl.value < minLeaseTTL {
			return invalidConfig(ttl.field, fmt.Sprintf("%v is too short: it is renewed every third of it, which leaves a store write no time to renew it; use at least %v (0: the default, %v)",
				ttl.value, minLeaseTTL, ttl.preset))
		}
	}
	if c.MaxIdlePoll != 0 && c.MaxIdlePoll < cmp.Or(c.ActivePoll, ActivePollDefault) {
		return invalidConfig("MaxIdlePoll", fmt.Sprintf("%v is shorter than ActivePoll (%v), which it caps the back-off from: set it to at least ActivePoll, or 0 for the default",
			c.MaxIdlePoll, cmp.Or(c.ActivePoll, ActivePollDefault)))
	}
	return nil
}

// applyDefaults fills zero fields from the …Default constants.
func (c *Config) applyDefaults() {
	if c.Host == "" {
		name, _ := os.Hostname()
		c.Host = fmt.Sprintf("%s-%d-%s", cmp.Or(name, "host"), os.Getpid(), NewID()[20:])
	}
	c.Workers = cmp.Or(c.Workers, WorkersDefault)
	c.LeaseTTL = cmp.Or(c.LeaseTTL, LeaseTTLDefault)
	c.LeaseBatch = cmp.Or(c.LeaseBatch, LeaseBatchDefault)
	c.ShutdownLeaseGrace = cmp.Or(c.ShutdownLeaseGrace, ShutdownLeaseGraceDefault)
	c.ConnectionSlotTTL = min(cmp.Or(c.ConnectionSlotTTL, ConnectionSlotTTLDefault), c.LeaseTTL)
	c.ActivePoll = cmp.Or(c.ActivePoll, ActivePollDefault)
	c.MaxIdlePoll = max(cmp.Or(c.MaxIdlePoll, MaxIdlePollDefault), c.ActivePoll)
	c.RetryInterval = cmp.Or(c.RetryInterval, RetryIntervalDefault)
	c.MaxTransientFailures = cmp.Or(c.MaxTransientFailures, MaxTransientFailuresDefault)
	c.MassFailureWindow = cmp.Or(c.MassFailureWindow, MassFailureWindowDefault)
	c.CertificateExpiryWarning = cmp.Or(c.CertificateExpiryWarning, CertificateExpiryWarningDefault)
	if c.IdleConnections == 0 {
		c.IdleConnections = IdleConnectionsDefault
	}
	c.IdleWindow = cmp.Or(c.IdleWindow, IdleWindowDefault)
	c.OutboxInterval = cmp.Or(c.OutboxInterval, OutboxIntervalDefault)
	c.OutboxClaimTTL = cmp.Or(c.OutboxClaimTTL, OutboxClaimTTLDefault)
	c.MaxSendAttempts = cmp.Or(c.MaxSendAttempts, MaxSendAttemptsDefault)
	c.MaxSendWait = cmp.Or(c.MaxSendWait, MaxSendWaitDefault)
	c.DiscoveryTTL = cmp.Or(c.DiscoveryTTL, DiscoveryTTLDefault)
	c.ScanInterval = cmp.Or(c.ScanInterval, ScanIntervalDefault)
	c.Tick = cmp.Or(c.Tick, TickDefault)
	c.SaveBatch = cmp.Or(c.SaveBatch, SaveBatchDefault)
	c.SaveBatchBytes = cmp.Or(c.SaveBatchBytes, SaveBatchBytesDefault)
	c.MaxMessageSize = cmp.Or(c.MaxMessageSize, MaxMessageSizeDefault)
}

// Defaults of [Config].
const (
	WorkersDefault         = 32
	LeaseTTLDefault        = 2 * time.Minute
	LeaseBatchDefault      = 16
	ActivePollDefault      = 5 * time.Minute
	MaxIdlePollDefault     = 4 * time.Hour
	RetryIntervalDefault   = 5 * time.Minute
	IdleConnectionsDefault = 100
	IdleWindowDefault      = time.Hour
	OutboxIntervalDefault  = 5 * time.Minute
	OutboxClaimTTLDefault  = 5 * time.Minute
	MaxSendAttemptsDefault = 10
	ScanIntervalDefault    = time.Minute
	TickDefault            = time.Second
	SaveBatchDefault       = 100
	// SaveBatchBytesDefault holds a batch to about 1 MiB of mail: 66 messages of
	// the benchmark corpus (~15 KB each), 100 of smaller ones. Measured on
	// bench/syncerpipeline, 20,000 messages: batches of 100 such messages held
	// 5 MB more of peak RSS than batches of 50, which cost 5% more CPU (README,
	// "Measured").
	SaveBatchBytesDefault    = 1 << 20
	MaxMessageSizeDefault    = 64 << 20
	MassFailureWindowDefault = time.Hour
	// CertificateExpiryWarningDefault leaves a month to renew a certificate:
	// registering a new one with the application takes an administrator.
	CertificateExpiryWarningDefault = 30 * 24 * time.Hour
	ShutdownLeaseGraceDefault       = 10 * time.Second
	MaxSendWaitDefault              = 24 * time.Hour

	MaxTransientFailuresDefault = 10
)

// Config configures a [Syncer]. A nil *Config means defaults; zero fields take the
// …Default constants.
type Config struct {
	// Host identifies this process in leases (default: hostname-pid).
	Host string
	// Workers is the global limit of mailboxes and emails processed at once.
	Workers int
	// LeaseTTL is how long a mailbox lease lasts; it is renewed every third of it.
	LeaseTTL time.Duration
	// LeaseBatch is how many mailboxes are leased, and queued emails claimed, at
	// most per store call (never more than there are free workers).
	LeaseBatch int
	// ShutdownLeaseGrace bounds how long the outcome of work already done is still
	// recorded, and its lease released, once the Syncer is stopping (or the store
	// failing): past it, the lease lapses and another host redoes what is missing.
	ShutdownLeaseGrace time.Duration
	// ConnectionSlotTTL is how long a connection slot taken in the store (see
	// MaxConcurrentConnections across processes) lasts unrenewed; it is renewed
	// every third of it, and never outlasts LeaseTTL.
	ConnectionSlotTTL time.Duration
	// ActivePoll is how soon a mailbox that just had new mail is polled again;
	// MaxIdlePoll caps the back-off of quiet mailboxes (a quarter of the time since
	// their last mail). The profile's MinPollingInterval is a floor on both.
	ActivePoll  time.Duration
	MaxIdlePoll time.Duration
	// RetryInterval is the wait after a transient error; after MaxTransientFailures
	// in a row the workload is disabled (failures of the store or the host's hooks
	// are not counted).
	RetryInterval        time.Duration
	MaxTransientFailures int
	// MassFailureWindow is how far back the profile alert for mass failures looks
	// (more than half of a profile's mailboxes failed within it), and how often at
	// most it is raised.
	MassFailureWindow time.Duration
	// CertificateExpiryWarning is how long before a server-to-server certificate
	// expires its profile's owner gets a Warning alert (once a day until renewed).
	CertificateExpiryWarning time.Duration
	// IdleConnections caps the connections kept open waiting for new mail (IMAP
	// IDLE); IdleWindow is how recent a mailbox's last mail must be to get one.
	// IdleConnections < 0 turns IDLE off.
	IdleConnections int
	IdleWindow      time.Duration
	// OutboxInterval is how often the outgoing queue is scanned when nothing wakes
	// it (queuing an email does); OutboxClaimTTL is how long a claimed email is held.
	OutboxInterval time.Duration
	OutboxClaimTTL time.Duration
	// MaxSendAttempts is how many transient send failures an email survives.
	MaxSendAttempts int
	// MaxSendWait is how long a queued email waits for its mailbox to be approved
	// and its outgoing email enabled by Test & Enable (not tested yet, or disabled
	// after a failure) before it fails with the reason; the mailbox's owner gets a
	// Warning when emails start waiting. A mailbox that can never send (outgoing
	// method not ServerSideSync, no profile, rejected, no connector for its server
	// type) fails its emails at once.
	MaxSendWait time.Duration
	// DiscoveryTTL is how long a server found by AutoDiscover is cached on the
	// mailbox before it is discovered again (default DiscoveryTTLDefault, 24 h).
	DiscoveryTTL time.Duration
	// ScanInterval is how often mailboxes waiting for their first sync or for Test
	// & Enable are scheduled; Tick is how often due mailboxes are looked for.
	ScanInterval time.Duration
	Tick         time.Duration
	// SaveBatch is how many messages are stored per transaction at most, and
	// SaveBatchBytes how many bytes of mail (as read from the server): a batch is
	// stored when it reaches either. A sync holds about two batches in memory (one
	// being filled, one being stored), so SaveBatchBytes is what bounds its memory
	// when messages are large.
	SaveBatch      int
	SaveBatchBytes int64
	// MaxMessageSize is the largest message read whole; larger ones are tracked
	// from their first MaxMessageSize bytes, with a parse error saying so.
	MaxMessageSize int64
	// SendTestMessage makes Test & Enable send a message to the mailbox's own
	// address when it tests outgoing mail.
	SendTestMessage bool

	// Track is the host's tracking hook; nil tracks every message that passes the filter.
	Track TrackFunc
	// Resolver answers who an address belongs to, for the incoming filters; with
	// none, no address resolves and those filters keep only correlated mail.
	Resolver AddressResolver
	// OnEvent receives events; nil discards them.
	OnEvent func(Event)
	// Kerberos is where the Kerberos realm is and, for profiles with
	// WindowsIntegrated credentials, this process's own identity (a keytab, as a
	// Windows service account would have, or a ticket cache). nil means MIT's
	// defaults: KRB5_CONFIG, KRB5_CLIENT_KTNAME, KRB5CCNAME. When set, password
	// credentials with AuthProtocol Auto also use Kerberos where the server offers it.
	Kerberos *auth.KerberosConfig
	// OnACTChange is told of each ACT record a server change wrote, after the
	// store committed it (see ACTRecordChange); nil tells nobody. The store's
	// records are what counts: a host that mirrors them elsewhere applies changes
	// by Version and, after a crash (which can lose a notification), reads
	// Syncer.ACTRecords again.
	OnACTChange func(ctx context.Context, c ACTRecordChange)
	// Logger receives structured logs (no secrets); nil means slog.Default().
	Logger *slog.Logger
	// MeterProvider records metrics; nil means a no-op provider.
	MeterProvider metric.MeterProvider
	// Now is the clock; nil means time.Now. Tests inject one.
	Now func() time.Time
}
