package serversync

import (
	"cmp"
	"fmt"
	"os"
	"time"
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
		{"LeaseTTL", c.LeaseTTL}, {"ShutdownLeaseGrace", c.ShutdownLeaseGrace},
		{"ActivePoll", c.ActivePoll}, {"MaxIdlePoll", c.MaxIdlePoll},
		{"RetryInterval", c.RetryInterval}, {"MassFailureWindow", c.MassFailureWindow},
		{"IdleWindow", c.IdleWindow}, {"OutboxInterval", c.OutboxInterval}, {"OutboxClaimTTL", c.OutboxClaimTTL},
		{"MaxSendWait", c.MaxSendWait}, {"ScanInterval", c.ScanInterval}, {"Tick", c.Tick},
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
		{"SaveBatch", int64(c.SaveBatch)}, {"MaxMessageSize", c.MaxMessageSize},
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
	c.ActivePoll = cmp.Or(c.ActivePoll, ActivePollDefault)
	c.MaxIdlePoll = max(cmp.Or(c.MaxIdlePoll, MaxIdlePollDefault), c.ActivePoll)
	c.RetryInterval = cmp.Or(c.RetryInterval, RetryIntervalDefault)
	c.MaxTransientFailures = cmp.Or(c.MaxTransientFailures, MaxTransientFailuresDefault)
	c.MassFailureWindow = cmp.Or(c.MassFailureWindow, MassFailureWindowDefault)
	if c.IdleConnections == 0 {
		c.IdleConnections = IdleConnectionsDefault
	}
	c.IdleWindow = cmp.Or(c.IdleWindow, IdleWindowDefault)
	c.OutboxInterval = cmp.Or(c.OutboxInterval, OutboxIntervalDefault)
	c.OutboxClaimTTL = cmp.Or(c.OutboxClaimTTL, OutboxClaimTTLDefault)
	c.MaxSendAttempts = cmp.Or(c.MaxSendAttempts, MaxSendAttemptsDefault)
	c.MaxSendWait = cmp.Or(c.MaxSendWait, MaxSendWaitDefault)
	c.ScanInterval = cmp.Or(c.ScanInterval, ScanIntervalDefault)
	c.Tick = cmp.Or(c.Tick, TickDefault)
	c.SaveBatch = cmp.Or(c.SaveBatch, SaveBatchDefault)
	c.MaxMessageSize = cmp.Or(c.MaxMessageSize, MaxMessageSizeDefault)
}
